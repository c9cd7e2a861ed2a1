/**
 * A broker fixture for tests: listens on 127.0.0.1 port 0, logs into memory, and shuts down with
 * `await using`.
 *
 * @module
 */

import { Broker } from "../../broker.ts";
import type { BrokerOptions } from "../../broker.ts";
import type { Logger } from "../../src/broker/policy.ts";
import type { LogFields } from "../../src/plugins/types.ts";

/** A log line captured by {@linkcode MemoryLogger}. */
export interface LogLine {
  level: "debug" | "info" | "warning" | "error";
  message: string;
  /** The structured fields the line was logged with. */
  fields?: LogFields;
}

/** A logger that keeps every line (printed too when `AMQTT_TEST_LOG` is set). */
export class MemoryLogger implements Logger {
  readonly lines: LogLine[] = [];
  #print = Deno.env.get("AMQTT_TEST_LOG") !== undefined;

  debug(message: string, fields?: LogFields): void {
    this.#add("debug", message, fields);
  }
  info(message: string, fields?: LogFields): void {
    this.#add("info", message, fields);
  }
  warning(message: string, fields?: LogFields): void {
    this.#add("warning", message, fields);
  }
  error(message: string, fields?: LogFields): void {
    this.#add("error", message, fields);
  }

  /**
   * Whether some line contains `needle`.
   *
   * @param needle text to look for
   * @returns true when found
   */
  has(needle: string): boolean {
    return this.lines.some((l) => l.message.includes(needle));
  }

  #add(level: LogLine["level"], message: string, fields?: LogFields): void {
    this.lines.push({ level, message, fields });
    if (this.#print) console.log(`[${level}] ${message}`);
  }
}

/** A started broker with its port. */
export interface TestBroker extends AsyncDisposable {
  broker: Broker;
  port: number;
  log: MemoryLogger;
}

/**
 * Starts a broker on 127.0.0.1 port 0.
 *
 * @param config configuration keys (snake_case) merged over the test listener
 * @param options broker options; the logger defaults to a {@linkcode MemoryLogger}
 * @returns the broker, its bound port and its log
 */
export async function startBroker(
  config: Record<string, unknown> = {},
  options: BrokerOptions = {},
): Promise<TestBroker> {
  const log = new MemoryLogger();
  const broker = new Broker(
    { listeners: { default: { bind: "127.0.0.1:0" } }, ...config },
    { logger: log, ...options },
  );
  await broker.start();
  return {
    broker,
    port: broker.listeners[0].port,
    log,
    [Symbol.asyncDispose]: () => broker.shutdown(),
  };
}

/**
 * The retained messages outside `$SYS/` (the `$SYS` plugin retains its own, such as the version).
 *
 * @param broker the broker
 * @returns its retained messages but those of `$SYS`
 */
export function userRetained(broker: Broker): ReturnType<Broker["retainedMessages"]> {
  return broker.retainedMessages().filter((m) => !m.topic.startsWith("$SYS/"));
}

/**
 * Polls `condition` until it holds.
 *
 * @param condition checked every 10 ms (each check awaited before the next)
 * @param timeoutMs how long to wait: a failure guard, generous for two shared cores
 * @param what described in the failure
 * @throws {Error} when it still does not hold after `timeoutMs`
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what = "condition",
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(10);
  }
}

/**
 * Resolves after `ms`.
 *
 * @param ms milliseconds
 * @returns a promise
 */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

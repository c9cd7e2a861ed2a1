/**
 * Running the command-line tools as subprocesses against a broker started by the test.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { Broker } from "../../broker.ts";
import type { BrokerEventMap } from "../../broker.ts";

const CONFIG = fileURLToPath(new URL("../../deno.json", import.meta.url));

/** The entry points under test. */
export type Entry = "amqtt.ts" | "amqtt_pub.ts" | "amqtt_sub.ts" | "main.ts";

/** Options of {@linkcode spawnCli}. */
export interface SpawnOptions {
  /**
   * Bytes or text written to stdin, which is then closed; `"piped"` leaves `child.stdin` to the
   * caller, who must close it; default: no stdin at all.
   */
  stdin?: string | Uint8Array | "piped";
  /** The process is killed after this long and the test fails. Default 20 s. */
  timeoutMs?: number;
  /** More environment variables (besides `NO_COLOR=1`). */
  env?: Record<string, string>;
}

/** How a tool ended. */
export interface CliResult {
  code: number;
  signal: Deno.Signal | null;
  stdout: Uint8Array;
  stderr: string;
  /** `stdout` as UTF-8. */
  text: string;
}

/** A running tool. */
export interface CliProcess extends AsyncDisposable {
  readonly child: Deno.ChildProcess;
  /** stderr so far. */
  stderr(): string;
  /** Resolves with the first match of `pattern` in stderr; rejects after `ms`. */
  waitForStderr(pattern: RegExp, ms?: number): Promise<RegExpMatchArray>;
  /** Sends a signal (ignored when the process already ended). */
  kill(signal: Deno.Signal): void;
  /** Resolves when the process ended and its output is read. */
  readonly done: Promise<CliResult>;
}

/** Starts `cli/<entry>` with `args` under the repository's deno.json. */
export function spawnCli(entry: Entry, args: string[], options: SpawnOptions = {}): CliProcess {
  const script = fileURLToPath(new URL(`../../cli/${entry}`, import.meta.url));
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, script, ...args],
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...options.env },
  }).spawn();
  let exited = false;
  let stderrText = "";
  const waiters = new Set<() => void>();

  const stdin = options.stdin;
  const wrote = stdin === undefined || stdin === "piped" ? Promise.resolve() : (async () => {
    const writer = child.stdin.getWriter();
    try {
      await writer.write(typeof stdin === "string" ? new TextEncoder().encode(stdin) : stdin);
      await writer.close();
    } catch {
      // The tool exited before reading its input.
    }
  })();
  const stdout = new Response(child.stdout).bytes();
  const stderr = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      stderrText += decoder.decode(chunk, { stream: true });
      for (const wake of waiters) wake();
    }
  })();
  const timer = setTimeout(() => {
    if (!exited) child.kill("SIGKILL");
  }, options.timeoutMs ?? 20_000);
  const done = (async (): Promise<CliResult> => {
    const status = await child.status;
    exited = true;
    clearTimeout(timer);
    const [out] = await Promise.all([stdout, stderr, wrote]);
    for (const wake of waiters) wake();
    return {
      code: status.code,
      signal: status.signal,
      stdout: out,
      stderr: stderrText,
      text: new TextDecoder().decode(out),
    };
  })();

  return {
    child,
    stderr: () => stderrText,
    waitForStderr(pattern, ms = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = stderrText.match(pattern);
          if (match !== null || exited) {
            waiters.delete(check);
            clearTimeout(t);
            if (match !== null) resolve(match);
            else reject(new Error(`Process ended without ${pattern} in stderr:\n${stderrText}`));
          }
        };
        const t = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`No ${pattern} in stderr after ${ms} ms:\n${stderrText}`));
        }, ms);
        waiters.add(check);
        check();
      });
    },
    kill(signal) {
      if (exited) return;
      try {
        child.kill(signal);
      } catch {
        // It ended meanwhile.
      }
    },
    done,
    async [Symbol.asyncDispose]() {
      this.kill("SIGKILL");
      await done;
    },
  };
}

/** Runs a tool to completion. */
export async function runCli(
  entry: Entry,
  args: string[],
  options: SpawnOptions = {},
): Promise<CliResult> {
  await using proc = spawnCli(entry, args, options);
  return await proc.done;
}

/** Starts a broker on 127.0.0.1 with a free port; `config` adds to the default listener. */
export async function startBroker(config: Record<string, unknown> = {}): Promise<
  { broker: Broker; port: number; url: string }
> {
  const broker = new Broker({
    listeners: { default: { bind: "127.0.0.1:0" } },
    ...config,
  });
  await broker.start();
  const port = broker.listeners[0].port;
  return { broker, port, url: `mqtt://127.0.0.1:${port}` };
}

/** Resolves with the first `event` that satisfies `test`; rejects after `ms`. */
export function nextEvent<K extends keyof BrokerEventMap>(
  broker: Broker,
  event: K,
  test: (e: BrokerEventMap[K]) => boolean = () => true,
  ms = 15_000,
): Promise<BrokerEventMap[K]> {
  return new Promise((resolve, reject) => {
    const off = broker.on(event, (e) => {
      if (!test(e)) return;
      off();
      clearTimeout(timer);
      resolve(e);
    });
    const timer = setTimeout(() => {
      off();
      reject(new Error(`No ${event} event within ${ms} ms`));
    }, ms);
  });
}

/** Collects every `message` event of the broker. */
export function recordMessages(broker: Broker): BrokerEventMap["message"][] {
  const seen: BrokerEventMap["message"][] = [];
  broker.on("message", (m) => seen.push(m));
  return seen;
}

/** A temporary directory removed by `await using` (tests of the CLIs import it from here). */
export { tempDir } from "../_helpers/temp_dir.ts";

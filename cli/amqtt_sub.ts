/**
 * `amqtt_sub`: subscribe to topic filters and print every message, with aMQTT's flags.
 *
 * Each message's payload is written to stdout as received, followed by `\n`; empty payloads are
 * skipped, as aMQTT does. `-n COUNT` stops after COUNT printed messages. On Ctrl-C or SIGTERM
 * (and after COUNT messages) the client unsubscribes, disconnects and exits with code 0.
 *
 * ```sh
 * amqtt_sub --url mqtt://localhost -t 'sensors/#' -t alerts -q 1
 * amqtt_sub --url ws://localhost:8080/mqtt -t test -n 10
 * ```
 *
 * Exit code 0 on a clean end, 1 when the connection failed, the broker refused every filter or
 * the connection was lost for good, 2 for wrong or conflicting flags.
 *
 * @example
 * ```ts
 * import { runSub } from "./amqtt_sub.ts";
 * import assert from "node:assert/strict";
 *
 * // A topic filter with "#" not at the end: a usage error, exit code 2.
 * assert.equal(await runSub(["-t", "a/#/b"]), 2);
 * ```
 *
 * @module
 */

import { Option } from "commander";
import { validateTopicFilter, VERSION } from "./_deps.ts";
import {
  addConnectionOptions,
  type ConnectionFlags,
  connectUntilStopped,
  integerIn,
  parseQos,
  prepareClient,
  type QoS,
} from "./_connection.ts";
import { createLogger } from "./_log.ts";
import {
  CliError,
  type CommandOptions,
  newProgram,
  runCommand,
  usageError,
  writeStdout,
} from "./_program.ts";

export type { CommandOptions } from "./_program.ts";

interface SubFlags extends ConnectionFlags {
  topic: string[];
  qos: QoS;
  count?: number;
}

/** How long a clean end waits for UNSUBACK before disconnecting anyway. */
const UNSUBSCRIBE_WAIT_MS = 5000;

/**
 * Runs `amqtt_sub` with `args` (the arguments after the program name).
 *
 * @param args the command-line arguments
 * @param options the program name for usage lines and messages (default `amqtt_sub`)
 * @returns the exit code: 0 clean end, 1 failed, 2 wrong flags
 *
 * @example
 * ```ts
 * import { runSub } from "./amqtt_sub.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(await runSub(["--help"]), 0);
 * ```
 */
export async function runSub(args: string[], options: CommandOptions = {}): Promise<number> {
  const program = newProgram(options.name ?? "amqtt_sub", VERSION)
    .description("Subscribe to topic filters and print each message's payload on its own line.");
  program
    .requiredOption(
      "-t, --topic <filter>",
      "topic filter to subscribe to (repeat for more)",
      (value: string, previous: string[] | undefined) => [...previous ?? [], value],
    )
    .addOption(new Option("-q, --qos <level>", "QoS: 0, 1 or 2").argParser(parseQos).default(0))
    .addOption(
      new Option("-n, --count <count>", "exit after printing this many messages")
        .argParser(integerIn(1, Number.MAX_SAFE_INTEGER)),
    );
  addConnectionOptions(program);
  return await runCommand<SubFlags>(program, args, subscribe);
}

async function subscribe(flags: SubFlags): Promise<number> {
  for (const filter of flags.topic) {
    const problem = validateTopicFilter(filter);
    if (problem !== undefined) throw usageError(`Invalid topic filter "${filter}": ${problem}`);
  }
  const log = createLogger({ debug: flags.debug });
  const prepared = await prepareClient("amqtt_sub", flags, log);
  const { client } = prepared;
  const id = client.clientId;

  await using connection = await connectUntilStopped(prepared, log);
  if (connection.interrupted) return 0;
  const stop = connection.stopped;
  const granted = await client.subscribe(flags.topic.map((topic) => ({ topic, qos: flags.qos })));
  const refused = flags.topic.filter((_, i) => granted[i] >= 0x80);
  for (const filter of refused) log.warning(`${id} The broker refused the filter '${filter}'`);
  if (refused.length === flags.topic.length) {
    throw new CliError("The broker refused every topic filter");
  }
  log.debug(`${id} Subscribed to ${flags.topic.map((t) => `'${t}'`).join(", ")}`);

  let printed = 0;
  while (flags.count === undefined || printed < flags.count) {
    let message;
    try {
      message = await client.deliverMessage({ signal: stop });
    } catch (error) {
      if (stop.aborted) break;
      throw new CliError(`Lost the connection to the broker (${(error as Error).message})`, {
        cause: error,
      });
    }
    log.debug(
      `${id} Received ${message.payload.length} bytes on '${message.topic}' (QoS ${message.qos})`,
    );
    if (message.payload.length === 0) continue;
    const line = new Uint8Array(message.payload.length + 1);
    line.set(message.payload);
    line[line.length - 1] = 10;
    try {
      await writeStdout(line);
    } catch (error) {
      // The reader went away (`amqtt_sub | head -1`): nothing more to print.
      if (error instanceof Deno.errors.BrokenPipe) break;
      throw error;
    }
    printed++;
  }
  if (client.connected) await unsubscribe(client, flags.topic);
  await client.disconnect();
  log.info(`${id} Disconnected from broker`);
  return 0;
}

async function unsubscribe(
  client: { unsubscribe(topics: string[]): Promise<void> },
  topics: string[],
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      client.unsubscribe(topics).catch(() => {}),
      new Promise((resolve) => timer = setTimeout(resolve, UNSUBSCRIBE_WAIT_MS)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

if (import.meta.main) Deno.exit(await runSub(Deno.args));

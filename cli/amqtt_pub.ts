/**
 * `amqtt_pub`: publish messages to an MQTT broker, with aMQTT's flags and mosquitto_pub's where
 * they do not clash (`-h` host, `-p` port, `-u`/`-P` credentials, `-V`, `-L`, `--cafile`, `--cert`,
 * `--key`, `--insecure`, `-c`, MQTT 5.0's `-D` properties and `-x` session expiry; `--help` is
 * help).
 *
 * Exactly one message source: `-m` a message, `-f` one message per line of a file, `-s` all of
 * stdin as one message, `-l` one message per line of stdin (as lines arrive), `-n` an empty
 * message. Line sources drop the line ending and skip empty lines. Messages are published
 * concurrently (at most 64 waiting for their acknowledgement), then the client disconnects. The
 * session is clean unless `-c` (with `-i`) asks to keep it: a run leaves nothing on the broker.
 *
 * ```sh
 * amqtt_pub -h localhost -t sensors/t1 -q 1 -m 21.5
 * some_command | AMQTT_PASSWORD=secret amqtt_pub -h localhost -u alice -t logs -l
 * ```
 *
 * Exit code 0 when every message was published, 1 when the connection failed or a message could
 * not be published, 2 for wrong or conflicting flags.
 *
 * @example
 * ```ts
 * import { runPub } from "./amqtt_pub.ts";
 * import assert from "node:assert/strict";
 *
 * // No message source: a usage error, exit code 2.
 * assert.equal(await runPub(["-t", "a/b"]), 2);
 * ```
 *
 * @module
 */

import { Option } from "commander";
import {
  PacketType,
  type PublishProperties,
  reasonText,
  validateTopicName,
  VERSION,
} from "./_deps.ts";
import { takePropertyArgs } from "./_properties.ts";
import {
  addConnectionOptions,
  checkOperands,
  type ConnectionFlags,
  connectUntilStopped,
  parseQos,
  prepareClient,
  type QoS,
  toolLogger,
} from "./_connection.ts";
import { CliError, type CommandOptions, newProgram, runCommand, usageError } from "./_program.ts";

export type { CommandOptions } from "./_program.ts";

interface PubFlags extends ConnectionFlags {
  topic?: string;
  qos: QoS;
  retain?: boolean;
  message?: string;
  file?: string;
  stdinFile?: boolean;
  stdinLine?: boolean;
  nullMessage?: boolean;
}

/** Publishes waiting for their acknowledgement at once, so a long `-l` stream stays bounded. */
const WINDOW = 64;
const SOURCES = ["message", "file", "stdinFile", "stdinLine", "nullMessage"];

/**
 * Runs `amqtt_pub` with `args` (the arguments after the program name).
 *
 * @param args the command-line arguments
 * @param options the program name for usage lines and messages (default `amqtt_pub`)
 * @returns the exit code: 0 done, 1 failed, 2 wrong flags
 *
 * @example
 * ```ts
 * import { runPub } from "./amqtt_pub.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(await runPub(["-t", "a/b", "-m", "x", "-n"]), 2); // two message sources
 * ```
 */
export async function runPub(args: string[], options: CommandOptions = {}): Promise<number> {
  const program = newProgram(options.name ?? "amqtt_pub", VERSION, { shortHelp: false })
    .description("Publish messages to an MQTT broker.");
  program
    .option("-t, --topic <topic>", "topic to publish to (or the path of an -L mqtt:// URL)")
    .addOption(new Option("-q, --qos <level>", "QoS: 0, 1 or 2").argParser(parseQos).default(0))
    .option("-r, --retain", "ask the broker to retain the message")
    .addOption(source("-m, --message <message>", "publish this message"))
    .addOption(source("-f, --file <file>", "publish each line of a file as a message"))
    .addOption(source("-s, --stdin-file", "publish all of stdin as one message"))
    .addOption(source("-l, --stdin-line", "publish each line of stdin as a message"))
    .addOption(source("-n, --null-message", "publish an empty message"));
  addConnectionOptions(program).allowExcessArguments(true);
  const { args: rest, groups } = takePropertyArgs(args);
  return await runCommand<PubFlags>(
    program,
    rest,
    (flags, operands) => publish({ ...flags, propertyGroups: groups }, operands),
  );
}

function source(flags: string, description: string): Option {
  const option = new Option(flags, description);
  return option.conflicts(SOURCES.filter((name) => name !== option.attributeName()));
}

async function publish(flags: PubFlags, operands: string[]): Promise<number> {
  checkOperands(flags, operands);
  const given = SOURCES.filter((name) => {
    const value = flags[name as keyof PubFlags];
    return value !== undefined && value !== false;
  });
  if (given.length !== 1) {
    throw usageError("Give exactly one message source: -m, -f, -s, -l or -n");
  }
  const log = toolLogger(flags);
  const prepared = await prepareClient("amqtt_pub", flags, log, {
    propertyCommands: ["connect", "publish", "disconnect", "will"],
  });
  const properties = prepared.properties.publish as PublishProperties | undefined;
  const { client } = prepared;
  const topic = flags.topic ?? prepared.urlTopic;
  if (topic === undefined) {
    throw usageError("Give the topic with -t (or as the path of an -L mqtt://host/topic URL)");
  }
  const problem = validateTopicName(topic);
  if (problem !== undefined) throw usageError(`Invalid topic "${topic}": ${problem}`);

  // Read what can be read before connecting: a missing file or a failing stdin costs no
  // connection.
  const file = flags.file !== undefined ? await openInput(flags.file) : undefined;
  const whole = flags.stdinFile === true
    ? await new Response(Deno.stdin.readable).bytes()
    : undefined;

  try {
    await using connection = await connectUntilStopped(prepared, log);
    if (connection.interrupted) {
      throw new CliError("Interrupted while connecting", { exitCode: 130 });
    }
    const stop = connection.stopped;
    let payloads: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
    if (flags.message !== undefined) payloads = [new TextEncoder().encode(flags.message)];
    else if (whole !== undefined) payloads = [whole];
    else if (flags.nullMessage === true) payloads = [new Uint8Array(0)];
    else if (file !== undefined) {
      payloads = lines(file.readable, `-f file "${flags.file}"`, stop);
    } else payloads = lines(Deno.stdin.readable, "stdin", stop);

    let failure: unknown;
    const pending = new Set<Promise<void>>();
    for await (const payload of payloads) {
      if (failure !== undefined || stop.aborted) break;
      log.info(`${client.clientId} Publishing to '${topic}'`);
      const done: Promise<void> = client
        .publish(topic, payload, { qos: flags.qos, retain: flags.retain === true, properties })
        .then((result) => {
          // MQTT 5.0: how the broker took it, e.g. 0x10 No matching subscribers.
          if (result !== undefined && result.reasonCode !== 0) {
            const why = result.properties?.reasonString;
            const text = reasonText(result.reasonCode, PacketType.PUBACK);
            log.debug(`${client.clientId} The broker answered ${text}${why ? ` (${why})` : ""}`);
          }
        }, (error) => {
          failure ??= error;
        })
        .finally(() => pending.delete(done));
      pending.add(done);
      if (pending.size >= WINDOW) await Promise.race(pending);
    }
    await Promise.all(pending);
    if (failure !== undefined) {
      throw new CliError(
        `Cannot publish to "${topic}": ${(failure as Error).message ?? failure}`,
        { cause: failure },
      );
    }
    await client.disconnect(prepared.disconnectOptions);
    log.info(`${client.clientId} Disconnected from broker`);
    return 0;
  } finally {
    try {
      file?.close();
    } catch { /* closed by its stream */ }
  }
}

async function openInput(path: string): Promise<Deno.FsFile> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "it does not exist"
      : (error as Error).message;
    throw new CliError(`Cannot read -f file "${path}": ${reason}`, { cause: error });
  }
  // A directory opens fine on Linux and fails only at the first read, after connecting.
  if ((await file.stat()).isDirectory) {
    file.close();
    throw new CliError(`Cannot read -f file "${path}": it is a directory`);
  }
  return file;
}

/**
 * The non-empty lines of a byte stream as they arrive, without `\n` or `\r\n`; binary-safe.
 * Aborting `signal` ends the iteration. A read error names `what` was being read.
 */
async function* lines(
  stream: ReadableStream<Uint8Array>,
  what: string,
  signal: AbortSignal,
): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  const cancel = () => void reader.cancel().catch(() => {});
  signal.addEventListener("abort", cancel, { once: true });
  let rest = new Uint8Array(0);
  try {
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (error) {
        if (signal.aborted) break;
        throw new CliError(`Cannot read ${what}: ${(error as Error).message}`, { cause: error });
      }
      const { value, done } = chunk;
      if (done) break;
      const buffer = rest.length === 0 ? value : concat(rest, value);
      let start = 0;
      for (let nl = buffer.indexOf(10); nl >= 0; nl = buffer.indexOf(10, start)) {
        const line = trimCr(buffer.subarray(start, nl));
        start = nl + 1;
        if (line.length > 0) yield line;
      }
      rest = buffer.slice(start);
    }
    const last = trimCr(rest);
    if (last.length > 0) yield last;
  } finally {
    signal.removeEventListener("abort", cancel);
    reader.releaseLock();
  }
}

function trimCr(line: Uint8Array): Uint8Array {
  return line.length > 0 && line[line.length - 1] === 13 ? line.subarray(0, -1) : line;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

if (import.meta.main) Deno.exit(await runPub(Deno.args));

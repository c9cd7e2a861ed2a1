/**
 * `amqtt_sub`: subscribe to topic filters and print every message, with aMQTT's flags and
 * mosquitto_sub's where they do not clash (`-h` host, `-p` port, `-u`/`-P`, `-V`, `-L`, `-v`, `-F`,
 * `-N`, `-C`, `-W`, `-R`, `--cafile`, `--cert`, `--key`, `--insecure`, `-c`, MQTT 5.0's `-D`
 * properties, `-x` session expiry and `--pretty`; `--help` is help).
 *
 * Each message is printed as mosquitto_sub prints it: the payload as received followed by `\n`
 * (an empty payload is an empty line), `-v` the topic and the payload, `-F` a format string.
 * `-n`/`-C COUNT` stops after COUNT messages, `-W SECONDS` after that long (exit code 27, as
 * mosquitto_sub). When the connection is lost the tool reconnects and resubscribes, forever by
 * default (`--reconnect-retries N` caps the attempts). On Ctrl-C or SIGTERM (and after COUNT
 * messages) the client unsubscribes, disconnects and exits with code 0. The session is clean
 * unless `-c` (with `-i`) asks to keep it; a kept session keeps its subscriptions.
 *
 * ```sh
 * amqtt_sub -h localhost -t 'sensors/#' -t alerts -q 1 -v
 * amqtt_sub -L ws://localhost:8080/mqtt -t test -C 10
 * ```
 *
 * Exit code 0 on a clean end, 1 when the connection failed, the broker refused every filter or
 * the reconnect attempts ran out, 2 for wrong or conflicting flags, 27 when `-W` ran out.
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
import {
  type ApplicationMessage,
  PacketType,
  reasonText,
  ServerDisconnectError,
  type SubscribeOptions,
  type UnsubscribeOptions,
  validateTopicFilter,
  VERSION,
} from "./_deps.ts";
import {
  addConnectionOptions,
  checkOperands,
  connectClient,
  type ConnectionFlags,
  connectUntilStopped,
  integerIn,
  parseQos,
  prepareClient,
  type PreparedClient,
  type QoS,
  toolLogger,
} from "./_connection.ts";
import { checkFormat, formatMessage } from "./_format.ts";
import { takePropertyArgs } from "./_properties.ts";
import type { Logger } from "./_log.ts";
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
  topic?: string[];
  qos: QoS;
  count?: number;
  msgCount?: number;
  verbose?: boolean;
  format?: string;
  pretty?: boolean;
  eol: boolean;
  retained: boolean;
  timeout?: number;
  reconnectRetries?: number;
}

/** How long a clean end waits for UNSUBACK before disconnecting anyway. */
const UNSUBSCRIBE_WAIT_MS = 5000;
/** Exit code when `-W` runs out, as mosquitto_sub (ETIMEDOUT). */
const EXIT_TIMEOUT = 27;

/**
 * Runs `amqtt_sub` with `args` (the arguments after the program name).
 *
 * @param args the command-line arguments
 * @param options the program name for usage lines and messages (default `amqtt_sub`)
 * @returns the exit code: 0 clean end, 1 failed, 2 wrong flags, 27 `-W` ran out
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
  const program = newProgram(options.name ?? "amqtt_sub", VERSION, { shortHelp: false })
    .description("Subscribe to topic filters and print each message on its own line.");
  const count = () => integerIn(1, Number.MAX_SAFE_INTEGER);
  program
    .option(
      "-t, --topic <filter>",
      "topic filter to subscribe to (repeat for more; or the path of an -L mqtt:// URL)",
      (value: string, previous: string[] | undefined) => [...previous ?? [], value],
    )
    .addOption(new Option("-q, --qos <level>", "QoS: 0, 1 or 2").argParser(parseQos).default(0))
    .addOption(
      new Option("-n, --count <count>", "exit after this many messages").argParser(count()),
    )
    .addOption(new Option("-C, --msg-count <count>", "the same as -n").argParser(count()))
    .option("-v, --verbose", "print the topic, a space, then the payload")
    .option(
      "-F, --format <format>",
      "print with this mosquitto_sub format (%t topic, %p payload, %P user properties…)",
    )
    .option("--pretty", "print %j and %J JSON indented, as mosquitto_sub --pretty")
    .option("-N, --no-eol", "do not print a newline after each message")
    .option("-R, --no-retained", "do not print retained (stale) messages")
    .addOption(
      new Option("-W, --timeout <seconds>", "exit after this many seconds (exit code 27)")
        .argParser(integerIn(1, 2_147_483)),
    )
    .addOption(
      new Option(
        "--reconnect-retries <n>",
        "reconnect attempts after losing the broker, -1 for no limit (default -1)",
      ).argParser(integerIn(-1, Number.MAX_SAFE_INTEGER)),
    );
  addConnectionOptions(program).allowExcessArguments(true);
  const { args: rest, groups } = takePropertyArgs(args);
  return await runCommand<SubFlags>(
    program,
    rest,
    (flags, operands) => subscribe({ ...flags, propertyGroups: groups }, operands),
  );
}

async function subscribe(flags: SubFlags, operands: string[]): Promise<number> {
  checkOperands(flags, operands);
  if (flags.count !== undefined && flags.msgCount !== undefined) {
    throw usageError("Options -n/--count and -C/--msg-count are the same: give one");
  }
  const limit = flags.count ?? flags.msgCount;
  const problem = flags.format === undefined ? undefined : checkFormat(flags.format);
  if (problem !== undefined) throw usageError(`Invalid -F format: ${problem}`);
  const log = toolLogger(flags);
  // The tool reconnects itself: it says so in the log and resubscribes when the session is gone.
  const prepared = await prepareClient("amqtt_sub", flags, log, {
    autoReconnect: false,
    propertyCommands: ["connect", "subscribe", "unsubscribe", "disconnect", "will"],
  });
  const filters = [...flags.topic ?? []];
  if (filters.length === 0 && prepared.urlTopic !== undefined) filters.push(prepared.urlTopic);
  if (filters.length === 0) {
    throw usageError("Give a topic filter with -t (or as the path of an -L mqtt://host/topic URL)");
  }
  for (const filter of filters) {
    const problem = validateTopicFilter(filter);
    if (problem !== undefined) throw usageError(`Invalid topic filter "${filter}": ${problem}`);
  }
  const retries = flags.reconnectRetries ?? (prepared.autoReconnect ? -1 : 0);
  const { client } = prepared;
  const id = client.clientId;

  await using connection = await connectUntilStopped(prepared, log);
  if (connection.interrupted) return 0;
  const stop = connection.stopped;
  // Ends the loop: a stop signal, or -W running out.
  const ended = new AbortController();
  const end = () => ended.abort();
  stop.addEventListener("abort", end);
  if (stop.aborted) end();
  let timedOut = false;
  const timer = flags.timeout === undefined ? undefined : setTimeout(() => {
    timedOut = true;
    end();
  }, flags.timeout * 1000);
  try {
    await subscribeAll(prepared, filters, flags.qos, log);
    const format = {
      verbose: flags.verbose,
      format: flags.format,
      eol: flags.eol,
      pretty: flags.pretty === true,
    };
    let printed = 0;
    while (limit === undefined || printed < limit) {
      let message: ApplicationMessage;
      try {
        message = await client.deliverMessage({ signal: ended.signal });
      } catch (error) {
        if (ended.signal.aborted) break;
        const kicked = serverDisconnect(error);
        if (kicked?.final === true) {
          // Reconnecting would not help (0x87, 0x98…) or would fight another client (0x8E).
          throw new CliError(
            "The broker ended the connection with DISCONNECT " +
              reasonText(kicked.reasonCode, PacketType.DISCONNECT, kicked.properties?.reasonString),
            { cause: kicked },
          );
        }
        const again = await reconnect(prepared, filters, flags.qos, retries, ended.signal, log);
        if (again.connected) continue;
        if (ended.signal.aborted) break;
        const reason = again.lastError ?? kicked ?? error;
        const given = retries === 0 ? "" : ` and ${retries} reconnect attempts failed`;
        throw new CliError(
          `Lost the connection to the broker${given} (${(reason as Error).message})`,
          { cause: reason },
        );
      }
      log.debug(
        `${id} Received ${message.payload.length} bytes on '${message.topic}' (QoS ${message.qos})`,
      );
      if (!flags.retained && message.retain) continue;
      let bytes: Uint8Array;
      try {
        bytes = formatMessage(message, format);
      } catch (error) {
        log.warning(`${id} ${(error as Error).message}`);
        continue;
      }
      try {
        await writeStdout(bytes);
      } catch (error) {
        // The reader went away (`amqtt_sub | head -1`): nothing more to print.
        if (error instanceof Deno.errors.BrokenPipe) break;
        throw error;
      }
      printed++;
    }
  } finally {
    clearTimeout(timer);
    stop.removeEventListener("abort", end);
  }
  // A kept session (-c) keeps its subscriptions for next time, as mosquitto_sub -c does.
  if (client.connected && prepared.connectOptions.cleanSession !== false) {
    await unsubscribe(prepared, filters, log);
  }
  await client.disconnect(prepared.disconnectOptions);
  log.info(`${id} Disconnected from broker`);
  if (timedOut) throw new CliError("Timed out", { exitCode: EXIT_TIMEOUT });
  return 0;
}

async function subscribeAll(
  prepared: PreparedClient,
  filters: string[],
  qos: QoS,
  log: Logger,
): Promise<void> {
  const { client } = prepared;
  const id = client.clientId;
  const options = (prepared.properties.subscribe ?? {}) as SubscribeOptions;
  const granted = await client.subscribe(filters.map((topic) => ({ topic, qos })), options);
  const refused = filters.filter((_, i) => granted[i] >= 0x80);
  const why = (i: number) =>
    prepared.connectOptions.protocolVersion === 5
      ? `: ${reasonText(granted[i], PacketType.SUBACK, granted.properties?.reasonString)}`
      : "";
  filters.forEach((filter, i) => {
    if (granted[i] >= 0x80) log.warning(`${id} The broker refused the filter '${filter}'${why(i)}`);
  });
  if (refused.length === filters.length) {
    throw new CliError(`The broker refused every topic filter${why(0)}`);
  }
  log.debug(`${id} Subscribed to ${filters.map((t) => `'${t}'`).join(", ")}`);
}

/**
 * Reconnects after the connection was lost, with back-off (1, 2, 4… seconds up to the
 * configuration's `reconnect_max_interval`), and resubscribes when the broker kept no session.
 *
 * @returns connected again, or not (the attempts ran out or `signal` aborted) with the last
 *   attempt's failure
 */
async function reconnect(
  prepared: PreparedClient,
  filters: string[],
  qos: QoS,
  retries: number,
  signal: AbortSignal,
  log: Logger,
): Promise<{ connected: boolean; lastError?: unknown }> {
  const { client } = prepared;
  const id = client.clientId;
  if (retries === 0) return { connected: false };
  log.warning(`${id} Lost the connection to the broker`);
  const stopConnecting = () => void client.disconnect();
  signal.addEventListener("abort", stopConnecting, { once: true });
  let lastError: unknown;
  try {
    for (let attempt = 0; retries < 0 || attempt < retries; attempt++) {
      const seconds = Math.min(prepared.reconnectMaxInterval, 2 ** attempt);
      log.info(`${id} Reconnecting in ${seconds} s`);
      if (!await sleep(seconds * 1000, signal)) return { connected: false };
      try {
        const sessionPresent = await connectClient(prepared, log);
        // A session the broker kept still has the subscriptions; a clean one needs them again.
        if (!sessionPresent) await subscribeAll(prepared, filters, qos, log);
      } catch (error) {
        if (signal.aborted) return { connected: false };
        if (client.connected) throw error; // connected, but the broker refused every filter
        lastError = error;
        log.warning(`${id} ${(error as Error).message}`);
        continue;
      }
      log.info(`${id} Reconnected`);
      return { connected: true };
    }
    return { connected: false, lastError };
  } finally {
    signal.removeEventListener("abort", stopConnecting);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

async function unsubscribe(
  prepared: PreparedClient,
  topics: string[],
  log: Logger,
): Promise<void> {
  const { client } = prepared;
  const options = (prepared.properties.unsubscribe ?? {}) as UnsubscribeOptions;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      client.unsubscribe(topics, options).then((codes) => {
        topics.forEach((topic, i) => {
          if (codes[i] >= 0x80) {
            log.warning(
              `${client.clientId} The broker refused to unsubscribe '${topic}': ` +
                reasonText(codes[i], PacketType.UNSUBACK, codes.properties?.reasonString),
            );
          }
        });
      }, () => {}),
      new Promise((resolve) => timer = setTimeout(resolve, UNSUBSCRIBE_WAIT_MS)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The server's DISCONNECT (MQTT 5.0) behind a lost connection, if it was one. */
function serverDisconnect(error: unknown): ServerDisconnectError | undefined {
  for (let e = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof ServerDisconnectError) return e;
  }
  return undefined;
}

if (import.meta.main) Deno.exit(await runSub(Deno.args));

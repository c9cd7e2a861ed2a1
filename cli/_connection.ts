/**
 * The connection flags `amqtt_pub` and `amqtt_sub` share (aMQTT's names and defaults), how they
 * become an {@linkcode MQTTClient} and its connect options, and the connection both tools hold
 * until Ctrl-C or SIGTERM.
 *
 * @module
 */

import { type Command, InvalidArgumentError, Option } from "commander";
import {
  type ClientConfig,
  ConnackReturnCode,
  ConnectError,
  type ConnectOptions,
  loadClientConfigFile,
  MQTTClient,
  resolveClientConfig,
  validateTopicName,
} from "./_deps.ts";
import type { Logger } from "./_log.ts";
import { CliError, onStopSignal, usageError } from "./_program.ts";

/** A QoS level. */
export type QoS = 0 | 1 | 2;

/** The flags of {@linkcode addConnectionOptions}, as commander names them. */
export interface ConnectionFlags {
  url?: string;
  configFile?: string;
  clientId?: string;
  keepAlive?: number;
  cleanSession?: boolean;
  caFile?: string;
  caPath?: string;
  caData?: string;
  willTopic?: string;
  willMessage?: string;
  willQos?: QoS;
  willRetain?: boolean;
  extraHeaders?: string;
  debug?: boolean;
}

/** A client ready to connect, with where and how. */
export interface PreparedClient {
  client: MQTTClient;
  /** The broker URL. */
  url: string;
  /** Clean session, will and WebSocket headers. */
  connectOptions: ConnectOptions;
}

/**
 * Parses a QoS flag value.
 *
 * @param value the flag's text
 * @returns 0, 1 or 2
 * @throws {InvalidArgumentError} for anything else
 */
export function parseQos(value: string): QoS {
  if (value !== "0" && value !== "1" && value !== "2") {
    throw new InvalidArgumentError("QoS must be 0, 1 or 2");
  }
  return Number(value) as QoS;
}

/**
 * Makes a parser for an integer flag in `[min, max]`.
 *
 * @param min the smallest value allowed
 * @param max the largest value allowed
 * @returns the parser, throwing {@linkcode InvalidArgumentError} for other text
 */
export function integerIn(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = /^\d+$/.test(value) ? Number(value) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(
        max === Number.MAX_SAFE_INTEGER
          ? `Expected an integer of at least ${min}`
          : `Expected an integer from ${min} to ${max}`,
      );
    }
    return n;
  };
}

/**
 * Adds the connection flags shared by `amqtt_pub` and `amqtt_sub` to `program`.
 *
 * @param program the program
 * @returns the same program
 */
export function addConnectionOptions(program: Command): Command {
  return program
    .option(
      "--url <url>",
      "broker URL: [mqtt|ws][s]://[user[:password]@]host[:port][/path] " +
        "(default: the config file's connection.uri, else mqtt://127.0.0.1:1883)",
    )
    .option("-c, --config-file <file>", "client configuration file (aMQTT YAML)")
    .option("-i, --client-id <id>", "client identifier (default: <tool>/<pid>-<hostname>)")
    .addOption(
      new Option(
        "-k, --keep-alive <seconds>",
        "keep-alive in seconds (default: the config file's keep_alive, else 10)",
      )
        .argParser(integerIn(0, 65535)),
    )
    .option("--clean-session", "start a clean session (default: resume the session)")
    .option("--ca-file <file>", "PEM file of CA certificates to trust (mqtts, wss)")
    .option("--ca-path <dir>", "directory of PEM CA certificates to trust (mqtts, wss)")
    .option("--ca-data <pem>", "PEM CA certificates to trust, inline (mqtts, wss)")
    .option("--will-topic <topic>", "topic of the will message (needs --will-message)")
    .option("--will-message <message>", "payload of the will message (needs --will-topic)")
    .addOption(
      new Option("--will-qos <level>", "QoS of the will message (default 0)").argParser(parseQos),
    )
    .option("--will-retain", "publish the will message with retain")
    .option(
      "--extra-headers <json>",
      'extra HTTP headers for ws/wss, as a JSON object: \'{"Authorization": "Bearer x"}\'',
    )
    .option("-d, --debug", "print debug messages");
}

/**
 * Checks the connection flags, loads the configuration and creates the client.
 *
 * @param tool `amqtt_pub` or `amqtt_sub`, for the default client id
 * @param flags the parsed flags
 * @param logger where warnings go
 * @returns the client, the URL and the connect options
 * @throws {CliError} for conflicting flags (exit 2) or an unreadable file (exit 1)
 * @throws {ConfigError} for a bad configuration file
 */
export async function prepareClient(
  tool: string,
  flags: ConnectionFlags,
  logger: Logger,
): Promise<PreparedClient> {
  const will = willOptions(flags);
  const config = flags.configFile !== undefined
    ? await loadClientConfigFile(flags.configFile)
    : resolveClientConfig({});
  if (flags.configFile === undefined) logger.debug("Using the default client configuration");
  for (const warning of config.warnings) logger.warning(warning);
  if (!config.verifyCert) {
    logger.warning("verify_cert: false is not supported: broker certificates are verified");
  }
  for (const [flag, path] of [["--ca-file", flags.caFile], ["--ca-path", flags.caPath]]) {
    if (path !== undefined) await mustExist(flag!, path);
  }
  const connection = { ...config.connection };
  if (flags.caFile !== undefined) connection.cafile = flags.caFile;
  if (flags.caPath !== undefined) connection.capath = flags.caPath;
  if (flags.caData !== undefined) connection.cadata = flags.caData;
  const settings: ClientConfig = {
    ...config,
    keepAlive: flags.keepAlive ?? config.keepAlive,
    connection,
  };

  const url = flags.url ?? config.connection.uri;
  const parsed = parseUrl(url);
  const connectOptions: ConnectOptions = { cleanSession: flags.cleanSession === true };
  if (will !== undefined) connectOptions.will = will;
  if (flags.extraHeaders !== undefined) {
    connectOptions.headers = parseHeaders(flags.extraHeaders, parsed);
  }
  const clientId = flags.clientId ?? `${tool}/${Deno.pid}-${hostname()}`;
  const client = new MQTTClient({ clientId, config: settings });
  return { client, url, connectOptions };
}

/**
 * Connects, logging aMQTT's "Connecting to broker" line.
 *
 * @param prepared the client from {@linkcode prepareClient}
 * @param logger the log
 * @returns when CONNACK accepted the connection
 * @throws {CliError} one line saying why the connection failed
 */
export async function connectClient(prepared: PreparedClient, logger: Logger): Promise<void> {
  const { client, url, connectOptions } = prepared;
  logger.info(`${client.clientId} Connecting to broker`);
  logger.debug(`${client.clientId} Broker URL ${redact(url)}`);
  try {
    const connack = await client.connect(url, connectOptions);
    logger.debug(`${client.clientId} Connected, session present: ${connack.sessionPresent}`);
  } catch (error) {
    let message = error instanceof Error ? error.message : String(error);
    if (error instanceof ConnectError && error.returnCode !== undefined) {
      const name = Object.entries(ConnackReturnCode).find(([, c]) => c === error.returnCode)?.[0];
      if (name !== undefined) message += `: ${name.toLowerCase().replaceAll("_", " ")}`;
    }
    throw new CliError(message, { cause: error });
  }
}

/** A connection that Ctrl-C (SIGINT) or SIGTERM stops. */
export interface StoppableConnection extends AsyncDisposable {
  /** Aborted by the first stop signal. */
  readonly stopped: AbortSignal;
  /** True when a stop signal came before the broker accepted the connection: nothing is connected. */
  readonly interrupted: boolean;
}

/**
 * Connects while listening for Ctrl-C and SIGTERM: a stop signal aborts {@linkcode
 * StoppableConnection.stopped}, and one that comes before CONNACK gives up the attempt at once.
 * Disposing the result stops listening for the signals and disconnects.
 *
 * @param prepared the client from {@linkcode prepareClient}
 * @param logger the log
 * @returns the connection, or an interrupted one when a stop signal came first
 * @throws {CliError} one line saying why the connection failed
 */
export async function connectUntilStopped(
  prepared: PreparedClient,
  logger: Logger,
): Promise<StoppableConnection> {
  const { client } = prepared;
  const stop = new AbortController();
  let connected = false;
  const removeSignals = onStopSignal((signal) => {
    logger.debug(`${client.clientId} ${signal} received: stopping`);
    stop.abort();
    if (!connected) void client.disconnect();
  });
  const dispose = async () => {
    removeSignals();
    await client.disconnect();
  };
  try {
    await connectClient(prepared, logger);
    connected = true;
  } catch (error) {
    if (!stop.signal.aborted) {
      await dispose();
      throw error;
    }
  }
  return { stopped: stop.signal, interrupted: !connected, [Symbol.asyncDispose]: dispose };
}

function willOptions(flags: ConnectionFlags): ConnectOptions["will"] {
  const { willTopic, willMessage } = flags;
  if ((willTopic === undefined) !== (willMessage === undefined)) {
    throw usageError("Options --will-topic and --will-message must be given together");
  }
  if (willTopic === undefined || willMessage === undefined) {
    if (flags.willQos !== undefined || flags.willRetain === true) {
      throw usageError("Options --will-qos and --will-retain need --will-topic and --will-message");
    }
    return undefined;
  }
  const problem = validateTopicName(willTopic);
  if (problem !== undefined) throw usageError(`Invalid --will-topic "${willTopic}": ${problem}`);
  return {
    topic: willTopic,
    message: willMessage,
    qos: flags.willQos ?? 0,
    retain: flags.willRetain === true,
  };
}

function parseUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw usageError(`Invalid --url "${redact(url)}": not a URL`);
  }
  if (!["mqtt:", "mqtts:", "ws:", "wss:"].includes(parsed.protocol)) {
    throw usageError(
      `Invalid --url "${redact(url)}": the scheme must be mqtt, mqtts, ws or wss`,
    );
  }
  return parsed;
}

function parseHeaders(json: string, url: URL): Record<string, string> {
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw usageError("Option --extra-headers applies to ws:// and wss:// URLs only");
  }
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (error) {
    throw usageError(`Invalid --extra-headers: ${(error as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw usageError("Invalid --extra-headers: expected a JSON object of header names and values");
  }
  const headers: Record<string, string> = {};
  for (const [name, v] of Object.entries(value)) {
    if (typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean") {
      throw usageError(`Invalid --extra-headers: the value of "${name}" is not a string`);
    }
    headers[name] = String(v);
  }
  return headers;
}

async function mustExist(flag: string, path: string): Promise<void> {
  try {
    await Deno.stat(path);
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "it does not exist"
      : (error as Error).message;
    throw new CliError(`Cannot read ${flag} "${path}": ${reason}`, { cause: error });
  }
}

function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "localhost"; // without --allow-sys
  }
}

/**
 * The URL without its password, for log lines and messages.
 *
 * @param url the URL as given
 * @returns the URL with `***` in place of the password
 */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password === "") return url;
    u.password = "***";
    return u.href;
  } catch {
    return url.replace(/:[^:@/]*@/, ":***@");
  }
}

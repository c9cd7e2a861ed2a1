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
  type DisconnectOptions,
  loadClientConfigFile,
  MQTTClient,
  type ProtocolVersion,
  resolveClientConfig,
  scramSha256Auth,
  validateTopicName,
} from "./_deps.ts";
import { createLogger, type Logger } from "./_log.ts";
import { PASSWORD_ENV, resolvePassword } from "./_password.ts";
import {
  type CommandProperties,
  parseProperties,
  type PropertyCommand,
  type PropertyValues,
} from "./_properties.ts";
import { CliError, onStopSignal, usageError } from "./_program.ts";

/** A QoS level. */
export type QoS = 0 | 1 | 2;

/** The flags of {@linkcode addConnectionOptions}, as commander names them. */
export interface ConnectionFlags {
  url?: string;
  host?: string;
  port?: number;
  username?: string;
  password?: string;
  pwFile?: string;
  protocolVersion?: ProtocolVersion;
  configFile?: string;
  clientId?: string;
  idPrefix?: string;
  keepAlive?: number;
  cleanSession?: boolean;
  disableCleanSession?: boolean;
  caFile?: string;
  caPath?: string;
  caData?: string;
  cert?: string;
  key?: string;
  insecure?: boolean;
  willTopic?: string;
  willMessage?: string;
  willQos?: QoS;
  willRetain?: boolean;
  extraHeaders?: string;
  debug?: boolean;
  quiet?: boolean;
  /** `-x`: MQTT 5.0 session expiry interval, seconds (0xFFFFFFFF never). */
  sessionExpiry?: number;
  /** The `-D` word groups, taken out of the arguments before parsing (`takePropertyArgs`). */
  propertyGroups?: string[][];
  // mosquitto's spellings of the options above (hidden from --help)
  id?: string;
  keepalive?: number;
  cafile?: string;
  capath?: string;
  pw?: string;
  willPayload?: string;
}

/** A client ready to connect, with where and how. */
export interface PreparedClient {
  client: MQTTClient;
  /** The broker URL. */
  url: string;
  /** Clean session, will, credentials, protocol version and WebSocket headers. */
  connectOptions: ConnectOptions;
  /** The topic in the path of a `-L mqtt://host/topic` URL, as mosquitto reads it. */
  urlTopic?: string;
  /** The configuration's `reconnect_max_interval`, seconds. */
  reconnectMaxInterval: number;
  /** The configuration's `auto_reconnect`. */
  autoReconnect: boolean;
  /** MQTT 5.0 properties given with `-D`, by command. */
  properties: CommandProperties;
  /** MQTT 5.0: what DISCONNECT carries (`-D disconnect …`). */
  disconnectOptions: DisconnectOptions;
}

/** Options of {@linkcode prepareClient}. */
export interface PrepareClientOptions {
  /** Override the configuration's `auto_reconnect` for the client (the tool reconnects itself). */
  autoReconnect?: boolean;
  /** The packets the tool sends, for `-D`. Default connect, disconnect and will. */
  propertyCommands?: readonly PropertyCommand[];
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
 * Parses a protocol version as mosquitto's `-V` takes it: `mqttv5`/`5`, `mqttv311`/`311`,
 * `mqttv31`/`31`.
 *
 * @param value the flag's text
 * @returns 5, 4 (3.1.1) or 3 (3.1)
 * @throws {InvalidArgumentError} for anything else
 */
export function parseProtocolVersion(value: string): ProtocolVersion {
  const v = value.toLowerCase().replace(/^mqttv/, "");
  if (v === "5") return 5;
  if (v === "311" || v === "3.1.1") return 4;
  if (v === "31" || v === "3.1") return 3;
  throw new InvalidArgumentError("Expected mqttv5, mqttv311 or mqttv31 (or 5, 311, 31)");
}

/**
 * Parses mosquitto's `-x`: 0-4294967295 seconds, or -1 (also `∞`) for a session that never
 * expires.
 *
 * @param value the flag's text
 * @returns the interval, 0xFFFFFFFF for never
 * @throws {InvalidArgumentError} for anything else
 */
export function parseSessionExpiry(value: string): number {
  if (value === "-1" || value === "∞") return 0xffffffff;
  return integerIn(0, 0xffffffff)(value);
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
    const n = /^-?\d+$/.test(value) ? Number(value) : NaN;
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
 * Adds the connection flags shared by `amqtt_pub` and `amqtt_sub` to `program`: aMQTT's, and
 * mosquitto_pub/mosquitto_sub's where they do not clash (`-h` is the host; `--help` is help).
 *
 * @param program the program
 * @returns the same program
 */
export function addConnectionOptions(program: Command): Command {
  const hidden = (flags: string, parse?: (value: string) => unknown) => {
    const option = new Option(flags).hideHelp();
    return parse === undefined ? option : option.argParser(parse);
  };
  return program
    .option(
      "-L, --url <url>",
      "broker URL: [mqtt|ws][s]://[user[:password]@]host[:port][/path]; for mqtt(s) the path is " +
        "the topic, as mosquitto's -L (default: the config file's connection.uri, else " +
        "mqtt://127.0.0.1:1883)",
    )
    .option("-h, --host <host>", "broker host (default 127.0.0.1)")
    .addOption(
      new Option("-p, --port <port>", "broker port (default 1883, 8883 with TLS flags)")
        .argParser(integerIn(1, 65535)),
    )
    .option("-u, --username <name>", "user name")
    .option("-P, --password <password>", "password (also --pw); visible in ps: prefer --pw-file")
    .option(
      "--pw-file <file>",
      `read the password from the first line of this file (else from $${PASSWORD_ENV})`,
    )
    .addOption(
      new Option(
        "-V, --protocol-version <version>",
        "mqttv311 (default), mqttv31 or mqttv5 (also 311, 31, 5); -D and -x select mqttv5",
      )
        .argParser(parseProtocolVersion),
    )
    .addOption(
      new Option(
        "-D, --property <command name value...>",
        "MQTT 5.0 property of a packet, as mosquitto's -D: -D publish content-type text/plain, " +
          "-D connect user-property NAME VALUE (repeat for more)",
      ),
    )
    .addOption(
      new Option(
        "-x, --session-expiry <seconds>",
        "MQTT 5.0 session expiry interval: seconds the broker keeps the session after the " +
          "connection ends, -1 for never (default 0, -1 with -c)",
      ).argParser(parseSessionExpiry),
    )
    .option("--config-file <file>", "client configuration file (aMQTT YAML)")
    .option("-i, --client-id <id>", "client identifier (also --id; default: <tool>/<pid>-<host>)")
    .option("-I, --id-prefix <prefix>", "client identifier: this prefix and the process id")
    .addOption(
      new Option(
        "-k, --keep-alive <seconds>",
        "keep-alive in seconds (also --keepalive; default: the config file's keep_alive, else 10)",
      )
        .argParser(integerIn(0, 65535)),
    )
    .option(
      "-c, --disable-clean-session",
      "keep the session on the broker after disconnecting (needs -i); by default nothing is left",
    )
    .option("--clean-session", "start with a clean session (the default)")
    .option("--ca-file <file>", "PEM file of CA certificates to trust (also --cafile); enables TLS")
    .option("--ca-path <dir>", "directory of PEM CA certificates (also --capath); enables TLS")
    .option("--ca-data <pem>", "PEM CA certificates to trust, inline (mqtts, wss)")
    .option("--cert <file>", "client certificate (PEM) for mutual TLS; needs --key")
    .option("--key <file>", "client private key (PEM) for mutual TLS; needs --cert")
    .option("--insecure", "do not check that the broker certificate names the host")
    .option("--will-topic <topic>", "topic of the will message (needs --will-message)")
    .option("--will-message <message>", "payload of the will message (also --will-payload)")
    .addOption(
      new Option("--will-qos <level>", "QoS of the will message (default 0)").argParser(parseQos),
    )
    .option("--will-retain", "publish the will message with retain")
    .option(
      "--extra-headers <json>",
      'extra HTTP headers for ws/wss, as a JSON object: \'{"Authorization": "Bearer x"}\'',
    )
    .option("-d, --debug", "print debug messages")
    .option("--quiet", "print no log lines, only errors")
    .addOption(hidden("--id <id>"))
    .addOption(hidden("--keepalive <seconds>", integerIn(0, 65535)))
    .addOption(hidden("--cafile <file>"))
    .addOption(hidden("--capath <dir>"))
    .addOption(hidden("--pw <password>"))
    .addOption(hidden("--will-payload <message>"));
}

/**
 * The log of `amqtt_pub`/`amqtt_sub`: aMQTT's lines on stderr, DEBUG with `-d`, only errors with
 * `--quiet`.
 *
 * @param flags the parsed flags
 * @returns the logger
 */
export function toolLogger(flags: ConnectionFlags): Logger {
  const log = createLogger({ debug: flags.debug === true && flags.quiet !== true });
  if (flags.quiet !== true) return log;
  const silent = () => {};
  return { debug: silent, info: silent, warning: silent, error: log.error };
}

/**
 * Refuses words left over after the flags, with a hint for aMQTT's `-c FILE`: here `-c` is
 * mosquitto's `--disable-clean-session` and takes no value.
 *
 * @param flags the parsed flags
 * @param operands the words that are not flags or their values
 * @throws {CliError} a usage error when there are any
 */
export function checkOperands(flags: ConnectionFlags, operands: string[]): void {
  if (operands.length === 0) return;
  const words = operands.map((w) => `"${w}"`).join(", ");
  const hint = flags.disableCleanSession === true
    ? " (-c is --disable-clean-session and takes no value; a configuration file is " +
      "--config-file FILE)"
    : "";
  throw usageError(`Too many arguments: ${words}${hint}`);
}

/**
 * Checks the connection flags, loads the configuration and creates the client.
 *
 * @param tool `amqtt_pub` or `amqtt_sub`, for the default client id
 * @param flags the parsed flags
 * @param logger where warnings go
 * @param options overrides of the configuration
 * @returns the client, the URL and the connect options
 * @throws {CliError} for conflicting flags (exit 2) or an unreadable file (exit 1)
 * @throws {ConfigError} for a bad configuration file
 */
export async function prepareClient(
  tool: string,
  flags: ConnectionFlags,
  logger: Logger,
  options: PrepareClientOptions = {},
): Promise<PreparedClient> {
  mergeAliases(flags);
  const will = willOptions(flags);
  if ((flags.cert === undefined) !== (flags.key === undefined)) {
    throw usageError("Options --cert and --key must be given together");
  }
  if (flags.clientId !== undefined && flags.idPrefix !== undefined) {
    throw usageError("Options -i/--client-id and -I/--id-prefix cannot be used together");
  }
  if (flags.disableCleanSession === true && flags.cleanSession === true) {
    throw usageError("Options -c/--disable-clean-session and --clean-session contradict");
  }
  if (flags.disableCleanSession === true && flags.clientId === undefined) {
    throw usageError(
      "Option -c/--disable-clean-session needs a client id (-i): the session is found by it",
    );
  }
  if ((flags.sessionExpiry ?? 0) > 0 && flags.clientId === undefined) {
    throw usageError(
      "Option -x/--session-expiry needs a client id (-i): the session is found by it",
    );
  }
  const groups = flags.propertyGroups ?? [];
  const v5 = groups.length > 0 || flags.sessionExpiry !== undefined;
  if (v5 && flags.protocolVersion !== undefined && flags.protocolVersion !== 5) {
    throw usageError("Options -D/--property and -x/--session-expiry need MQTT 5.0 (-V mqttv5)");
  }
  if (v5) flags.protocolVersion = 5;
  const properties = parseProperties(
    groups,
    tool,
    options.propertyCommands ?? ["connect", "disconnect", "will"],
  );
  const config = flags.configFile !== undefined
    ? await loadClientConfigFile(flags.configFile)
    : resolveClientConfig({});
  if (flags.configFile === undefined) logger.debug("Using the default client configuration");
  for (const warning of config.warnings) logger.warning(warning);
  if (!config.verifyCert) {
    logger.warning("verify_cert: false is not supported: broker certificates are verified");
  }
  const files: [string, string | undefined][] = [
    ["--ca-file", flags.caFile],
    ["--ca-path", flags.caPath],
    ["--cert", flags.cert],
    ["--key", flags.key],
  ];
  for (const [flag, path] of files) {
    if (path !== undefined) await mustExist(flag, path);
  }
  const connection = { ...config.connection };
  if (flags.caFile !== undefined) connection.cafile = flags.caFile;
  if (flags.caPath !== undefined) connection.capath = flags.caPath;
  if (flags.caData !== undefined) connection.cadata = flags.caData;
  if (flags.cert !== undefined) connection.certfile = flags.cert;
  if (flags.key !== undefined) connection.keyfile = flags.key;
  const settings: ClientConfig = {
    ...config,
    keepAlive: flags.keepAlive ?? config.keepAlive,
    connection,
    checkHostname: flags.insecure === true ? false : config.checkHostname,
    autoReconnect: options.autoReconnect ?? config.autoReconnect,
  };

  const { url, parsed, topic } = brokerUrl(flags, config.connection.uri);
  const connectOptions: ConnectOptions = {
    // Nothing is left on the broker unless asked for, as mosquitto_pub/mosquitto_sub do.
    cleanSession: flags.disableCleanSession === true
      ? false
      : flags.cleanSession === true || config.cleanSession,
  };
  if (flags.protocolVersion !== undefined) connectOptions.protocolVersion = flags.protocolVersion;
  if (will !== undefined) connectOptions.will = will;
  const clientOptions = v5Connect(flags, properties, connectOptions);
  if (flags.extraHeaders !== undefined) {
    connectOptions.headers = parseHeaders(flags.extraHeaders, parsed);
  }
  await addCredentials(flags, parsed, connectOptions);
  scramLogin(connectOptions, parsed);
  const clientId = flags.clientId ??
    (flags.idPrefix !== undefined
      ? `${flags.idPrefix}${Deno.pid}`
      : `${tool}/${Deno.pid}-${hostname()}`);
  const client = new MQTTClient({ clientId, config: settings, ...clientOptions });
  const disconnectOptions: DisconnectOptions = { ...properties.disconnect };
  return {
    client,
    url,
    connectOptions,
    urlTopic: topic,
    reconnectMaxInterval: config.reconnectMaxInterval,
    autoReconnect: config.autoReconnect,
    properties,
    disconnectOptions,
  };
}

/**
 * The MQTT 5.0 parts of CONNECT from `-x`, `-c` and `-D connect`/`-D will`, set on
 * `connectOptions`; returns the client options some of them are (maximum packet size, topic
 * aliases for `-D publish topic-alias`).
 */
function v5Connect(
  flags: ConnectionFlags,
  properties: CommandProperties,
  connectOptions: ConnectOptions,
): { maxPacketSize?: number; topicAliases?: boolean } {
  const clientOptions: { maxPacketSize?: number; topicAliases?: boolean } = {};
  if (flags.protocolVersion !== 5) return clientOptions;
  const connect: PropertyValues = { ...properties.connect };
  if (connect.sessionExpiryInterval !== undefined && flags.sessionExpiry !== undefined) {
    throw usageError(
      "Options -x/--session-expiry and -D connect session-expiry-interval are the same: give one",
    );
  }
  // As mosquitto: a kept session (-c) never expires unless -x says otherwise.
  const expiry = flags.sessionExpiry ?? connect.sessionExpiryInterval as number | undefined ??
    (connectOptions.cleanSession === false ? 0xffffffff : undefined);
  if (expiry !== undefined) connectOptions.sessionExpiryInterval = expiry;
  if (connect.receiveMaximum !== undefined) {
    connectOptions.receiveMaximum = connect.receiveMaximum as number;
  }
  if (connect.topicAliasMaximum !== undefined) {
    connectOptions.topicAliasMaximum = connect.topicAliasMaximum as number;
  }
  if (connect.requestResponseInformation !== undefined) {
    connectOptions.requestResponseInformation = connect.requestResponseInformation === 1;
  }
  if (connect.requestProblemInformation !== undefined) {
    connectOptions.requestProblemInformation = connect.requestProblemInformation === 1;
  }
  if (connect.userProperties !== undefined) connectOptions.userProperties = connect.userProperties;
  if (connect.maximumPacketSize !== undefined) {
    clientOptions.maxPacketSize = connect.maximumPacketSize as number;
  }
  const method = connect.authenticationMethod as string | undefined;
  const data = connect.authenticationData as Uint8Array | undefined;
  if (data !== undefined && method === undefined) {
    throw usageError("Property authentication-data needs authentication-method (-D connect)");
  }
  if (method !== undefined) {
    connectOptions.auth = {
      method,
      initial: () => data,
      challenge: () => {
        throw new Error(`the broker asked more of authentication method ${method}`);
      },
    };
  }
  if (properties.will !== undefined) {
    if (connectOptions.will === undefined) {
      throw usageError("Option -D will needs a will: --will-topic and --will-message");
    }
    connectOptions.will.properties = properties.will;
  }
  if (properties.publish?.topicAlias !== undefined) {
    // The client gives aliases itself, within the broker's Topic Alias Maximum.
    delete properties.publish.topicAlias;
    clientOptions.topicAliases = true;
  }
  return clientOptions;
}

/**
 * `-D connect authentication-method SCRAM-SHA-256` with `-u` and a password (and no
 * authentication-data of the user's own): the tool runs the SCRAM exchange with them, and the
 * password stays out of the CONNECT. mosquitto_pub/mosquitto_sub send the method and stop at the
 * broker's challenge.
 */
function scramLogin(options: ConnectOptions, url: URL): void {
  const auth = options.auth;
  if (auth?.method !== "SCRAM-SHA-256" || auth.initial?.(false) !== undefined) return;
  if (url.password !== "") {
    throw usageError(
      "SCRAM-SHA-256 takes the password from -P, --pw-file or AMQTT_PASSWORD, not from the URL",
    );
  }
  const { username, password } = options;
  if (username === undefined || username === "" || password === undefined) {
    throw usageError("SCRAM-SHA-256 (-D connect authentication-method) needs -u and a password");
  }
  options.auth = scramSha256Auth(
    username,
    typeof password === "string" ? password : new TextDecoder().decode(password),
  );
  delete options.password;
}

/** mosquitto's spellings fill in aMQTT's. */
function mergeAliases(flags: ConnectionFlags): void {
  flags.clientId ??= flags.id;
  flags.keepAlive ??= flags.keepalive;
  flags.caFile ??= flags.cafile;
  flags.caPath ??= flags.capath;
  flags.password ??= flags.pw;
  flags.willMessage ??= flags.willPayload;
}

/**
 * The broker URL from `-L/--url`, or from `-h`/`-p` (and the TLS flags) over the configuration's
 * `connection.uri`.
 */
function brokerUrl(
  flags: ConnectionFlags,
  configUri: string,
): { url: string; parsed: URL; topic?: string } {
  if (flags.url !== undefined && (flags.host !== undefined || flags.port !== undefined)) {
    throw usageError("Give the broker either as -L/--url or as -h/--host and -p/--port");
  }
  if (flags.url !== undefined) {
    const parsed = parseUrl(flags.url);
    let topic: string | undefined;
    if (parsed.protocol === "mqtt:" || parsed.protocol === "mqtts:") {
      // mosquitto: mqtt(s)://[user[:password]@]host[:port]/topic
      const path = decodeURIComponent(parsed.pathname.replace(/^\//, ""));
      if (path !== "") topic = path;
    }
    return { url: flags.url, parsed, topic };
  }
  const base = parseUrl(configUri);
  const tls = flags.caFile !== undefined || flags.caPath !== undefined ||
    flags.cert !== undefined;
  if (flags.host === undefined && flags.port === undefined && !tls) {
    return { url: configUri, parsed: base };
  }
  const built = new URL(base.href);
  // TLS files mean TLS, as in mosquitto; the port then defaults to the TLS one.
  if (tls && (built.protocol === "mqtt:" || built.protocol === "ws:")) {
    built.protocol = built.protocol === "mqtt:" ? "mqtts:" : "wss:";
    built.port = "";
  }
  if (flags.host !== undefined) {
    const host = flags.host.includes(":") && !flags.host.startsWith("[")
      ? `[${flags.host}]`
      : flags.host;
    built.hostname = host;
    // The URL keeps its old host when the new one is not a valid host.
    if (built.hostname.toLowerCase() !== host.toLowerCase()) {
      throw usageError(`Invalid -h/--host "${flags.host}": not a host name or address`);
    }
  }
  if (flags.port !== undefined) built.port = String(flags.port);
  return { url: built.href, parsed: built };
}

/** `-u` and the password (see `_password.ts`); the URL's credentials when none is given. */
async function addCredentials(
  flags: ConnectionFlags,
  url: URL,
  options: ConnectOptions,
): Promise<void> {
  const username = flags.username ??
    (url.username !== "" ? decodeURIComponent(url.username) : undefined);
  const password = await resolvePassword({
    password: flags.password,
    pwFile: flags.pwFile,
    username,
    inUrl: url.password !== "",
  });
  if (flags.username !== undefined) options.username = flags.username;
  if (password !== undefined) {
    // [MQTT-3.1.2-22]: before MQTT 5 a password needs a user name.
    if (username === undefined && (options.protocolVersion ?? 4) !== 5) {
      throw usageError("A password needs a user name (-u) before MQTT 5 [MQTT-3.1.2-22]");
    }
    options.password = password;
  }
}

/**
 * Connects, logging aMQTT's "Connecting to broker" line.
 *
 * @param prepared the client from {@linkcode prepareClient}
 * @param logger the log
 * @returns whether the broker resumed a session (CONNACK's session present flag)
 * @throws {CliError} one line saying why the connection failed
 */
export async function connectClient(prepared: PreparedClient, logger: Logger): Promise<boolean> {
  const { client, url, connectOptions } = prepared;
  logger.info(`${client.clientId} Connecting to broker`);
  logger.debug(`${client.clientId} Broker URL ${redact(url)}`);
  try {
    const connack = await client.connect(url, connectOptions);
    logger.debug(`${client.clientId} Connected, session present: ${connack.sessionPresent}`);
    return connack.sessionPresent;
  } catch (error) {
    throw new CliError(connectFailure(error), { cause: error });
  }
}

/**
 * Why a connection attempt failed, in one line: the error's message, the CONNACK code's name, and
 * the root cause when the message does not say it already (a TLS trust failure such as
 * `invalid peer certificate: UnknownIssuer` hides under "Connection closed before CONNACK").
 *
 * @param error what `connect` threw
 * @returns the text
 */
export function connectFailure(error: unknown): string {
  let message = error instanceof Error ? error.message : String(error);
  if (error instanceof ConnectError && error.returnCode !== undefined) {
    const name = Object.entries(ConnackReturnCode).find(([, c]) => c === error.returnCode)?.[0];
    if (name !== undefined) message += `: ${name.toLowerCase().replaceAll("_", " ")}`;
  }
  let root: unknown = error;
  for (let depth = 0; depth < 8 && root instanceof Error && root.cause !== undefined; depth++) {
    root = root.cause;
  }
  if (root !== error && root !== undefined) {
    const reason = root instanceof Error ? root.message : String(root);
    if (reason !== "" && !message.includes(reason)) message += ` (${reason})`;
  }
  return message;
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
    await client.disconnect(prepared.disconnectOptions);
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

function parseUrl(url: string, flag = "--url"): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw usageError(`Invalid ${flag} "${redact(url)}": not a URL`);
  }
  if (!["mqtt:", "mqtts:", "ws:", "wss:"].includes(parsed.protocol)) {
    throw usageError(
      `Invalid ${flag} "${redact(url)}": the scheme must be mqtt, mqtts, ws or wss`,
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

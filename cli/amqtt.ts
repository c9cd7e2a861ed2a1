/**
 * `amqtt`: run an MQTT broker, with aMQTT's flags and log format.
 *
 * Without `-c` it runs the embedded default configuration: plain MQTT on 0.0.0.0:1883, anonymous
 * clients allowed, `$SYS` every 20 seconds. Log lines (`[time] :: LEVEL - message`) go to
 * stderr: INFO and above, DEBUG too with `-d` (which also lets the `packet_logger` plugin, in the
 * default plugin list, log every packet); `--log-level` picks the least severe level and
 * `--log-format json` writes one JSON object per line instead. SIGINT and SIGTERM shut the broker down cleanly
 * (exit code 0; another signal more than a second later exits at once with 1); SIGHUP reloads the
 * password file, the TLS certificates and the ACL rules of the configuration file. An unhandled
 * promise rejection (a bug) is logged with its stack and shuts the broker down the same way, then
 * exits with 70 (EX_SOFTWARE) so that a supervisor restarts it (see ARCHITECTURE.md "Faults").
 *
 * `amqtt passwd FILE USER` manages password files (see `amqtt passwd --help`).
 *
 * ```sh
 * amqtt                       # 0.0.0.0:1883, default configuration
 * amqtt -c broker.yaml -d     # aMQTT YAML configuration, debug log
 * amqtt --check -c broker.yaml # validate it (and the files it names), exit 0 or 1
 * amqtt --workers 4 -c cluster.yaml # 4 processes sharing the port, one cluster on Redis
 * ```
 *
 * `--workers N` needs the configuration's `cluster:` section: see `_workers.ts` for how the
 * workers share the port and are supervised.
 *
 * Exit code 1 when the configuration is invalid or a listener cannot bind, 2 for wrong flags.
 *
 * @example
 * ```ts
 * import { runBroker } from "./amqtt.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(await runBroker(["--version"]), 0);
 * ```
 *
 * @module
 */

import {
  Broker,
  type BrokerConfig,
  ConfigError,
  defaultBrokerConfig,
  loadBrokerConfigFile,
  VERSION,
} from "./_deps.ts";
import { checkBrokerConfig } from "./_check.ts";
import {
  createLogger,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  type Logger,
  type LogLevel,
} from "./_log.ts";
import { runPasswd } from "./passwd.ts";
import {
  checkWorkers,
  superviseWorkers,
  withoutWorkersFlag,
  workerConfig,
  workerLogger,
  workerNumber,
} from "./_workers.ts";
import {
  CliError,
  type CommandOptions,
  newProgram,
  onStopSignal,
  runCommand,
  writeStdout,
} from "./_program.ts";
import { Option } from "commander";

export type { CommandOptions } from "./_program.ts";

/** A second stop signal this soon after the first is the same Ctrl-C delivered twice. */
const DUPLICATE_SIGNAL_MS = 1000;
/** Exit code after an internal error (an unhandled rejection): sysexits' EX_SOFTWARE. */
export const FAULT_EXIT_CODE = 70;
/**
 * How long the shutdown after an internal error may take before the process exits anyway: the
 * state it ran into may keep a step from ending.
 */
const FAULT_SHUTDOWN_MS = 30_000;

interface BrokerFlags {
  config?: string;
  debug?: boolean;
  check?: boolean;
  logFormat?: LogFormat;
  logLevel?: LogLevel;
  workers?: string;
}

/**
 * Runs the `amqtt` broker with `args` (the arguments after the program name) until SIGINT or
 * SIGTERM. `passwd` as the first argument runs {@linkcode runPasswd} instead.
 *
 * @param args the command-line arguments
 * @param options the program name for usage lines and messages (default `amqtt`)
 * @returns the exit code: 0 after a clean shutdown, 1 when the broker cannot start, 2 wrong flags
 *
 * @example
 * ```ts
 * import { runBroker } from "./amqtt.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(await runBroker(["--no-such-flag"]), 2);
 * ```
 */
export async function runBroker(args: string[], options: CommandOptions = {}): Promise<number> {
  const name = options.name ?? "amqtt";
  if (args[0] === "passwd") return await runPasswd(args.slice(1), { name: `${name} passwd` });
  const program = newProgram(name, VERSION)
    .description("Run an MQTT broker (aMQTT-compatible YAML configuration).")
    .option("-c, --config <file>", "broker configuration file (default: the embedded default)")
    .option("-d, --debug", "log debug messages, every packet too")
    .addOption(
      new Option("--log-level <level>", "least severe level logged (default: info)")
        .choices(LOG_LEVELS),
    )
    .addOption(
      new Option("--log-format <format>", "text (aMQTT's lines) or json (one object a line)")
        .choices(LOG_FORMATS),
    )
    .option("--check", "validate the configuration and the files it names, then exit (0 or 1)")
    .option(
      "--workers <n>",
      "run n broker processes sharing the listener port, one cluster (needs cluster:)",
    )
    .addHelpText(
      "after",
      `\nPassword files:\n  ${name} passwd [options] FILE USER [PASSWORD]   (see ${name} passwd --help)`,
    );
  return await runCommand<BrokerFlags>(program, args, serve);
}

async function serve(flags: BrokerFlags): Promise<number> {
  let log = createLogger({
    debug: flags.debug,
    level: flags.logLevel,
    format: flags.logFormat,
  });
  let config: BrokerConfig;
  if (flags.config !== undefined) {
    config = await loadBrokerConfigFile(flags.config);
    log.debug(`Using configuration file ${flags.config}`);
  } else {
    config = defaultBrokerConfig();
    log.debug("Using the embedded default configuration");
  }
  if (flags.check) {
    for (const warning of config.warnings) log.warning(warning);
    await checkBrokerConfig(config, log);
    await writeStdout(`Configuration ${flags.config ?? "(embedded default)"} is valid\n`);
    return 0;
  }
  const worker = workerNumber();
  if (flags.workers !== undefined && worker === undefined) {
    const n = checkWorkers(flags.workers, config);
    const stop = Promise.withResolvers<Deno.Signal>();
    const removeStop = onStopSignal((signal) => stop.resolve(signal));
    try {
      return await superviseWorkers(n, withoutWorkersFlag(Deno.args), log, stop.promise);
    } finally {
      removeStop();
    }
  }
  if (worker !== undefined) {
    config = workerConfig(config, worker);
    log = workerLogger(log, worker);
  }
  let broker: Broker;
  try {
    // With -d the packet logger plugin (in aMQTT's default plugin list) logs every packet, as in
    // aMQTT; without it the broker does not describe packets nobody would see.
    broker = new Broker(config, {
      logger: log,
      packetEvents: flags.debug === true,
      reusePort: worker !== undefined,
    });
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new CliError(`Cannot create the broker: ${(error as Error).message}`, { cause: error });
  }

  // Listen for signals before binding so that a signal during start-up is not lost.
  const stopped = Promise.withResolvers<Deno.Signal | "fault">();
  const removeFault = onFault(log, () => stopped.resolve("fault"));
  let stoppingSince = 0;
  const removeStop = onStopSignal((signal) => {
    if (stoppingSince === 0) {
      stoppingSince = Date.now();
      stopped.resolve(signal);
      return;
    }
    // Ctrl-C under `deno task` arrives twice: from the terminal and forwarded by the task runner.
    if (Date.now() - stoppingSince < DUPLICATE_SIGNAL_MS) return;
    log.warning(`${signal} received again: exiting without waiting for clients`);
    Deno.exit(1);
  });
  const removeReload = onReloadSignal(broker, log, flags.config);
  try {
    // A stop signal while the start waits (a cluster node waiting for the nodes of another
    // release to go) stops the broker rather than waiting for a start that may never end.
    const starting = broker.start();
    let early: Deno.Signal | "fault" | undefined;
    try {
      early = await Promise.race([starting.then(() => undefined), stopped.promise]);
    } catch (error) {
      throw new CliError(`Cannot start the broker: ${startFailure(error, config)}`, {
        cause: error,
      });
    }
    if (early !== undefined) {
      if (early !== "fault") log.info(`${early} received while starting: shutting down`);
      await broker.shutdown();
      await starting.catch(() => {});
      log.info("Broker stopped");
      return early === "fault" ? FAULT_EXIT_CODE : 0;
    }
    log.info(`amqtt ${VERSION} started`);
    const signal = await stopped.promise;
    if (signal !== "fault") log.info(`${signal} received: shutting down`);
    await broker.shutdown();
    log.info("Broker stopped");
    return signal === "fault" ? FAULT_EXIT_CODE : 0;
  } finally {
    removeReload();
    removeStop();
    removeFault();
    await broker.shutdown();
  }
}

/**
 * The last resort for an unhandled promise rejection (a bug: every chain the broker starts in the
 * background has a handler): logged with its stack, then `fault` is called once, and the broker
 * shuts down as for SIGTERM (its store writes committed, its cluster node leaving so that the
 * others adopt its sessions at once); the process exits with {@linkcode FAULT_EXIT_CODE}, or
 * after {@linkcode FAULT_SHUTDOWN_MS} if the shutdown does not end. Serving on would run with state
 * the failed step left half-changed (a session claimed and not loaded, a reply never sent) and
 * could write it to the store; see ARCHITECTURE.md "Faults".
 */
function onFault(log: Logger, fault: () => void): () => void {
  let faulted = false;
  const listener = (event: PromiseRejectionEvent) => {
    event.preventDefault(); // Deno's default: print and exit at once, without the shutdown
    const reason = event.reason;
    const text = reason instanceof Error ? reason.stack ?? reason.message : String(reason);
    log.error(
      `Internal error (a bug, please report it): unhandled promise rejection: ${text}${
        faulted ? "" : `; shutting down (exit code ${FAULT_EXIT_CODE})`
      }`,
    );
    if (faulted) return;
    faulted = true;
    const timer = setTimeout(() => {
      log.error("The shutdown after the internal error did not end: exiting");
      Deno.exit(FAULT_EXIT_CODE);
    }, FAULT_SHUTDOWN_MS);
    Deno.unrefTimer(timer);
    fault();
  };
  globalThis.addEventListener("unhandledrejection", listener);
  return () => globalThis.removeEventListener("unhandledrejection", listener);
}

/**
 * SIGHUP re-reads external state, as Mosquitto does: the password file, the TLS certificates and,
 * from the configuration file read again, the ACL rules. A configuration that no longer loads is
 * logged and the running one stays.
 */
function onReloadSignal(broker: Broker, log: Logger, configPath: string | undefined): () => void {
  const reload = async () => {
    let config: BrokerConfig | undefined;
    if (configPath !== undefined) {
      try {
        config = await loadBrokerConfigFile(configPath);
      } catch (error) {
        log.error(`Reload: keeping the running configuration: ${(error as Error).message}`);
      }
    }
    await broker.reload(config);
    log.info("Reload done");
  };
  const listener = () => {
    log.info("SIGHUP received: reloading the password file, ACL rules and TLS certificates");
    reload().catch((error) => log.error(`Reload failed: ${(error as Error).message}`));
  };
  try {
    Deno.addSignalListener("SIGHUP", listener);
  } catch {
    return () => {}; // no SIGHUP on Windows
  }
  return () => Deno.removeSignalListener("SIGHUP", listener);
}

function startFailure(error: unknown, config: BrokerConfig): string {
  const binds = config.listeners
    .filter((l) => l.type !== "external")
    .map((l) => `${l.name} ${l.bind}`)
    .join(", ");
  const code = (error as { code?: unknown } | undefined)?.code; // node:http errors (ws listeners)
  if (error instanceof Deno.errors.AddrInUse || code === "EADDRINUSE") {
    return `address already in use (${binds})`;
  }
  if (error instanceof Deno.errors.AddrNotAvailable || code === "EADDRNOTAVAIL") {
    return `address not available (${binds})`;
  }
  if (error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable) {
    return `permission denied (${binds}): ${(error as Error).message}`;
  }
  return error instanceof Error ? error.message : String(error);
}

if (import.meta.main) Deno.exit(await runBroker(Deno.args));

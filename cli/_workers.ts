/**
 * `amqtt --workers N`: N broker processes on one machine, one per core, sharing the listener
 * port (SO_REUSEPORT: the kernel spreads new connections over them) and acting as one broker
 * through the configuration's `cluster:` section (required).
 *
 * The process started by the user supervises: it starts the workers (this program again, with
 * the environment variable `AMQTT_WORKER` set to 1…N instead of `--workers`), passes SIGINT and
 * SIGTERM on to them, and exits when they have all stopped. A worker that exits by itself is
 * started again after a second; one that fails within 10 s of its start (a bad configuration,
 * Redis unreachable) stops them all, with exit code 1.
 *
 * Each worker is one cluster node: its node id is the configured `node_id` with `-w1`…`-wN`
 * appended, or by default the host name and its process id. Plain TCP listeners are shared by
 * every worker; TLS, WebSocket and http listeners cannot share their port and run in worker 1
 * only. Each worker's log lines start with `worker N: `.
 *
 * @module
 */

import type { BrokerConfig } from "./_deps.ts";
import type { Logger } from "./_log.ts";
import { CliError } from "./_program.ts";

/** The environment variable that makes `amqtt` a worker of a supervisor (its number, 1…N). */
export const WORKER_ENV = "AMQTT_WORKER";

/** A worker failing this soon after its start stops all of them (it would fail again). */
const EARLY_EXIT_MS = 10_000;
/** Delay before a worker that exited later is started again. */
const RESTART_DELAY_MS = 1_000;

/**
 * This process's worker number, when a supervisor started it.
 *
 * @returns 1…N, or `undefined` for a process the user started
 */
export function workerNumber(): number | undefined {
  let value: string | undefined;
  try {
    value = Deno.env.get(WORKER_ENV);
  } catch {
    return undefined; // no permission to read the environment: not a worker
  }
  if (value === undefined) return undefined;
  const n = Number(value);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/**
 * Checks `--workers` against the configuration.
 *
 * @param workers the flag's value
 * @param config the configuration
 * @returns the number of workers
 * @throws {CliError} when the value is not a whole number from 1 to 1024, or `cluster:` is off
 */
export function checkWorkers(workers: string, config: BrokerConfig): number {
  const n = Number(workers);
  if (!/^\d+$/.test(workers) || n < 1 || n > 1024) {
    throw new CliError(`Invalid --workers ${JSON.stringify(workers)}: expected 1 to 1024`, {
      exitCode: 2,
    });
  }
  if (!config.cluster.enabled) {
    throw new CliError(
      "--workers needs a cluster: section in the configuration: the workers share sessions, " +
        "subscriptions and retained messages through Redis (see cluster: in the README)",
    );
  }
  return n;
}

/**
 * The configuration of worker `n`: its own node id, and the listeners it may bind.
 *
 * @param config the configuration the user gave
 * @param n the worker number
 * @returns a copy for the worker
 */
export function workerConfig(config: BrokerConfig, n: number): BrokerConfig {
  const nodeId = config.cluster.nodeId;
  return {
    ...config,
    cluster: {
      ...config.cluster,
      nodeId: nodeId === undefined ? undefined : `${nodeId}-w${n}`.slice(0, 128),
    },
    // SO_REUSEPORT is for plain TCP here: the others bind in one worker only.
    listeners: config.listeners.filter((l) => n === 1 || (l.type === "tcp" && !l.ssl)),
  };
}

/**
 * A worker's logger: every line starts with `worker N: `, since the workers share the
 * supervisor's stderr.
 *
 * @param log the logger
 * @param n the worker number
 * @returns the same logger, its lines marked
 */
export function workerLogger(log: Logger, n: number): Logger {
  const tag = `worker ${n}: `;
  return {
    debug: (msg, fields) => log.debug(tag + msg, fields),
    info: (msg, fields) => log.info(tag + msg, fields),
    warning: (msg, fields) => log.warning(tag + msg, fields),
    error: (msg, fields) => log.error(tag + msg, fields),
  };
}

/** How to start this program again: `deno run … main module …`, or a compiled binary. */
function selfCommand(args: string[]): { command: string; args: string[] } {
  const exec = Deno.execPath();
  const name = exec.split(/[\\/]/).pop()!.replace(/\.exe$/i, "");
  if (name === "deno") {
    return {
      command: exec,
      args: ["run", "-A", "--unstable-net", Deno.mainModule, ...args],
    };
  }
  // A binary made by `deno compile` (with --unstable-net) runs itself.
  return { command: exec, args };
}

/**
 * The program's arguments without `--workers N`.
 *
 * @param args the arguments as given
 * @returns them for a worker
 */
export function withoutWorkersFlag(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--workers") {
      i++;
      continue;
    }
    if (a.startsWith("--workers=")) continue;
    out.push(a);
  }
  return out;
}

/**
 * Starts `n` workers and supervises them until `stop` resolves (a signal) or one fails at start.
 *
 * @param n how many
 * @param args the worker's arguments (the program's, without `--workers`)
 * @param log where to log
 * @param stop resolves with the signal that stops everything
 * @returns the exit code: 0 after a clean stop, 1 when a worker failed at start
 */
export async function superviseWorkers(
  n: number,
  args: string[],
  log: Logger,
  stop: Promise<Deno.Signal>,
): Promise<number> {
  const { command, args: argv } = selfCommand(args);
  const children = new Map<number, Deno.ChildProcess>();
  let stopping: Deno.Signal | undefined;
  let failed = false;
  const exited = Promise.withResolvers<void>();

  const spawn = (i: number) => {
    const started = Date.now();
    const child = new Deno.Command(command, {
      args: argv,
      env: { [WORKER_ENV]: String(i) },
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    children.set(i, child);
    log.info(`Worker ${i} started (pid ${child.pid})`);
    child.status.then((status) => {
      children.delete(i);
      if (stopping === undefined) {
        const how = status.signal === null ? `exit code ${status.code}` : status.signal;
        if (Date.now() - started < EARLY_EXIT_MS) {
          log.error(`Worker ${i} failed at start (${how}): stopping the other workers`);
          failed = true;
          stopAll("SIGTERM");
        } else {
          log.error(`Worker ${i} exited (${how}): starting it again`);
          setTimeout(() => {
            if (stopping === undefined) spawn(i);
          }, RESTART_DELAY_MS);
          return;
        }
      }
      if (children.size === 0) exited.resolve();
    });
  };
  const stopAll = (signal: Deno.Signal) => {
    stopping ??= signal;
    for (const child of children.values()) {
      try {
        child.kill(signal);
      } catch {
        // It ended meanwhile.
      }
    }
  };

  for (let i = 1; i <= n; i++) spawn(i);
  log.info(`Supervising ${n} workers`);
  const signal = await Promise.race([stop, exited.promise.then(() => undefined)]);
  if (signal !== undefined) {
    log.info(`${signal} received: stopping the workers`);
    stopAll(signal);
  }
  if (children.size > 0) await exited.promise;
  if (failed) throw new CliError(`A worker failed at start (see its log above)`);
  log.info("Workers stopped");
  return 0;
}

/**
 * The brokers bench/compare.ts measures, each started fresh in its own process on a free loopback
 * port with its default settings and the open-file limit raised to the hard limit:
 * amqtt (bench/_amqtt_broker.ts), Mosquitto (Debian package), Aedes (npm, on Deno's node:net) and
 * the C baseline forwarder (bench/loadgen/forwarder.c), and the Deno floor
 * (bench/_latency_floor_server.ts: the least a QoS 0/1 broker must do on Deno's socket layer).
 *
 * @module
 */

import { freePort } from "../tests/_helpers/free_port.ts";

const MOSQUITTO = "/usr/sbin/mosquitto";
const ROOT = new URL("..", import.meta.url).pathname;

/** A broker process under test. */
export interface RunningBroker extends AsyncDisposable {
  name: string;
  port: number;
  pid: number;
}

/** Names accepted by {@linkcode startBroker}. */
export const BROKERS = ["amqtt", "mosquitto", "aedes", "forwarder", "floor"] as const;
/** One of {@linkcode BROKERS}. */
export type BrokerName = typeof BROKERS[number];

/** Options of {@linkcode startBroker}. */
export interface StartBrokerOptions {
  /** Path of the built forwarder (bench/loadgen/build.ts), for `forwarder`. */
  forwarder?: string;
  /** Picks Mosquitto's port (default a free one); the test of a taken port hands out a held one. */
  pickPort?: () => number;
  /**
   * `amqtt` from another checkout of this repository (an older build, for an A/B run).
   *
   * @default {this checkout}
   */
  root?: string;
  /**
   * Prefix of the broker's command line, e.g. `["taskset", "-c", "0"]` (see `_pinning.ts`); the
   * prefix must exec the broker, so that the pid is still the broker's.
   */
  prefix?: string[];
  /** V8 flags for `amqtt` (`--v8-flags=…`), e.g. `--max-semi-space-size=2` for an A/B of a flag. */
  v8Flags?: string;
}

async function waitForPort(port: number, ms: number): Promise<void> {
  const end = performance.now() + ms;
  for (;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch (err) {
      if (performance.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/**
 * Spawns `cmd` through bash with the soft open-file limit raised to the hard one, stdout and
 * stderr into files (so no pipe has to be drained by this process while it measures); bash
 * execs the command, so the child's pid is the broker's own.
 */
function spawnRaised(cmd: string[], outFile: string, errFile: string): Deno.ChildProcess {
  const script = `ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@" >"${outFile}" 2>"${errFile}"`;
  return new Deno.Command("bash", {
    args: ["-c", script, "bash", ...cmd],
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** Waits for a `port N` line in the child's output file; undefined if it exits or takes 60 s. */
async function portFromFile(
  child: Deno.ChildProcess,
  outFile: string,
): Promise<number | undefined> {
  let exited = false;
  child.status.then(() => exited = true);
  const end = performance.now() + 60_000;
  while (performance.now() < end) {
    const text = await Deno.readTextFile(outFile).catch(() => "");
    const m = /port (\d+)/.exec(text);
    if (m) return Number(m[1]);
    if (exited) return undefined;
    await new Promise((r) => setTimeout(r, 50));
  }
  return undefined;
}

/**
 * Waits until mosquitto's log (its stderr, in `errFile`) says it runs (every listener bound), or
 * it exited: "port taken" when its port was in use, else what went wrong.
 */
async function mosquittoStarted(
  child: Deno.ChildProcess,
  errFile: string,
): Promise<"running" | "port taken" | string> {
  let exited = false;
  child.status.then(() => exited = true);
  const end = performance.now() + 30_000;
  for (;;) {
    const log = await Deno.readTextFile(errFile).catch(() => "");
    if (/mosquitto version \S+ running/.test(log)) return "running";
    if (exited) return log.includes("Address already in use") ? "port taken" : "exited at start";
    if (performance.now() > end) return 'no "running" line in 30 s';
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function stop(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGTERM");
  } catch { /* gone */ }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, 5000);
  await child.status;
  clearTimeout(timer);
}

function commandFor(name: BrokerName, options: StartBrokerOptions, dir: string): string[] {
  switch (name) {
    case "amqtt": {
      const root = options.root === undefined ? ROOT : `${options.root.replace(/\/$/, "")}/`;
      const flags = options.v8Flags === undefined ? [] : [`--v8-flags=${options.v8Flags}`];
      return [Deno.execPath(), "run", "-A", ...flags, `${root}bench/_amqtt_broker.ts`];
    }
    case "aedes":
      return [Deno.execPath(), "run", "-A", `${ROOT}bench/_aedes_broker.ts`];
    case "mosquitto":
      return [MOSQUITTO, "-c", `${dir}/mosquitto.conf`];
    case "floor":
      return [Deno.execPath(), "run", "-A", `${ROOT}bench/_latency_floor_server.ts`];
    case "forwarder":
      if (options.forwarder === undefined) throw new Error("forwarder: pass its built path");
      return [options.forwarder];
  }
}

/**
 * Starts one broker and waits until it accepts connections.
 *
 * @param name which broker
 * @param options where the forwarder binary is
 * @returns the running broker; dispose of it to stop it
 */
export async function startBroker(
  name: BrokerName,
  options: StartBrokerOptions = {},
): Promise<RunningBroker> {
  const dir = await Deno.makeTempDir({ prefix: `amqtt-compare-${name}-` });
  await Deno.chmod(dir, 0o777); // mosquitto started as root drops to its own user
  const errFile = `${dir}/stderr.log`;
  const outFile = `${dir}/stdout.log`;
  const cmd = [...(options.prefix ?? []), ...commandFor(name, options, dir)];
  let child: Deno.ChildProcess | undefined;
  const cleanup = async () => {
    if (child !== undefined) await stop(child);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  let port: number | undefined;
  try {
    if (name === "mosquitto") {
      // Told its port before it starts: another process may take the free port first, and a
      // listener there proves nothing. Ready when its own log says so; a taken port, another.
      for (let attempt = 1; port === undefined; attempt++) {
        const candidate = (options.pickPort ?? freePort)();
        // Mosquitto's defaults but for the listener and anonymous access (off by default in 2.x).
        const conf = `listener ${candidate} 127.0.0.1\nallow_anonymous true\n`;
        await Deno.writeTextFile(`${dir}/mosquitto.conf`, conf, { mode: 0o644 });
        child = spawnRaised(cmd, outFile, errFile);
        const started = await mosquittoStarted(child, errFile);
        if (started === "running") port = candidate;
        else if (started === "port taken" && attempt < 5) await stop(child);
        else throw new Error(started === "port taken" ? "no free port in 5 attempts" : started);
      }
    } else {
      child = spawnRaised(cmd, outFile, errFile);
      port = await portFromFile(child, outFile);
      if (port === undefined) throw new Error("exited before listening");
      await waitForPort(port, 10_000);
    }
  } catch (err) {
    const log = await Deno.readTextFile(errFile).catch(() => "");
    await cleanup();
    const why = log.trim() || (err instanceof Error ? err.message : String(err));
    throw new Error(`${name} did not start: ${why.slice(0, 2000)}`);
  }
  return { name, port, pid: child!.pid, [Symbol.asyncDispose]: cleanup };
}

/** Whether Mosquitto is installed where {@linkcode startBroker} looks for it. */
export async function hasMosquitto(): Promise<boolean> {
  try {
    await Deno.stat(MOSQUITTO);
    return true;
  } catch {
    return false;
  }
}

/** Mosquitto's version, from `mosquitto -h`. */
export async function mosquittoVersion(): Promise<string> {
  try {
    const out = await new Deno.Command(MOSQUITTO, { args: ["-h"], stdout: "piped" }).output();
    return /mosquitto version (\S+)/.exec(new TextDecoder().decode(out.stdout))?.[1] ?? "unknown";
  } catch {
    return "not installed";
  }
}

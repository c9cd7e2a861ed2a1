/**
 * Side-by-side benchmark: amqtt, Mosquitto and Aedes, each in its own process on a loopback port,
 * driven in turn by the same load generator (cli/bench) through the same scenarios:
 *
 * - fan-in 8→1 QoS 0, fan-out 1→32 QoS 0, 1→1 QoS 1 and 1→1 QoS 2 (64-byte payloads): msg/s and
 *   messages per broker-CPU-second (utime + stime from /proc/PID/stat, steadier on a shared machine);
 * - latency p50/p99 at a fixed 5,000 msg/s, QoS 0 and QoS 1 (timestamp in the payload);
 * - memory per idle connection at 5,000 connections (RSS delta of the broker from /proc);
 * - connection rate (CONNACKs per second while opening those connections).
 *
 * Prints one markdown table with amqtt's figure as a ratio to each peer; `--write FILE` also saves
 * it with the machine and date (bench/RESULTS.md).
 *
 * Usage: deno run -A bench/compare.ts [--quick] [--scale X] [--write bench/RESULTS.md]
 *        [--brokers amqtt,mosquitto,aedes]
 *
 * Needs Mosquitto (Debian: `apt-get install mosquitto`; installed automatically when run as root
 * with apt-get) and npm access for `aedes` (through deno.json). Loopback only.
 *
 * @module
 */

import {
  type BenchTarget,
  type IdleConnections,
  type LatencyHistogram,
  openConnections,
  Publishers,
  Subscribers,
} from "../cli/bench/load.ts";
import { sleep } from "../cli/bench/_connection.ts";

const MOSQUITTO = "/usr/sbin/mosquitto";
const ROOT = new URL("..", import.meta.url).pathname;

interface Flags {
  scale: number;
  idleConnections: number;
  latencySeconds: number;
  brokers: string[];
  write: string | undefined;
}

function parseFlags(args: string[]): Flags {
  const flags: Flags = {
    scale: 1,
    idleConnections: 5000,
    latencySeconds: 5,
    brokers: ["amqtt", "mosquitto", "aedes"],
    write: undefined,
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--quick") {
      flags.scale = 0.05;
      flags.idleConnections = 500;
      flags.latencySeconds = 1;
    } else if (a === "--scale") flags.scale = Number(args[++i]);
    else if (a === "--connections") flags.idleConnections = Number(args[++i]);
    else if (a === "--latency-seconds") flags.latencySeconds = Number(args[++i]);
    else if (a === "--brokers") flags.brokers = args[++i].split(",");
    else if (a === "--write") flags.write = args[++i];
    else throw new Error(`Unknown argument ${a}: see the usage at the top of bench/compare.ts`);
  }
  if (!(flags.scale > 0)) throw new Error("--scale must be a positive number");
  return flags;
}

// ---------------------------------------------------------------------------------------------
// /proc readings

const CLOCK_TICKS = 100; // USER_HZ on Linux

function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

function rssKiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
}

function openFilesLimit(pid: number | "self"): number {
  const limits = Deno.readTextFileSync(`/proc/${pid}/limits`);
  const soft = /Max open files\s+(\S+)/.exec(limits)?.[1];
  return soft === "unlimited" ? Infinity : Number(soft);
}

/** Raises this process's open-file limit with prlimit when it is below `need`. */
async function raiseOwnFileLimit(need: number): Promise<void> {
  if (openFilesLimit("self") >= need) return;
  try {
    await new Deno.Command("prlimit", {
      args: ["--pid", String(Deno.pid), `--nofile=${need}:${need}`],
      stderr: "null",
    }).output();
  } catch { /* prlimit missing: checked below */ }
}

// ---------------------------------------------------------------------------------------------
// Brokers

interface RunningBroker {
  name: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function waitForPort(port: number, ms: number): Promise<void> {
  const end = performance.now() + ms;
  for (;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch (err) {
      if (performance.now() > end) throw err;
      await sleep(20);
    }
  }
}

/** Spawns `cmd` under `ulimit -n nofile` (so the pid is the broker's own: bash execs it). */
function spawnWithLimit(cmd: string[], nofile: number): Deno.ChildProcess {
  const script = `ulimit -n ${nofile} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
  return new Deno.Command("bash", {
    args: ["-c", script, "bash", ...cmd],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Reads the child's stdout until a `port N` line; keeps draining both pipes afterwards. */
async function portFromStdout(child: Deno.ChildProcess, name: string): Promise<number> {
  let errText = "";
  (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      if (errText.length < 4000) errText += chunk;
    }
  })();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  const deadline = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, 60_000);
  try {
    for (;;) {
      const { value, done } = await lines.read();
      if (done) {
        throw new Error(`${name} exited before listening: ${errText.trim() || seen.trim()}`);
      }
      seen += value;
      const m = /port (\d+)/.exec(seen);
      if (m) {
        (async () => {
          while (!(await lines.read()).done) { /* drain */ }
        })();
        return Number(m[1]);
      }
    }
  } finally {
    clearTimeout(deadline);
  }
}

function stopper(child: Deno.ChildProcess): () => Promise<void> {
  return async () => {
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
  };
}

async function startAmqtt(nofile: number): Promise<RunningBroker> {
  const child = spawnWithLimit([
    Deno.execPath(),
    "run",
    "-A",
    `${ROOT}bench/_amqtt_broker.ts`,
  ], nofile);
  const port = await portFromStdout(child, "amqtt");
  return { name: "amqtt", port, pid: child.pid, stop: stopper(child) };
}

async function startAedes(nofile: number): Promise<RunningBroker> {
  const child = spawnWithLimit([
    Deno.execPath(),
    "run",
    "-A",
    `${ROOT}bench/_aedes_broker.ts`,
  ], nofile);
  const port = await portFromStdout(child, "aedes");
  return { name: "aedes", port, pid: child.pid, stop: stopper(child) };
}

async function ensureMosquitto(): Promise<boolean> {
  try {
    await Deno.stat(MOSQUITTO);
    return true;
  } catch { /* missing */ }
  const root = Deno.uid() === 0;
  if (!root) {
    console.error("Mosquitto is not installed: run `sudo apt-get install mosquitto` (Debian)");
    return false;
  }
  console.error("Installing mosquitto with apt-get…");
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  await new Deno.Command("apt-get", { args: ["update", "-qq"], env, stdout: "null" }).output();
  const out = await new Deno.Command("apt-get", {
    args: ["install", "-y", "-qq", "mosquitto"],
    env,
    stdout: "null",
  }).output();
  // The package starts a system broker on 1883; ours runs on its own port, so it can stay.
  if (!out.success) console.error("apt-get install mosquitto failed: skipping Mosquitto");
  return out.success;
}

async function startMosquitto(nofile: number): Promise<RunningBroker> {
  const dir = await Deno.makeTempDir({ prefix: "amqtt-compare-mosq-" });
  await Deno.chmod(dir, 0o755);
  const port = freePort();
  await Deno.writeTextFile(
    `${dir}/mosquitto.conf`,
    [
      `listener ${port} 127.0.0.1`,
      "allow_anonymous true",
      "persistence false",
      // Like amqtt and the Aedes runner: TCP_NODELAY on every client socket.
      "set_tcp_nodelay true",
      "log_dest stderr",
      "log_type error",
      "",
    ].join("\n"),
  );
  await Deno.chmod(`${dir}/mosquitto.conf`, 0o644);
  const child = spawnWithLimit([MOSQUITTO, "-c", `${dir}/mosquitto.conf`], nofile);
  child.stdout.cancel();
  let errText = "";
  (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      if (errText.length < 4000) errText += chunk;
    }
  })();
  try {
    await waitForPort(port, 5000);
  } catch {
    await stopper(child)();
    throw new Error(`Mosquitto did not start: ${errText.trim()}`);
  }
  const stop = stopper(child);
  return {
    name: "mosquitto",
    port,
    pid: child.pid,
    stop: async () => {
      await stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Scenarios

interface Figure {
  value: number;
  /** Messages per broker-CPU-second, for throughput scenarios. */
  perCpu?: number;
  /** Messages lost (expected minus received); a figure with losses is flagged. */
  lost?: number;
  /** Messages received twice (or out of order); a figure with any is flagged. */
  duplicates?: number;
}

type Results = Map<string, Figure>;

function target(port: number): BenchTarget {
  return { host: "127.0.0.1", port, protocolVersion: 4, keepAlive: 300, clean: true };
}

/** Waits until `done()` or until `received()` stops moving for `idleMs`. */
async function settle(done: () => boolean, received: () => number, idleMs = 3000): Promise<void> {
  let last = received(), lastChange = performance.now();
  while (!done()) {
    await sleep(5);
    const now = received();
    if (now !== last) {
      last = now;
      lastChange = performance.now();
    } else if (performance.now() - lastChange > idleMs) return;
  }
}

async function throughput(
  b: RunningBroker,
  name: string,
  shape: { pubs: number; subs: number; qos: 0 | 1 | 2; perPub: number; throttle?: boolean },
): Promise<Figure> {
  const t = target(b.port);
  const subs = await Subscribers.connect({
    target: t,
    connections: shape.subs,
    clientIdPrefix: `cmp-sub-${name}-`,
    topic: "cmp/#",
    qos: shape.qos,
    limit: 0,
    duration: 0,
  });
  const expected = shape.perPub * shape.pubs * shape.subs;
  const ref: { pubs?: Publishers } = {};
  const pubs = await Publishers.connect({
    target: t,
    connections: shape.pubs,
    clientIdPrefix: `cmp-pub-${name}-`,
    topic: "cmp/%i",
    qos: shape.qos,
    size: 64,
    rate: 0,
    limit: shape.perPub,
    duration: 0,
    inflight: 20,
    // Fan-out: keep the publisher at most 2,000 messages ahead of its readers, so what is measured
    // is delivery, not how much a broker will buffer for slow sockets.
    throttle: shape.throttle
      ? () => subs.received < (ref.pubs!.sent - 2000) * shape.subs
      : undefined,
  });
  ref.pubs = pubs;
  const cpu0 = cpuSeconds(b.pid);
  const t0 = performance.now();
  const sent = pubs.run();
  await settle(() => subs.received >= expected, () => subs.received + pubs.acked);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(b.pid) - cpu0;
  pubs.stop();
  await sent;
  const report = await subs.stop();
  // Only distinct messages count: a broker that delivered some twice must not look faster.
  const distinct = report.received - report.duplicates;
  return {
    value: distinct / seconds,
    perCpu: cpu > 0 ? distinct / cpu : undefined,
    lost: Math.max(0, expected - distinct),
    duplicates: report.duplicates,
  };
}

async function latency(
  b: RunningBroker,
  qos: 0 | 1,
  seconds: number,
): Promise<{ p50: Figure; p99: Figure }> {
  const t = target(b.port);
  const subs = await Subscribers.connect({
    target: t,
    connections: 1,
    clientIdPrefix: `lat-sub-${qos}-`,
    topic: "lat/#",
    qos,
    limit: 0,
    duration: 0,
  });
  const pubs = await Publishers.connect({
    target: t,
    connections: 1,
    clientIdPrefix: `lat-pub-${qos}-`,
    topic: "lat/%i",
    qos,
    size: 64,
    rate: 5000,
    limit: 0,
    duration: seconds,
  });
  const r = await pubs.run();
  await settle(() => subs.received >= r.sent, () => subs.received, 2000);
  const report = await subs.stop();
  const h: LatencyHistogram = report.latency;
  const lost = Math.max(0, r.sent - report.received);
  return {
    p50: { value: h.percentile(0.5) / 1000, lost },
    p99: { value: h.percentile(0.99) / 1000, lost },
  };
}

async function idleMemory(
  b: RunningBroker,
  count: number,
): Promise<{ memory: Figure; rate: Figure; failed: number }> {
  const limit = openFilesLimit(b.pid);
  if (limit < count + 100) {
    throw new Error(
      `${b.name} may open only ${limit} files, too few for ${count} connections: ` +
        `raise the limit (ulimit -n ${count + 1000}) or pass --connections ${limit - 100}`,
    );
  }
  await sleep(300);
  const before = rssKiB(b.pid);
  const cpu0 = cpuSeconds(b.pid);
  let idle: IdleConnections | undefined;
  try {
    idle = await openConnections({
      target: target(b.port),
      connections: count,
      clientIdPrefix: `idle-${b.name}-`,
      rate: 0,
      concurrency: 64,
    });
    const report = idle.report;
    const cpu = cpuSeconds(b.pid) - cpu0;
    await sleep(1000); // let allocations settle before reading RSS
    const after = rssKiB(b.pid);
    if (report.failed > 0) {
      console.error(`  ${report.failed} of ${count} connections failed: ${report.firstError}`);
    }
    return {
      memory: { value: ((after - before) * 1024) / Math.max(1, report.connections) },
      rate: {
        value: report.connections / report.seconds,
        perCpu: cpu > 0 ? report.connections / cpu : undefined,
      },
      failed: report.failed,
    };
  } finally {
    await idle?.close();
  }
}

async function runAll(b: RunningBroker, flags: Flags): Promise<Results> {
  const out: Results = new Map();
  const step = async <T>(label: string, fn: () => Promise<T>): Promise<T | undefined> => {
    const t0 = performance.now();
    try {
      const r = await fn();
      console.error(`  ${label} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      return r;
    } catch (err) {
      console.error(`  ${label} failed: ${err instanceof Error ? err.message : err}`);
      return undefined;
    }
  };
  const s = flags.scale;
  // Memory first, while the broker is fresh.
  const mem = await step("idle connections", () => idleMemory(b, flags.idleConnections));
  if (mem) {
    out.set("memory", mem.memory);
    out.set("connrate", mem.rate);
  }
  const fanIn = await step(
    "fan-in",
    () => throughput(b, "in", { pubs: 8, subs: 1, qos: 0, perPub: Math.round(50_000 * s) }),
  );
  if (fanIn) out.set("fanin", fanIn);
  const fanOut = await step("fan-out", () =>
    throughput(b, "out", {
      pubs: 1,
      subs: 32,
      qos: 0,
      perPub: Math.round(50_000 * s),
      throttle: true,
    }));
  if (fanOut) out.set("fanout", fanOut);
  const q1 = await step(
    "QoS 1",
    () => throughput(b, "q1", { pubs: 1, subs: 1, qos: 1, perPub: Math.round(100_000 * s) }),
  );
  if (q1) out.set("qos1", q1);
  const q2 = await step(
    "QoS 2",
    () => throughput(b, "q2", { pubs: 1, subs: 1, qos: 2, perPub: Math.round(50_000 * s) }),
  );
  if (q2) out.set("qos2", q2);
  for (const qos of [0, 1] as const) {
    const l = await step(`latency QoS ${qos}`, () => latency(b, qos, flags.latencySeconds));
    if (l) {
      out.set(`lat${qos}p50`, l.p50);
      out.set(`lat${qos}p99`, l.p99);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Table

interface Row {
  key: string;
  label: string;
  unit: string;
  lowerIsBetter?: boolean;
  perCpu?: boolean;
}

const ROWS: Row[] = [
  { key: "fanin", label: "fan-in 8→1 QoS 0", unit: "msg/s" },
  { key: "fanin", label: "fan-in 8→1 QoS 0", unit: "msg/CPU-s", perCpu: true },
  { key: "fanout", label: "fan-out 1→32 QoS 0", unit: "msg/s" },
  { key: "fanout", label: "fan-out 1→32 QoS 0", unit: "msg/CPU-s", perCpu: true },
  { key: "qos1", label: "1→1 QoS 1", unit: "msg/s" },
  { key: "qos1", label: "1→1 QoS 1", unit: "msg/CPU-s", perCpu: true },
  { key: "qos2", label: "1→1 QoS 2", unit: "msg/s" },
  { key: "qos2", label: "1→1 QoS 2", unit: "msg/CPU-s", perCpu: true },
  { key: "lat0p50", label: "latency p50 @ 5k msg/s QoS 0", unit: "ms", lowerIsBetter: true },
  { key: "lat0p99", label: "latency p99 @ 5k msg/s QoS 0", unit: "ms", lowerIsBetter: true },
  { key: "lat1p50", label: "latency p50 @ 5k msg/s QoS 1", unit: "ms", lowerIsBetter: true },
  { key: "lat1p99", label: "latency p99 @ 5k msg/s QoS 1", unit: "ms", lowerIsBetter: true },
  { key: "memory", label: "memory per idle connection", unit: "bytes", lowerIsBetter: true },
  { key: "connrate", label: "connection rate", unit: "conn/s" },
  { key: "connrate", label: "connection rate", unit: "conn/CPU-s", perCpu: true },
];

function fmt(n: number | undefined, unit: string): string {
  if (n === undefined || !Number.isFinite(n)) return "—";
  if (unit === "ms") return n < 10 ? n.toFixed(2) : n.toFixed(1);
  if (unit === "bytes") return `${Math.round(n).toLocaleString("en-US")}`;
  return Math.round(n).toLocaleString("en-US");
}

function pick(f: Figure | undefined, row: Row): number | undefined {
  if (f === undefined) return undefined;
  return row.perCpu ? f.perCpu : f.value;
}

function table(results: Map<string, Results>, order: string[]): string {
  const peers = order.filter((n) => n !== "amqtt");
  const head = [
    "scenario",
    "unit",
    ...order,
    ...peers.map((p) => `amqtt ÷ ${p}`),
  ];
  const lines = [`| ${head.join(" | ")} |`, `|${head.map(() => " --- ").join("|")}|`];
  for (const row of ROWS) {
    const cells = order.map((name) => {
      const f = results.get(name)?.get(row.key);
      const v = fmt(pick(f, row), row.unit);
      const flags = [
        f?.lost ? `lost ${f.lost}` : "",
        f?.duplicates ? `duplicates ${f.duplicates}` : "",
      ].filter((x) => x !== "");
      return flags.length > 0 ? `${v} (${flags.join(", ")})` : v;
    });
    const ours = pick(results.get("amqtt")?.get(row.key), row);
    const ratios = peers.map((p) => {
      const theirs = pick(results.get(p)?.get(row.key), row);
      if (ours === undefined || theirs === undefined || theirs === 0) return "—";
      return `${(ours / theirs).toFixed(2)}×`;
    });
    const unit = row.unit + (row.lowerIsBetter ? " (lower is better)" : "");
    lines.push(`| ${[row.label, unit, ...cells, ...ratios].join(" | ")} |`);
  }
  return lines.join("\n");
}

async function versionOf(cmd: string, args: string[], pattern: RegExp): Promise<string> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    return pattern.exec(text)?.[1] ?? "unknown";
  } catch {
    return "not installed";
  }
}

async function machine(): Promise<string> {
  const cpu = /model name\s*:\s*(.+)/.exec(await Deno.readTextFile("/proc/cpuinfo"))?.[1] ??
    "unknown CPU";
  const memKiB = Number(/MemTotal:\s+(\d+)/.exec(await Deno.readTextFile("/proc/meminfo"))?.[1]);
  return `${cpu.trim()}, ${navigator.hardwareConcurrency} cores, ${
    (memKiB / 1024 / 1024).toFixed(0)
  } GiB, Linux ${Deno.osRelease()}`;
}

/** Says whether other work shared the machine, from the 1-minute load averages. */
function loadNote(before: string, after: string): string {
  const busy = Math.max(Number(before.split(" ")[0]), Number(after.split(" ")[0]));
  return busy > 0.8
    ? "The machine was loaded by other work during the run (see the load averages): figures are " +
      "noisy; msg/CPU-s is the steadier column."
    : "The machine was otherwise idle at the start and end of the run (2 cores shared between the " +
      "broker and the load generator).";
}

function loadAverage(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const flags = parseFlags(Deno.args);
  const need = flags.idleConnections + 500;
  await raiseOwnFileLimit(need);
  if (openFilesLimit("self") < need) {
    console.error(
      `This process may open only ${openFilesLimit("self")} files and ${flags.idleConnections} ` +
        `connections need about ${need}: run \`ulimit -n ${need}\` first (or pass --connections N)`,
    );
    return 1;
  }
  const starters: Record<string, (nofile: number) => Promise<RunningBroker>> = {
    amqtt: startAmqtt,
    mosquitto: startMosquitto,
    aedes: startAedes,
  };
  const order = flags.brokers.filter((b) => b in starters);
  if (order.includes("mosquitto") && !(await ensureMosquitto())) {
    order.splice(order.indexOf("mosquitto"), 1);
  }
  const loadBefore = loadAverage();
  const started = new Date();
  const results = new Map<string, Results>();
  for (const name of order) {
    console.error(`${name}:`);
    let broker: RunningBroker;
    try {
      broker = await starters[name](need);
    } catch (err) {
      console.error(`  could not start: ${err instanceof Error ? err.message : err}`);
      continue;
    }
    try {
      results.set(name, await runAll(broker, flags));
    } finally {
      await broker.stop();
    }
  }
  const loadAfter = loadAverage();
  const text = table(results, order);
  console.log(text);
  if (flags.write !== undefined) {
    const versions = [
      `Deno ${Deno.version.deno}`,
      `Mosquitto ${await versionOf(MOSQUITTO, ["-h"], /mosquitto version (\S+)/)}`,
      "Aedes 1.2.0 (npm, on Deno's node:net, in-memory persistence)",
    ].join(", ");
    const scale = flags.scale === 1 && flags.idleConnections === 5000
      ? ""
      : ` Scale ${flags.scale}, ${flags.idleConnections} idle connections.`;
    const count = flags.idleConnections.toLocaleString("en-US");
    const doc = [
      "# Benchmark results",
      "",
      "Made by `deno task bench:compare` (bench/compare.ts): each broker in its own process on a",
      "loopback port, driven in turn by the same load generator (cli/bench, one Deno process),",
      "64-byte payloads. Throughput counts messages delivered to subscribers; msg/CPU-s divides by",
      "the broker's own CPU time (utime + stime from /proc), which is steadier than msg/s when the",
      "load generator and the broker share two cores. Latency comes from a timestamp in each payload.",
      `Memory is the broker's RSS growth for ${count} idle connections, divided by ${count}.`,
      "Ratios are amqtt's figure divided by the peer's (for latency and memory lower is better).",
      "Mosquitto runs with `persistence false` and `set_tcp_nodelay true`; all brokers use defaults",
      "otherwise.",
      "",
      `- Date: ${started.toISOString().slice(0, 16).replace("T", " ")} UTC`,
      `- Machine: ${await machine()}`,
      `- Software: ${versions}`,
      `- Load average (1/5/15 min) before: ${loadBefore}; after: ${loadAfter}.${scale}`,
      `- ${loadNote(loadBefore, loadAfter)}`,
      "",
      text,
      "",
      "Scenarios: fan-in: 8 publishers × 50,000 messages to 1 subscriber; fan-out: 1 publisher ×",
      "50,000 messages to 32 subscribers (the publisher is held at most 2,000 messages ahead of its",
      "readers); 1→1 QoS 1: 100,000 messages, QoS 2: 50,000, 20 in flight; latency: 1 publisher at",
      `${"5,000"} msg/s for ${flags.latencySeconds} s; memory and connection rate: ${flags.idleConnections}`,
      "connections opened 64 at a time. Aedes runs on Deno's Node compatibility layer here, not on",
      "Node.js; its figures on Node may differ.",
      "",
    ].join("\n");
    await Deno.writeTextFile(flags.write, doc);
    // Keep the file as `deno fmt` wants it (aligned table), so `deno task check` stays clean.
    await new Deno.Command(Deno.execPath(), { args: ["fmt", "-q", flags.write] }).output();
    console.error(`Wrote ${flags.write}`);
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main());

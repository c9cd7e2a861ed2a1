/**
 * Closing many idle connections at once, and the memory given back afterwards. The amqtt broker
 * runs in this process (one broker, or with `--cluster` two nodes of one cluster on a redis-server
 * started here); C holder processes (`bench/loadgen/holder.c`, one per broker, each from its own
 * source address) open `--n` idle MQTT 3.1.1 connections in all, then close every one of them at
 * once (RST). Reported: the time from the holders' close until the brokers count no connected
 * client and hold no socket of them, and `Deno.memoryUsage()` (RSS, heap used and committed)
 * before, with the connections held, when they are all gone, 5 s later and `--linger` s later.
 *
 * `--burst B` has every connection send one QoS 0 PUBLISH of B payload bytes once held (read at
 * "after the burst"), so that the broker's reads of each grow to their largest (64 KiB at B of
 * 256 KiB) before the close: the native memory given back after it is then far more than the
 * idle connections' (the broker's log line gives the trim's share of its pause apart).
 *
 * `--maps` also prints, at each reading, where the RSS is (`/proc/self/smaps`): glibc's main arena
 * (`[heap]`), other anonymous mappings (V8's heap, the other threads' arenas and stacks, large
 * `mmap`ped blocks) and files (the executable's code and data).
 *
 * `--profile FILE` takes a CPU profile (V8's sampler through `node:inspector`, `--interval` µs)
 * of the close, writes it to FILE (`.cpuprofile`, for Chrome's DevTools) and prints the functions
 * with the most self time. `--gc` forces two collections (`--v8-flags=--expose-gc` needed) at
 * each reading, to tell what is kept from what is not yet collected.
 *
 * One process holds at most the hard open-file limit of sockets (20,000 on the development
 * machine): `--n` 19,000 at most, the cluster's Redis connections included.
 *
 * Usage: deno run -A [--v8-flags=--expose-gc] bench/idle_close.ts [--n 19000] [--cluster]
 *          [--linger 30] [--burst B] [--maps] [--profile FILE] [--interval 500] [--gc] [--root DIR]
 *
 * @module
 */

import { Session } from "node:inspector";
import { buildLoadgen } from "./loadgen/build.ts";
import { RedisServer } from "../tests/_helpers/redis.ts";

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1]! : fallback;
}

const n = Number(flag("--n", "19000"));
const cluster = Deno.args.includes("--cluster");
const linger = Number(flag("--linger", "30"));
const profileFile = flag("--profile", "");
const interval = Number(flag("--interval", "500"));
const forceGc = Deno.args.includes("--gc");
const burstBytes = Number(flag("--burst", "0"));
const maps = Deno.args.includes("--maps");

/** RSS by kind of mapping, MB (see `--maps`). */
function rssByMapping(): string {
  const kinds = { "[heap]": 0, anonymous: 0, files: 0, other: 0 };
  let kind: keyof typeof kinds = "other";
  for (const line of Deno.readTextFileSync("/proc/self/smaps").split("\n")) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head !== null) {
      const name = head[1]!.trim();
      kind = name === "[heap]"
        ? "[heap]"
        : name === ""
        ? "anonymous"
        : name.startsWith("/")
        ? "files"
        : "other";
    } else if (line.startsWith("Rss:")) kinds[kind] += Number(line.split(/\s+/)[1]) / 1024;
  }
  return Object.entries(kinds).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ");
}
const root = flag("--root", new URL("..", import.meta.url).pathname).replace(/\/$/, "");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const gc = (globalThis as { gc?: () => void }).gc;
if (forceGc && gc === undefined) throw new Error("--gc needs --v8-flags=--expose-gc");

/** Sockets this process holds (listeners, Redis, clients). */
function sockets(): number {
  let count = 0;
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    try {
      if (Deno.readLinkSync(`/proc/self/fd/${e.name}`).startsWith("socket:")) count++;
    } catch { /* closed meanwhile */ }
  }
  return count;
}

/** One holder process and its line protocol (see holder.c). */
class Holder implements AsyncDisposable {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #lines: ReadableStreamDefaultReader<string>;
  #rest = "";
  constructor(path: string, port: number, source: string, id: string) {
    this.#child = new Deno.Command(path, {
      // Client ids of their own: the same id on two nodes would be a takeover.
      args: ["--port", String(port), "--source", source, "--id", id, "--keepalive", "900"],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#lines = this.#child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  }
  async ask(command: string): Promise<string> {
    await this.#writer.write(new TextEncoder().encode(command + "\n"));
    while (!this.#rest.includes("\n")) {
      const { value, done } = await this.#lines.read();
      if (done) throw new Error(`holder exited during "${command}"`);
      this.#rest += value;
    }
    const at = this.#rest.indexOf("\n");
    const line = this.#rest.slice(0, at);
    this.#rest = this.#rest.slice(at + 1);
    return line;
  }
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#writer.close().catch(() => {});
    await this.#child.status;
    await this.#lines.cancel().catch(() => {});
  }
}

interface Reading {
  label: string;
  clients: number;
  sockets: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
}

const { Broker } = await import(`${root}/broker.ts`);
type AnyBroker = {
  start(): Promise<void>;
  shutdown(): Promise<void>;
  stats: { clientsConnected: number };
  listeners: readonly { port: number }[];
};
await using redis = cluster ? await RedisServer.start() : undefined;
const brokers: AnyBroker[] = [];
for (const id of cluster ? ["a", "b"] : ["single"]) {
  brokers.push(
    new Broker({
      listeners: { default: { bind: "127.0.0.1:0" } },
      sys_interval: 0,
      // Bursts of 250 logins from one address: the failed-login throttle is not measured here.
      max_login_failures: 0,
      ...(redis === undefined ? {} : {
        cluster: {
          node_id: id,
          redis: redis.url,
          key_prefix: "close:",
          // Nodes starved of CPU must not take each other for dead: not measured here.
          heartbeat_interval: 5,
          node_timeout: 120,
        },
      }),
    }, {
      // The broker's line when it collects after the close, and its warnings.
      logger: {
        debug() {},
        info: (line: string) => line.startsWith("Many") && console.error(`${id}: ${line}`),
        warning: (line: string) => console.error(`${id}: ${line}`),
        error: (line: string) => console.error(`${id}: ${line}`),
      },
    }) as AnyBroker,
  );
}
for (const b of brokers) await b.start();
const bins = await buildLoadgen();
const holders = brokers.map((b, i) =>
  new Holder(bins.holder, b.listeners[0]!.port, `127.0.0.${i + 2}`, `h${i}`)
);
const clients = () => brokers.reduce((s, b) => s + b.stats.clientsConnected, 0);
const readings: Reading[] = [];
const read = (label: string) => {
  if (forceGc) {
    gc!();
    gc!();
  }
  const u = Deno.memoryUsage();
  const r = {
    label,
    clients: clients(),
    sockets: sockets(),
    rss: u.rss,
    heapUsed: u.heapUsed,
    heapTotal: u.heapTotal,
  };
  readings.push(r);
  const mb = (x: number) => (x / 2 ** 20).toFixed(1);
  console.error(
    `${label}: ${r.clients} clients, ${r.sockets} sockets, RSS ${mb(r.rss)} MB, heap ` +
      `${mb(r.heapUsed)}/${mb(r.heapTotal)} MB`,
  );
  if (maps) console.error(`  RSS by mapping (MB): ${rssByMapping()}`);
  return r;
};

let closeMs = 0;
try {
  await sleep(1000);
  const before = read("before");
  const per = Math.ceil(n / holders.length);
  const answers = await Promise.all(holders.map((h) => h.ask(`open ${per} 300`)));
  const held = answers.reduce((s, a) => s + Number(/held (\d+)/.exec(a)?.[1] ?? 0), 0);
  console.error(`holders: ${answers.join("; ")}`);
  await sleep(3000);
  read(`${held} held`);
  if (burstBytes > 0) {
    const t = performance.now();
    const sent = await Promise.all(holders.map((h) => h.ask(`send ${burstBytes}`)));
    // The broker has read them all once the holders' writes are done and a moment has passed.
    await sleep(2000);
    console.error(`burst: ${sent.join("; ")} in ${(performance.now() - t).toFixed(0)} ms`);
    read(`after the burst (${burstBytes} B each)`);
  }

  const session = new Session();
  const post = <T>(method: string, params: object = {}) =>
    new Promise<T>((resolve, reject) =>
      session.post(
        method,
        params,
        (err: Error | null, result?: object) => err ? reject(err) : resolve(result as T),
      )
    );
  if (profileFile !== "") {
    session.connect();
    await post("Profiler.enable");
    await post("Profiler.setSamplingInterval", { interval });
    await post("Profiler.start");
  }
  const t0 = performance.now();
  await Promise.all(holders.map((h) => h.ask("close")));
  const sent = performance.now() - t0;
  // Until the brokers count no client and hold no socket of them (every 50 ms, 300 s at most).
  while ((clients() > 0 || sockets() > before.sockets) && performance.now() - t0 < 300_000) {
    await sleep(50);
  }
  closeMs = performance.now() - t0;
  if (profileFile !== "") {
    const { profile } = await post<{ profile: CpuProfile }>("Profiler.stop");
    session.disconnect();
    await Deno.writeTextFile(profileFile, JSON.stringify(profile));
    summarize(profile);
  }
  console.error(
    `closed ${held} connections: the holders took ${sent.toFixed(0)} ms, the broker${
      cluster ? "s" : ""
    } had let go of every one ${closeMs.toFixed(0)} ms after the close began`,
  );
  read("all gone");
  await sleep(5000);
  read("+5 s");
  await sleep(Math.max(0, linger - 5) * 1000);
  read(`+${linger} s`);

  const mb = (x: number) => (x / 2 ** 20).toFixed(1);
  console.log(
    `${cluster ? "two cluster nodes" : "one broker"} in one process, ${held} idle connections ` +
      `closed at once: all gone after ${(closeMs / 1000).toFixed(2)} s` +
      (forceGc ? " (readings after forced collections)" : ""),
  );
  console.log("| moment | clients | sockets | RSS MB | heap used / committed MB |");
  console.log("| --- | --- | --- | --- | --- |");
  for (const r of readings) {
    console.log(
      `| ${r.label} | ${r.clients} | ${r.sockets} | ${mb(r.rss)} | ${mb(r.heapUsed)} / ` +
        `${mb(r.heapTotal)} |`,
    );
  }
} finally {
  for (const h of holders) await h[Symbol.asyncDispose]();
  for (const b of brokers) await b.shutdown();
}

interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    hitCount?: number;
  }[];
  samples: number[];
  timeDeltas: number[];
}

/** Prints the functions with the most self time in the profile. */
function summarize(profile: CpuProfile): void {
  const byId = new Map(profile.nodes.map((nd) => [nd.id, nd]));
  const self = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const nd = byId.get(profile.samples[i]!)!;
    const f = nd.callFrame;
    const file = f.url.replace(/^.*\/(src|bench)\//, "$1/").replace(/^ext:/, "ext:") || "(native)";
    const key = `${f.functionName || "(anonymous)"} ${file}:${f.lineNumber + 1}`;
    const dt = profile.timeDeltas[i] ?? 0;
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  }
  const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, 25);
  console.log(`CPU profile of the close, ${(total / 1000).toFixed(0)} ms sampled; self time:`);
  for (const [key, us] of rows) {
    console.log(
      `  ${(us / 1000).toFixed(1).padStart(8)} ms ${(100 * us / total).toFixed(1)}% ${key}`,
    );
  }
}

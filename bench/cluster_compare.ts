/**
 * One amqtt process against a cluster of two on this machine (`amqtt --workers 2` sharing the
 * port, on a redis-server started here), driven by the C load generator of bench/compare.ts; and
 * the latency a cross-node hop adds (a publisher on node A, a subscriber on node B, against both
 * on node A).
 *
 * Throughput: fan-in 8→1 QoS 0, fan-out 1→32 QoS 0 and 1→1 QoS 1, as in bench/compare.ts. With
 * two workers the kernel spreads the generator's connections over them, so publishers and
 * subscribers land on either node and part of the traffic crosses Redis. Broker CPU is the sum of
 * every broker process (both workers; Redis's own CPU is reported apart). Each scenario runs
 * `--reps` times, the setups interleaved; the median is given with the range.
 *
 * A third setup, "2 nodes, all cross", puts every publisher on node A and every subscriber on node
 * B (two nodes on their own ports, the generator's `--sub-port`): every message crosses Redis, so
 * it measures the cross-node path alone.
 *
 * Hop latency: our MQTTClient publishes QoS 0 messages one at a time and waits for each to arrive
 * at a subscriber, first with both clients on node A, then with the subscriber on node B; p50 and
 * p99 of each, and the difference.
 *
 * `--pin` pins the generator to core 1 and the one-node broker to core 0 (the cluster setups'
 * nodes and Redis share both cores, as they must on a 2-core machine); unpinned runs on this
 * machine swing with core placement. Besides broker CPU, the generator's and Redis's CPU over
 * the measuring window are shown, and what all of it costs per delivered message.
 *
 * `--baseline DIR` runs every cluster setup (and the hop) a second time with the amqtt of another
 * checkout (an earlier commit, say), interleaved with this one's, for a before/after comparison on
 * a busy machine.
 *
 * Usage: deno run -A bench/cluster_compare.ts [--reps 3] [--seconds 5] [--warmup 2]
 *        [--scenarios fanin,fanout,qos1] [--hops 2000] [--setups one,workers,cross]
 *        [--baseline DIR] [--pin]
 *
 * Loopback only; needs a C compiler and redis-server. On a shared machine the figures move with
 * whatever else runs: compare within one run only.
 *
 * @module
 */

import { buildLoadgen } from "./loadgen/build.ts";
import { type LoadgenReport, runLoadgen } from "./loadgen/run.ts";
import { SCENARIOS } from "./_compare_scenarios.ts";
import { freePort, RedisServer } from "../tests/_helpers/redis.ts";
import { MQTTClient } from "../client.ts";

const ROOT = new URL("..", import.meta.url).pathname;

interface Flags {
  reps: number;
  seconds: number;
  warmup: number;
  scenarios: string[];
  hops: number;
  setups: string[];
  baseline: string | undefined;
  pin: boolean;
}

function parseFlags(args: string[]): Flags {
  const flags: Flags = {
    reps: 3,
    seconds: 5,
    warmup: 2,
    scenarios: ["fanin", "fanout", "qos1"],
    hops: 2000,
    setups: ["one", "workers", "cross"],
    baseline: undefined,
    pin: false,
  };
  for (let i = 0; i < args.length; i += 2) {
    const [name, value] = [args[i], args[i + 1] ?? ""];
    if (name === "--pin") {
      flags.pin = true;
      i--;
      continue;
    }
    if (name === "--reps") flags.reps = Number(value);
    else if (name === "--seconds") flags.seconds = Number(value);
    else if (name === "--warmup") flags.warmup = Number(value);
    else if (name === "--scenarios") flags.scenarios = value.split(",");
    else if (name === "--hops") flags.hops = Number(value);
    else if (name === "--setups") flags.setups = value.split(",");
    else if (name === "--baseline") {
      flags.baseline = new URL(`${value}/`, `file://${Deno.cwd()}/`).pathname;
    } else throw new Error(`Unknown flag ${name}`);
  }
  return flags;
}

/** `amqtt` processes under test: the supervisor (if any) and the brokers. */
interface Setup extends AsyncDisposable {
  port: number;
  /** Where subscribers connect, when not to `port` (another node). */
  subPort?: number;
  brokerPids: number[];
}

function cpuSeconds(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

function childrenOf(pid: number): number[] {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`).trim().split(/\s+/)
      .filter((x) => x !== "").map(Number);
  } catch {
    return [];
  }
}

/** `taskset -c CORES` before a command, when pinning. */
let pinning = false;
const pinned = (cores: string, command: string[]) =>
  pinning ? ["taskset", "-c", cores, ...command] : command;

async function startAmqtt(
  root: string,
  redis: RedisServer,
  workers: number,
  prefix: string,
): Promise<Setup> {
  const dir = await Deno.makeTempDir({ prefix: "amqtt-cluster-bench-" });
  const port = freePort();
  const lines = ["listeners:", "  default:", `    bind: 127.0.0.1:${port}`, "sys_interval: 0"];
  if (workers > 1) {
    lines.push(
      "cluster:",
      "  node_id: bench",
      `  redis: ${redis.url}`,
      `  key_prefix: "${prefix}"`,
    );
  }
  await Deno.writeTextFile(`${dir}/broker.yaml`, lines.join("\n") + "\n");
  const log = `${dir}/stderr.log`;
  const args = ["run", "-A", "--unstable-net", `${root}cli/amqtt.ts`, "-c", `${dir}/broker.yaml`];
  if (workers > 1) args.push("--workers", String(workers));
  const script = `ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@" 2>"${log}"`;
  const command = [Deno.execPath(), ...args];
  const child = new Deno.Command("bash", {
    args: ["-c", script, "bash", ...(workers === 1 ? pinned("0", command) : command)],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    await child.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  for (let i = 0; i < 1200; i++) {
    const text = await Deno.readTextFile(log).catch(() => "");
    if ((text.match(/amqtt \S+ started/g) ?? []).length === workers) {
      const brokerPids = workers > 1 ? childrenOf(child.pid) : [child.pid];
      return { port, brokerPids, [Symbol.asyncDispose]: stop };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await stop();
  throw new Error(`amqtt with ${workers} worker(s) did not start`);
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

function cell(values: number[]): string {
  if (values.length === 0) return "—";
  const fmt = (v: number) => Math.round(v).toLocaleString("en-US");
  return `${fmt(median(values))} (${fmt(Math.min(...values))}–${fmt(Math.max(...values))})`;
}

/** Median (min–max) with two decimals. */
function range(values: number[]): string {
  if (values.length === 0) return "—";
  const f = (v: number) => v.toFixed(2);
  return `${f(median(values))} (${f(Math.min(...values))}–${f(Math.max(...values))})`;
}

/** The medians of the per-delivery CPU costs, in µs. */
function perDelivery(values: [number, number, number][]): string {
  if (values.length === 0) return "—";
  const f = (i: number) => median(values.map((v) => v[i]!)).toFixed(2);
  return `${f(0)} / ${f(1)} / ${f(2)}`;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** Sequential publish→deliver latencies in µs, publisher on `pubUrl`, subscriber on `subUrl`. */
async function hopLatencies(pubUrl: string, subUrl: string, count: number): Promise<number[]> {
  await using sub = new MQTTClient({ config: { auto_reconnect: false } });
  await using pub = new MQTTClient({ config: { auto_reconnect: false } });
  await sub.connect(subUrl);
  await pub.connect(pubUrl);
  await sub.subscribe([["hop/#", 0]]);
  const messages = sub.messages();
  // Until the subscription is known on the publisher's node.
  for (;;) {
    await pub.publish("hop/probe", "p");
    const got = await Promise.race([
      messages.next(),
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 50)),
    ]);
    if (got !== undefined) break;
  }
  await new Promise((r) => setTimeout(r, 200));
  while (sub.receiveQueueSize > 0) await messages.next();
  const out: number[] = [];
  for (let i = 0; i < count + 200; i++) {
    const t0 = performance.now();
    await pub.publish("hop/x", String(i));
    for (;;) {
      const m = await messages.next();
      if (m.value !== undefined && m.value.topic === "hop/x") break;
    }
    if (i >= 200) out.push((performance.now() - t0) * 1000);
  }
  await messages.return(undefined);
  return out.sort((a, b) => a - b);
}

async function main(): Promise<void> {
  const flags = parseFlags(Deno.args);
  pinning = flags.pin;
  const bins = await buildLoadgen();
  await using redis = await RedisServer.start();
  const redisPid = Number(
    new TextDecoder().decode(
      (await new Deno.Command("bash", {
        args: ["-c", `ss -ltnpH 'sport = :${redis.port}' | grep -o 'pid=[0-9]*' | head -1`],
        stdout: "piped",
      }).output()).stdout,
    ).replace("pid=", "").trim(),
  );
  const roots: [string, string][] = [["", ROOT]];
  if (flags.baseline !== undefined) roots.push([" (baseline)", flags.baseline]);
  const setups: [string, (redis: RedisServer, prefix: string) => Promise<Setup>][] = [];
  if (flags.setups.includes("one")) {
    setups.push(["1 node", (redis, prefix) => startAmqtt(ROOT, redis, 1, prefix)]);
  }
  for (const [label, root] of roots) {
    if (flags.setups.includes("workers")) {
      setups.push([
        `2 nodes (--workers 2)${label}`,
        (redis, prefix) => startAmqtt(root, redis, 2, prefix),
      ]);
    }
    if (flags.setups.includes("cross")) {
      setups.push([
        `2 nodes, all cross${label}`,
        (redis, prefix) => startCrossing(root, redis, prefix),
      ]);
    }
  }
  const scenarios = SCENARIOS.filter((s) => flags.scenarios.includes(s.key));
  const rate = new Map<string, number[]>();
  const perCpu = new Map<string, number[]>();
  const redisCpu = new Map<string, number[]>();
  const genCpu = new Map<string, number[]>();
  const machineCpu = new Map<string, number[]>();
  /** CPU µs per delivered message: nodes, Redis, generator. */
  const costs = new Map<string, [number, number, number][]>();
  const push = <T>(map: Map<string, T[]>, key: string, value: T) =>
    (map.get(key) ?? map.set(key, []).get(key)!).push(value);
  const lost = new Map<string, number>();
  let run = 0;
  for (let rep = 1; rep <= flags.reps; rep++) {
    for (const scenario of scenarios) {
      for (const [name, start] of setups) {
        const key = `${scenario.key}|${name}`;
        await using setup = await start(redis, `b${++run}:`);
        // The workers learn each other's subscriptions through Redis: the warm-up covers it.
        const args = [
          ...scenario.args({
            seconds: flags.seconds,
            warmup: flags.warmup,
            n1: 0,
            n2: 0,
            settle: 0,
            burst: 0,
            overloadRate: 0,
          }),
          "--port",
          String(setup.port),
          ...(setup.subPort === undefined ? [] : ["--sub-port", String(setup.subPort)]),
          "--pid",
          String(setup.brokerPids[0]),
          ...setup.brokerPids.slice(1).flatMap((p) => ["--also-pid", String(p)]),
        ];
        // Redis's CPU over the measuring window (from the end of the warm-up).
        let redis0 = cpuSeconds(redisPid);
        const windowStart = setTimeout(() => redis0 = cpuSeconds(redisPid), flags.warmup * 1000);
        let report: LoadgenReport;
        try {
          const [exe, ...pre] = pinned("1", [bins.loadgen]);
          report = await runLoadgen(exe!, [...pre, ...args]);
        } catch (error) {
          console.error(`[${rep}] ${key} failed: ${(error as Error).message}`);
          continue;
        } finally {
          clearTimeout(windowStart);
        }
        const redis1 = cpuSeconds(redisPid);
        const mps = Number(report.msgPerSecond);
        const cpu = Number(report.brokerCpu);
        (rate.get(key) ?? rate.set(key, []).get(key)!).push(mps);
        if (cpu > 0) {
          (perCpu.get(key) ?? perCpu.set(key, []).get(key)!).push(
            Number(report.windowReceived) / cpu,
          );
        }
        push(redisCpu, key, (redis1 - redis0) * 100 / flags.seconds);
        push(genCpu, key, Number(report.genCpu));
        push(machineCpu, key, Number(report.machineCpu));
        const received = Number(report.windowReceived);
        push(costs, key, [
          cpu * 1e6 / received,
          (redis1 - redis0) * 1e6 / received,
          Number(report.genCpu) * 1e6 / received,
        ]);
        lost.set(key, (lost.get(key) ?? 0) + Number(report.lost ?? 0));
        console.error(
          `[${rep}/${flags.reps}] ${key}: ${Math.round(mps)} msg/s, broker CPU ${
            cpu.toFixed(2)
          } s, generator ${Number(report.genCpu).toFixed(2)} s, Redis ${
            (redis1 - redis0).toFixed(2)
          } s, machine CPU ${Number(report.machineCpu).toFixed(2)} s, lost ${report.lost}`,
        );
      }
    }
  }
  const out: string[] = [
    "| scenario | setup | msg/s (deliveries/s) | per broker CPU-s | Redis CPU % | generator CPU s | machine CPU s | CPU µs per delivery: nodes / Redis / generator | lost |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const scenario of scenarios) {
    for (const [name] of setups) {
      const key = `${scenario.key}|${name}`;
      out.push(
        `| ${scenario.title} | ${name} | ${cell(rate.get(key) ?? [])} | ${
          cell(perCpu.get(key) ?? [])
        } | ${cell(redisCpu.get(key) ?? [])} | ${range(genCpu.get(key) ?? [])} | ${
          range(machineCpu.get(key) ?? [])
        } | ${perDelivery(costs.get(key) ?? [])} | ${lost.get(key) ?? "—"} |`,
      );
    }
  }
  console.log(out.join("\n"));

  // Hop latency: two separate nodes on their own ports, each tree's in turn.
  const f = (v: number) => `${Math.round(v)} µs`;
  const hopRows = ["", "| path | p50 | p99 |", "| --- | --- | --- |"];
  for (const [label, root] of roots) {
    const hop = await startPair(root, redis, `hop${label === "" ? "" : "b"}:`);
    try {
      const same = await hopLatencies(hop.a, hop.a, flags.hops);
      const cross = await hopLatencies(hop.a, hop.b, flags.hops);
      hopRows.push(
        `| publisher and subscriber on node A${label} | ${f(percentile(same, 0.5))} | ${
          f(percentile(same, 0.99))
        } |`,
        `| publisher on A, subscriber on B${label} | ${f(percentile(cross, 0.5))} | ${
          f(percentile(cross, 0.99))
        } |`,
        `| added by the hop${label} | ${f(percentile(cross, 0.5) - percentile(same, 0.5))} | ${
          f(percentile(cross, 0.99) - percentile(same, 0.99))
        } |`,
      );
    } finally {
      await hop[Symbol.asyncDispose]();
    }
  }
  console.log(hopRows.join("\n"));
}

/** Two cluster nodes on their own ports: publishers on the first, subscribers on the second. */
async function startCrossing(root: string, redis: RedisServer, prefix: string): Promise<Setup> {
  const pair = await startPair(root, redis, prefix);
  return {
    port: Number(new URL(pair.a).port),
    subPort: Number(new URL(pair.b).port),
    brokerPids: pair.pids,
    [Symbol.asyncDispose]: () => pair[Symbol.asyncDispose](),
  };
}

/** Two cluster nodes, each on its own port. */
async function startPair(
  root: string,
  redis: RedisServer,
  prefix: string,
): Promise<{ a: string; b: string; pids: number[] } & AsyncDisposable> {
  const nodes: Deno.ChildProcess[] = [];
  const dirs: string[] = [];
  const urls: string[] = [];
  for (const id of ["ha", "hb"]) {
    const dir = await Deno.makeTempDir({ prefix: "amqtt-hop-" });
    dirs.push(dir);
    const port = freePort();
    await Deno.writeTextFile(
      `${dir}/broker.yaml`,
      [
        "listeners:",
        "  default:",
        `    bind: 127.0.0.1:${port}`,
        "sys_interval: 0",
        "cluster:",
        `  node_id: ${id}`,
        `  redis: ${redis.url}`,
        `  key_prefix: "${prefix}"`,
        "",
      ].join("\n"),
    );
    const log = `${dir}/stderr.log`;
    const child = new Deno.Command("bash", {
      args: [
        "-c",
        `exec "$@" 2>"${log}"`,
        "bash",
        Deno.execPath(),
        "run",
        "-A",
        `${root}cli/amqtt.ts`,
        "-c",
        `${dir}/broker.yaml`,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    nodes.push(child);
    for (let i = 0; i < 1200; i++) {
      const text = await Deno.readTextFile(log).catch(() => "");
      if (/amqtt \S+ started/.test(text)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    urls.push(`mqtt://127.0.0.1:${port}`);
  }
  return {
    a: urls[0]!,
    b: urls[1]!,
    pids: nodes.map((child) => child.pid),
    async [Symbol.asyncDispose]() {
      for (const child of nodes) {
        try {
          child.kill("SIGTERM");
        } catch { /* gone */ }
        await child.status;
      }
      for (const dir of dirs) await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

if (import.meta.main) await main();

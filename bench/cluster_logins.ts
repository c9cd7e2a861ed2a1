/**
 * Where a cluster login's time goes: N concurrent logins (MQTT 3.1.1 CONNECT→CONNACK over raw
 * sockets, at most `--concurrency` handshakes in flight, every connection held open until the
 * phase ends) against one amqtt process without a cluster, and against two cluster nodes (separate
 * `amqtt` processes on one redis-server started here, the logins alternating between them).
 *
 * Three phases per setup, each with fresh connections: `clean` (clean session, new client ids),
 * `persistent` (Clean Session 0, new client ids: a session is created and written) and `resume`
 * (the same ids again after the persistent phase's connections closed: the session is read back
 * and its owner changes to the other node for half of them). For each: logins per second (the
 * whole phase's wall time), CONNACK p50/p99 (TCP connect to CONNACK), refusals by return code, and
 * Redis's commands per login (the difference of `INFO commandstats` around the phase, by command),
 * with Redis's CPU per login.
 *
 * The login throttle is turned off (`max_login_failures: 0`): every connection comes from
 * 127.0.0.1, and the throttle is not what this measures.
 *
 * Usage: deno run -A bench/cluster_logins.ts [--n 2000] [--concurrency 200] [--setups one,two]
 *          [--root DIR] [--program bench/_profiled_node.ts]
 *
 * `--root` runs the brokers of another checkout (a before/after comparison); `--program` runs
 * each broker with that program instead of `cli/amqtt.ts` (given the configuration file; it must
 * log `amqtt … started`), e.g. `bench/_profiled_node.ts`, which writes a CPU profile at the end.
 *
 * Loopback only; starts and stops its own redis-server and brokers. The generator runs in this
 * process (Deno): on a 2-core machine it competes with the brokers, so compare setups within one
 * run.
 *
 * @module
 */

import { Redis } from "ioredis";
import { freePort, RedisServer } from "../tests/_helpers/redis.ts";

const ROOT = new URL("..", import.meta.url).pathname;

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1]! : fallback;
}

const N = Number(flag("--n", "2000"));
const CONCURRENCY = Number(flag("--concurrency", "200"));
const SETUPS = flag("--setups", "one,two").split(",");
/** A program to run the brokers with instead of `cli/amqtt.ts` (a profiling one), given the config file. */
const PROGRAM = Deno.args.includes("--program") ? flag("--program", "") : undefined;
const root = flag("--root", ROOT).replace(/\/?$/, "/");

interface Node extends AsyncDisposable {
  port: number;
  pid: number;
  log: () => Promise<string>;
}

/** One `amqtt` process; with `redis`, a cluster node. */
async function startNode(redis: RedisServer | undefined, id: string): Promise<Node> {
  const dir = await Deno.makeTempDir({ prefix: "amqtt-logins-bench-" });
  const port = freePort();
  const lines = [
    "listeners:",
    "  default:",
    `    bind: 127.0.0.1:${port}`,
    "sys_interval: 0",
    "max_login_failures: 0",
  ];
  if (redis !== undefined) {
    lines.push("cluster:", `  node_id: ${id}`, `  redis: ${redis.url}`, `  key_prefix: "bench:"`);
  }
  await Deno.writeTextFile(`${dir}/broker.yaml`, lines.join("\n") + "\n");
  const log = `${dir}/stderr.log`;
  const child = new Deno.Command("bash", {
    args: [
      "-c",
      `ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@" 2>"${log}"`,
      "bash",
      Deno.execPath(),
      "run",
      "-A",
      ...(PROGRAM === undefined ? [`${root}cli/amqtt.ts`, "-c"] : [PROGRAM]),
      `${dir}/broker.yaml`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const node: Node = {
    port,
    pid: child.pid,
    log: () => Deno.readTextFile(log).catch(() => ""),
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
  for (let i = 0; i < 1200; i++) {
    if (/amqtt \S+ started/.test(await node.log())) return node;
    await new Promise((r) => setTimeout(r, 50));
  }
  await node[Symbol.asyncDispose]();
  throw new Error(`amqtt ${id} did not start`);
}

/** A 3.1.1 CONNECT, keep-alive 300 s. */
function connectPacket(clientId: string, clean: boolean): Uint8Array {
  const id = new TextEncoder().encode(clientId);
  const rem = 10 + 2 + id.length;
  return new Uint8Array([
    0x10,
    rem,
    0,
    4,
    ..."MQTT".split("").map((c) => c.charCodeAt(0)),
    4,
    clean ? 0x02 : 0x00,
    1,
    44,
    id.length >> 8,
    id.length & 0xff,
    ...id,
  ]);
}

/** Opens one connection and logs in: the time to the CONNACK and its return code. */
async function login(
  port: number,
  clientId: string,
  clean: boolean,
): Promise<{ conn?: Deno.TcpConn; ms: number; code: number }> {
  const start = performance.now();
  let conn: Deno.TcpConn | undefined;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(connectPacket(clientId, clean));
    const buf = new Uint8Array(4);
    let got = 0;
    while (got < 4) {
      const n = await conn.read(buf.subarray(got));
      if (n === null) throw new Error("closed");
      got += n;
    }
    const ms = performance.now() - start;
    if (buf[3] !== 0) {
      conn.close();
      return { ms, code: buf[3]! };
    }
    return { conn, ms, code: 0 };
  } catch {
    try {
      conn?.close();
    } catch { /* closed */ }
    return { ms: performance.now() - start, code: -1 };
  }
}

const DISCONNECT = new Uint8Array([0xe0, 0]);

async function commandStats(redis: Redis): Promise<Map<string, { calls: number; usec: number }>> {
  const text = await redis.info("commandstats");
  const stats = new Map<string, { calls: number; usec: number }>();
  for (const m of text.matchAll(/cmdstat_(\S+):calls=(\d+),usec=(\d+)/g)) {
    stats.set(m[1]!, { calls: Number(m[2]), usec: Number(m[3]) });
  }
  return stats;
}

/** Commands the nodes send themselves (the others run inside their scripts). */
const TOP_LEVEL = new Set([
  "evalsha",
  "eval",
  "multi",
  "exec",
  "xadd",
  "xread",
  "xreadgroup",
  "publish",
  "hmget",
  "hgetall",
  "get",
  "set",
  "incrby",
  "pexpire",
  "exists",
]);

const TICK_S = 0.01;

/** A process's CPU seconds so far (user and system, from /proc; bash execs the broker). */
function processCpu(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * TICK_S;
}

/** Redis's CPU seconds so far (user and system, main thread and others). */
async function redisCpu(redis: Redis): Promise<number> {
  const text = await redis.info("cpu");
  let sum = 0;
  for (const m of text.matchAll(/used_cpu_(?:sys|user):([\d.]+)/g)) sum += Number(m[1]);
  return sum;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

interface PhaseResult {
  setup: string;
  phase: string;
  rate: number;
  p50: number;
  p99: number;
  refused: Map<number, number>;
  commands: string;
  scriptUsec: number;
  brokerCpuUsec: number;
  redisCpuUsec: number;
}

async function phase(
  setup: string,
  name: string,
  nodes: Node[],
  clean: boolean,
  ids: (i: number) => string,
  redis: Redis,
): Promise<PhaseResult> {
  const before = await commandStats(redis);
  const cpuBefore = await redisCpu(redis);
  const ports = nodes.map((n) => n.port);
  const nodeCpu = () => nodes.reduce((sum, n) => sum + processCpu(n.pid), 0);
  const brokerBefore = nodeCpu();
  const held: Deno.TcpConn[] = [];
  const times: number[] = [];
  const refused = new Map<number, number>();
  let next = 0;
  const start = performance.now();
  const worker = async () => {
    for (let i = next++; i < N; i = next++) {
      // Half of each phase on each node; `resume` swaps them, so half its sessions move.
      const port = ports[(i + (name === "resume" ? 1 : 0)) % ports.length]!;
      const r = await login(port, ids(i), clean);
      times.push(r.ms);
      if (r.conn !== undefined) held.push(r.conn);
      else refused.set(r.code, (refused.get(r.code) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const seconds = (performance.now() - start) / 1000;
  // Let the nodes finish what follows the CONNACKs (claims, session writes) before counting.
  await new Promise((r) => setTimeout(r, 1000));
  const after = await commandStats(redis);
  const cpuAfter = await redisCpu(redis);
  const brokerCpu = nodeCpu() - brokerBefore;
  for (const conn of held) {
    try {
      await conn.write(DISCONNECT);
      conn.close();
    } catch { /* closed */ }
  }
  await new Promise((r) => setTimeout(r, 1000));
  times.sort((a, b) => a - b);
  const per: string[] = [];
  let usec = 0;
  for (const [cmd, stat] of after) {
    const calls = stat.calls - (before.get(cmd)?.calls ?? 0);
    const spent = stat.usec - (before.get(cmd)?.usec ?? 0);
    if (cmd === "info" || calls / N < 0.05) continue;
    // A script's time includes the commands it calls: only top-level commands are summed.
    if (!TOP_LEVEL.has(cmd)) {
      per.push(`${cmd} ${(calls / N).toFixed(2)}`);
      continue;
    }
    usec += spent;
    per.push(`**${cmd} ${(calls / N).toFixed(2)}** (${(spent / calls).toFixed(0)} µs)`);
  }
  return {
    setup,
    phase: name,
    rate: N / seconds,
    p50: percentile(times, 0.5),
    p99: percentile(times, 0.99),
    refused,
    commands: per.join(", "),
    scriptUsec: usec / N,
    brokerCpuUsec: brokerCpu * 1e6 / N,
    redisCpuUsec: (cpuAfter - cpuBefore) * 1e6 / N,
  };
}

const results: PhaseResult[] = [];
await using redisServer = await RedisServer.start();
const redis = new Redis(redisServer.url);
try {
  for (const setup of SETUPS) {
    const nodes: Node[] = [];
    try {
      if (setup === "one") nodes.push(await startNode(undefined, "one"));
      else {
        nodes.push(await startNode(redisServer, "a"), await startNode(redisServer, "b"));
      }
      const tag = `${setup}-${Date.now()}`;
      results.push(await phase(setup, "clean", nodes, true, (i) => `${tag}-c${i}`, redis));
      results.push(await phase(setup, "persistent", nodes, false, (i) => `${tag}-p${i}`, redis));
      results.push(await phase(setup, "resume", nodes, false, (i) => `${tag}-p${i}`, redis));
      for (const node of nodes) {
        const log = await node.log();
        const noAnswer = (log.match(/no answer from Redis/g) ?? []).length;
        if (noAnswer > 0) console.error(`node ${node.port}: ${noAnswer} "no answer from Redis"`);
      }
    } finally {
      for (const node of nodes) await node[Symbol.asyncDispose]();
    }
  }
} finally {
  redis.disconnect();
}

const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
console.log(
  `\n${N} logins per phase, ${CONCURRENCY} in flight, load average at the end ${load}\n`,
);
console.log(
  "| setup | phase | logins/s | CONNACK p50 ms | p99 ms | refused | Redis commands per login (top level in bold, µs per call) | broker CPU µs per login | Redis CPU µs per login |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
for (const r of results) {
  const refused = [...r.refused].map(([code, n]) => `${n}× rc ${code}`).join(", ") || "0";
  console.log(
    `| ${r.setup === "one" ? "one process" : "2 nodes"} | ${r.phase} | ${
      Math.round(r.rate).toLocaleString("en-US")
    } | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${refused} | ${r.commands || "—"} | ${
      r.brokerCpuUsec.toFixed(0)
    } | ${r.redisCpuUsec.toFixed(0)} |`,
  );
}

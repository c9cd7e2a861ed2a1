/**
 * Idle connections past one process: `amqtt --workers N` (N cluster nodes sharing the port through
 * SO_REUSEPORT, on a redis-server started here) takes idle MQTT 3.1.1 connections from several C
 * holder processes (`bench/loadgen/holder.c`), each under the open-file limit and each from its own
 * source address (127.0.0.2, 127.0.0.3, …, so that no address runs out of local ports), in steps up
 * to `--steps`' last figure. After each step and a settle it reads every worker's RSS and open
 * sockets (`/proc`), Redis's RSS, and worker 1's V8 heap (its http listener's `/metrics`; http
 * listeners bind in worker 1 only, which holds about 1/N of the connections). Then it closes every
 * connection and reads the memory again after the settle and after `--linger` seconds (V8 gives
 * heap pages back when its memory reducer runs, 15–30 s after allocation stops).
 *
 * Memory per connection is a slope between two steps ((total RSS at B − at A) ÷ (held at B − held
 * at A)), so the processes' fixed costs do not count; worker 1's heap slope is over its own
 * connections. One process holds at most the hard open-file limit of sockets (20,000 on the
 * development machine), so the steps need N × ~19,000 ≥ the last step and as many holders.
 * Loopback only; starts and stops its own redis-server and processes; bounded by `--max-seconds`
 * (a step that cannot be reached in time is reported as far as it got).
 *
 * Usage: deno run -A bench/idle_scale.ts [--workers 6] [--holders 6] [--steps 10000,50000,100000]
 *          [--settle 20] [--linger 30] [--max-seconds 600] [--root DIR]
 *
 * @module
 */

import { buildLoadgen } from "./loadgen/build.ts";
import { freePort, RedisServer } from "../tests/_helpers/redis.ts";
import { hashPassword } from "../src/plugins/password_hash.ts";

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1]! : fallback;
}

const workers = Number(flag("--workers", "6"));
const holderCount = Number(flag("--holders", "6"));
const steps = flag("--steps", "10000,50000,100000").split(",").map(Number);
const settle = Number(flag("--settle", "20"));
const linger = Number(flag("--linger", "30"));
const maxSeconds = Number(flag("--max-seconds", "600"));
const root = flag("--root", new URL("..", import.meta.url).pathname).replace(/\/$/, "");
const started = Date.now();
const left = () => maxSeconds * 1000 - (Date.now() - started);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rssKiB(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function sockets(pid: number): number {
  let n = 0;
  try {
    for (const e of Deno.readDirSync(`/proc/${pid}/fd`)) {
      try {
        if (Deno.readLinkSync(`/proc/${pid}/fd/${e.name}`).startsWith("socket:")) n++;
      } catch { /* closed meanwhile */ }
    }
  } catch { /* gone */ }
  return n;
}

function childrenOf(pid: number): number[] {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`).trim().split(/\s+/)
      .filter((x) => x !== "").map(Number);
  } catch {
    return [];
  }
}

/** One holder process and its line protocol (see holder.c). */
class Holder implements AsyncDisposable {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #lines: AsyncIterator<string>;
  constructor(path: string, port: number, source: string, id: string) {
    this.#child = new Deno.Command(path, {
      args: ["--port", String(port), "--source", source, "--id", id, "--keepalive", "900"],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    // One line per answer (see holder.c).
    let rest = "";
    this.#lines = this.#child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(
      new TransformStream<string, string>({
        transform(chunk, controller) {
          const parts = (rest + chunk).split("\n");
          rest = parts.pop()!;
          for (const line of parts) controller.enqueue(line);
        },
      }),
    )[Symbol.asyncIterator]();
  }
  async ask(command: string): Promise<string> {
    await this.#writer.write(new TextEncoder().encode(command + "\n"));
    const { value, done } = await this.#lines.next();
    if (done) throw new Error(`holder exited during "${command}"`);
    return value;
  }
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#writer.close().catch(() => {});
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), 10_000);
    await this.#child.status;
    clearTimeout(timer);
    // Drain what is left so the stream's resource closes.
    for (;;) {
      const r = await this.#lines.next().catch(() => ({ done: true }));
      if (r.done) break;
    }
  }
}

interface Reading {
  label: string;
  held: number;
  perWorker: number[];
  workersRss: number; // KiB, all workers
  supervisorRss: number;
  redisRss: number;
  heapUsed: number; // bytes, worker 1
  heapTotal: number;
  w1Clients: number;
  alive: number;
}

await using redis = await RedisServer.start();
const redisPid = Number(
  new TextDecoder().decode(
    (await new Deno.Command("bash", {
      args: ["-c", `ss -ltnpH 'sport = :${redis.port}' | grep -o 'pid=[0-9]*' | head -1`],
      stdout: "piped",
    }).output()).stdout,
  ).replace("pid=", "").trim(),
);
const bins = await buildLoadgen();
const dir = await Deno.makeTempDir({ prefix: "amqtt-idle-scale-" });
const port = freePort(), httpPort = freePort();
await Deno.writeTextFile(`${dir}/passwd`, `bench:${await hashPassword("pw", { rounds: 1000 })}\n`);
await Deno.writeTextFile(
  `${dir}/broker.yaml`,
  [
    "listeners:",
    "  default:",
    `    bind: 127.0.0.1:${port}`,
    "  admin:",
    "    type: http",
    `    bind: 127.0.0.1:${httpPort}`,
    "    admins: [bench]",
    `    password_file: ${dir}/passwd`,
    "sys_interval: 0",
    // A login in progress spends one unit of its source's failed-login budget (20 by default) until
    // it succeeds, and a cluster node's login waits for Redis: bursts of 250 from one address
    // would be refused "server unavailable" past the 20th. The throttle is not what is measured.
    "max_login_failures: 0",
    "cluster:",
    "  node_id: scale",
    `  redis: ${redis.url}`,
    '  key_prefix: "scale:"',
    // Workers starved of CPU (N workers, the holders and Redis on a few cores) miss heartbeats:
    // with the default 3 s they took each other for dead and adopted each other's sessions,
    // closing connections. Failure detection is not what is measured here.
    "  heartbeat_interval: 5",
    "  node_timeout: 120",
    "",
  ].join("\n"),
);
const log = `${dir}/stderr.log`;
const supervisor = new Deno.Command("bash", {
  args: [
    "-c",
    `ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@" 2>"${log}"`,
    "bash",
    Deno.execPath(),
    "run",
    "-A",
    "--unstable-net",
    `${root}/cli/amqtt.ts`,
    "-c",
    `${dir}/broker.yaml`,
    "--workers",
    String(workers),
  ],
  stdin: "null",
  stdout: "null",
  stderr: "null",
}).spawn();
const holders: Holder[] = [];
let stopping: Promise<void> | undefined;
let exitCode = 0;
/** Stops what this program started; also on SIGINT/SIGTERM, so nothing is left running. */
const stopAll = () =>
  stopping ??= (async () => {
    for (const h of holders) await h[Symbol.asyncDispose]();
    try {
      supervisor.kill("SIGTERM");
    } catch { /* gone */ }
    const timer = setTimeout(() => {
      try {
        supervisor.kill("SIGKILL");
      } catch { /* gone */ }
    }, 20_000);
    await supervisor.status;
    clearTimeout(timer);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  })();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, async () => {
    console.error(`${signal}: stopping the workers, holders and Redis`);
    await stopAll();
    await redis[Symbol.asyncDispose]();
    Deno.exit(130);
  });
}
try {
  let pids: number[] = [];
  for (let i = 0; i < 2400 && pids.length === 0; i++) {
    const text = await Deno.readTextFile(log).catch(() => "");
    if ((text.match(/amqtt \S+ started/g) ?? []).length === workers) {
      pids = childrenOf(supervisor.pid);
    } else await sleep(50);
  }
  if (pids.length !== workers) throw new Error(`amqtt --workers ${workers} did not start`);
  const baseSockets = pids.map(sockets);
  const auth = `Basic ${btoa("bench:pw")}`;
  const metrics = async () => {
    const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`, {
      headers: { authorization: auth },
    })).text();
    const get = (name: string) =>
      Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
    return {
      heapUsed: get("deno_heap_used_bytes"),
      heapTotal: get("deno_heap_total_bytes"),
      clients: get("amqtt_clients_connected"),
    };
  };
  for (let i = 0; i < holderCount; i++) {
    holders.push(new Holder(bins.holder, port, `127.0.0.${i + 2}`, `h${i}`));
  }
  const readings: Reading[] = [];
  const read = async (label: string, held: number, alive: number) => {
    const m = await metrics();
    const r: Reading = {
      label,
      held,
      perWorker: pids.map((p, i) => sockets(p) - baseSockets[i]!),
      workersRss: pids.reduce((s, p) => s + rssKiB(p), 0),
      supervisorRss: rssKiB(supervisor.pid),
      redisRss: rssKiB(redisPid),
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      w1Clients: m.clients,
      alive,
    };
    readings.push(r);
    console.error(
      `${label}: held ${held} (alive ${alive}), per worker ${r.perWorker.join("/")}, workers RSS ` +
        `${(r.workersRss / 1024).toFixed(1)} MB, Redis ${
          (r.redisRss / 1024).toFixed(1)
        } MB, worker ` +
        `1 heap ${(r.heapUsed / 2 ** 20).toFixed(1)}/${
          (r.heapTotal / 2 ** 20).toFixed(1)
        } MB with ` +
        `${r.w1Clients} clients (${((Date.now() - started) / 1000).toFixed(0)} s)`,
    );
  };
  await sleep(settle * 1000);
  await read("before", 0, 0);
  let reached = true;
  for (const step of steps) {
    if (left() < (settle * 3 + linger) * 1000 + 30_000) {
      console.error(`stopping before ${step}: --max-seconds ${maxSeconds} would be passed`);
      reached = false;
      break;
    }
    const per = Math.ceil(step / holderCount);
    const t0 = Date.now();
    // Whatever is not open when the time left for this step runs out is reported as not reached.
    const until = Math.max(10, Math.floor((left() - (settle * 3 + linger) * 1000 - 30_000) / 1000));
    const answers = await Promise.all(holders.map((h) => h.ask(`open ${per} ${until}`)));
    const held = answers.reduce((s, a) => s + Number(/held (\d+)/.exec(a)?.[1] ?? 0), 0);
    const failed = answers.reduce((s, a) => s + Number(/failed (\d+)/.exec(a)?.[1] ?? 0), 0);
    console.error(
      `opened to ${held} of ${step} in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${failed} ` +
        `handshakes failed`,
    );
    await sleep(settle * 1000);
    const checks = await Promise.all(holders.map((h) => h.ask("check")));
    const alive = checks.reduce((s, a) => s + Number(/alive (\d+)/.exec(a)?.[1] ?? 0), 0);
    await read(`${step}`, held, alive);
    if (held < step) {
      reached = false;
      break;
    }
  }
  await Promise.all(holders.map((h) => h.ask("close")));
  // Until every worker has seen its connections close (a busy machine takes a while for 100k),
  // then the settle.
  const closedAt = Date.now();
  while (
    pids.some((p, i) => sockets(p) > baseSockets[i]! + 16) && Date.now() - closedAt < 120_000
  ) await sleep(1000);
  console.error(
    `the workers closed their sockets in ${((Date.now() - closedAt) / 1000).toFixed(0)} s`,
  );
  await sleep(settle * 1000);
  await read("closed", 0, 0);
  await sleep(linger * 1000);
  await read(`closed + ${linger} s`, 0, 0);

  const mb = (kib: number) => (kib / 1024).toFixed(1);
  console.log(
    `amqtt --workers ${workers} (cluster on Redis), ${holderCount} holder processes from ` +
      `127.0.0.2-${holderCount + 1}; settle ${settle} s` +
      (reached ? "" : "; not every step reached"),
  );
  console.log(
    "| moment | connections held (alive) | per worker | workers' RSS, MB | Redis RSS, MB | " +
      "worker 1: clients, heap used / committed MB |",
  );
  console.log("| --- | --- | --- | --- | --- | --- |");
  for (const r of readings) {
    console.log(
      `| ${r.label} | ${r.held} (${r.alive}) | ${r.perWorker.join(" / ")} | ${
        mb(r.workersRss)
      } | ` +
        `${mb(r.redisRss)} | ${r.w1Clients}: ${(r.heapUsed / 2 ** 20).toFixed(1)} / ` +
        `${(r.heapTotal / 2 ** 20).toFixed(1)} |`,
    );
  }
  const loaded = readings.filter((r) => r.held > 0);
  for (let i = 1; i < loaded.length; i++) {
    const a = loaded[i - 1]!, b = loaded[i]!;
    const dn = b.held - a.held;
    const w1 = b.w1Clients - a.w1Clients;
    console.log(
      `slope ${a.held} → ${b.held}: workers' RSS ${
        ((b.workersRss - a.workersRss) * 1024 / dn / 1024)
          .toFixed(2)
      } KB per connection, with Redis ${
        (((b.workersRss + b.redisRss) -
          (a.workersRss + a.redisRss)) / dn).toFixed(2)
      } KB; worker 1 heap used ${
        ((b.heapUsed - a.heapUsed) / w1 / 1024).toFixed(2)
      } KB, committed ${((b.heapTotal - a.heapTotal) / w1 / 1024).toFixed(2)} KB per connection`,
    );
  }
  const before = readings[0]!;
  for (const r of readings.slice(-2)) {
    console.log(
      `${r.label}: workers' RSS ${mb(r.workersRss)} MB (${
        mb(r.workersRss - before.workersRss)
      } MB ` +
        `above before any connection), Redis ${mb(r.redisRss)} MB`,
    );
  }
} catch (err) {
  console.error(err);
  exitCode = 1;
} finally {
  await stopAll();
  await redis[Symbol.asyncDispose]();
  Deno.exit(exitCode); // the signal listeners would keep the program alive
}

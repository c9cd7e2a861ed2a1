/**
 * Latency against Deno's floor: the `lat0` scenario of `compare.ts` (the C generator's paced 1→1
 * run, 64-byte QoS 0 PUBLISH at 5,000 msg/s) against the amqtt broker
 * (`bench/_amqtt_broker.ts`, defaults), against Mosquitto (defaults, when installed) and against
 * `_latency_floor_server.ts`, the smallest QoS 0 forwarder a Deno program can be: what Deno's socket
 * layer alone adds to a message's p50 and p99. Each program runs in its own process; the rounds are
 * interleaved (floor, amqtt, Mosquitto, floor, …) and each row gives the median and the range.
 *
 * Usage: deno run -A bench/latency_floor.ts [--reps 3] [--seconds 5] [--warmup 10] [--no-pin]
 *
 * The warm-up lets V8 finish compiling each program's hot path (`LATENCY_WARMUP`); `--warmup 2`
 * measures the compiler's warm-up too.
 *
 * Each program runs on one CPU and the generator on another (`_pinning.ts`); `--no-pin` leaves the
 * placement to the kernel.
 *
 * @module
 */

import { buildLoadgen } from "./loadgen/build.ts";
import { runLoadgen } from "./loadgen/run.ts";
import { hasMosquitto, startBroker } from "./_brokers.ts";
import { LATENCY_WARMUP, SCENARIOS } from "./_compare_scenarios.ts";
import { pinning } from "./_pinning.ts";

function flag(name: string, fallback: number): number {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Number(Deno.args[i + 1]) : fallback;
}

const reps = flag("--reps", 3);
const seconds = flag("--seconds", 5);
const warmup = flag("--warmup", LATENCY_WARMUP);
const pinned = await pinning(!Deno.args.includes("--no-pin"));
const lat0 = SCENARIOS.find((s) => s.key === "lat0")!;
const args = lat0.args({
  seconds,
  warmup,
  latencyWarmup: warmup,
  n1: 0,
  n2: 0,
  settle: 0,
  burst: 0,
  overloadRate: 0,
});

/** Starts the floor forwarder in its own process. */
async function startFloor(): Promise<{ pid: number; port: number } & AsyncDisposable> {
  const server = new URL("./_latency_floor_server.ts", import.meta.url).pathname;
  const run = [Deno.execPath(), "run", "-A", server];
  const cmd = [...pinned.broker, ...run];
  const child = new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let port: number | undefined;
  while (port === undefined) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the floor forwarder ended before printing its port");
    text += value;
    const m = /port (\d+)/.exec(text);
    if (m) port = Number(m[1]);
  }
  return {
    pid: child.pid,
    port,
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await reader.cancel().catch(() => {});
      await child.status;
    },
  };
}

const bins = await buildLoadgen();
const names = ["deno floor", "amqtt", ...(await hasMosquitto() ? ["mosquitto"] : [])];
type Row = { p50: number[]; p99: number[]; late: number[]; lost: number[] };
const rows: Record<string, Row> = {};
for (let rep = 1; rep <= reps; rep++) {
  for (const name of names) {
    await using target = name === "deno floor"
      ? await startFloor()
      : await startBroker(name as "amqtt" | "mosquitto", { prefix: pinned.broker });
    const r = await runLoadgen(bins.loadgen, [
      ...args,
      "--port",
      String(target.port),
      "--pid",
      String(target.pid),
    ], { prefix: pinned.generator });
    const row = rows[name] ??= { p50: [], p99: [], late: [], lost: [] };
    row.p50.push(Number(r.p50us));
    row.p99.push(Number(r.p99us));
    row.late.push(Number(r.latenessP99us));
    row.lost.push(Number(r.lost ?? 0));
    console.error(`[${rep}/${reps}] ${name}: p50 ${r.p50us} µs, p99 ${r.p99us} µs`);
  }
}
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
const cell = (v: number[]) =>
  `${median(v).toFixed(0)} (${Math.min(...v).toFixed(0)}–${Math.max(...v).toFixed(0)})`;
console.log(
  `${lat0.title}, 64-byte payloads, ${seconds} s phases after ${warmup} s, ${reps} ` +
    "interleaved runs",
);
console.log("| program | p50 µs | p99 µs | generator send lateness p99 µs | lost |");
console.log("| --- | --- | --- | --- | --- |");
for (const [name, r] of Object.entries(rows)) {
  console.log(
    `| ${name} | ${cell(r.p50)} | ${cell(r.p99)} | ${cell(r.late)} | ${cell(r.lost)} |`,
  );
}

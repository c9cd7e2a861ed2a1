/**
 * Latency against Deno's floor: the `lat0` and `lat1` scenarios of `compare.ts` (the C generator's
 * paced 1→1 run, 64-byte PUBLISH at 5,000 msg/s, QoS 0 and QoS 1) against the amqtt broker
 * (`bench/_amqtt_broker.ts`, defaults), against Mosquitto (defaults, when installed) and against
 * `_latency_floor_server.ts`, the smallest QoS 0/1 forwarder a Deno program can be (for QoS 1: the
 * PUBLISH copied to the subscriber with a packet id of its own, the PUBACK to the publisher, the
 * subscriber's PUBACK consumed): what Deno's socket layer alone adds to a message's p50 and p99.
 * Each program runs in its own process, fresh for every run; the rounds are interleaved (floor,
 * amqtt, Mosquitto, floor, …) and each row gives the median and the range, and amqtt's and the
 * floor's medians as ratios to Mosquitto's.
 *
 * Usage: deno run -A bench/latency_floor.ts [--reps 3] [--seconds 5] [--warmup 10] [--qos 0,1]
 *        [--no-pin] [--rt] [--root DIR]
 *
 * The warm-up lets V8 finish compiling each program's hot path (`LATENCY_WARMUP`); `--warmup 2`
 * measures the compiler's warm-up too.
 *
 * Each program runs on one CPU and the generator on another (`_pinning.ts`); `--no-pin` leaves the
 * placement to the kernel. `--rt` shuts the machine's other work out, for a like-for-like run on a
 * busy machine: each program's main thread and the generator run SCHED_FIFO 20, the program's other
 * threads (V8's compiler and GC workers, the runtime's) SCHED_FIFO 10 (`chrt`, root), as
 * `latency_trace.ts --rt` does; the kernel's RT throttling still leaves other work 5% of each CPU.
 * `--root DIR` measures the amqtt of another checkout (an A/B of two builds: run it once each).
 *
 * @module
 */

import { buildLoadgen } from "./loadgen/build.ts";
import { runLoadgen } from "./loadgen/run.ts";
import { type BrokerName, hasMosquitto, startBroker } from "./_brokers.ts";
import { LATENCY_WARMUP, SCENARIOS } from "./_compare_scenarios.ts";
import { pinning } from "./_pinning.ts";
import { REALTIME_PREFIX, toRealtime } from "./_realtime.ts";

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1]! : fallback;
}

const reps = Number(flag("--reps", "3"));
const seconds = Number(flag("--seconds", "5"));
const warmup = Number(flag("--warmup", String(LATENCY_WARMUP)));
const levels = flag("--qos", "0,1").split(",").map(Number);
const pinned = await pinning(!Deno.args.includes("--no-pin"));
const realtime = Deno.args.includes("--rt");
const root = Deno.args.includes("--root") ? flag("--root", "") : undefined;

const settings = {
  seconds,
  warmup,
  latencyWarmup: warmup,
  n1: 0,
  n2: 0,
  settle: 0,
  burst: 0,
  overloadRate: 0,
};

const bins = await buildLoadgen();
const names: BrokerName[] = [
  "floor",
  "amqtt",
  ...(await hasMosquitto() ? ["mosquitto" as const] : []),
];
type Row = {
  p50: number[];
  p99: number[];
  late: number[];
  lost: number[];
  others: number[];
  cpu: number[];
};
const rows = new Map<string, Row>();
const load = Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
for (let rep = 1; rep <= reps; rep++) {
  for (const qos of levels) {
    const args = SCENARIOS.find((s) => s.key === `lat${qos}`)!.args(settings);
    for (const name of names) {
      await using target = await startBroker(name, { prefix: pinned.broker, root });
      if (realtime) await toRealtime(target.pid);
      const r = await runLoadgen(bins.loadgen, [
        ...args,
        "--port",
        String(target.port),
        "--pid",
        String(target.pid),
      ], { prefix: [...pinned.generator, ...(realtime ? REALTIME_PREFIX : [])] });
      const key = `${qos} ${name}`;
      const row = rows.get(key) ?? { p50: [], p99: [], late: [], lost: [], others: [], cpu: [] };
      rows.set(key, row);
      row.p50.push(Number(r.p50us));
      row.p99.push(Number(r.p99us));
      row.late.push(Number(r.latenessP99us));
      row.lost.push(Number(r.lost ?? 0));
      const { machineCpu: m, brokerCpu: b, genCpu: g } = r as Record<string, number>;
      row.others.push(100 * Math.max(0, m! - b! - g!) / seconds);
      // The program's CPU (user + system, /proc) per message of the measured phase.
      row.cpu.push(1e6 * b! / Number(r.windowReceived));
      console.error(`[${rep}/${reps}] QoS ${qos} ${name}: p50 ${r.p50us} µs, p99 ${r.p99us} µs`);
    }
  }
}
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
const cell = (v: number[], digits = 0) =>
  `${median(v).toFixed(digits)} (${Math.min(...v).toFixed(digits)}–${
    Math.max(...v).toFixed(digits)
  })`;
const load2 = Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
console.log(
  `1→1 at 5,000 msg/s, 64-byte payloads, ${seconds} s phases after ${warmup} s, ${reps} ` +
    `interleaved runs; ${pinned.description.replace(/\.$/, "")}${
      realtime ? "; SCHED_FIFO (--rt)" : ""
    }; load average ${load} before, ` +
    `${load2} after`,
);
console.log(
  "| QoS | program | p50 µs | p99 µs | p50 ÷ Mosquitto | p99 ÷ Mosquitto | generator send " +
    "lateness p99 µs | program CPU per message µs | other work, % of a core | lost |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
for (const [key, r] of rows) {
  const [qos, name] = key.split(" ");
  const mosquitto = rows.get(`${qos} mosquitto`);
  const ratio = (a: number[], b: number[] | undefined) =>
    b === undefined ? "—" : `${(median(a) / median(b)).toFixed(2)}×`;
  console.log(
    `| ${qos} | ${name} | ${cell(r.p50)} | ${cell(r.p99)} | ${ratio(r.p50, mosquitto?.p50)} | ` +
      `${ratio(r.p99, mosquitto?.p99)} | ${cell(r.late)} | ${cell(r.cpu, 1)} | ${
        cell(r.others)
      } | ` +
      `${cell(r.lost)} |`,
  );
}

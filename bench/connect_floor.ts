/**
 * Connection rate against Deno's floor: the C generator's `connect` mode (bursts of concurrent
 * CONNECT→CONNACK handshakes, then DISCONNECT and close) against the amqtt broker
 * (`bench/_amqtt_broker.ts`, defaults), against Mosquitto (defaults, when installed) and against
 * the minimal Deno program of `idle_floor.ts --serve`, which accepts each connection, reads its
 * CONNECT, writes a CONNACK and waits for the peer to close: what a Deno program pays per
 * connection for the runtime's accept, read, write and close alone. Each program runs in its own
 * process; the rounds are interleaved (floor, amqtt, Mosquitto, floor, …) and each row gives the
 * median and the range. The C forwarder (`bench/loadgen/forwarder.c`, which answers CONNECT with
 * CONNACK and does nothing else, in C) shows what the generator, loopback and the kernel's
 * accept set on this machine whatever the runtime. The broker runs on one CPU and the generator
 * on another (`_pinning.ts`; `--no-pin` leaves it to the kernel). The floor program listens with
 * the same queue as amqtt's listeners (4,096), so a storm does not measure a smaller backlog.
 *
 * `--rt` runs the program under test and the generator at real-time priority (`_realtime.ts`, as
 * `ab.ts --rt`), which shuts a busy machine's other work out of the runs. `--base DIR` adds
 * `amqtt base`, the broker of another checkout (e.g. main's start), to the interleaved programs.
 *
 * Usage: deno run -A bench/connect_floor.ts [--reps 3] [--burst 64] [--seconds 5] [--warmup 1]
 *          [--programs "deno floor,amqtt,mosquitto,forwarder"] [--no-pin] [--rt] [--base DIR]
 *
 * @module
 */

import { buildLoadgen } from "./loadgen/build.ts";
import { runLoadgen } from "./loadgen/run.ts";
import { hasMosquitto, startBroker } from "./_brokers.ts";
import { startFloor } from "./idle_floor.ts";
import { pinning } from "./_pinning.ts";
import { REALTIME_PREFIX, toRealtime } from "./_realtime.ts";

function flag(name: string, fallback: number): number {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Number(Deno.args[i + 1]) : fallback;
}

const reps = flag("--reps", 3);
const burst = flag("--burst", 64);
const seconds = flag("--seconds", 5);
const warmup = flag("--warmup", 1);

const bins = await buildLoadgen();
const pin = await pinning(!Deno.args.includes("--no-pin"));
const realtime = Deno.args.includes("--rt");
const baseAt = Deno.args.indexOf("--base");
const base = baseAt >= 0 ? Deno.args[baseAt + 1] : undefined;
const programsAt = Deno.args.indexOf("--programs");
const names = programsAt >= 0 ? Deno.args[programsAt + 1]!.split(",") : [
  "deno floor",
  ...(base === undefined ? [] : ["amqtt base"]),
  "amqtt",
  ...(await hasMosquitto() ? ["mosquitto"] : []),
  "forwarder",
];
type Row = { perCpu: number[]; rate: number[]; p50: number[]; p99: number[]; gen: number[] };
const rows: Record<string, Row> = {};
let otherMax = 0;
for (let rep = 1; rep <= reps; rep++) {
  for (const name of names) {
    await using target = name === "deno floor"
      ? await startFloor({ prefix: pin.broker })
      : name === "amqtt base"
      ? await startBroker("amqtt", { root: base, prefix: pin.broker })
      : await startBroker(name as "amqtt" | "mosquitto" | "forwarder", {
        forwarder: bins.forwarder,
        prefix: pin.broker,
      });
    if (realtime) await toRealtime(target.pid);
    const r = await runLoadgen(bins.loadgen, [
      "connect",
      "--burst",
      String(burst),
      "--warmup",
      String(warmup),
      "--seconds",
      String(seconds),
      "--port",
      String(target.port),
      "--pid",
      String(target.pid),
    ], { prefix: [...pin.generator, ...(realtime ? REALTIME_PREFIX : [])] });
    const cpu = Number(r.brokerCpu), secs = Number(r.seconds);
    const row = rows[name] ??= { perCpu: [], rate: [], p50: [], p99: [], gen: [] };
    row.perCpu.push(Number(r.connections) / cpu);
    row.rate.push(Number(r.connPerSecond));
    row.p50.push(Number(r.p50us) / 1000);
    row.p99.push(Number(r.p99us) / 1000);
    row.gen.push((100 * Number(r.genCpu)) / secs);
    otherMax = Math.max(otherMax, (Number(r.machineCpu) - cpu - Number(r.genCpu)) / secs);
    console.error(
      `[${rep}/${reps}] ${name}: ${(Number(r.connections) / cpu).toFixed(0)} connections per ` +
        `CPU-second, ${r.failed} failed, ${r.retransmitted} retransmitted`,
    );
  }
}
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
const cell = (v: number[], digits = 0) =>
  `${median(v).toFixed(digits)} (${Math.min(...v).toFixed(digits)}–${
    Math.max(...v).toFixed(digits)
  })`;
console.log(
  `bursts of ${burst} handshakes, ${seconds} s phases after ${warmup} s, ${reps} interleaved ` +
    `runs; other work on the machine up to ${otherMax.toFixed(2)} cores; ${pin.description}` +
    (realtime ? " SCHED_FIFO (--rt)." : ""),
);
console.log(
  "| program | connections per CPU-second | connections/s | p50 ms | p99 ms | generator CPU % |",
);
console.log("| --- | --- | --- | --- | --- | --- |");
for (const [name, r] of Object.entries(rows)) {
  console.log(
    `| ${name} | ${cell(r.perCpu)} | ${cell(r.rate)} | ${cell(r.p50, 1)} | ${cell(r.p99, 1)} | ` +
      `${cell(r.gen)} |`,
  );
}

/**
 * A/B of two amqtt builds: this checkout (B) against another checkout of the repository (A, e.g.
 * `git worktree add /tmp/base main` or an unpacked `git archive`), over any scenarios of
 * `compare.ts`, in alternation (A, B, A, B, …) so that the machine's other work falls on both
 * alike. Each broker starts fresh for every run with its defaults. Prints each figure's median and
 * range per build, the B÷A ratio of the medians, and the other work on the machine per run.
 *
 * Usage: deno run -A bench/ab.ts --base DIR [--scenarios lat0,lat1] [--reps 5] [--seconds 5]
 *        [--warmup 1] [--latency-warmup 10] [--burst 1000] [--no-pin] [--rt]
 *        [--b-v8-flags FLAGS]
 *
 * `--b-v8-flags` starts B (this checkout) with those V8 flags: with `--base` a checkout of the
 * same commit, an A/B of a flag (e.g. `--max-semi-space-size=2`).
 *
 * The brokers run on one CPU and the generator on another (`_pinning.ts`); `--no-pin` leaves the
 * placement to the kernel. `--rt` shuts the machine's other work out of each run (`_realtime.ts`:
 * the broker's and the generator's threads SCHED_FIFO, root): on a busy machine the figures are
 * then close to a quiet machine's for the connection and latency scenarios. Not for throughput:
 * there the generator never blocks, and at SCHED_FIFO it most likely starves the kernel's deferred
 * network work on its CPU (session 13: fan-in 8→1 fell from millions to ~150k msg/s, QoS 1 swung 1.4×
 * between two runs of one build).
 *
 * @module
 */

import { buildLoadgen } from "./loadgen/build.ts";
import { type LoadgenReport, runLoadgen } from "./loadgen/run.ts";
import { startBroker } from "./_brokers.ts";
import { pinning } from "./_pinning.ts";
import { REALTIME_PREFIX, toRealtime } from "./_realtime.ts";
import { LATENCY_WARMUP, SCENARIOS, type Settings } from "./_compare_scenarios.ts";

function flag(name: string): string | undefined {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}

const base = flag("--base");
if (base === undefined) {
  console.error("Usage: deno run -A bench/ab.ts --base DIR [--scenarios lat0,lat1] [--no-pin]");
  Deno.exit(2);
}
const reps = Number(flag("--reps") ?? 5);
const settings: Settings = {
  seconds: Number(flag("--seconds") ?? 5),
  warmup: Number(flag("--warmup") ?? 1),
  latencyWarmup: Number(flag("--latency-warmup") ?? LATENCY_WARMUP),
  n1: 2000,
  n2: 8000,
  settle: 2,
  burst: Number(flag("--burst") ?? 1000),
  overloadRate: 1_500_000,
};
const pinned = await pinning(!Deno.args.includes("--no-pin"));
const realtime = Deno.args.includes("--rt");
const keys = (flag("--scenarios") ?? "lat0,lat1").split(",");
const scenarios = keys.map((k) => {
  const s = SCENARIOS.find((s) => s.key === k);
  if (s === undefined) throw new Error(`Unknown scenario ${k}`);
  return s;
});

/** Busy CPU-seconds of the whole machine, from /proc/stat. */
function machineBusy(): number {
  const cpu = Deno.readTextFileSync("/proc/stat").split("\n")[0]!.trim().split(/\s+/).slice(1);
  const [user, nice, system, , , irq, softirq, steal] = cpu.map(Number);
  return (user! + nice! + system! + irq! + softirq! + steal!) / 100;
}

const bins = await buildLoadgen();
const builds = [
  { name: "A (base)", root: base, v8Flags: undefined },
  { name: "B (this)", root: undefined, v8Flags: flag("--b-v8-flags") },
];
const runs = new Map<string, LoadgenReport[]>();
const other = new Map<string, number[]>();
for (let rep = 1; rep <= reps; rep++) {
  for (const scenario of scenarios) {
    // Alternate which build goes first, so that neither always follows the other.
    const order = rep % 2 === 1 ? builds : [...builds].reverse();
    for (const build of order) {
      const key = `${scenario.key} ${build.name}`;
      await using broker = await startBroker("amqtt", {
        root: build.root,
        prefix: pinned.broker,
        v8Flags: build.v8Flags,
      });
      if (realtime) await toRealtime(broker.pid);
      const busy = machineBusy();
      const t0 = performance.now();
      const r = await runLoadgen(bins.loadgen, [
        ...scenario.args(settings),
        "--port",
        String(broker.port),
        "--pid",
        String(broker.pid),
      ], { prefix: [...pinned.generator, ...(realtime ? REALTIME_PREFIX : [])] });
      const seconds = (performance.now() - t0) / 1000;
      const own = Number(r.brokerCpu ?? 0) + Number(r.genCpu ?? 0);
      const rest = Math.max(0, (machineBusy() - busy - own) / seconds);
      runs.set(key, [...(runs.get(key) ?? []), r]);
      other.set(key, [...(other.get(key) ?? []), rest]);
      console.error(
        `[${rep}/${reps}] ${key}: ${
          scenario.metrics.map((m) => `${m.label} ${m.value(r)?.toPrecision(4)}`).join(", ")
        }; other work ${(rest * 100).toFixed(0)}% of a core`,
      );
    }
  }
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
const fmt = (x: number) => x >= 1000 ? String(Math.round(x)) : x.toPrecision(3);
const cell = (v: number[]) =>
  v.length === 0 ? "—" : `${fmt(median(v))} (${fmt(Math.min(...v))}–${fmt(Math.max(...v))})`;
console.log(
  `${reps} alternating runs per build, ${settings.seconds} s phases after ${settings.warmup} s ` +
    `(latency scenarios ${settings.latencyWarmup} s). ` +
    pinned.description + (realtime ? " SCHED_FIFO (--rt): other work shut out." : ""),
);
console.log(
  "| scenario | figure | A (base) | B (this) | B ÷ A | other work, % of a core (A / B) |",
);
console.log("| --- | --- | --- | --- | --- | --- |");
for (const scenario of scenarios) {
  const a = runs.get(`${scenario.key} A (base)`)!, b = runs.get(`${scenario.key} B (this)`)!;
  const oa = other.get(`${scenario.key} A (base)`)!, ob = other.get(`${scenario.key} B (this)`)!;
  // Broker CPU per message (or delivery) received in the measured phase: what a build costs,
  // which the machine's other work disturbs far less than the times above.
  const cpuPerMessage = {
    label: "broker CPU per message received",
    unit: "µs",
    value: (r: LoadgenReport) => {
      const cpu = Number(r.brokerCpu), n = Number(r.windowReceived);
      return cpu > 0 && n > 0 ? cpu * 1e6 / n : undefined;
    },
  };
  for (const m of [...scenario.metrics, cpuPerMessage]) {
    const va = a.map(m.value).filter((x): x is number => x !== undefined);
    const vb = b.map(m.value).filter((x): x is number => x !== undefined);
    const ratio = va.length > 0 && vb.length > 0 && median(va) > 0
      ? `${(median(vb) / median(va)).toFixed(2)}×`
      : "—";
    console.log(
      `| ${scenario.title} | ${m.label} | ${cell(va)} | ${cell(vb)} | ${ratio} | ` +
        `${(median(oa) * 100).toFixed(0)} / ${(median(ob) * 100).toFixed(0)} |`,
    );
  }
}

/**
 * CPU profiles of two amqtt builds under the same load, side by side: this checkout (B) against
 * another checkout of the repository (A, e.g. an unpacked `git archive`), alternating A, B, A, B,
 * … over `--reps` runs of one `compare.ts` scenario. Each broker runs with V8's sampler
 * (`deno run --cpu-prof`, a sample every `--interval` µs), pinned like `ab.ts` (`_pinning.ts`);
 * at the end every function's samples (self time) are counted over the runs of a build, and each
 * function's share of the samples taken while the broker was not idle is printed for A and B, with
 * that share of the broker CPU time per message measured in the runs (the generator's figure for
 * the measured phases). Samples are counted rather than their time deltas summed: on a busy
 * machine a delta also holds the time the broker's CPU ran other processes. A profile's
 * distribution says where a build spends its CPU, which a busy machine disturbs far less than a
 * throughput figure.
 *
 * With `--mallocs`, the brokers run without the sampler and with the native allocation counter
 * of `latency_work.ts --mallocs` preloaded (`loadgen/malloc_count.c`): it prints the calls of
 * glibc's malloc, calloc and realloc per message, from the broker's start to the end of the load
 * (connections and warm-up included), per run and build.
 *
 * With `--syscalls`, the brokers run without the sampler and `perf stat` counts the system calls
 * the broker's process makes during the load (tracepoints `syscalls:sys_enter_*`: `sendto`,
 * `recvfrom`, `write`, `read`, `epoll_wait`), printed per message received, per run and build:
 * how many messages a write carries, which sets most of the runtime's `op_write` share of a
 * message's CPU (`/proc/PID/io` counts no socket calls). Needs `perf` and access to tracepoints.
 *
 * Usage: deno run -A bench/profile_ab.ts --base DIR [--b DIR] [--scenario qos1] [--reps 4]
 *        [--seconds 5] [--warmup 1] [--interval 100] [--top 40] [--keep DIR] [--mallocs]
 *        [--syscalls] [--persistence]
 *
 * A connection scenario (`connect`, `storm`) counts connections where the others count messages;
 * with `--mallocs` give it `--warmup 0`, so that every connection the counter saw is counted.
 *
 * `--persistence` gives each broker a fresh SQLite store file (`sync: normal`); the scenario's
 * clients keep clean sessions, so the store holds nothing of the load (retained and
 * session-state writes only): what a store costs the path of clients that do not use it.
 * `--b DIR` profiles another checkout as B instead of this one. `--keep DIR` leaves the `.cpuprofile` files there (for Chrome's DevTools).
 *
 * @module
 */

import { buildLoadgen } from "./loadgen/build.ts";
import { type LoadgenReport, runLoadgen } from "./loadgen/run.ts";
import { pinning } from "./_pinning.ts";
import { SCENARIOS, type Settings } from "./_compare_scenarios.ts";

function flag(name: string): string | undefined {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}

const base = flag("--base");
if (base === undefined) {
  console.error("Usage: deno run -A bench/profile_ab.ts --base DIR [--scenario qos1] [--reps 4]");
  Deno.exit(2);
}
const reps = Number(flag("--reps") ?? 4);
const interval = Number(flag("--interval") ?? 100);
const top = Number(flag("--top") ?? 40);
const keep = flag("--keep");
const countMallocs = Deno.args.includes("--mallocs");
const countSyscalls = Deno.args.includes("--syscalls");
const unsampled = countMallocs || countSyscalls;
/** The system calls `--syscalls` counts. */
const SYSCALLS = ["sendto", "recvfrom", "write", "read", "epoll_wait"];
const persistence = Deno.args.includes("--persistence");
const settings: Settings = {
  seconds: Number(flag("--seconds") ?? 5),
  warmup: Number(flag("--warmup") ?? 1),
  latencyWarmup: 10,
  n1: 2000,
  n2: 8000,
  settle: 2,
  burst: 1000,
  overloadRate: 1_500_000,
};
const scenario = SCENARIOS.find((s) => s.key === (flag("--scenario") ?? "qos1"));
if (scenario === undefined) throw new Error(`Unknown scenario ${flag("--scenario")}`);
const pinned = await pinning(true);
const bins = await buildLoadgen();
const here = new URL("..", import.meta.url).pathname;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
}

/** Samples per function (name and file, the checkout's path cut off); idle ones left out. */
function selfSamples(profile: Profile, root: string): Map<string, number> {
  const key = new Map<number, string>();
  for (const n of profile.nodes) {
    const url = n.callFrame.url.replace(`file://${root}`, "").replace(/.*\/(npm|ext)\//, "");
    // No line number: the two builds' lines differ.
    key.set(n.id, `${n.callFrame.functionName || "(anonymous)"} ${url}`);
  }
  const out = new Map<string, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const k = key.get(profile.samples[i]!)!;
    if (k.startsWith("(idle)")) continue;
    out.set(k, (out.get(k) ?? 0) + 1);
  }
  return out;
}

async function portOf(file: string, child: Deno.ChildProcess): Promise<number> {
  let exited = false;
  child.status.then(() => exited = true);
  for (let i = 0; i < 1200 && !exited; i++) {
    const m = /port (\d+)/.exec(await Deno.readTextFile(file).catch(() => ""));
    if (m) return Number(m[1]);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`broker did not start: ${await Deno.readTextFile(file).catch(() => "")}`);
}

const builds = [
  { name: "A", root: `${base.replace(/\/$/, "")}/` },
  { name: "B", root: `${(flag("--b") ?? here).replace(/\/$/, "")}/` },
];
const totals = new Map<string, Map<string, number>>([["A", new Map()], ["B", new Map()]]);
const messages = new Map<string, number>([["A", 0], ["B", 0]]);
/** Broker CPU seconds and messages received in the measured phases, per build. */
const windowCpu = new Map<string, number>([["A", 0], ["B", 0]]);
const windowMessages = new Map<string, number>([["A", 0], ["B", 0]]);
const allocations = new Map<string, number[]>([["A", []], ["B", []]]);
/** `--syscalls`: per build, per system call, the calls per message of each run. */
const syscalls = new Map<string, Map<string, number[]>>([["A", new Map()], ["B", new Map()]]);
const work = await Deno.makeTempDir({ prefix: "amqtt-profile-ab-" });
const counter = `${work}/malloc_count.so`;
if (countMallocs) {
  const source = new URL("./loadgen/malloc_count.c", import.meta.url).pathname;
  const r = await new Deno.Command("cc", {
    args: ["-O2", "-Wall", "-shared", "-fPIC", "-o", counter, source, "-ldl"],
  }).output();
  if (!r.success) {
    throw new Error(`Cannot compile ${source}: ${new TextDecoder().decode(r.stderr)}`);
  }
}

/** `perf stat` counting {@linkcode SYSCALLS} in process `pid` until `stop` is called. */
function countSyscallsOf(pid: number): { stop(): Promise<Map<string, number>> } {
  const perf = new Deno.Command("perf", {
    args: [
      "stat",
      "-x,",
      "-p",
      String(pid),
      ...SYSCALLS.flatMap((name) => ["-e", `syscalls:sys_enter_${name}`]),
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  return {
    async stop() {
      perf.kill("SIGINT");
      const { stderr } = await perf.output();
      const counts = new Map<string, number>();
      // CSV lines: count,unit,event,...
      for (const line of new TextDecoder().decode(stderr).split("\n")) {
        const [count, , event] = line.split(",");
        const name = event?.replace("syscalls:sys_enter_", "");
        if (name !== undefined && SYSCALLS.includes(name)) counts.set(name, Number(count));
      }
      if (counts.size === 0) throw new Error(`perf stat counted nothing: ${line0(stderr)}`);
      return counts;
    },
  };
}

function line0(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes).trim().split("\n")[0] ?? "";
}

/** The counter's totals so far (calls, large ones), asked for with SIGUSR2. */
async function mallocsOf(pid: number, file: string): Promise<number> {
  Deno.kill(pid, "SIGUSR2");
  await new Promise((resolve) => setTimeout(resolve, 100));
  return Number((await Deno.readTextFile(file)).trim().split("\n").at(-1)!.split(" ")[0]);
}
for (let rep = 1; rep <= reps; rep++) {
  const order = rep % 2 === 1 ? builds : [...builds].reverse();
  for (const build of order) {
    const dir = `${keep ?? work}/${build.name}${rep}`;
    await Deno.mkdir(dir, { recursive: true });
    const out = `${dir}/stdout.log`;
    // This checkout's broker script with `--root`: both builds run under the same script.
    const script =
      `ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@" >"${out}" 2>"${dir}/stderr.log"`;
    const child = new Deno.Command("bash", {
      args: [
        "-c",
        script,
        "bash",
        ...pinned.broker,
        Deno.execPath(),
        "run",
        "-A",
        ...(unsampled
          ? []
          : ["--cpu-prof", `--cpu-prof-dir=${dir}`, `--cpu-prof-interval=${interval}`]),
        `${here}bench/_amqtt_broker.ts`,
        "--root",
        build.root,
        ...(persistence ? ["--persistence", `${dir}/state.db`] : []),
      ],
      env: countMallocs ? { LD_PRELOAD: counter, AMQTT_MALLOC_FILE: `${dir}/mallocs` } : {},
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const port = await portOf(out, child);
    let r: LoadgenReport;
    let before = 0, after = 0;
    let calls: Map<string, number> | undefined;
    try {
      if (countMallocs) before = await mallocsOf(child.pid, `${dir}/mallocs`);
      const perf = countSyscalls ? countSyscallsOf(child.pid) : undefined;
      r = await runLoadgen(bins.loadgen, [
        ...scenario.args(settings),
        "--port",
        String(port),
        "--pid",
        String(child.pid),
      ], { prefix: pinned.generator });
      if (countMallocs) after = await mallocsOf(child.pid, `${dir}/mallocs`);
      calls = await perf?.stop();
    } finally {
      child.kill("SIGTERM");
      await child.status;
    }
    // The counter covers the whole run (warm-up too): every message the broker passed on.
    // A connection scenario counts connections (with `--warmup 0` all of them are measured).
    const n = Number(r.received ?? r.windowReceived ?? r.connections);
    messages.set(build.name, messages.get(build.name)! + n);
    windowCpu.set(build.name, windowCpu.get(build.name)! + Number(r.brokerCpu));
    windowMessages.set(
      build.name,
      windowMessages.get(build.name)! + Number(r.windowReceived ?? r.connections),
    );
    if (countMallocs) allocations.get(build.name)!.push((after - before) / n);
    for (const [name, count] of calls ?? []) {
      const perBuild = syscalls.get(build.name)!;
      if (!perBuild.has(name)) perBuild.set(name, []);
      perBuild.get(name)!.push(count / n);
    }
    if (!unsampled) {
      const file = [...Deno.readDirSync(dir)].find((e) => e.name.endsWith(".cpuprofile"));
      if (file === undefined) throw new Error(`no profile in ${dir}`);
      const profile = JSON.parse(await Deno.readTextFile(`${dir}/${file.name}`)) as Profile;
      const t = totals.get(build.name)!;
      for (const [k, n] of selfSamples(profile, build.root)) t.set(k, (t.get(k) ?? 0) + n);
    }
    console.error(
      `[${rep}/${reps}] ${build.name}: ${n} messages, ${
        (Number(r.windowReceived ?? r.connections) / Number(r.brokerCpu)).toFixed(0)
      } per broker CPU-second in the window, lost ${r.lost ?? "?"}, corrupt ${r.corrupt ?? "?"}${
        countMallocs ? `, ${((after - before) / n).toFixed(2)} native allocations per message` : ""
      }${
        calls === undefined
          ? ""
          : `, system calls per message: ${
            [...calls].map(([name, count]) => `${name} ${(count / n).toFixed(3)}`).join(", ")
          }`
      }`,
    );
  }
}
if (keep === undefined) await Deno.remove(work, { recursive: true });
if (unsampled) {
  const cell = (v: number[], digits = 2) => {
    const sorted = [...v].sort((a, b) => a - b);
    return `${sorted[sorted.length >> 1]!.toFixed(digits)} (${sorted[0]!.toFixed(digits)}–${
      sorted.at(-1)!.toFixed(digits)
    })`;
  };
  if (countSyscalls) {
    console.log(
      `${scenario.title}, ${reps} alternating runs per build: system calls per message received ` +
        `(the whole load, warm-up included)`,
    );
    for (const name of SYSCALLS) {
      const a = syscalls.get("A")!.get(name) ?? [0];
      const b = syscalls.get("B")!.get(name) ?? [0];
      console.log(`- ${name}: A ${cell(a, 3)}, B ${cell(b, 3)}`);
    }
  }
  if (countMallocs) {
    console.log(
      `${scenario.title}, ${reps} alternating runs per build: native allocations per message ` +
        `(broker start to end of load), A ${cell(allocations.get("A")!)}, B ${
          cell(allocations.get("B")!)
        }`,
    );
  }
  Deno.exit(0);
}

const sum = (b: string) => [...totals.get(b)!.values()].reduce((x, y) => x + y, 0);
/** Broker CPU per message in the measured phases, ns. */
const cpuPerMessage = (b: string) => windowCpu.get(b)! * 1e9 / windowMessages.get(b)!;
const share = (b: string, k: string) => (totals.get(b)!.get(k) ?? 0) / sum(b);
const all = new Set([...totals.get("A")!.keys(), ...totals.get("B")!.keys()]);
console.log(
  `${scenario.title}, ${reps} alternating runs per build, sampled every ${interval} µs. ` +
    pinned.description,
);
console.log(
  `Broker CPU per message received in the measured phases: A ${cpuPerMessage("A").toFixed(0)} ` +
    `ns, B ${cpuPerMessage("B").toFixed(0)} ns; samples (not idle): A ${sum("A")}, B ${sum("B")}.`,
);
const header =
  "| function (self time) | A, % | B, % | A, ns per message | B, ns per message | B − A, ns |";
const rows = [...all].map((k) => ({
  k,
  a: share("A", k),
  b: share("B", k),
  na: share("A", k) * cpuPerMessage("A"),
  nb: share("B", k) * cpuPerMessage("B"),
}));
const print = (list: typeof rows) => {
  console.log(`\n${header}\n| --- | --- | --- | --- | --- | --- |`);
  for (const { k, a, b, na, nb } of list) {
    console.log(
      `| ${k} | ${(a * 100).toFixed(2)} | ${(b * 100).toFixed(2)} | ${na.toFixed(0)} | ` +
        `${nb.toFixed(0)} | ${(nb - na).toFixed(0)} |`,
    );
  }
};
rows.sort((x, y) => Math.max(y.na, y.nb) - Math.max(x.na, x.nb));
print(rows.slice(0, top));
console.log("\nLargest differences:");
rows.sort((x, y) => Math.abs(y.nb - y.na) - Math.abs(x.nb - x.na));
print(rows.slice(0, 20));

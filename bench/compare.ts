/**
 * Side-by-side benchmark: amqtt, Mosquitto and Aedes, each started fresh with its default settings
 * for every run, driven by an independent load generator written in C (bench/loadgen/loadgen.c,
 * built here with the machine's C compiler), with a trivial C forwarder (bench/loadgen/forwarder.c)
 * as the baseline that shows the generator's own limits and overhead.
 *
 * Every scenario runs `--reps` times (default 3), interleaved (all brokers for one scenario, then
 * the next scenario, then the next repetition), each with a warm-up that is not counted and a
 * measured phase of `--seconds` (default 5). The table gives the median with the range, the
 * generator's CPU beside every figure, and marks figures where the generator was the limit.
 * bench/README.md explains the method and every row.
 *
 * Usage: deno run -A bench/compare.ts [--quick] [--reps N] [--seconds S] [--warmup S]
 *        [--latency-warmup S]
 *        [--brokers amqtt,mosquitto,aedes,forwarder,floor,connect-floor] [--scenarios fanin,...]
 *        [--n1 2000] [--n2 8000] [--burst 1000] [--overload-rate 1500000] [--write FILE]
 *        [--no-pin]
 *
 * Each broker runs on one CPU and the generator on another (`taskset`, when installed, see
 * bench/_pinning.ts): unpinned, where the kernel places them moves the figures by up to 2× on a
 * 2-core machine. `--no-pin` leaves the placement to the kernel; the header says which it was.
 *
 * `--burst` sizes the connection storm (connections are also measured in bursts of 64).
 * `--scenarios persistence` (part of the default set) measures amqtt alone with persistence off,
 * `sync: normal` and `sync: full` (bench/_compare_persistence.ts); run alone with `--write`, it
 * replaces only that section of the file.
 *
 * Needs a C compiler (cc or gcc) and Mosquitto (Debian: `apt-get install gcc mosquitto`); Aedes
 * comes from npm through deno.json. Loopback only.
 *
 * @module
 */

import { buildLoadgen, type LoadgenBinaries } from "./loadgen/build.ts";
import { type LoadgenReport, runLoadgen } from "./loadgen/run.ts";
import {
  type BrokerName,
  BROKERS,
  hasMosquitto,
  mosquittoVersion,
  startBroker,
} from "./_brokers.ts";
import { LATENCY_WARMUP, SCENARIOS, type Settings } from "./_compare_scenarios.ts";
import { pinning } from "./_pinning.ts";
import { PERSISTENCE, persistenceSection, replaceSection } from "./_compare_persistence.ts";
import { replaceTop } from "./_results_top.ts";
import {
  GENERATOR_BOUND,
  OTHER_WORK_BOUND,
  otherWork,
  type Results,
  resultsTable,
} from "./_compare_table.ts";

interface Flags extends Settings {
  latencyWarmup: number;
  quick: boolean;
  reps: number;
  brokers: BrokerName[];
  scenarios: string[];
  write: string | undefined;
  pin: boolean;
}

function parseFlags(args: string[]): Flags {
  const quick = args.includes("--quick");
  const flags: Flags = {
    quick,
    reps: quick ? 1 : 3,
    seconds: quick ? 1 : 5,
    warmup: quick ? 0.5 : 2,
    latencyWarmup: quick ? 0.5 : LATENCY_WARMUP,
    n1: quick ? 500 : 2000,
    n2: quick ? 2000 : 8000,
    settle: quick ? 0.5 : 2,
    burst: quick ? 200 : 1000,
    overloadRate: 1_500_000,
    // The Deno floors only on request: `floor` speaks QoS 0 and 1, for the latency rows;
    // `connect-floor` answers CONNECT and nothing else, for the connection and idle rows.
    brokers: BROKERS.filter((b) => b !== "floor" && b !== "connect-floor"),
    scenarios: [...SCENARIOS.map((s) => s.key), PERSISTENCE],
    write: undefined,
    pin: true,
  };
  const positive = (name: string, v: string | undefined): number => {
    const n = Number(v);
    if (!(n > 0)) throw new Error(`${name} needs a positive number, got ${v}`);
    return n;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--quick") continue;
    if (a === "--no-pin") {
      flags.pin = false;
      continue;
    }
    const v = args[++i];
    if (a === "--reps") flags.reps = Math.round(positive(a, v));
    else if (a === "--seconds") flags.seconds = positive(a, v);
    else if (a === "--warmup") flags.warmup = Number(v);
    else if (a === "--latency-warmup") flags.latencyWarmup = Number(v);
    else if (a === "--n1") flags.n1 = Math.round(positive(a, v));
    else if (a === "--n2") flags.n2 = Math.round(positive(a, v));
    else if (a === "--burst") flags.burst = Math.round(positive(a, v));
    else if (a === "--overload-rate") flags.overloadRate = positive(a, v);
    else if (a === "--write") flags.write = v;
    else if (a === "--brokers") {
      flags.brokers = (v ?? "").split(",") as BrokerName[];
      const bad = flags.brokers.filter((b) => !BROKERS.includes(b));
      if (bad.length > 0) throw new Error(`Unknown broker ${bad[0]}: use ${BROKERS.join(",")}`);
    } else if (a === "--scenarios") {
      flags.scenarios = (v ?? "").split(",");
      const keys = [...SCENARIOS.map((s) => s.key), PERSISTENCE];
      const bad = flags.scenarios.filter((s) => !keys.includes(s));
      if (bad.length > 0) throw new Error(`Unknown scenario ${bad[0]}: use ${keys.join(",")}`);
    } else throw new Error(`Unknown argument ${a}: see the usage at the top of bench/compare.ts`);
  }
  if (!(flags.warmup >= 0)) throw new Error("--warmup needs a number ≥ 0");
  if (!(flags.latencyWarmup >= 0)) throw new Error("--latency-warmup needs a number ≥ 0");
  if (flags.n2 <= flags.n1) throw new Error("--n2 must be larger than --n1");
  return flags;
}

function hardFileLimit(): number {
  const limits = Deno.readTextFileSync("/proc/self/limits");
  const hard = /Max open files\s+\S+\s+(\S+)/.exec(limits)?.[1];
  return hard === "unlimited" ? Infinity : Number(hard);
}

// ---------------------------------------------------------------------------------------------
// Machine description

async function commandText(cmd: string, args: string[]): Promise<string> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    return new TextDecoder().decode(out.stdout).trim();
  } catch {
    return "";
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

/**
 * What one system call costs here, from the probe: brokers spend most of each message in system
 * calls, and their price differs by an order of magnitude between bare metal (~0.1 µs for a null
 * call) and some virtual machines, so figures from two machines compare only with this beside them.
 */
async function syscallCost(probe: string): Promise<string> {
  const line = await commandText(probe, []);
  try {
    const { null_ns, pipe_ns } = JSON.parse(line) as { null_ns: number; pipe_ns: number };
    return `a null system call (getppid) ${(null_ns / 1000).toFixed(2)} µs; a 64-byte write ` +
      `and the read that takes it over a socket pair ${(pipe_ns / 1000).toFixed(2)} µs ` +
      "(bare metal: about 0.1 µs and 1 µs)";
  } catch {
    return "not measured (the probe failed)";
  }
}

async function commit(): Promise<string> {
  const root = new URL("..", import.meta.url).pathname;
  const head = await commandText("git", ["-C", root, "rev-parse", "--short", "HEAD"]);
  if (head === "") return "unknown (not a git checkout)";
  const dirty = await commandText("git", [
    "-C",
    root,
    "status",
    "--porcelain",
    "--",
    "src",
    "bench",
  ]);
  return dirty === "" ? head : `${head} with uncommitted changes in src/ or bench/`;
}

/** Says how much other work shared the machine during the measured phases. */
function otherWorkLine(results: Results): string {
  const all = [...results.values()].flatMap((byBroker) => [...byBroker.values()].flat())
    .flatMap((r) => {
      const w = r === undefined ? undefined : otherWork(r);
      return w === undefined ? [] : [w];
    }).sort((a, b) => a - b);
  if (all.length === 0) return "Other work on the machine: not measured.";
  const pct = (x: number) => `${Math.round(100 * x)}%`;
  const text = "Other work on the machine during the measured phases (busy CPU from /proc/stat " +
    `minus the broker's and the generator's): median ${pct(all[all.length >> 1])} of a core, ` +
    `max ${pct(all[all.length - 1])}.`;
  return all[all.length - 1] >= OTHER_WORK_BOUND
    ? `${text} **Cells marked \`⚠ busy\` had ≥ ${pct(OTHER_WORK_BOUND)} of a core of other ` +
      "work in some run: those figures are noisy.**"
    : text;
}

function loadAverage(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
}

// ---------------------------------------------------------------------------------------------

function summary(r: LoadgenReport): string {
  const keys = [
    "msgPerSecond",
    "p50us",
    "p99us",
    "connPerSecond",
    "bytesPerConnection",
    "worstConnectionMaxDelayUs",
    "lost",
    "brokerCpu",
    "genCpu",
  ];
  return keys.filter((k) => typeof r[k] === "number" && (r[k] as number) >= 0)
    .map((k) => `${k} ${Math.round((r[k] as number) * 100) / 100}`).join(", ");
}

async function main(): Promise<number> {
  let flags: Flags;
  try {
    flags = parseFlags(Deno.args);
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    return 2;
  }
  const limit = hardFileLimit();
  if (flags.n2 + 200 > limit) {
    console.error(
      `The hard open-file limit is ${limit}: --n2 ${flags.n2} needs about ${flags.n2 + 200}`,
    );
    return 1;
  }
  console.error("Building the C load generator…");
  let bins: LoadgenBinaries;
  try {
    bins = await buildLoadgen();
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    return 1;
  }
  let brokers = flags.brokers;
  if (brokers.includes("mosquitto") && !(await hasMosquitto())) {
    console.error("Mosquitto is not installed (apt-get install mosquitto): left out");
    brokers = brokers.filter((b) => b !== "mosquitto");
  }
  const pinned = await pinning(flags.pin);
  console.error(pinned.description);
  const scenarios = SCENARIOS.filter((s) => flags.scenarios.includes(s.key));
  const results: Results = new Map(scenarios.map((s) => [s.key, new Map()]));
  const loadBefore = loadAverage();
  const started = new Date();
  for (let rep = 1; rep <= flags.reps; rep++) {
    for (const scenario of scenarios) {
      for (const name of brokers) {
        const runs = results.get(scenario.key)!;
        if (!runs.has(name)) runs.set(name, []);
        let report: LoadgenReport | undefined;
        try {
          await using broker = await startBroker(name, {
            forwarder: bins.forwarder,
            prefix: pinned.broker,
          });
          const args = [...scenario.args(flags), "--port", String(broker.port)];
          report = await runLoadgen(bins.loadgen, [...args, "--pid", String(broker.pid)], {
            prefix: pinned.generator,
          });
          console.error(`[${rep}/${flags.reps}] ${scenario.key} ${name}: ${summary(report)}`);
        } catch (err) {
          console.error(
            `[${rep}/${flags.reps}] ${scenario.key} ${name} failed: ${
              err instanceof Error ? err.message : err
            }`,
          );
        }
        runs.get(name)!.push(report);
      }
    }
  }
  const persistence = flags.scenarios.includes(PERSISTENCE)
    ? await persistenceSection({
      reps: flags.reps,
      quick: flags.quick,
      log: (line) => console.error(line),
      pinned,
      context: async () => ({
        date: started.toISOString().slice(0, 16).replace("T", " "),
        commit: await commit(),
        machine: await machine(),
        load: `${loadBefore}; ${loadAverage()}`,
      }),
    })
    : undefined;
  const loadAfter = loadAverage();
  const table = resultsTable(scenarios, results, brokers);
  if (scenarios.length > 0) console.log(table);
  if (persistence !== undefined) console.log(persistence);
  if (flags.write === undefined) return 0;
  if (scenarios.length === 0 && persistence !== undefined) {
    // Only the persistence section was measured: the rest of the file stays as it was.
    let doc = "# Benchmark results\n";
    try {
      doc = await Deno.readTextFile(flags.write);
    } catch {
      // A new file.
    }
    await Deno.writeTextFile(flags.write, replaceSection(doc, persistence));
    await new Deno.Command(Deno.execPath(), { args: ["fmt", "-q", flags.write] }).output();
    console.error(`Wrote ${flags.write}`);
    return 0;
  }
  const software = [
    `Deno ${Deno.version.deno}`,
    `Mosquitto ${await mosquittoVersion()}`,
    "Aedes 1.2.0 (npm, on Deno's node:net)",
    (await commandText("cc", ["--version"])).split("\n")[0] || "C compiler unknown",
  ].join(", ");
  const settings = `${flags.reps} interleaved repetition(s); warm-up ${flags.warmup} s ` +
    `(latency rows ${flags.latencyWarmup} s), measured phases ${flags.seconds} s; idle connections ${flags.n1} and ${flags.n2}; bursts of ` +
    `64 and ${flags.burst} handshakes; overload offered ${
      flags.overloadRate.toLocaleString("en-US")
    } msg/s`;
  const top = [
    "# Benchmark results",
    "",
    ...(flags.quick
      ? [
        "> **Quick validation run (`--quick`): short phases and one repetition on a machine that",
        "> may have been busy. It shows that the benchmark works, not how the brokers compare.**",
        "",
      ]
      : []),
    "Made by `deno task bench:compare` (bench/compare.ts). How it works and what each row means:",
    "[bench/README.md](README.md). In short: every broker starts fresh with its default settings",
    "for every run; a load generator written in C (bench/loadgen) drives it over loopback; each",
    "cell is the median of the repetitions with the range in brackets, then `gen N%`, the",
    "generator's CPU as a share of one core over the measured phase; `⚠ gen-bound` marks a figure",
    `where the generator used ≥ ${100 * GENERATOR_BOUND}% of a core in some run, so the figure`,
    "shows the generator's limit, not the broker's. `forwarder` is a trivial C forwarder: its",
    "column is the generator's (and loopback's) own ceiling and latency. Ratios are amqtt's median",
    "divided by the peer's.",
    "",
    `- Date: ${started.toISOString().slice(0, 16).replace("T", " ")} UTC`,
    `- Commit: ${await commit()}`,
    `- Machine: ${await machine()}`,
    `- System call cost: ${await syscallCost(bins.syscallCost)}`,
    `- Software: ${software}`,
    `- Settings: ${settings}`,
    `- CPUs: ${pinned.description}`,
    `- Load average (1/5/15 min) before: ${loadBefore}; after: ${loadAfter}`,
    `- ${otherWorkLine(results)}`,
    "",
    table,
    "",
  ].join("\n");
  // The sections after the main table (other benchmarks' records) stay; the persistence section
  // is replaced where it stands.
  let previous = "";
  try {
    previous = await Deno.readTextFile(flags.write);
  } catch {
    // A new file.
  }
  let doc = replaceTop(previous, top);
  if (persistence !== undefined) doc = replaceSection(doc, persistence);
  await Deno.writeTextFile(flags.write, doc);
  // Keep the file as `deno fmt` wants it (aligned table), so `deno task check` stays clean.
  await new Deno.Command(Deno.execPath(), { args: ["fmt", "-q", flags.write] }).output();
  console.error(`Wrote ${flags.write}`);
  return 0;
}

if (import.meta.main) Deno.exit(await main());

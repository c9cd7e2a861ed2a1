/**
 * Persistence cost: 1->1 QoS 1 and QoS 2, and fan-in 8->1 QoS 1, to a persistent session (64-byte
 * payloads, 20 messages in flight per publisher),
 * against `amqtt` in its own process with state in memory (persistence off), with
 * `persistence: {sync: normal}` and with `sync: full`. Each mode gets a fresh broker and a fresh
 * store file per run; the modes are interleaved and repeated (default 3 times) and the median is
 * printed with the range, since other work on a shared machine moves single runs a lot.
 * `bench/compare.ts` runs the same measurement as its `persistence` scenario.
 *
 * Usage: deno run -A bench/persistence_bench.ts [--runs N] [--messages N]
 *        [--scenarios qos1,qos2,fanin] [--modes memory,normal,full] [--base DIR] [--pin]
 *        [--warmup N]
 *
 * `--base DIR` is an A/B: every run of every mode goes to the broker of another checkout of the
 * repository in DIR (A) and to this one (B) in alternation, and the table has a row per build.
 * `--pin` puts the broker on the first CPU and this process (the load clients) on the second
 * (`taskset`, see `_pinning.ts`). `--warmup N` sends N messages of each scenario (in the same
 * proportions as `--messages`) to each fresh broker before the measured ones.
 *
 * @module
 */

import { cpuSeconds } from "./_cpu.ts";
import { fileURLToPath } from "node:url";
import { LoadClient, putAck } from "./_load.ts";
import { oneToOne, type Result } from "./throughput.ts";
import { type Pinning, pinning } from "./_pinning.ts";

/** Where the broker keeps state: memory (persistence off), or SQLite with a sync mode. */
export type Mode = "memory" | "normal" | "full";
const MODES: Mode[] = ["memory", "normal", "full"];
const AMQTT = fileURLToPath(new URL("../cli/amqtt.ts", import.meta.url));

function arg(name: string, fallback: number): number {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Number(Deno.args[i + 1]) : fallback;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Which broker a run starts: this checkout's, or another's (`root`), with a command prefix. */
export interface BrokerBuild {
  /** How the table names it. */
  name: string;
  /** Root of another checkout; `undefined` for this one. */
  root?: string;
  /** Command prefix, e.g. `taskset -c 0`; it must exec the broker. */
  prefix?: string[];
}

async function withBroker<T>(
  mode: Mode,
  build: BrokerBuild,
  body: (port: number, pid: number) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "amqtt-bench-" });
  const port = freePort();
  const config = `${dir}/broker.yaml`;
  // Unbounded queues (aMQTT's 0): in fan-in the publishers may run ahead of the subscriber, and a
  // dropped message would never arrive to be counted.
  let yaml = `listeners:\n  default:\n    bind: 127.0.0.1:${port}\nmax_queued_messages: 0\n`;
  if (mode !== "memory") yaml += `persistence:\n  path: ${dir}/state.db\n  sync: ${mode}\n`;
  await Deno.writeTextFile(config, yaml);
  const amqtt = build.root === undefined ? AMQTT : `${build.root.replace(/\/$/, "")}/cli/amqtt.ts`;
  const command = [...(build.prefix ?? []), Deno.execPath()];
  const child = new Deno.Command(command[0]!, {
    args: [...command.slice(1), "run", "-A", amqtt, "-c", config, "--log-level", "warning"],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  try {
    for (let i = 0;; i++) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        break;
      } catch {
        if (i > 600) throw new Error("the broker did not start");
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    return await body(port, child.pid);
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
}

/** A writer that batches what one turn queues into one write. */
function batcher(client: LoadClient): (type: number, id: number) => void {
  const out = new Uint8Array(65536);
  let length = 0;
  let writing: Promise<void> | undefined;
  const flush = () => {
    if (writing !== undefined || length === 0) return;
    const bytes = out.slice(0, length);
    length = 0;
    writing = client.write(bytes).then(() => {
      writing = undefined;
      flush();
    });
  };
  return (type, id) => {
    length = putAck(out, length, type, id);
    queueMicrotask(flush);
  };
}

/** Fan-in 8->1 at QoS 1 into a persistent session, 20 in flight per publisher. */
async function fanInQos1(port: number, pid: number, total: number): Promise<Result> {
  const sub = await LoadClient.connect(port, "sub-fan-in", false);
  await sub.subscribe("bench/fan", 1);
  let received = 0;
  const ack = batcher(sub);
  sub.onPublish = (_qos, id) => {
    received++;
    ack(4, id);
  };
  sub.start();
  const per = Math.floor(total / 8);
  const one = LoadClient.encode({
    type: 3,
    topic: "bench/fan",
    payload: new Uint8Array(64).fill(0x61),
    qos: 1,
    retain: false,
    dup: false,
    packetId: 1,
  });
  const idAt = 2 + 2 + "bench/fan".length;
  const pubs = await Promise.all([...Array(8)].map((_, i) => LoadClient.connect(port, `fan${i}`)));
  let completed = 0;
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  const done = pubs.map((pub) =>
    new Promise<void>((resolve) => {
      let sent = 0, acked = 0;
      const fill = (count: number) => {
        const bytes = new Uint8Array(one.length * count);
        for (let i = 0; i < count; i++) {
          const id = (sent++ % 65535) + 1;
          bytes.set(one, i * one.length);
          bytes[i * one.length + idAt] = id >> 8;
          bytes[i * one.length + idAt + 1] = id & 0xff;
        }
        pub.write(bytes);
      };
      pub.onAck = (type) => {
        if (type !== 4) return;
        acked++;
        completed++;
        if (acked === per) resolve();
        else if (sent < per) fill(1);
      };
      pub.start();
      fill(Math.min(20, per));
    })
  );
  await Promise.all(done);
  // Every message is acknowledged to its publisher; the subscriber may still be catching up.
  for (let last = -1, idle = 0; received < per * 8 && idle < 600; idle++) {
    if (received !== last) idle = 0;
    last = received;
    await new Promise((r) => setTimeout(r, 5));
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(pid) - cpu0;
  await Promise.all([sub, ...pubs].map((c) => c.close()));
  return { name: "fan-in 8->1 QoS 1", count: received, seconds, cpu };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** The scenarios, by key. */
export const PERSISTENCE_SCENARIOS = ["qos1", "qos2", "fanin"] as const;
/** One scenario key. */
export type PersistenceScenario = (typeof PERSISTENCE_SCENARIOS)[number];

/** What one scenario measured in one mode, over all runs. */
export interface PersistenceRow {
  /** The scenario's name. */
  name: string;
  /** memory (persistence off), normal or full. */
  mode: Mode;
  /** The build's name (`--base`), or `undefined` for one build. */
  build?: string;
  /** Messages per second, one per run. */
  rates: number[];
  /** Messages per CPU-second of the broker, one per run. */
  perCpu: number[];
}

/** Options of {@linkcode measurePersistence}. */
export interface PersistenceOptions {
  /** Interleaved repetitions. */
  runs: number;
  /** Messages of 1->1 QoS 1 (QoS 2: half as many, fan-in: twice as many). */
  messages: number;
  /**
   * Messages of each scenario sent, in the same proportions, before those measured, to the same
   * broker (a fresh broker's first tens of thousands of messages cost it more: compilation, heap
   * growth, a store file that grows).
   *
   * @default {0}
   */
  warmup?: number;
  /** Which scenarios. */
  scenarios: readonly PersistenceScenario[];
  /** Which modes; default all three. */
  modes?: readonly Mode[];
  /** Progress lines. */
  log?: (line: string) => void;
  /** The brokers to compare, in alternation; default this checkout's, unpinned. */
  builds?: readonly BrokerBuild[];
}

/**
 * Runs the scenarios in each mode, interleaved: run 1 of every mode, then run 2…
 *
 * @param options runs, size, scenarios
 * @returns one row per scenario and mode
 */
export async function measurePersistence(options: PersistenceOptions): Promise<PersistenceRow[]> {
  const rows = new Map<string, PersistenceRow>();
  const { messages, scenarios } = options;
  const builds = options.builds ?? [{ name: "" }];
  for (let run = 1; run <= options.runs; run++) {
    // Alternate which build goes first, so that neither always follows the other.
    const order = run % 2 === 1 ? builds : [...builds].reverse();
    for (const mode of options.modes ?? MODES) {
      for (const build of order) await measureOne(mode, build, run);
    }
  }
  return [...rows.values()];

  async function measureOne(mode: Mode, build: BrokerBuild, run: number): Promise<void> {
    const results: Result[] = await withBroker(mode, build, async (port, pid) => {
      const out: Result[] = [];
      // Each scenario once before, not measured, so that the one measured finds the broker warm.
      const warm = options.warmup ?? 0;
      if (scenarios.includes("qos1")) {
        if (warm > 0) await oneToOne(port, pid, 1, warm, true);
        out.push(await oneToOne(port, pid, 1, messages, true));
      }
      if (scenarios.includes("qos2")) {
        if (warm > 0) await oneToOne(port, pid, 2, Math.floor(warm / 2), true);
        out.push(await oneToOne(port, pid, 2, Math.floor(messages / 2), true));
      }
      if (scenarios.includes("fanin")) {
        if (warm > 0) await fanInQos1(port, pid, warm * 2);
        out.push(await fanInQos1(port, pid, messages * 2));
      }
      return out;
    });
    const build_ = builds.length > 1 ? build.name : undefined;
    for (const r of results) {
      const key = `${r.name} ${build_ ?? ""} ${mode}`;
      const row = rows.get(key) ?? { name: r.name, mode, build: build_, rates: [], perCpu: [] };
      row.rates.push(r.count / r.seconds);
      row.perCpu.push(r.count / r.cpu);
      rows.set(key, row);
      options.log?.(
        `[${run}/${options.runs}] ${r.name} persistent, ${build_ ?? ""} ${mode}: ${
          Math.round(r.count / r.seconds)
        } msg/s, ${Math.round(r.count / r.cpu)} msg/CPU-s, ${
          (r.cpu * 1e6 / r.count).toFixed(1)
        } µs broker CPU/msg`,
      );
    }
  }
}

function k(n: number): string {
  return `${(n / 1000).toFixed(1)}k`;
}

function cell(values: number[]): string {
  return `${k(median(values))} (${k(Math.min(...values))}–${k(Math.max(...values))})`;
}

/**
 * The rows as a Markdown table: per scenario, the median with its range for each mode, in msg/s
 * and in msg per broker CPU-second, and each persistent mode's share of the in-memory figure.
 *
 * @param rows what {@linkcode measurePersistence} returned
 * @returns the table
 */
export function persistenceTable(rows: PersistenceRow[]): string {
  const names = [...new Set(rows.map((r) => r.name))];
  const builds = [...new Set(rows.map((r) => r.build))];
  const get = (name: string, build: string | undefined, mode: Mode) =>
    rows.find((r) => r.name === name && r.build === build && r.mode === mode);
  const pct = (a: number[] | undefined, b: number[] | undefined) =>
    a === undefined || b === undefined ? "–" : `${Math.round(100 * median(a) / median(b))}%`;
  const lines = [
    "| Persistent subscriber | Figure | off (memory) | sync normal | sync full | normal / off | full / off |",
    "| --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const name of names) {
    for (const build of builds) table(name, build);
  }
  return lines.join("\n");

  function table(name: string, build: string | undefined): void {
    const [off, normal, full] = MODES.map((m) => get(name, build, m));
    const title = build === undefined ? name : `${name}, ${build}`;
    for (const [figure, pick] of [["msg/s", "rates"], ["msg/CPU-s", "perCpu"]] as const) {
      lines.push(
        `| ${title} | ${figure} | ${
          [off, normal, full].map((r) => r ? cell(r[pick]) : "–").join(" | ")
        } | ${pct(normal?.[pick], off?.[pick])} | ${pct(full?.[pick], off?.[pick])} |`,
      );
    }
  }
}

/**
 * Moves this process, with all its threads, to the generator's CPU (it runs the load clients).
 *
 * @param pinned the pinning; nothing is done when it pins nothing
 */
export async function pinThisProcess(pinned: Pinning): Promise<void> {
  if (pinned.generator.length === 0) return;
  const cpu = pinned.generator[pinned.generator.length - 1]!;
  await new Deno.Command("taskset", { args: ["-a", "-p", "-c", cpu, String(Deno.pid)] })
    .output();
}

if (import.meta.main) {
  const runs = arg("--runs", 3);
  const messages = arg("--messages", 30_000);
  const warmup = arg("--warmup", 0);
  const i = Deno.args.indexOf("--scenarios");
  const scenarios =
    (i >= 0 ? Deno.args[i + 1]!.split(",") : [...PERSISTENCE_SCENARIOS]) as PersistenceScenario[];
  const bad = scenarios.find((x) => !PERSISTENCE_SCENARIOS.includes(x));
  if (bad !== undefined) {
    console.error(`Unknown scenario ${bad}: use ${PERSISTENCE_SCENARIOS.join(",")}`);
    Deno.exit(2);
  }
  const m = Deno.args.indexOf("--modes");
  const modes = (m >= 0 ? Deno.args[m + 1]!.split(",") : MODES) as Mode[];
  if (modes.some((x) => !MODES.includes(x))) {
    console.error(`Unknown mode in ${modes.join(",")}: use ${MODES.join(",")}`);
    Deno.exit(2);
  }
  const b = Deno.args.indexOf("--base");
  const pinned = await pinning(Deno.args.includes("--pin"));
  await pinThisProcess(pinned);
  console.error(pinned.description);
  const prefix = pinned.broker;
  const builds: BrokerBuild[] = b >= 0
    ? [{ name: "A (base)", root: Deno.args[b + 1]!, prefix }, { name: "B (this)", prefix }]
    : [{ name: "", prefix }];
  const rows = await measurePersistence({
    runs,
    messages,
    scenarios,
    modes,
    builds,
    warmup,
    log: console.error,
  });
  console.log(persistenceTable(rows));
}

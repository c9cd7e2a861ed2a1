/**
 * What a slow message waited for. Runs the paced 1→1 latency scenario (the C generator, 64-byte
 * payloads at 5,000 msg/s, QoS 0 or 1) against one program — amqtt, the floor forwarder
 * (`_latency_floor_server.ts`) or Mosquitto — while the kernel traces the program's CPUs
 * (tracefs: every context switch and wake-up, and the program's socket system calls, on
 * CLOCK_MONOTONIC, the generator's clock). The generator writes every message's send time and
 * latency (`loadgen --dump`); each message is then laid beside the trace:
 *
 * - where its time went: sent → the program's `recvfrom` of the publisher's socket → its
 *   `sendto` to the subscriber → received;
 * - what the program's CPUs did meanwhile: the program's main thread, its other threads (V8's
 *   workers, the runtime's), other processes, idle; and how long the main thread was runnable
 *   but waited for the CPU;
 * - with `--gc`, V8's pauses (`--trace-gc`, each line's write to stdout traced to place it).
 *
 * The figures over the slow messages (above the run's p99, or `--slow-us`) are set beside the
 * same figures over all messages.
 *
 * Usage: deno run -A bench/latency_trace.ts [--program amqtt|floor|mosquitto] [--qos 0|1]
 *   [--seconds 5] [--warmup 2] [--cpus 0] [--gen-cpu 1] [--gc] [--v8-flags FLAGS] [--root DIR]
 *   [--slow-us N] [--idle-v8-threads] [--rt] [--json]
 *
 * `--cpus` is the program's CPU list for `taskset` (`0`, or `0-1` for both CPUs); the generator
 * runs on `--gen-cpu` (`none`: unpinned). `--idle-v8-threads` puts V8's helper threads (its
 * compiler and GC workers) in the SCHED_IDLE class (`chrt --idle`), so that they run only while the
 * main thread does not want the CPU: whether they make the tail. `--rt` shuts the machine's other
 * work out instead, for a like-for-like comparison on a busy machine: the program's main thread and
 * the generator run SCHED_FIFO 20 and the program's other threads SCHED_FIFO 10 (`chrt`), so no
 * other process preempts them and no helper thread preempts the main thread (the kernel's RT
 * throttling still leaves other work 5% of each CPU). Needs write access to /sys/kernel/tracing
 * (root); the trace goes to an instance of its own, removed at the end. With `--json` every stall
 * carries its CLOCK_MONOTONIC bounds, to be found in a profile made meanwhile with
 * `perf record -k mono -t PID` (and `--v8-flags --perf-basic-prof` for JavaScript names).
 *
 * @module
 */

import { buildLoadgen } from "./loadgen/build.ts";
import { runLoadgen } from "./loadgen/run.ts";
import { startBroker } from "./_brokers.ts";

const args = Deno.args;
function flag(name: string, fallback: string): string {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1]! : fallback;
}

const program = flag("--program", "amqtt");
const qos = Number(flag("--qos", "0"));
const seconds = Number(flag("--seconds", "5"));
const warmup = Number(flag("--warmup", "2"));
const cpus = flag("--cpus", "0");
const genCpu = flag("--gen-cpu", "1");
const traceGc = args.includes("--gc");
const v8Flags = flag("--v8-flags", "");
const root = flag("--root", new URL("..", import.meta.url).pathname).replace(/\/$/, "");
const slowFlag = Number(flag("--slow-us", "0"));
const asJson = args.includes("--json");
const idleV8 = args.includes("--idle-v8-threads");
const realtime = args.includes("--rt");

/** The CPUs of a `taskset -c` list. */
function cpuList(list: string): number[] {
  const out: number[] = [];
  for (const part of list.split(",")) {
    const [a, b] = part.split("-").map(Number);
    for (let c = a!; c <= (b ?? a!); c++) out.push(c);
  }
  return out;
}

/** A program under test, in its own process. */
interface Target extends AsyncDisposable {
  pid: number;
  port: number;
  /** Lines it printed on stdout so far (V8's `--trace-gc` lines among them). */
  lines: string[];
}

/** Starts a Deno program that prints `port N`, pinned, keeping every stdout line. */
async function startDeno(file: string): Promise<Target> {
  const cmd = [
    "taskset",
    "-c",
    cpus,
    // V8 prints GC lines through stdio: one write per line, so each can be placed in the trace.
    ...(traceGc ? ["stdbuf", "-oL"] : []),
    Deno.execPath(),
    "run",
    "-A",
    ...(v8Flags || traceGc
      ? [`--v8-flags=${[v8Flags, traceGc ? "--trace-gc" : ""].filter(Boolean).join(",")}`]
      : []),
    file,
  ];
  const child = new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines: string[] = [];
  let port = 0;
  const { promise: hasPort, resolve: resolvePort } = Promise.withResolvers<void>();
  const reading = (async () => {
    let rest = "";
    for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) {
      rest += text;
      const parts = rest.split("\n");
      rest = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        const m = /^port (\d+)/.exec(line);
        if (m && port === 0) {
          port = Number(m[1]);
          resolvePort();
        }
      }
    }
  })();
  await Promise.race([hasPort, child.status]);
  if (port === 0) throw new Error(`${file} ended before printing its port`);
  return {
    pid: child.pid,
    port,
    lines,
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await child.status;
      await reading.catch(() => {});
    },
  };
}

async function startTarget(): Promise<Target> {
  if (program === "amqtt") return await startDeno(`${root}/bench/_amqtt_broker.ts`);
  if (program === "floor") return await startDeno(`${root}/bench/_latency_floor_server.ts`);
  if (program === "mosquitto") {
    const b = await startBroker("mosquitto", { prefix: ["taskset", "-c", cpus] });
    return {
      pid: b.pid,
      port: b.port,
      lines: [],
      [Symbol.asyncDispose]: () => b[Symbol.asyncDispose](),
    };
  }
  throw new Error(`--program: amqtt, floor or mosquitto, not ${program}`);
}

/**
 * Socket reads and writes of the main thread (Deno: recvfrom and sendto; Mosquitto: read and
 * write), with what each read returned; writes to stdout are V8's `--trace-gc` lines.
 */
const SYSCALLS = [
  "enter_recvfrom",
  "exit_recvfrom",
  "enter_read",
  "exit_read",
  "enter_sendto",
  "enter_write",
];

/** A tracefs instance of this process's own, removed when disposed. */
async function openTrace(mainTid: number): Promise<{ dir: string } & AsyncDisposable> {
  const dir = `/sys/kernel/tracing/instances/amqtt-latency-${Deno.pid}`;
  await Deno.mkdir(dir);
  const put = (file: string, value: string) => Deno.writeTextFile(`${dir}/${file}`, value);
  await put("tracing_on", "0");
  await put("trace_clock", "mono");
  await put("buffer_size_kb", "32768");
  const mask = cpuList(cpus).reduce((m, c) => m | (1n << BigInt(c)), 0n);
  await put("tracing_cpumask", mask.toString(16));
  await put("events/sched/sched_switch/enable", "1");
  await put("events/sched/sched_wakeup/enable", "1");
  for (const call of SYSCALLS) {
    await put(`events/syscalls/sys_${call}/filter`, `common_pid == ${mainTid}`);
    await put(`events/syscalls/sys_${call}/enable`, "1");
  }
  return {
    dir,
    async [Symbol.asyncDispose]() {
      await put("tracing_on", "0").catch(() => {});
      for (const e of ["sched/sched_switch", "sched/sched_wakeup"]) {
        await put(`events/${e}/enable`, "0").catch(() => {});
      }
      for (const call of SYSCALLS) {
        await put(`events/syscalls/sys_${call}/enable`, "0").catch(() => {});
        await put(`events/syscalls/sys_${call}/filter`, "0").catch(() => {});
      }
      await Deno.remove(dir).catch(() => {});
    },
  };
}

// ---- the run ----------------------------------------------------------------------------------

const bins = await buildLoadgen();
await using target = await startTarget();
const mainTid = target.pid;
/** Sets a thread's scheduling class and priority with `chrt`. */
async function chrt(tid: number, policy: "--fifo" | "--idle", priority: number): Promise<void> {
  const args = [policy, "-p", String(priority), String(tid)];
  const r = await new Deno.Command("chrt", { args }).output();
  if (!r.success) throw new Error(`chrt ${args.join(" ")} failed`);
}
for (const entry of Deno.readDirSync(`/proc/${target.pid}/task`)) {
  const tid = Number(entry.name);
  const comm = Deno.readTextFileSync(`/proc/${target.pid}/task/${tid}/comm`);
  if (realtime) await chrt(tid, "--fifo", tid === mainTid ? 20 : 10);
  else if (idleV8 && comm.startsWith("V8 ")) await chrt(tid, "--idle", 0);
}
const dump = await Deno.makeTempFile({ prefix: "amqtt-latency-dump-" });
const rawTrace = await Deno.makeTempFile({ prefix: "amqtt-latency-trace-" });
let report: Record<string, number | string>;
let linesBefore = 0;
const threads = new Map<number, string>();
{
  await using trace = await openTrace(mainTid);
  const generator = [
    ...(genCpu === "none" ? [] : ["taskset", "-c", genCpu]),
    ...(realtime ? ["chrt", "--fifo", "20"] : []),
  ];
  const run = runLoadgen(bins.loadgen, [
    "pubsub",
    "--pubs",
    "1",
    "--subs",
    "1",
    "--qos",
    String(qos),
    "--size",
    "64",
    "--rate",
    "5000",
    "--warmup",
    String(warmup),
    "--seconds",
    String(seconds),
    "--port",
    String(target.port),
    "--pid",
    String(target.pid),
    "--dump",
    dump,
  ], { prefix: generator });
  // Trace from shortly before the measured phase (the warm-up's JIT work stays out).
  await new Promise((r) => setTimeout(r, Math.max(0, warmup * 1000 - 300)));
  linesBefore = target.lines.length;
  await Deno.writeTextFile(`${trace.dir}/tracing_on`, "1");
  report = await run;
  await Deno.writeTextFile(`${trace.dir}/tracing_on`, "0");
  for (const entry of Deno.readDirSync(`/proc/${target.pid}/task`)) {
    const tid = Number(entry.name);
    threads.set(tid, Deno.readTextFileSync(`/proc/${target.pid}/task/${tid}/comm`).trim());
  }
  const out = await Deno.open(rawTrace, { write: true, truncate: true });
  const file = await Deno.open(`${trace.dir}/trace`);
  await file.readable.pipeTo(out.writable);
}

// ---- parsing ----------------------------------------------------------------------------------

interface Message {
  sent: number; // ns, CLOCK_MONOTONIC
  received: number;
  latency: number;
}
const messages: Message[] = (await Deno.readTextFile(dump)).trim().split("\n").map((l) => {
  const [stamp, lat, late] = l.split(" ").map(Number);
  return { sent: stamp! + late!, received: stamp! + lat!, latency: lat! };
});
messages.sort((a, b) => a.sent - b.sent);
await Deno.remove(dump);

interface Switch {
  t: number;
  cpu: number;
  prev: number;
  prevState: string;
  next: number;
  nextComm: string;
}
const switches: Switch[] = [];
const wakeups: { t: number; pid: number }[] = [];
const calls: { t: number; call: string; fd: number; len: number; ret?: number }[] = [];
const writes: number[] = [];
const LINE = /^\s*(.*?)-(\d+)\s+\[(\d+)\]\s+\S+\s+(\d+)\.(\d+): (\w+)(: |\(| -> )(.*)$/;
const SWITCH = /prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+) ==> next_comm=(.*) next_pid=(\d+)/;
const text = await Deno.readTextFile(rawTrace);
if (args.includes("--keep")) console.error(`trace kept in ${rawTrace}`);
else await Deno.remove(rawTrace);
for (const line of text.split("\n")) {
  const m = LINE.exec(line);
  if (!m) continue;
  const t = Number(m[4]) * 1e9 + Number(m[5]!.padEnd(9, "0"));
  const cpu = Number(m[3]);
  const event = m[7] === " -> " ? `${m[6]}_exit` : m[6]!;
  const body = m[8]!;
  if (event === "sched_switch") {
    const s = SWITCH.exec(body);
    if (s) {
      switches.push({
        t,
        cpu,
        prev: Number(s[1]),
        prevState: s[2]!,
        next: Number(s[4]),
        nextComm: s[3]!,
      });
    }
  } else if (event === "sched_wakeup") {
    const w = /pid=(\d+)/.exec(body);
    if (w) wakeups.push({ t, pid: Number(w[1]) });
  } else if (event === "sys_recvfrom_exit" || event === "sys_read_exit") {
    // Pairs with the main thread's last read: what it returned.
    const last = calls.at(-1);
    if (last?.call === "read") last.ret = Number(body.trim());
  } else if (
    event === "sys_recvfrom" || event === "sys_read" || event === "sys_sendto" ||
    event === "sys_write"
  ) {
    const fd = parseInt(/fd: (?:0x)?([0-9a-f]+)/.exec(body)?.[1] ?? "-1", 16);
    const len = parseInt(/(?:len|size|count): (?:0x)?([0-9a-f]+)/.exec(body)?.[1] ?? "0", 16);
    // V8's --trace-gc lines go to stdout; everything else written is a socket's.
    if (fd === 1) writes.push(t);
    else if (fd > 2) {
      calls.push({
        t,
        call: event === "sys_recvfrom" || event === "sys_read" ? "read" : "send",
        fd,
        len,
      });
    }
  }
}

// ---- what ran on the program's CPUs -------------------------------------------------------------

/** Intervals of one kind of work on the program's CPUs: [start, end, kind]. */
type Span = [number, number, string];
const spans: Span[] = [];
const otherComms = new Map<number, string>();
{
  const running = new Map<number, { since: number; pid: number }>();
  for (const s of switches) {
    const r = running.get(s.cpu);
    if (r !== undefined) spans.push([r.since, s.t, kindOf(r.pid)]);
    running.set(s.cpu, { since: s.t, pid: s.next });
    if (!threads.has(s.next) && s.next !== 0) otherComms.set(s.next, s.nextComm);
  }
}
function kindOf(pid: number): string {
  if (pid === 0) return "idle";
  if (pid === mainTid) return "main thread";
  const name = threads.get(pid);
  if (name !== undefined) return `thread "${name}"`;
  return "other processes";
}
spans.sort((a, b) => a[0] - b[0]);

/** Main thread runnable but not running (woken or preempted, waiting for a CPU). */
const waits: Span[] = [];
{
  let since = -1;
  const events: { t: number; kind: "ready" | "run" | "off" }[] = [];
  for (const w of wakeups) if (w.pid === mainTid) events.push({ t: w.t, kind: "ready" });
  for (const s of switches) {
    if (s.next === mainTid) events.push({ t: s.t, kind: "run" });
    if (s.prev === mainTid) {
      events.push({ t: s.t, kind: s.prevState.startsWith("R") ? "ready" : "off" });
    }
  }
  events.sort((a, b) => a.t - b.t);
  for (const e of events) {
    if (e.kind === "ready" && since < 0) since = e.t;
    else if (e.kind === "run") {
      if (since >= 0) waits.push([since, e.t, "main thread waiting for the CPU"]);
      since = -1;
    } else if (e.kind === "off") since = -1;
  }
}

/** V8's pauses: [end - pause, end] from the --trace-gc lines written while tracing. */
const gcs: Span[] = [];
let gcAlignment = "";
if (traceGc) {
  const lines = target.lines.slice(linesBefore).filter((l) => /\d+ ms: /.test(l));
  const offsets: number[] = [];
  for (let i = 0; i < Math.min(lines.length, writes.length); i++) {
    const m = /\s(\d+) ms: ([A-Za-z -]+?)(?: \(.*?\))? [\d.]+ \(.*?, ([\d.]+) \/ ([\d.]+) ms/.exec(
      lines[i]!,
    );
    if (!m) continue;
    const end = writes[i]!;
    offsets.push(end - Number(m[1]) * 1e6);
    gcs.push([end - Number(m[3]) * 1e6, end, m[2]!.trim()]);
  }
  const spread = offsets.length ? (Math.max(...offsets) - Math.min(...offsets)) / 1e6 : 0;
  // Each line's printed time (ms since V8 started) and its write differ by a constant when the
  // lines and the writes are paired right; a spread of a few ms is the print's rounding.
  gcAlignment = `${gcs.length} GC lines placed (printed time against write time: ${
    spread.toFixed(1)
  } ms spread)`;
}

// ---- each message -----------------------------------------------------------------------------

/** A system call's return value (tracefs prints negative ones as 64-bit hex). */
const returned = (ret: number | undefined) => ret === undefined || ret > 2 ** 62 ? -1 : ret;
const reads = calls.filter((c) => c.call === "read" && returned(c.ret) > 0);
const sends = calls.filter((c) => c.call === "send");
// The subscriber's socket is the one that PUBLISH packets (longer than an ack) are sent to; the
// publisher's is the other one read from most.
const subFd = mode(sends.filter((c) => c.len > 4).map((c) => c.fd));
const pubFd = mode(reads.filter((c) => c.fd !== subFd).map((c) => c.fd));
const pubReads = reads.filter((c) => c.fd === pubFd).map((c) => c.t);
const subSends = sends.filter((c) => c.fd === subFd && c.len > 4).map((c) => c.t);
function mode(v: number[]): number {
  const count = new Map<number, number>();
  for (const x of v) count.set(x, (count.get(x) ?? 0) + 1);
  return [...count].sort((a, b) => b[1] - a[1])[0]?.[0] ?? -1;
}
/** The first time in sorted `v` at or after `t`, or NaN. */
function firstAfter(v: number[], t: number): number {
  let lo = 0, hi = v.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (v[mid]! < t) lo = mid + 1;
    else hi = mid;
  }
  return lo < v.length ? v[lo]! : NaN;
}

/** Time per kind of work inside the windows (merged first, so that none counts twice). */
function shares(windows: [number, number][], of: Span[]): Map<string, number> {
  const merged: [number, number][] = [];
  for (const w of [...windows].sort((a, b) => a[0] - b[0])) {
    const last = merged.at(-1);
    if (last && w[0] <= last[1]) last[1] = Math.max(last[1], w[1]);
    else merged.push([w[0], w[1]]);
  }
  const out = new Map<string, number>();
  let j = 0;
  for (const [a, b] of merged) {
    while (j < of.length && of[j]![1] <= a) j++;
    for (let k = j; k < of.length && of[k]![0] < b; k++) {
      const [s, e, kind] = of[k]!;
      const overlap = Math.min(b, e) - Math.max(a, s);
      if (overlap > 0) out.set(kind, (out.get(kind) ?? 0) + overlap);
    }
  }
  out.set("(window)", merged.reduce((n, [a, b]) => n + b - a, 0));
  return out;
}

const traceStart = switches[0]?.t ?? 0;
const traceEnd = switches.at(-1)?.t ?? 0;

/** One message's path: generator → program's read → program's write → generator. */
interface Path {
  latency: number;
  /** Scheduled → written by the generator (the generator's lateness). */
  late: number;
  /** Written by the generator → the program's recvfrom that took it. */
  toRead: number;
  /** recvfrom → the program's sendto that carried it on. */
  readToSend: number;
  /** sendto → read by the generator. */
  afterSend: number;
  /** Written by the generator → the program's sendto: the program's part. */
  program: number;
  /** The program's part less the time other processes had its CPUs meanwhile. */
  programOwn: number;
  sent: number;
  send: number;
}
const paths: Path[] = [];
for (const m of messages) {
  if (m.sent < traceStart || m.received > traceEnd) continue;
  const read = firstAfter(pubReads, m.sent);
  const send = firstAfter(subSends, read);
  if (!(send <= m.received)) continue;
  const others = shares([[m.sent, send]], spans).get("other processes") ?? 0;
  paths.push({
    latency: m.latency,
    late: m.sent - (m.received - m.latency),
    toRead: read - m.sent,
    readToSend: send - read,
    afterSend: m.received - send,
    program: send - m.sent,
    programOwn: send - m.sent - others,
    sent: m.sent,
    send,
  });
}

function percentiles(v: number[]): string {
  const s = [...v].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return [0.5, 0.9, 0.99, 0.999].map((q) => (at(q) / 1000).toFixed(0)).join(" / ") +
    ` / ${((s.at(-1) ?? 0) / 1000).toFixed(0)}`;
}
const us = (ns: number) => +(ns / 1000).toFixed(0);

/** What the program's CPUs did while the given messages were in the program's hands. */
function breakdown(of: Path[]) {
  const windows = of.map((p) => [p.sent, p.send] as [number, number]);
  const cpu = shares(windows, spans);
  const total = cpu.get("(window)")!;
  const wait = shares(windows, waits).get("main thread waiting for the CPU") ?? 0;
  const gc = shares(windows, gcs);
  const share = (v: number) => `${(100 * v / total).toFixed(1)}%`;
  return {
    messages: of.length,
    windowMs: +(total / 1e6).toFixed(2),
    cpu: Object.fromEntries(
      [...cpu].filter(([k]) => k !== "(window)").sort((a, b) => b[1] - a[1])
        .map(([k, v]) => [k, share(v)]),
    ),
    mainThreadWaitingForCpu: share(wait),
    ...(traceGc
      ? {
        gcPause: Object.fromEntries(
          [...gc].filter(([k]) => k !== "(window)").map(([k, v]) => [k, share(v)]),
        ),
      }
      : {}),
  };
}

/** Runs of slow messages whose windows in the program overlap: one stall each. */
function episodes(of: Path[]) {
  const out: { start: number; end: number; n: number; worst: number }[] = [];
  for (const p of [...of].sort((a, b) => a.sent - b.sent)) {
    const last = out.at(-1);
    if (last && p.sent <= last.end) {
      last.end = Math.max(last.end, p.send);
      last.n++;
      last.worst = Math.max(last.worst, p.programOwn);
    } else out.push({ start: p.sent, end: p.send, n: 1, worst: p.programOwn });
  }
  return out.map((e) => {
    const cpu = shares([[e.start, e.end]], spans);
    const total = cpu.get("(window)")!;
    const top = [...cpu].filter(([k]) => k !== "(window)").sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${(100 * v / total).toFixed(0)}%`).slice(0, 3).join(", ");
    const gc = gcs.filter(([a, b]) => a < e.end && b > e.start).map(([a, b, k]) =>
      `${k} ${us(b - a)} µs`
    );
    return {
      atMs: +((e.start - traceStart) / 1e6).toFixed(1),
      /** CLOCK_MONOTONIC, ns: to find the stall in another trace (perf record -k mono). */
      startNs: e.start,
      endNs: e.end,
      spanUs: us(e.end - e.start),
      messages: e.n,
      worstOwnUs: us(e.worst),
      cpu: top,
      gc: gc.join("; "),
    };
  });
}

const byOwn = [...paths].sort((a, b) => a.programOwn - b.programOwn);
const ownSlowAt = slowFlag > 0
  ? slowFlag * 1000
  : byOwn[Math.floor(0.99 * byOwn.length)]?.programOwn ?? Infinity;
const slow = paths.filter((p) => p.programOwn >= ownSlowAt);

const result = {
  program,
  qos,
  cpus,
  genCpu,
  v8Flags,
  idleV8,
  realtime,
  generator: { p99us: report.p99us, latenessP99us: report.latenessP99us, lost: report.lost ?? 0 },
  threads: [...threads.values()],
  otherProcesses: [...new Set(otherComms.values())].slice(0, 12),
  gcAlignment,
  messages: messages.length,
  traced: paths.length,
  "µs p50 / p90 / p99 / p99.9 / max": {
    latency: percentiles(paths.map((p) => p.latency)),
    generatorLate: percentiles(paths.map((p) => p.late)),
    sentToRead: percentiles(paths.map((p) => p.toRead)),
    readToSend: percentiles(paths.map((p) => p.readToSend)),
    sendToReceived: percentiles(paths.map((p) => p.afterSend)),
    program: percentiles(paths.map((p) => p.program)),
    programLessOtherProcesses: percentiles(paths.map((p) => p.programOwn)),
  },
  slowAtUs: us(ownSlowAt),
  all: breakdown(paths),
  slow: breakdown(slow),
  episodes: episodes(slow),
};

if (asJson) console.log(JSON.stringify(result));
else {
  const { episodes: eps, ...rest } = result;
  console.log(JSON.stringify(rest, null, 1));
  console.log(`stalls among the slow messages (${eps.length}), worst first:`);
  for (const e of [...eps].sort((a, b) => b.worstOwnUs - a.worstOwnUs).slice(0, 20)) {
    console.log(
      `  at ${e.atMs} ms: ${e.messages} msg over ${e.spanUs} µs, worst own ${e.worstOwnUs} µs — ` +
        e.cpu + (e.gc ? ` — GC: ${e.gc}` : ""),
    );
  }
}

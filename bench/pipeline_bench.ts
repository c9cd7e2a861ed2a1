/**
 * The whole broker in one process, over in-memory connections instead of sockets: what fan-in
 * 8→1 QoS 0 (or fan-out 1→S with `--pubs 1 --subs S`) costs in JavaScript (decode, core, actions, the connection's write path, GC) per
 * message, without the kernel's share and without a generator competing for the CPU. Publishers
 * hand the broker a stream of PUBLISH packets in 64 KiB reads (most ending inside a packet, as a
 * socket's do); the subscriber's writes only count bytes. Prints the broker process's CPU time per message (user + system, all
 * threads) and the wall time, for level 4 (MQTT 3.1.1) and level 5 (5.0, no properties) in turn.
 *
 * Run: deno run -A --v8-flags=--expose-gc bench/pipeline_bench.ts [--level 4|5|both]
 * [--messages N] [--reps R] [--pubs P] [--subs S]
 *
 * On a shared machine the figures still move with other work (CPU caches, frequency), but far
 * less than a loopback benchmark's: compare the levels within one run, in turn.
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { Broker } from "../broker.ts";
import type { ByteConnection } from "../src/transport/types.ts";
import { encodePacket, PacketType } from "../src/packet/mod.ts";
import type { Packet } from "../src/packet/types.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    level: { type: "string", default: "both" },
    messages: { type: "string", default: "4000000" },
    reps: { type: "string", default: "5" },
    pubs: { type: "string", default: "8" },
    subs: { type: "string", default: "1" },
  },
});

const PAYLOAD = 64;
const CHUNK = 64 * 1024;

/** A connection whose reads come from a script and whose writes are counted. */
class MemoryConnection implements ByteConnection {
  readonly info = { transport: "tcp" as const, remoteAddress: "memory:1" };
  readonly readable = new ReadableStream<Uint8Array>();
  written = 0;
  onWrite: (() => void) | undefined;
  #reads: () => Promise<Uint8Array> | undefined;
  #close!: () => void;
  readonly closed = new Promise<void>((resolve) => this.#close = resolve);
  #done = false;

  constructor(reads: () => Promise<Uint8Array> | undefined) {
    this.#reads = reads;
  }
  read(): Promise<Uint8Array | null> {
    if (this.#done) return Promise.resolve(null);
    const next = this.#reads();
    // Nothing more to read: wait for the close.
    return next === undefined ? this.closed.then(() => null) : next;
  }
  write(bytes: Uint8Array): Promise<void> {
    this.written += bytes.length;
    this.onWrite?.();
    return Promise.resolve();
  }
  close(): void {
    if (this.#done) return;
    this.#done = true;
    this.#close();
  }
}

function bytes(packet: Packet, level: 4 | 5): Uint8Array {
  return encodePacket(packet, level);
}

async function run(level: 4 | 5, messages: number, pubs: number, subs: number) {
  const broker = new Broker({
    listeners: { default: { type: "external" } },
    sys_interval: 0,
  });
  await broker.start();
  try {
    const connect = (clientId: string) =>
      bytes({
        type: PacketType.CONNECT,
        protocolName: "MQTT",
        protocolVersion: level,
        clean: true,
        keepAlive: 0,
        clientId,
      }, level);
    // The subscribers: CONNECT and SUBSCRIBE, then nothing more to read.
    const subscribers: MemoryConnection[] = [];
    let subscribedAt = -1;
    for (let i = 0; i < subs; i++) {
      let subscribed!: () => void;
      const ready = new Promise<void>((resolve) => subscribed = resolve);
      let subReads = 0;
      const sub = new MemoryConnection(() => {
        subReads++;
        if (subReads === 1) {
          const c = connect(`sub${i}`);
          const s = bytes({
            type: PacketType.SUBSCRIBE,
            packetId: 1,
            subscriptions: [{ topic: "bench/#", qos: 0 }],
          }, level);
          const both = new Uint8Array(c.length + s.length);
          both.set(c);
          both.set(s, c.length);
          return Promise.resolve(both);
        }
        return undefined;
      });
      sub.onWrite = () => {
        if (subscribedAt < 0) subscribedAt = sub.written; // CONNACK and SUBACK
        subscribed();
      };
      broker.acceptConnection(sub, "default");
      await ready;
      subscribers.push(sub);
    }
    // Each publisher: CONNECT, then its PUBLISH packets.
    const publish = bytes({
      type: PacketType.PUBLISH,
      topic: "bench/t",
      payload: new Uint8Array(PAYLOAD),
      qos: 0,
      retain: false,
      dup: false,
    }, level);
    // The packets as one stream cut into 64 KiB reads, as a socket hands them over: most reads
    // end inside a packet. The stream repeats after `publish.length` reads.
    const stream = new Uint8Array(publish.length * CHUNK);
    for (let at = 0; at < stream.length; at += publish.length) stream.set(publish, at);
    const chunksEach = Math.ceil((messages / pubs) * publish.length / CHUNK);
    const total = Math.floor((chunksEach * CHUNK) / publish.length) * pubs;
    const target = subscribedAt + total * publish.length;
    let finished!: () => void;
    const done = new Promise<void>((resolve) => finished = resolve);
    let left = subs;
    for (const sub of subscribers) {
      sub.onWrite = () => {
        if (sub.written >= target) {
          sub.onWrite = undefined;
          if (--left === 0) finished();
        }
      };
    }
    const before = process.cpuUsage();
    const started = performance.now();
    const publishers: MemoryConnection[] = [];
    for (let p = 0; p < pubs; p++) {
      let sent = -1;
      const conn = new MemoryConnection(() => {
        sent++;
        if (sent === 0) return Promise.resolve(connect(`pub${p}`));
        if (sent <= chunksEach) {
          const at = ((sent - 1) % publish.length) * CHUNK;
          return Promise.resolve(stream.subarray(at, at + CHUNK));
        }
        return undefined;
      });
      publishers.push(conn);
      broker.acceptConnection(conn, "default");
    }
    await done;
    const wall = performance.now() - started;
    const cpu = process.cpuUsage(before);
    for (const c of publishers) c.close();
    for (const sub of subscribers) sub.close();
    return { total: total * subs, wallMs: wall, cpuMs: (cpu.user + cpu.system) / 1000 };
  } finally {
    await broker.shutdown();
  }
}

const messages = Number(args.values.messages);
const reps = Number(args.values.reps);
const pubs = Number(args.values.pubs);
const subs = Number(args.values.subs);
const levels: (4 | 5)[] = args.values.level === "both"
  ? [4, 5]
  : [Number(args.values.level) as 4 | 5];
const results: Record<number, number[]> = { 4: [], 5: [] };
// One warm-up run per level, then the levels in turn.
for (const level of levels) await run(level, Math.min(messages, 1_000_000), pubs, subs);
for (let r = 0; r < reps; r++) {
  // A B, then B A: what one run leaves behind (garbage a later collection pays for, a warmer
  // cache) does not always fall on the same level.
  for (const level of r % 2 === 0 ? levels : [...levels].reverse()) {
    // With --v8-flags=--expose-gc, each run starts from a collected heap.
    (globalThis as { gc?: () => void }).gc?.();
    const { total, wallMs, cpuMs } = await run(level, messages, pubs, subs);
    const ns = (cpuMs * 1e6) / total;
    results[level]!.push(ns);
    console.log(
      `level ${level}: ${total} ${subs > 1 ? "deliveries" : "messages"}, cpu ${
        cpuMs.toFixed(0)
      } ms (${ns.toFixed(0)} ns/msg), ` +
        `wall ${wallMs.toFixed(0)} ms`,
    );
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const level of levels) {
  const xs = results[level]!;
  console.log(
    `level ${level}: median ${median(xs).toFixed(0)} ns/msg (${Math.min(...xs).toFixed(0)}–${
      Math.max(...xs).toFixed(0)
    })`,
  );
}
if (levels.length === 2) {
  // Each repetition runs both levels back to back: its ratio is the least touched by other work.
  const pairs = results[4]!.map((ns4, i) => ns4 / results[5]![i]!);
  console.log(
    `5.0 ÷ 3.1.1 (messages per CPU-second): ${
      (median(results[4]!) / median(results[5]!)).toFixed(2)
    }× of the medians; per repetition ${median(pairs).toFixed(2)}× (${
      Math.min(...pairs).toFixed(2)
    }–${Math.max(...pairs).toFixed(2)})`,
  );
}

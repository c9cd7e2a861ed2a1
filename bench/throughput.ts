/**
 * Broker throughput: fan-in 8->1 QoS 0, fan-out 1->32 QoS 0, 1->1 QoS 1 and QoS 2, 64-byte payloads,
 * against a broker in its own process. Prints messages per second and per broker-CPU-second.
 *
 * Usage: deno run -A bench/throughput.ts [--port N --pid P]   (default: starts amqtt itself)
 *
 * @module
 */

import { cpuSeconds } from "./_cpu.ts";
import { LoadClient, putAck } from "./_load.ts";

const PAYLOAD = new Uint8Array(64).fill(0x61);

/** One scenario's figures. */
export interface Result {
  name: string;
  count: number;
  seconds: number;
  cpu: number;
}

async function waitFor(cond: () => boolean, idleMs = 3000, progress: () => number): Promise<void> {
  let last = progress(), lastChange = performance.now();
  while (!cond()) {
    await new Promise((r) => setTimeout(r, 5));
    const p = progress();
    if (p !== last) {
      last = p;
      lastChange = performance.now();
    } else if (performance.now() - lastChange > idleMs) return;
  }
}

function publishBatch(topic: string, qos: 0 | 1 | 2, count: number, firstId: number): Uint8Array {
  const one = LoadClient.encode({
    type: 3,
    topic,
    payload: PAYLOAD,
    qos,
    retain: false,
    dup: false,
    packetId: qos ? 1 : undefined,
  });
  const out = new Uint8Array(one.length * count);
  const idAt = 2 + 2 + new TextEncoder().encode(topic).length;
  for (let i = 0; i < count; i++) {
    out.set(one, i * one.length);
    if (qos) {
      const id = ((firstId + i - 1) % 65535) + 1;
      out[i * one.length + idAt] = id >> 8;
      out[i * one.length + idAt + 1] = id & 0xff;
    }
  }
  return out;
}

async function fanIn(port: number, pid: number, total: number): Promise<Result> {
  const sub = await LoadClient.connect(port, "sub");
  await sub.subscribe("bench/in", 0);
  let received = 0;
  sub.onPublish = () => received++;
  sub.start();
  const pubs = await Promise.all([...Array(8)].map((_, i) => LoadClient.connect(port, `pub${i}`)));
  const per = Math.floor(total / 8);
  const batch = publishBatch("bench/in", 0, 500, 1);
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  await Promise.all(pubs.map(async (p) => {
    for (let sent = 0; sent < per; sent += 500) await p.write(batch);
  }));
  await waitFor(() => received >= per * 8, 3000, () => received);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(pid) - cpu0;
  await Promise.all([sub, ...pubs].map((c) => c.close()));
  return { name: "fan-in 8->1 QoS 0", count: received, seconds, cpu };
}

async function fanOut(port: number, pid: number, messages: number): Promise<Result> {
  const subs = await Promise.all([...Array(32)].map((_, i) => LoadClient.connect(port, `s${i}`)));
  let received = 0;
  for (const s of subs) {
    await s.subscribe("bench/out", 0);
    s.onPublish = () => received++;
    s.start();
  }
  const pub = await LoadClient.connect(port, "pub");
  const batch = publishBatch("bench/out", 0, 100, 1);
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  for (let sent = 0; sent < messages; sent += 100) {
    await pub.write(batch);
    // Keep the publisher from running far ahead of the 32 readers on a 2-core machine.
    while (received < (sent - 2000) * 32) await new Promise((r) => setTimeout(r, 1));
  }
  await waitFor(() => received >= messages * 32, 3000, () => received);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(pid) - cpu0;
  await Promise.all([pub, ...subs].map((c) => c.close()));
  return { name: "fan-out 1->32 QoS 0", count: received, seconds, cpu };
}

/** 1->1 at QoS 1 or 2; `persistent`: the subscriber has a persistent session (clean 0). */
export async function oneToOne(
  port: number,
  pid: number,
  qos: 1 | 2,
  messages: number,
  persistent = false,
): Promise<Result> {
  // A persistent session per scenario: what one scenario leaves in flight is not the next's.
  const sub = await LoadClient.connect(port, persistent ? `sub-${qos}` : "sub", !persistent);
  // Persistent: a topic per scenario, else the subscriber of the QoS 1 scenario, offline by
  // then with its subscription kept, would get a queued copy of every QoS 2 message (1->2).
  const topic = persistent ? `bench/${qos}` : "bench/q";
  await sub.subscribe(topic, qos);
  let received = 0;
  const subOut = new Uint8Array(65536);
  let subLen = 0;
  let subFlush: Promise<void> | undefined;
  const flushSub = () => {
    if (subFlush || subLen === 0) return;
    const bytes = subOut.slice(0, subLen);
    subLen = 0;
    subFlush = sub.write(bytes).then(() => {
      subFlush = undefined;
      flushSub();
    });
  };
  sub.onPublish = (_q, id) => {
    received++;
    subLen = putAck(subOut, subLen, qos === 1 ? 4 : 5, id);
    queueMicrotask(flushSub);
  };
  sub.onAck = (type, id) => {
    if (type === 6) {
      subLen = putAck(subOut, subLen, 7, id);
      queueMicrotask(flushSub);
    }
  };
  sub.start();

  const pub = await LoadClient.connect(port, "pub");
  const window = 20; // the broker's default in-flight window
  let inflight = 0, sent = 0, completed = 0;
  const pubOut = new Uint8Array(65536);
  let pubLen = 0;
  let pubFlush: Promise<void> | undefined;
  const flushPub = () => {
    if (pubFlush || pubLen === 0) return;
    const bytes = pubOut.slice(0, pubLen);
    pubLen = 0;
    pubFlush = pub.write(bytes).then(() => {
      pubFlush = undefined;
      flushPub();
    });
  };
  const one = publishBatch(topic, qos, 1, 1);
  const idAt = 2 + 2 + topic.length;
  const fill = () => {
    while (inflight < window && sent < messages) {
      const id = (sent % 65535) + 1;
      pubOut.set(one, pubLen);
      pubOut[pubLen + idAt] = id >> 8;
      pubOut[pubLen + idAt + 1] = id & 0xff;
      pubLen += one.length;
      sent++;
      inflight++;
    }
    queueMicrotask(flushPub);
  };
  pub.onAck = (type, id) => {
    if (type === 4 || type === 7) {
      inflight--;
      completed++;
      fill();
    } else if (type === 5) {
      pubLen = putAck(pubOut, pubLen, 6, id);
      queueMicrotask(flushPub);
    }
  };
  pub.start();
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  fill();
  await waitFor(
    () => received >= messages && completed >= messages,
    3000,
    () => received + completed,
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(pid) - cpu0;
  await Promise.all([pub, sub].map((c) => c.close()));
  return { name: `1->1 QoS ${qos}`, count: received, seconds, cpu };
}

/** Runs every scenario against a broker on `port` whose process is `pid`. */
export async function runThroughput(port: number, pid: number, scale = 1): Promise<Result[]> {
  const results: Result[] = [];
  results.push(await fanIn(port, pid, 400_000 * scale));
  results.push(await fanOut(port, pid, 20_000 * scale));
  results.push(await oneToOne(port, pid, 1, 100_000 * scale));
  results.push(await oneToOne(port, pid, 2, 50_000 * scale));
  return results;
}

/** One result line: msg/s, msg per broker CPU-second, count and time. */
export function format(r: Result): string {
  const rate = Math.round(r.count / r.seconds);
  const perCpu = r.cpu > 0 ? Math.round(r.count / r.cpu) : NaN;
  return `${r.name.padEnd(22)} ${String(rate).padStart(8)} msg/s  ${
    String(perCpu).padStart(8)
  } msg/CPU-s  (${r.count} in ${r.seconds.toFixed(2)} s)`;
}

if (import.meta.main) {
  const args = Deno.args;
  const portArg = args.indexOf("--port");
  let port: number, pid: number;
  let child: Deno.ChildProcess | undefined;
  if (portArg >= 0) {
    port = Number(args[portArg + 1]);
    pid = Number(args[args.indexOf("--pid") + 1]);
  } else {
    child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("./_amqtt_broker.ts", import.meta.url).pathname],
      stdout: "piped",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const { value } = await reader.read();
    reader.releaseLock();
    port = Number(/port (\d+)/.exec(value ?? "")?.[1]);
    pid = child.pid;
  }
  for (const r of await runThroughput(port, pid)) console.log(format(r));
  if (child) {
    child.kill("SIGTERM");
    await child.status;
  }
}

/**
 * PacketChannel over real sockets: batching, double buffering, the outbound bound, byte counters,
 * packets split across reads, holding, close and abort.
 */

import assert from "node:assert/strict";
import { type Packet, PacketDecoder, PacketType } from "../../src/packet/mod.ts";
import { PacketChannel, type PacketChannelOptions } from "../../src/transport/packet_channel.ts";
import { socketConnection } from "../../src/transport/socket.ts";
import type { ByteConnection } from "../../src/transport/types.ts";
import { readConn, within, writeConn } from "./_io.ts";

const PINGREQ = new Uint8Array([0xc0, 0x00]);
const PINGRESP = new Uint8Array([0xd0, 0x00]);

/** A connection that counts the writes handed to the transport. */
class CountingConnection implements ByteConnection {
  writes = 0;
  /** The arrays handed to the transport, in order. */
  written: Uint8Array[] = [];
  /** For each read: whether the caller handed a chunk back to read into. */
  reuses: boolean[] = [];
  readonly #inner: ByteConnection;
  constructor(inner: ByteConnection) {
    this.#inner = inner;
  }
  /** The wrapped connection. */
  get inner(): ByteConnection {
    return this.#inner;
  }
  get info() {
    return this.#inner.info;
  }
  get readable() {
    return this.#inner.readable;
  }
  get closed() {
    return this.#inner.closed;
  }
  read(reuse?: Uint8Array): Promise<Uint8Array | null> {
    this.reuses.push(reuse !== undefined);
    return this.#inner.read!(reuse);
  }
  write(bytes: Uint8Array): Promise<void> {
    this.writes++;
    this.written.push(bytes);
    return this.#inner.write(bytes);
  }
  close(): void {
    this.#inner.close();
  }
}

/** A channel on the accepted side of a loopback connection, and the raw peer socket. */
async function pair(options?: PacketChannelOptions): Promise<
  {
    channel: PacketChannel<Packet>;
    conn: CountingConnection;
    peer: Deno.TcpConn;
    [Symbol.asyncDispose](): Promise<void>;
  }
> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const peer = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  peer.setNoDelay(true);
  const socket = await listener.accept();
  const conn = new CountingConnection(
    socketConnection(socket, { transport: "tcp", remoteAddress: "peer" }),
  );
  const channel = new PacketChannel<Packet>(
    conn,
    new PacketDecoder({ protocolVersion: 4, side: "server" }),
    options,
  );
  return {
    channel,
    conn,
    peer,
    async [Symbol.asyncDispose]() {
      channel.abort();
      await channel.finish();
      try {
        peer.close();
      } catch { /* closed by the test */ }
    },
  };
}

/**
 * Lets pending I/O callbacks and timers run a few times: for a negative check ("nothing more
 * happened"), beside an assertion that the connection is still open, or to let a read started
 * be under way. Never to wait for something to happen: `until` waits for that.
 */
async function turns(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}

/** Resolves once `condition` holds; fails after 10 s (a guard, not a measurement). */
async function until(condition: () => boolean, what: string): Promise<void> {
  await within(
    (async () => {
      while (!condition()) await new Promise((resolve) => setTimeout(resolve, 1));
    })(),
    10_000,
    what,
  );
}

Deno.test("PacketChannel writes everything queued in one turn as one write", async () => {
  await using p = await pair();
  for (let i = 0; i < 200; i++) p.channel.sendPacket({ type: PacketType.PINGRESP }, 4);
  assert.equal(p.conn.writes, 0, "nothing is written before the turn ends");
  assert.equal(p.channel.queuedBytes, 400);
  await p.channel.written();
  assert.equal(p.conn.writes, 1);
  const bytes = await readConn(p.peer, 400);
  for (let i = 0; i < 400; i += 2) assert.deepEqual([...bytes.subarray(i, i + 2)], [0xd0, 0x00]);
  assert.equal(p.channel.bytesSent, 400);
});

Deno.test("PacketChannel: bytes queued on many channels in one turn go out as one write each, by the end of the turn", async () => {
  await using a = await pair();
  await using b = await pair();
  await using c = await pair();
  // A fan-out: each channel queued twice in the same turn, interleaved.
  for (const p of [a, b, c, a, b, c]) p.channel.sendPacket({ type: PacketType.PINGRESP }, 4);
  assert.deepEqual([a.conn.writes, b.conn.writes, c.conn.writes], [0, 0, 0]);
  // The flushes run in one microtask queued by the first commit: before any timer.
  await Promise.resolve();
  assert.deepEqual([a.conn.writes, b.conn.writes, c.conn.writes], [1, 1, 1]);
  // Bytes queued after the flushes ran (a later microtask of the same turn) are flushed too.
  a.channel.send(PINGRESP);
  queueMicrotask(() => b.channel.send(PINGRESP));
  await Promise.all([a.channel.written(), b.channel.written(), c.channel.written()]);
  await turns();
  assert.deepEqual([a.conn.writes, b.conn.writes, c.conn.writes], [2, 2, 1]);
  for (const [p, n] of [[a, 6], [b, 6], [c, 4]] as const) {
    const bytes = await readConn(p.peer, n);
    for (let i = 0; i < n; i += 2) assert.deepEqual([...bytes.subarray(i, i + 2)], [0xd0, 0x00]);
  }
});

Deno.test("PacketChannel: a sink's gate that throws fails that channel's write only; the other channels of the turn are written", async () => {
  await using a = await pair();
  await using b = await pair();
  await using c = await pair();
  const failed: unknown[] = [];
  const broken = new Error("gate broke");
  const runA = a.channel.run({
    receive: () => {},
    gate: () => {
      throw broken;
    },
    writeFailed: (error) => void failed.push(error),
  });
  // One flush microtask for the three channels, a's flush first.
  for (const p of [a, b, c]) p.channel.send(PINGRESP);
  await Promise.all([b.channel.written(), c.channel.written()]);
  for (const p of [b, c]) assert.deepEqual([...await readConn(p.peer, 2)], [...PINGRESP]);
  assert.deepEqual(failed, [broken], "the sink hears of it once, as of a failed write");
  assert.equal(a.channel.writeError, broken);
  assert.equal(a.channel.aborted, true);
  assert.equal(b.channel.closing, false);
  await runA;
});

Deno.test("PacketChannel: a sink's writeFailed that throws is reported once and the channel is aborted all the same", async () => {
  await using p = await pair();
  const broken = new Error("writeFailed broke");
  const reported: unknown[] = [];
  const onError = (event: ErrorEvent) => {
    event.preventDefault();
    reported.push(event.error);
  };
  globalThis.addEventListener("error", onError);
  try {
    const running = p.channel.run({
      receive: () => {},
      writeFailed: () => {
        throw broken;
      },
    });
    // The transport is closed under the channel: its next write fails.
    p.conn.close();
    p.channel.send(PINGRESP);
    await until(() => p.channel.aborted, "the channel is aborted");
    await running;
    await turns();
    assert.ok(p.channel.writeError instanceof Error);
    assert.deepEqual(reported, [broken]);
  } finally {
    globalThis.removeEventListener("error", onError);
  }
});

Deno.test("PacketChannel queues behind a write in flight and sends it as the next write", async () => {
  await using p = await pair();
  p.channel.send(PINGRESP);
  p.channel.flush();
  assert.equal(p.conn.writes, 1, "flush() writes at once");
  // Double buffering: while that write is in flight, new bytes go to the other buffer.
  for (let i = 0; i < 100; i++) p.channel.send(PINGRESP);
  p.channel.flush();
  assert.equal(p.conn.writes, 1, "no second write while one is in flight");
  assert.equal(p.channel.pendingBytes, 202);
  await p.channel.written();
  assert.equal(p.conn.writes, 2);
  assert.equal(p.channel.pendingBytes, 0);
  await readConn(p.peer, 202);
});

Deno.test("PacketChannel.sendShared writes shared bytes as they are when nothing is queued, and never writes into them", async () => {
  await using p = await pair();
  const shared = new Uint8Array([0x20, 0x02, 0x00, 0x00]); // CONNACK 0
  const pristine = shared.slice();
  p.channel.sendShared(shared);
  await p.channel.written();
  assert.equal(p.conn.written[0], shared, "the shared array itself, no buffer made for it");
  // Queued first in a turn, then more bytes after it: the channel copies it into a buffer of its
  // own before appending.
  p.channel.sendShared(shared);
  for (let i = 0; i < 40; i++) p.channel.send(PINGRESP);
  // And after other bytes: copied behind them.
  p.channel.sendShared(shared);
  await p.channel.written();
  // While a write is in flight, shared bytes go to the other buffer.
  p.channel.sendShared(shared);
  p.channel.flush();
  p.channel.sendShared(shared);
  p.channel.send(PINGRESP);
  await p.channel.written();
  assert.deepEqual(shared, pristine, "the shared bytes were never written into");
  const expected = [
    ...pristine,
    ...pristine,
    ...Array.from({ length: 40 }, () => [...PINGRESP]).flat(),
    ...pristine,
    ...pristine,
    ...pristine,
    ...PINGRESP,
  ];
  assert.deepEqual([...await readConn(p.peer, expected.length)], expected);
  assert.equal(p.channel.bytesSent, expected.length);
});

Deno.test("PacketChannel.sendShared never lets shared bytes become the buffer new bytes are written into, however long they are", async () => {
  // flush() keeps its spare buffer for new bytes once it is at least a first buffer long: shared
  // bytes that long, written as they were, became that spare and the next packets were appended
  // into them.
  await using p = await pair();
  const shared = new Uint8Array(64).fill(0x5a);
  const pristine = shared.slice();
  p.channel.sendShared(shared);
  await p.channel.written();
  const expected = [...pristine];
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 3; i++) p.channel.send(PINGRESP);
    await p.channel.written();
    expected.push(...PINGRESP, ...PINGRESP, ...PINGRESP);
  }
  assert.deepEqual(shared, pristine, "the shared bytes were written into");
  assert.deepEqual([...await readConn(p.peer, expected.length)], expected);
});

Deno.test("PacketChannel.abort lets go of shared bytes queued behind a write in flight: a reserve() after it never hands them out", async () => {
  await using p = await pair();
  const shared = new Uint8Array([0x20, 0x02, 0x00, 0x00]); // CONNACK 0
  const pristine = shared.slice();
  p.channel.send(PINGRESP);
  p.channel.flush(); // in flight: the next bytes are queued behind it
  p.channel.sendShared(shared); // no output buffer at hand: queued as they are
  assert.equal(p.channel.queuedBytes, 4);
  p.channel.abort();
  const out = p.channel.reserve(4);
  assert.notEqual(out, shared, "reserve() handed out the shared bytes");
  out.set([1, 2, 3, 4], p.channel.queuedBytes);
  assert.deepEqual(shared, pristine);
});

Deno.test("PacketChannel.writePendingFor counts from the pending write's start, across the wrap of its small-integer clock", async () => {
  await using p = await pair();
  assert.equal(p.channel.writePendingFor(Date.now()), 0, "no write pending");
  const before = Date.now();
  p.channel.send(PINGRESP);
  p.channel.flush();
  const after = Date.now();
  const started = p.channel.writeStarted;
  assert.ok(started >= before && started <= after, `writeStarted ${started}`);
  // The start is kept modulo 2^30 ms (a small integer, no number box per channel): the age is
  // exact later on, past the next multiple of 2^30 too.
  const wrap = 2 ** 30;
  for (const at of [after + 5_000, after - (after % wrap) + wrap + 5]) {
    const age = p.channel.writePendingFor(at);
    assert.ok(age >= at - after && age <= at - before, `age ${age} at ${at}`);
  }
  await p.channel.written();
  assert.equal(p.channel.writePendingFor(Date.now()), 0, "written");
  assert.equal(p.channel.writeStarted, 0);
  await readConn(p.peer, 2);
});

Deno.test("PacketChannel writes a steady flow of one packet size through the same views of its two buffers, each write's own bytes on the wire", async () => {
  await using p = await pair();
  // A publisher's PUBACKs one at a time, as at 5k msg/s QoS 1: every write 4 bytes.
  for (let id = 1; id <= 6; id++) {
    p.channel.sendPacket({ type: PacketType.PUBACK, packetId: id }, 4);
    await p.channel.written();
  }
  const acks = await readConn(p.peer, 24);
  for (let id = 1; id <= 6; id++) {
    assert.deepEqual([...acks.subarray(4 * id - 4, 4 * id)], [0x40, 2, 0, id]);
  }
  const w = p.conn.written;
  assert.equal(w.length, 6);
  // The first write of each buffer makes its view; later writes of the same length reuse it.
  assert.notEqual(w[0], w[1], "the two buffers have views of their own");
  assert.equal(w[2], w[0]);
  assert.equal(w[3], w[1]);
  assert.equal(w[5], w[1]);
  // Another length makes a view of its own; trim() releases the buffers of an idle channel, and
  // their views with them (an idle connection holds no output memory).
  p.channel.sendPacket({ type: PacketType.PINGRESP }, 4);
  await p.channel.written();
  assert.notEqual(w[6], w[0]);
  assert.equal(w[6]!.length, 2);
  p.channel.trim();
  p.channel.trim();
  p.channel.sendPacket({ type: PacketType.PUBACK, packetId: 7 }, 4);
  await p.channel.written();
  assert.notEqual(w[7]!.buffer, w[0]!.buffer, "a fresh buffer after trim()");
  assert.notEqual(w[7]!.buffer, w[1]!.buffer);
  assert.deepEqual([...await readConn(p.peer, 6)], [0xd0, 0, 0x40, 2, 0, 7]);
});

Deno.test("PacketChannel counts bytes both ways, its own and in shared counters", async () => {
  const counters = { bytesReceived: 0, bytesSent: 0 };
  await using p = await pair({ counters });
  let pings = 0;
  const running = p.channel.run({
    receive: (packet) => {
      if (packet.type === PacketType.PINGREQ) {
        pings++;
        p.channel.sendPacket({ type: PacketType.PINGRESP }, 4);
      }
    },
  });
  const three = new Uint8Array([...PINGREQ, ...PINGREQ, ...PINGREQ]);
  await writeConn(p.peer, three);
  assert.deepEqual([...await readConn(p.peer, 6)], [...PINGRESP, ...PINGRESP, ...PINGRESP]);
  assert.equal(pings, 3);
  assert.equal(p.channel.bytesReceived, 6);
  assert.equal(p.channel.bytesSent, 6);
  assert.deepEqual(counters, { bytesReceived: 6, bytesSent: 6 });
  p.peer.close();
  await running;
  assert.equal(p.channel.closing, true, "the peer's close ends the read loop");
});

Deno.test("PacketChannel decodes a packet split across many reads", async () => {
  await using p = await pair();
  const received: Packet[] = [];
  let chunks = 0;
  const running = p.channel.run({
    begin: () => chunks++,
    receive: (packet) => void received.push(packet),
  });
  // PUBLISH QoS 0 to "a/b" with payload "hello", then a PINGREQ, written one byte at a time.
  const publish = [0x30, 10, 0, 3, 0x61, 0x2f, 0x62, 0x68, 0x65, 0x6c, 0x6c, 0x6f];
  for (const byte of [...publish, ...PINGREQ]) {
    await writeConn(p.peer, new Uint8Array([byte]));
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  await until(() => received.length === 2, "both packets decoded");
  assert.ok(chunks > 2, `the bytes came in several reads (${chunks})`);
  const first = received[0]!;
  assert.equal(first.type, PacketType.PUBLISH);
  if (first.type === PacketType.PUBLISH) {
    assert.equal(first.topic, "a/b");
    assert.equal(new TextDecoder().decode(first.payload), "hello");
  }
  assert.equal(received[1]!.type, PacketType.PINGREQ);
  assert.equal(p.channel.bytesReceived, publish.length + 2);
  p.channel.close();
  await running;
});

Deno.test("PacketChannel stops decoding past the outbound bound until the output drains to half", async () => {
  const big = new Uint8Array(16 * 1024 * 1024); // more than loopback socket buffers hold
  let drains = 0;
  await using p = await pair({ maxOutboundBytes: 64 * 1024 });
  let pings = 0;
  const running = p.channel.run({
    receive: () => {
      // The first packet's reply is far over the bound; the others' are small.
      p.channel.send(pings++ === 0 ? big : PINGRESP);
    },
    drained: () => drains++,
  });
  await writeConn(p.peer, new Uint8Array([...PINGREQ, ...PINGREQ, ...PINGREQ]));
  await until(() => pings === 1, "the first packet is handled");
  await turns(20);
  // The peer reads nothing: the other two packets wait, and the connection stays open.
  assert.equal(pings, 1);
  assert.equal(p.channel.closing, false);
  assert.ok(p.channel.pendingBytes > 64 * 1024);
  assert.equal(drains, 0);
  // Once the peer reads, the output drains and the two waiting packets are handled.
  await readConn(p.peer, big.length);
  assert.deepEqual([...await readConn(p.peer, 4)], [...PINGRESP, ...PINGRESP]);
  assert.equal(pings, 3);
  assert.ok(drains > 0);
  p.channel.close();
  await running;
});

Deno.test("PacketChannel.pauseReading() hands over no further packet until resumeReading(); writes go on", async () => {
  await using p = await pair();
  const seen: number[] = [];
  const running = p.channel.run({
    receive: (packet) => {
      seen.push(packet.type);
      // The first packet pauses reading, as the broker's flow control does.
      if (seen.length === 1) p.channel.pauseReading();
    },
  });
  await writeConn(p.peer, new Uint8Array([...PINGREQ, ...PINGREQ, ...PINGREQ]));
  await until(() => seen.length === 1, "the first packet is handed over");
  await turns(10);
  assert.equal(p.channel.readingPaused, true);
  assert.deepEqual(seen, [PacketType.PINGREQ], "the rest of the chunk waits");
  assert.equal(p.channel.closing, false);
  // Output is not paused.
  p.channel.send(PINGRESP);
  assert.deepEqual([...await readConn(p.peer, 2)], [...PINGRESP]);
  p.channel.resumeReading();
  await until(() => seen.length === 3, "the waiting packets follow");
  assert.equal(p.channel.readingPaused, false);
  p.channel.close();
  await running;
});

for (const path of ["read()", "readThen"] as const) {
  Deno.test(`PacketChannel.pauseReading() between chunks hands over nothing the peer sends until resumeReading() (${path})`, async () => {
    await using p = await pair();
    const seen: number[] = [];
    const sink = { receive: (packet: Packet) => void seen.push(packet.type) };
    // run() over the counting connection reads with read(); start() over the socket itself takes
    // its promise-free readThen (the broker's path).
    let running: Promise<void> | undefined;
    let channel = p.channel;
    if (path === "read()") running = p.channel.run(sink);
    else {
      channel = new PacketChannel<Packet>(
        p.conn.inner,
        new PacketDecoder({ protocolVersion: 4, side: "server" }),
      );
      channel.start(sink);
    }
    // Paused while idle, with a read pending (not from inside receive()).
    await turns(2);
    channel.pauseReading();
    await writeConn(p.peer, PINGREQ);
    await until(() => channel.bytesReceived === 2, "the pending read takes the PINGREQ");
    await turns(10);
    assert.deepEqual(seen, [], "a paused channel hands over nothing");
    assert.equal(channel.closing, false);
    channel.resumeReading();
    await until(() => seen.length === 1, "the PINGREQ follows the resume");
    assert.deepEqual(seen, [PacketType.PINGREQ]);
    channel.close();
    await running;
  });
}

Deno.test("PacketChannel.close() ends a paused read loop", async () => {
  await using p = await pair();
  const running = p.channel.run({ receive: () => p.channel.pauseReading() });
  await writeConn(p.peer, new Uint8Array([...PINGREQ, ...PINGREQ]));
  // Paused (by the first packet) before the close: a few turns were not always enough on a loaded
  // machine, and the close then ended a loop that was not paused.
  await until(() => p.channel.readingPaused, "the first packet pauses reading");
  p.channel.close();
  await within(running, 10_000, "close() ends the paused read loop");
  assert.equal(p.channel.closing, true);
});

Deno.test("PacketChannel holds later packets while the sink's promise is pending", async () => {
  await using p = await pair();
  const seen: number[] = [];
  let release!: () => void;
  let begins = 0;
  const running = p.channel.run({
    begin: () => begins++,
    receive: (packet) => {
      seen.push(packet.type);
      if (seen.length === 1) return new Promise<void>((resolve) => release = resolve);
    },
  });
  await writeConn(p.peer, new Uint8Array([...PINGREQ, 0xe0, 0x00])); // PINGREQ, DISCONNECT
  await until(() => seen.length === 1, "the first packet is handed over");
  await turns(10);
  assert.deepEqual(seen, [PacketType.PINGREQ], "the second packet waits");
  assert.equal(p.channel.closing, false);
  const beforeRelease = begins;
  release();
  await until(() => seen.length === 2, "the held packet follows");
  assert.deepEqual(seen, [PacketType.PINGREQ, PacketType.DISCONNECT]);
  assert.ok(begins > beforeRelease, "begin() is called again after the wait");
  p.channel.close();
  await running;
});

Deno.test("PacketChannel notices a peer that goes away while a packet is held", async () => {
  await using p = await pair();
  let held = false;
  const running = p.channel.run({
    receive: () => {
      held = true;
      return new Promise<void>(() => {});
    },
  });
  await writeConn(p.peer, PINGREQ);
  // The packet is held before the peer goes (a few turns were not always enough under load).
  await until(() => held, "the PINGREQ is handed over");
  p.peer.close();
  await within(running, 10_000, "the read loop ends");
  assert.equal(p.channel.closing, true);
});

Deno.test("PacketChannel.close() ends a hold at once, flushes what is queued, then closes", async () => {
  await using p = await pair();
  const running = p.channel.run({
    receive: () => {
      p.channel.send(PINGRESP);
      p.channel.close();
      return new Promise<void>(() => {}); // never settles: close() must end the wait
    },
  });
  await writeConn(p.peer, PINGREQ);
  await within(running, 10_000, "close() ends the read loop");
  await p.channel.finish();
  assert.deepEqual([...await readConn(p.peer, 2)], [...PINGRESP]);
  assert.equal(await p.peer.read(new Uint8Array(1)), null, "then the socket is closed");
});

Deno.test("PacketChannel.abort() drops what is queued, closes at once and releases writers", async () => {
  await using p = await pair();
  p.channel.send(PINGRESP); // queued, not yet written (the turn has not ended)
  const written = p.channel.written();
  p.channel.abort();
  await written;
  assert.equal(p.channel.aborted, true);
  assert.equal(p.conn.writes, 0);
  assert.equal(await p.peer.read(new Uint8Array(2)), null, "the peer sees the end, no bytes");
  p.channel.send(PINGRESP);
  assert.equal(p.channel.queuedBytes, 0, "nothing is queued once aborted");
});

Deno.test("PacketChannel reports a failed write once and aborts", async () => {
  let failures = 0;
  await using p = await pair();
  const running = p.channel.run({ receive: () => {}, writeFailed: () => failures++ });
  p.peer.close();
  await running;
  // Writing to a socket whose peer is gone fails (EPIPE / reset), or the channel is closing.
  const chunk = new Uint8Array(1024 * 1024);
  for (let i = 0; i < 50 && p.channel.writeError === undefined; i++) {
    p.channel.send(chunk);
    p.channel.flush();
    await p.channel.written();
  }
  assert.notEqual(p.channel.writeError, undefined);
  assert.equal(failures, 1);
  assert.equal(p.channel.aborted, true);
});

Deno.test("PacketChannel reads into the same buffer again after packets that keep no view of it", async () => {
  await using p = await pair();
  const received: Packet[] = [];
  const running = p.channel.run({ receive: (packet) => void received.push(packet) });
  // A PINGREQ keeps nothing of its chunk: the next read gets the buffer back.
  await writeConn(p.peer, PINGREQ);
  await until(() => received.length === 1 && p.conn.reuses.length === 2, "PINGREQ read");
  assert.deepEqual(p.conn.reuses, [false, true]);
  // A PUBLISH's payload is a view into its chunk: the next read gets a fresh buffer.
  await writeConn(p.peer, new Uint8Array([0x30, 4, 0, 1, 0x74, 0x21])); // "t", payload "!"
  await until(() => received.length === 2 && p.conn.reuses.length === 3, "PUBLISH read");
  assert.deepEqual(p.conn.reuses, [false, true, false]);
  // Half a packet is moved to the decoder's own buffer: the chunk is free again.
  await writeConn(p.peer, new Uint8Array([0xc0]));
  await until(() => p.conn.reuses.length === 4, "half a PINGREQ read");
  assert.deepEqual(p.conn.reuses, [false, true, false, true]);
  await writeConn(p.peer, new Uint8Array([0x00]));
  await until(() => received.length === 3, "the PINGREQ completed");
  const publish = received[1]!;
  assert.equal(publish.type, PacketType.PUBLISH);
  if (publish.type === PacketType.PUBLISH) {
    assert.deepEqual([...publish.payload], [0x21], "the payload kept its bytes");
  }
  p.channel.close();
  await running;
});

Deno.test("PacketChannel reads into the same buffer again after PUBLISHes the sink released, not after one it kept", async () => {
  await using p = await pair();
  const received: Packet[] = [];
  // The sink releases every PUBLISH but those to topic "k" (kept).
  const running = p.channel.run({
    receive: (packet) => {
      received.push(packet);
      if (packet.type === PacketType.PUBLISH && packet.topic !== "k") p.channel.itemReleased();
    },
  });
  const publish = (topic: number, payload: number) =>
    new Uint8Array([0x30, 4, 0, 1, topic, payload]);
  await writeConn(p.peer, publish(0x74, 0x21)); // "t", payload "!": released
  await until(() => received.length === 1 && p.conn.reuses.length === 2, "first PUBLISH read");
  assert.deepEqual(p.conn.reuses, [false, true]);
  // Two in one chunk, the second kept: the chunk is not read into again.
  await writeConn(p.peer, new Uint8Array([...publish(0x74, 0x22), ...publish(0x6b, 0x23)]));
  await until(() => received.length === 3 && p.conn.reuses.length === 3, "two PUBLISHes read");
  assert.deepEqual(p.conn.reuses, [false, true, false]);
  await writeConn(p.peer, PINGREQ);
  await until(() => received.length === 4, "PINGREQ read");
  const kept = received[2]!;
  assert.equal(kept.type, PacketType.PUBLISH);
  if (kept.type === PacketType.PUBLISH) {
    assert.deepEqual([kept.topic, ...kept.payload], ["k", 0x23], "the kept payload has its bytes");
  }
  p.channel.close();
  await running;
});

Deno.test("PacketChannel holds a write at the sink's gate until it settles, later bytes behind it", async () => {
  await using p = await pair();
  let open!: () => void;
  const gated = new Promise<void>((resolve) => open = resolve);
  let asked = 0;
  const running = p.channel.run({
    receive: () => {},
    gate: () => asked++ === 0 ? gated : undefined,
  });
  p.channel.send(PINGRESP);
  p.channel.flush();
  p.channel.send(PINGRESP); // behind the held write
  p.channel.flush();
  await turns();
  assert.equal(p.conn.writes, 0, "nothing reaches the transport while the gate is shut");
  assert.equal(p.channel.closing, false, "the connection stays open meanwhile");
  open();
  await p.channel.written();
  assert.equal(p.conn.writes, 2);
  assert.deepEqual([...await readConn(p.peer, 4)], [0xd0, 0x00, 0xd0, 0x00]);
  p.peer.close();
  await running;
});

Deno.test("PacketChannel drops a held write when the sink aborts before its gate settles", async () => {
  await using p = await pair();
  let fail!: () => void;
  const gated = new Promise<void>((_, reject) => fail = () => reject(new Error("commit failed")));
  const running = p.channel.run({
    receive: () => {},
    gate: () => gated.catch(() => p.channel.abort()),
  });
  p.channel.send(PINGRESP);
  p.channel.flush();
  const written = p.channel.written();
  fail();
  await written;
  await running;
  assert.equal(p.conn.writes, 0);
  assert.equal(p.channel.aborted, true);
  assert.equal(await p.peer.read(new Uint8Array(2)), null, "the peer sees the end, no bytes");
});

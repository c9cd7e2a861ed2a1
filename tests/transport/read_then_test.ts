/**
 * The promise-free read path over real sockets: `ByteConnection.readThen` on a socket, and
 * `PacketChannel.start`, whose end goes to the sink's `ended` (what the broker's connections use:
 * an idle connection waits with no promise or async frame of its own).
 */

import assert from "node:assert/strict";
import {
  encodePacket,
  MqttPacketError,
  type Packet,
  PacketDecoder,
  PacketType,
} from "../../src/packet/mod.ts";
import { PacketChannel } from "../../src/transport/packet_channel.ts";
import { socketConnection } from "../../src/transport/socket.ts";
import type { ByteConnection, ReadReceiver } from "../../src/transport/types.ts";
import { readConn, within, writeConn } from "./_io.ts";
import { testCerts } from "../_helpers/certs.ts";
import { rng } from "../_helpers/rng.ts";

/** The accepted side of a loopback connection as a ByteConnection, and the raw peer. */
async function pair(
  sharedIdleReads = true,
): Promise<{ conn: ByteConnection; peer: Deno.TcpConn } & AsyncDisposable> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const peer = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  // As the broker's listeners make them (src/transport/tcp.ts).
  const conn = socketConnection(await listener.accept(), {
    transport: "tcp",
    remoteAddress: "peer",
  }, { sharedIdleReads });
  return {
    conn,
    peer,
    [Symbol.asyncDispose]: async () => {
      conn.close();
      try {
        peer.close();
      } catch { /* closed by the test */ }
      await conn.closed;
    },
  };
}

/** One readThen as a promise, for the test's own waiting. */
function readOnce(conn: ByteConnection, reuse?: Uint8Array): Promise<Uint8Array | null> {
  return new Promise((resolve) => conn.readThen!(reuse, { readDone: resolve }));
}

Deno.test("socketConnection readThen hands each chunk to its callback, then null once the peer closes", async () => {
  await using p = await pair();
  await p.peer.write(new Uint8Array([1, 2, 3]));
  const first = await within(readOnce(p.conn), 5000, "the first chunk");
  assert.deepEqual([...first!], [1, 2, 3]);
  // The chunk handed back is read into again.
  await p.peer.write(new Uint8Array([4, 5]));
  const second = await within(readOnce(p.conn, first!), 5000, "the second chunk");
  assert.deepEqual([...second!], [4, 5]);
  assert.equal(second!.buffer, first!.buffer);
  p.peer.close();
  assert.equal(await within(readOnce(p.conn), 5000, "the end"), null);
  assert.equal(p.conn.isClosed, true);
  // Closed already: the callback gets null at once.
  let late: Uint8Array | null | undefined;
  p.conn.readThen!(undefined, { readDone: (chunk) => late = chunk });
  assert.equal(late, null);
});

Deno.test("PacketChannel start hands packets to the sink and tells its ended once the peer closes", async () => {
  await using p = await pair();
  const channel = new PacketChannel(p.conn, new PacketDecoder({ protocolVersion: 4 }));
  const ends: unknown[] = [];
  let ended!: () => void;
  const endedOnce = new Promise<void>((resolve) => ended = resolve);
  channel.start({
    receive: (packet: Packet) => {
      if (packet.type === PacketType.PINGREQ) channel.sendPacket({ type: PacketType.PINGRESP }, 4);
    },
    ended: (error) => {
      ends.push(error);
      ended();
    },
  });
  // Two PINGREQs in one write, a third later.
  await p.peer.write(new Uint8Array([0xc0, 0, 0xc0, 0]));
  assert.deepEqual([...await readConn(p.peer, 4)], [0xd0, 0, 0xd0, 0]);
  await p.peer.write(new Uint8Array([0xc0, 0]));
  assert.deepEqual([...await readConn(p.peer, 2)], [0xd0, 0]);
  assert.equal(ends.length, 0);
  assert.equal(channel.closing, false);
  p.peer.close();
  await within(endedOnce, 5000, "ended");
  assert.deepEqual(ends, [undefined]);
  assert.equal(channel.closing, true);
  assert.equal(channel.bytesReceived, 6);
  await channel.finish();
});

Deno.test("PacketChannel start tells its sink's ended the error of a malformed packet [MQTT-4.8.0-1]", async () => {
  await using p = await pair();
  const channel = new PacketChannel(p.conn, new PacketDecoder({ protocolVersion: 4 }));
  let ended!: (error: unknown) => void;
  const endedWith = new Promise<unknown>((resolve) => ended = resolve);
  channel.start({ receive: () => {}, ended: (error) => ended(error) });
  // A packet of type 0 (reserved) is malformed.
  await p.peer.write(new Uint8Array([0x00, 0x00]));
  const error = await within(endedWith, 5000, "ended");
  assert.ok(error instanceof MqttPacketError);
  // The channel is left open for a last packet, as with run().
  assert.equal(channel.closing, false);
  channel.close();
  await channel.finish();
});

for (const how of ["the peer closes", "a malformed packet"] as const) {
  Deno.test(`PacketChannel start: a sink's ended that throws is called once and its error reported, not lost nor left as an unhandled rejection (${how})`, async () => {
    await using p = await pair();
    const channel = new PacketChannel(p.conn, new PacketDecoder({ protocolVersion: 4 }));
    const broken = new Error("ended broke");
    const reported: unknown[] = [];
    let calls = 0;
    let gotReport!: () => void;
    const reportedOnce = new Promise<void>((resolve) => gotReport = resolve);
    const onError = (event: ErrorEvent) => {
      event.preventDefault();
      reported.push(event.error);
      gotReport();
    };
    globalThis.addEventListener("error", onError);
    try {
      channel.start({
        receive: () => {},
        ended: () => {
          calls++;
          throw broken;
        },
      });
      // A packet of type 0 (reserved) is malformed.
      if (how === "a malformed packet") await p.peer.write(new Uint8Array([0x00, 0x00]));
      else p.peer.close();
      await within(reportedOnce, 5000, "the report");
      // Later turns add nothing (no second call, no second report): a negative check, a few
      // macrotasks in which a second call (from the same read's end) would have come.
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 0));
      assert.equal(calls, 1);
      assert.deepEqual(reported, [broken]);
    } finally {
      globalThis.removeEventListener("error", onError);
      channel.close();
      await channel.finish();
    }
  });
}

Deno.test("PacketChannel start: abort() while a read is pending ends it once, with nothing, and closes the socket", async () => {
  await using p = await pair();
  const channel = new PacketChannel(p.conn, new PacketDecoder({ protocolVersion: 4 }));
  const ends: unknown[] = [];
  let ended!: () => void;
  const endedOnce = new Promise<void>((resolve) => ended = resolve);
  channel.start({
    receive: () => {},
    ended: (error) => {
      ends.push(error);
      ended();
    },
  });
  // One macrotask, so that the read start() issued is under way in the runtime (nothing to
  // observe: the point is abort() during it; abort() before it would pass the test as well).
  await new Promise((resolve) => setTimeout(resolve, 0));
  channel.abort();
  await within(endedOnce, 5000, "ended");
  await within(p.conn.closed, 5000, "the socket closed");
  // Bytes the peer still sends go nowhere, and nothing ends twice.
  try {
    await p.peer.write(new Uint8Array([0xc0, 0]));
  } catch { /* reset by the closed socket */ }
  // A negative check on a socket closed by abort(): a few macrotasks in which a second end or
  // counted bytes would have come.
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(ends, [undefined]);
  assert.equal(channel.bytesReceived, 0);
});

/** A socket's ByteConnection that counts its promise reads and its callback reads. */
class ReadCounting implements ByteConnection {
  reads = 0;
  readThens = 0;
  readonly #inner: ByteConnection;
  constructor(inner: ByteConnection) {
    this.#inner = inner;
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
  get isClosed() {
    return this.#inner.isClosed;
  }
  read(reuse?: Uint8Array): Promise<Uint8Array | null> {
    this.reads++;
    return this.#inner.read!(reuse);
  }
  readThen(reuse: Uint8Array | undefined, to: ReadReceiver): void {
    this.readThens++;
    this.#inner.readThen!(reuse, to);
  }
  write(bytes: Uint8Array): Promise<void> {
    return this.#inner.write(bytes);
  }
  close(): void {
    this.#inner.close();
  }
}

Deno.test("PacketChannel start reads ahead during a hold through readThen, and the read still in flight after it feeds the loop", async () => {
  // A broker's login waiting for a plugin or a cluster's claim holds the channel; the client
  // then stays idle for hours with the read ahead still pending. That read must carry no
  // promise or race reactions: it goes through readThen, as the idle loop's reads do.
  await using p = await pair();
  const conn = new ReadCounting(p.conn);
  const channel = new PacketChannel(conn, new PacketDecoder({ protocolVersion: 4 }));
  const seen: number[] = [];
  let release!: () => void;
  let ended!: () => void;
  const endedOnce = new Promise<void>((resolve) => ended = resolve);
  channel.start({
    receive: (packet: Packet) => {
      seen.push(packet.type);
      if (seen.length === 1) return new Promise<void>((resolve) => release = resolve);
      if (packet.type === PacketType.PINGREQ) channel.sendPacket({ type: PacketType.PINGRESP }, 4);
    },
    ended: () => ended(),
  });
  await p.peer.write(new Uint8Array([0xc0, 0]));
  await within(
    (async () => {
      while (seen.length < 1) await new Promise((resolve) => setTimeout(resolve, 1));
    })(),
    5000,
    "the first packet",
  );
  // Read ahead while held, not handed over yet.
  await p.peer.write(new Uint8Array([0xc0, 0]));
  await within(
    (async () => {
      while (channel.bytesReceived < 4) await new Promise((resolve) => setTimeout(resolve, 1));
    })(),
    5000,
    "the bytes read ahead",
  );
  assert.deepEqual(seen, [PacketType.PINGREQ]);
  release();
  assert.deepEqual([...await readConn(p.peer, 2)], [0xd0, 0]);
  assert.deepEqual(seen, [PacketType.PINGREQ, PacketType.PINGREQ]);
  // The hold ended with a read ahead in flight: the next bytes come through it.
  await p.peer.write(new Uint8Array([0xc0, 0]));
  assert.deepEqual([...await readConn(p.peer, 2)], [0xd0, 0]);
  assert.equal(seen.length, 3);
  assert.equal(channel.closing, false);
  assert.equal(conn.reads, 0, "no promise read");
  assert.ok(conn.readThens >= 3, `${conn.readThens} callback reads`);
  p.peer.close();
  await within(endedOnce, 5000, "ended");
  assert.equal(channel.closing, true);
  await channel.finish();
});

/** Reads until `total` bytes came, handing each chunk back; the chunks' lengths and buffers. */
async function readAll(conn: ByteConnection, total: number, reuse?: Uint8Array) {
  const chunks: Uint8Array[] = [];
  let got = 0;
  while (got < total) {
    const chunk = (await within(readOnce(conn, reuse), 5000, "a chunk of the burst"))!;
    chunks.push(chunk);
    got += chunk.length;
    reuse = chunk;
  }
  return chunks;
}

Deno.test("socketConnection after a burst waits for the next bytes in a 256-byte slot, not in the burst's large buffer", async () => {
  await using p = await pair();
  // 20,000 bytes waiting at once: reads of 256, 512, … 8,192 come back full, then one of 16,384
  // takes the last 3,872 (the socket drained).
  await writeConn(p.peer, new Uint8Array(20_000).fill(1));
  const burst = await readAll(p.conn, 20_000);
  assert.deepEqual(burst.map((c) => c.length), [256, 512, 1024, 2048, 4096, 8192, 3872]);
  assert.equal(burst.at(-1)!.buffer.byteLength, 16384);
  // The connection goes quiet: its pending read holds a slot of a shared slab (8 KiB, 32 slots of
  // 256 bytes, none at offset 0), not a buffer of 16 KiB of its own.
  const pending = readOnce(p.conn, burst.at(-1));
  await writeConn(p.peer, new Uint8Array([7, 7]));
  const quiet = (await within(pending, 5000, "the quiet read"))!;
  assert.deepEqual([...quiet], [7, 7]);
  assert.ok(quiet.byteOffset > 0, "a slot, not a buffer of its own");
  assert.equal(quiet.buffer.byteLength, 32 * 256);
  // The read size is not forgotten: once that small read fills, the next one is large again.
  await writeConn(p.peer, new Uint8Array(5000).fill(2));
  const again = await readAll(p.conn, 5000, quiet);
  assert.deepEqual(again.map((c) => c.length), [256, 4744]);
  assert.ok(again[1]!.buffer.byteLength >= 8192, "a large read after the small one filled");
});

Deno.test("socketConnection: a broker socket's large buffer, given up while its socket is quiet, serves the next large read", async () => {
  await using p = await pair();
  // Full reads of 256, 512, 1,024 and 2,048, then one of 4,096 that takes 1,500 (the socket is
  // drained, the read size stays 4,096: not less than a quarter full).
  await writeConn(p.peer, new Uint8Array(3840 + 1500).fill(1));
  const burst = await readAll(p.conn, 3840 + 1500);
  assert.deepEqual(burst.map((c) => c.length), [256, 512, 1024, 2048, 1500]);
  const large = burst.at(-1)!.buffer;
  // Quiet: the read waits in a slot and the 4 KiB buffer, handed back, is spare.
  const pending = readOnce(p.conn, burst.at(-1));
  await writeConn(p.peer, new Uint8Array(300).fill(3));
  const small = (await within(pending, 5000, "the small read"))!;
  assert.equal(small.length, 256);
  assert.ok(small.byteOffset > 0);
  // That read filled: the next one is of 4,096 again, into the spare buffer, not a fresh one.
  const next = (await within(readOnce(p.conn, small), 5000, "the large read"))!;
  assert.deepEqual([...next], new Array(44).fill(3));
  assert.equal(next.buffer, large);
});

Deno.test("socketConnection halves its read size after a large read less than a quarter full, and reads twice that after a full one", async () => {
  await using p = await pair();
  await writeConn(p.peer, new Uint8Array(3840 + 100).fill(1));
  const burst = await readAll(p.conn, 3840 + 100);
  // 100 bytes in a read of 4,096: the size goes down to 2,048.
  assert.deepEqual(burst.map((c) => c.length), [256, 512, 1024, 2048, 100]);
  await writeConn(p.peer, new Uint8Array(256 + 2048 + 4096 + 10).fill(2));
  const after = await readAll(p.conn, 256 + 2048 + 4096 + 10, burst.at(-1));
  assert.deepEqual(after.map((c) => c.length), [256, 2048, 4096, 10]);
});

Deno.test("socketConnection idle connections read into slots of shared slabs from their first read, none at offset 0, each its own bytes", async () => {
  const pairs: Awaited<ReturnType<typeof pair>>[] = [];
  try {
    for (let i = 0; i < 40; i++) pairs.push(await pair());
    // The first read (a CONNECT, in the broker) goes into a slot too: no ArrayBuffer of its own
    // per connection. Not handed back here (a CONNECT that keeps views into its chunk).
    const firsts = pairs.map((p) => readOnce(p.conn));
    await Promise.all(pairs.map((p, i) => p.peer.write(new Uint8Array([100 + i]))));
    const firstChunks = await within(Promise.all(firsts), 5000, "the first chunks");
    firstChunks.forEach((c, i) => {
      assert.deepEqual([...c!], [100 + i], `connection ${i}'s first byte`);
      assert.ok(c!.byteOffset > 0, "a slot, not a buffer of its own");
      assert.equal(c!.buffer.byteLength, 32 * 256);
    });
    assert.ok(new Set(firstChunks.map((c) => c!.buffer)).size <= 3, "first reads share slabs");
    // Then every read pending at once, as in idle connections; each peer sends its own bytes.
    const reads = pairs.map((p) => readOnce(p.conn));
    await Promise.all(pairs.map((p, i) => p.peer.write(new Uint8Array([i, i, i]))));
    const chunks = await within(Promise.all(reads), 5000, "every chunk");
    chunks.forEach((c, i) => assert.deepEqual([...c!], [i, i, i], `connection ${i}'s bytes`));
    // A buffer of its own would be 40 buffers; slots of 31 a slab, two or three slabs.
    const buffers = new Set(chunks.map((c) => c!.buffer));
    assert.ok(buffers.size <= 3, `${buffers.size} buffers for 40 idle reads`);
    assert.ok(chunks.every((c) => c!.byteOffset > 0), "no slot at offset 0");
    // A chunk handed back is read into again in its own slot.
    await pairs[1]!.peer.write(new Uint8Array([7]));
    const again = await within(readOnce(pairs[1]!.conn, chunks[1]!), 5000, "the next chunk");
    assert.deepEqual([...again!], [7]);
    assert.equal(again!.buffer, chunks[1]!.buffer);
    assert.equal(again!.byteOffset, chunks[1]!.byteOffset);
    assert.deepEqual([...chunks[0]!], [0, 0, 0], "the neighbouring slot untouched");
    // The first chunks, not handed back, were never read into again.
    firstChunks.forEach((c, i) => assert.deepEqual([...c!], [100 + i], `first chunk ${i} kept`));
  } finally {
    for (const p of pairs) await p[Symbol.asyncDispose]();
  }
});

Deno.test("socketConnection over TLS: idle reads of many connections share slabs, each chunk holds its own connection's bytes, a held one stays untouched", async () => {
  // Deno.listenTls's sockets go through socketConnection too: their idle reads are slots of the
  // shared slabs (src/transport/socket.ts). Each peer writes only its own byte value, in pieces;
  // half the connections hand every chunk back (read into the same slot again), the other half
  // keep theirs (the next read takes a new slot), and the kept ones are checked again at the end,
  // after every other connection has read into its neighbouring slots. One connection closes
  // with its read pending.
  const certs = await testCerts();
  using listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: certs.serverCert,
    key: certs.serverKey,
  });
  const N = 40, ROUNDS = 4;
  const random = rng(77);
  const peers: Deno.TlsConn[] = [];
  const conns: ByteConnection[] = [];
  try {
    for (let i = 0; i < N; i++) {
      const [peer, accepted] = await Promise.all([
        Deno.connectTls({ hostname: "127.0.0.1", port: listener.addr.port, caCerts: [certs.ca] }),
        listener.accept(),
      ]);
      peers.push(peer);
      conns.push(
        socketConnection(accepted, { transport: "tls", remoteAddress: `peer${i}` }, {
          sharedIdleReads: true,
        }),
      );
    }
    const held: { i: number; chunk: Uint8Array }[] = [];
    const check = (i: number, chunk: Uint8Array, when: string) => {
      const other = chunk.findIndex((b) => b !== i + 1);
      assert.equal(other, -1, `${when}: connection ${i}'s chunk has ${chunk[other]} at ${other}`);
    };
    /** Reads `n` bytes from connection `i`, handing chunks back or keeping them. */
    const readAll = async (i: number, n: number, last: Uint8Array | undefined) => {
      let reuse = last;
      while (n > 0) {
        const chunk = await within(readOnce(conns[i], reuse), 10_000, `connection ${i}`);
        assert.ok(chunk !== null, `connection ${i} ended`);
        check(i, chunk, "on arrival");
        n -= chunk.length;
        if (i % 2 === 0) reuse = chunk;
        else held.push({ i, chunk });
      }
      return reuse;
    };
    // First reads (the CONNECT's, a buffer of its own), then rounds of idle-sized writes.
    const lasts = await Promise.all(conns.map(async (_, i) => {
      await writeConn(peers[i], new Uint8Array(3).fill(i + 1));
      return await readAll(i, 3, undefined);
    }));
    for (let r = 0; r < ROUNDS; r++) {
      const lengths = conns.map(() => 1 + Math.floor(random() * 300));
      const reads = conns.map((_, i) => readAll(i, lengths[i], lasts[i]));
      for (let i = 0; i < N; i++) {
        const bytes = new Uint8Array(lengths[i]).fill(i + 1);
        const cut = Math.floor(random() * bytes.length);
        await writeConn(peers[i], bytes.subarray(0, cut));
        await writeConn(peers[i], bytes.subarray(cut));
      }
      (await Promise.all(reads)).forEach((last, i) => lasts[i] = last);
    }
    // A connection whose peer goes while its read is pending in a slot; the others go on.
    const pending = readOnce(conns[1], undefined);
    peers[1].close();
    assert.equal(await within(pending, 10_000, "the end"), null);
    await writeConn(peers[2], new Uint8Array(5).fill(3));
    check(2, (await readAll(2, 5, lasts[2]))!, "after a neighbour closed");
    for (const { i, chunk } of held) check(i, chunk, "at the end");
    // The idle reads did go into slots of shared 8 KiB slabs.
    const slots = held.filter(({ chunk }) => chunk.buffer.byteLength === 8192);
    assert.ok(slots.length > N / 2, `${slots.length} chunks in slabs`);
    assert.ok(slots.every(({ chunk }) => chunk.byteOffset > 0 && chunk.byteOffset % 256 === 0));
  } finally {
    for (const conn of conns) conn.close();
    await Promise.all(conns.map((conn) => conn.closed));
    for (const peer of peers) {
      try {
        peer.close();
      } catch { /* closed by the test */ }
    }
  }
});

Deno.test("socketConnection without sharedIdleReads (a client's socket) reads idle chunks into buffers of its own: a payload's buffer holds no other connection's bytes", async () => {
  const pairs: Awaited<ReturnType<typeof pair>>[] = [];
  try {
    for (let i = 0; i < 4; i++) pairs.push(await pair(false));
    const firsts = pairs.map((p) => readOnce(p.conn));
    await Promise.all(pairs.map((p) => p.peer.write(new Uint8Array([9]))));
    await within(Promise.all(firsts), 5000, "the first chunks");
    const reads = pairs.map((p) => readOnce(p.conn));
    await Promise.all(pairs.map((p, i) => p.peer.write(new Uint8Array([i + 1, i + 1]))));
    const chunks = await within(Promise.all(reads), 5000, "every chunk");
    chunks.forEach((c, i) => {
      assert.deepEqual([...c!], [i + 1, i + 1]);
      assert.equal(c!.byteOffset, 0);
      // The whole buffer behind the chunk: its bytes and zeros, nobody else's.
      const whole = new Uint8Array(c!.buffer);
      assert.equal(whole.length, 256);
      assert.ok(whole.every((b, at) => b === (at < 2 ? i + 1 : 0)), `connection ${i}'s buffer`);
    });
  } finally {
    for (const p of pairs) await p[Symbol.asyncDispose]();
  }
});

Deno.test("socketConnection: a stream of 300-byte messages, each sent once the one before was read, takes one read per message, not two", async () => {
  await using p = await pair();
  // Each message arrives on a drained socket, as a request does when its sender waits for the
  // reply. A read that waits in 256 bytes fills and needs a second one for the last 44: after the
  // first such message the waiting read is made larger, up to what the message needs.
  let reuse: Uint8Array | undefined;
  const reads: number[] = [];
  for (let m = 0; m < 12; m++) {
    await writeConn(p.peer, new Uint8Array(300).fill(m + 1));
    const chunks = await readAll(p.conn, 300, reuse);
    reads.push(chunks.length);
    assert.ok(chunks.every((c) => c.every((b) => b === m + 1)), `message ${m}'s bytes`);
    reuse = chunks.at(-1);
  }
  assert.deepEqual(reads.slice(2), new Array(10).fill(1), `reads per message: ${reads}`);
  // Quiet after them: the pending read holds what one such message needs, not more.
  const pending = readOnce(p.conn, reuse);
  await writeConn(p.peer, new Uint8Array([9, 9]));
  const quiet = (await within(pending, 5000, "the quiet read"))!;
  assert.deepEqual([...quiet], [9, 9]);
  assert.ok(quiet.buffer.byteLength <= 512, `${quiet.buffer.byteLength} bytes held`);
});

Deno.test("socketConnection: messages of 1,500 bytes take one read each once the waiting read has grown, and a burst still leaves a 256-byte slot", async () => {
  await using p = await pair();
  let reuse: Uint8Array | undefined;
  const reads: number[] = [];
  for (let m = 0; m < 10; m++) {
    await writeConn(p.peer, new Uint8Array(1500).fill(m + 1));
    const chunks = await readAll(p.conn, 1500, reuse);
    reads.push(chunks.length);
    reuse = chunks.at(-1);
  }
  // 256 → 512 → 1,024 → 2,048: from the fourth message on, one read each.
  assert.deepEqual(reads.slice(4), new Array(6).fill(1), `reads per message: ${reads}`);
  // A burst of many reads: the next waiting read is a slot of 256 bytes again (issue #15).
  await writeConn(p.peer, new Uint8Array(40_000).fill(7));
  const burst = await readAll(p.conn, 40_000, reuse);
  assert.ok(burst.length > 2, `${burst.length} reads`);
  const pending = readOnce(p.conn, burst.at(-1));
  await writeConn(p.peer, new Uint8Array([9]));
  const quiet = (await within(pending, 5000, "the quiet read"))!;
  assert.deepEqual([...quiet], [9]);
  assert.ok(quiet.byteOffset > 0, "a slot, not a buffer of its own");
  assert.equal(quiet.buffer.byteLength, 32 * 256);
});

Deno.test("PacketChannel over a broker socket: PUBLISHes split at every byte around the 256-byte waiting read come whole, the split-packet buffer kept while half a packet waits in it", async () => {
  // A hostile or slow peer writes part of a packet, waits until it is read (the channel's next
  // read then most likely waits, and the decoder is trimmed with half a packet in its buffer),
  // then the rest and a second packet. Splits around 256 (the waiting read) and 512 (the read
  // after a full one).
  const payload = new Uint8Array(700).map((_, i) => (i * 7 + 3) & 0xff);
  const splits = [1, 2, 3, 4, 5, 250, 254, 255, 256, 257, 258, 300, 510, 511, 512, 513, 514, 705];
  for (const split of splits) {
    await using p = await pair();
    const channel = new PacketChannel(p.conn, new PacketDecoder({ protocolVersion: 4 }));
    const got: Packet[] = [];
    let arrived!: () => void;
    let both = new Promise<void>((resolve) => arrived = resolve);
    channel.start({
      receive: (packet: Packet) => {
        got.push(
          packet.type === PacketType.PUBLISH
            ? { ...packet, payload: packet.payload.slice() }
            : packet,
        );
        if (got.length === 2) arrived();
      },
    });
    const publish = encodePacket({
      type: PacketType.PUBLISH,
      topic: "t",
      qos: 0,
      retain: false,
      dup: false,
      payload,
    }, 4);
    await writeConn(p.peer, publish.subarray(0, split));
    // Until the channel has read those bytes (its next read pending).
    while (channel.bytesReceived < split) await new Promise((resolve) => setTimeout(resolve, 1));
    await new Promise((resolve) => setTimeout(resolve, 1));
    const rest = new Uint8Array(publish.length - split + 2);
    rest.set(publish.subarray(split));
    rest.set([0xc0, 0], rest.length - 2);
    await writeConn(p.peer, rest);
    await within(both, 5000, `both packets (split at ${split})`);
    both = Promise.resolve();
    const first = got[0] as Packet & { payload: Uint8Array };
    assert.equal(first.type, PacketType.PUBLISH, `split at ${split}`);
    assert.deepEqual(first.payload, payload, `split at ${split}: the payload`);
    assert.equal(got[1]!.type, PacketType.PINGREQ, `split at ${split}`);
    assert.equal(channel.closing, false);
    channel.close();
    await channel.finish();
  }
});

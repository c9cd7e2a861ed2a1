/**
 * The promise-free write of plain sockets (`ByteConnection.writeThen`), which every broker
 * connection's PacketChannel uses: partial writes completed, a failure reported once, a write after
 * close refused, and writes through `write()` and `writeThen()` in flight together.
 */

import assert from "node:assert/strict";
import { type Packet, PacketDecoder } from "../../src/packet/mod.ts";
import { PacketChannel } from "../../src/transport/packet_channel.ts";
import { socketConnection } from "../../src/transport/socket.ts";
import type { ByteConnection } from "../../src/transport/types.ts";

/** A socketConnection on the accepted side of a loopback connection, and the raw peer socket. */
async function pair(): Promise<
  { conn: ByteConnection; peer: Deno.TcpConn; [Symbol.asyncDispose](): Promise<void> }
> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const peer = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const conn = socketConnection(await listener.accept(), { transport: "tcp", remoteAddress: "p" });
  return {
    conn,
    peer,
    async [Symbol.asyncDispose]() {
      conn.close();
      await conn.closed;
      try {
        peer.close();
      } catch { /* closed by the test */ }
    },
  };
}

/** Reads exactly `n` bytes from the peer. */
async function readAll(peer: Deno.TcpConn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const r = await peer.read(out.subarray(got));
    if (r === null) throw new Error(`the peer saw the end after ${got} of ${n} bytes`);
    got += r;
  }
  return out;
}

Deno.test("socketConnection.writeThen writes all of a buffer larger than one system call takes, then settles once without an error", async () => {
  await using p = await pair();
  // 32 MiB: conn.write takes a few MB per call here, so the rest goes through the loop.
  const bytes = new Uint8Array(32 * 1024 * 1024);
  for (let i = 0; i < bytes.length; i += 4096) bytes[i] = (i >> 12) & 255;
  const settled: unknown[] = [];
  const done = new Promise<void>((resolve) =>
    p.conn.writeThen!(bytes, {
      writeSettled(error) {
        settled.push(error);
        resolve();
      },
    })
  );
  const received = await readAll(p.peer, bytes.length);
  await done;
  assert.deepEqual(settled, [undefined]);
  for (let i = 0; i < bytes.length; i += 4096) assert.equal(received[i], (i >> 12) & 255);
});

Deno.test("socketConnection.writeThen after close settles with an error and writes nothing", async () => {
  await using p = await pair();
  p.conn.close();
  const error = await new Promise<unknown>((resolve) =>
    p.conn.writeThen!(new Uint8Array([0xd0, 0]), { writeSettled: resolve })
  );
  assert.ok(error instanceof Deno.errors.BadResource);
  assert.equal(await p.peer.read(new Uint8Array(2)), null, "the peer sees the end, no bytes");
});

Deno.test("socketConnection settles write() and writeThen() in flight together, each once, and writes all their bytes", async () => {
  await using p = await pair();
  const a = new Uint8Array(3 * 1024 * 1024).fill(1);
  const b = new Uint8Array(3 * 1024 * 1024).fill(2);
  const c = new Uint8Array(1024).fill(3);
  const settled: string[] = [];
  const first = new Promise<void>((resolve) =>
    p.conn.writeThen!(a, {
      writeSettled(e) {
        settled.push(`a ${e}`);
        resolve();
      },
    })
  );
  const second = p.conn.write(b).then(() => void settled.push("b"));
  const third = new Promise<void>((resolve) =>
    p.conn.writeThen!(c, {
      writeSettled(e) {
        settled.push(`c ${e}`);
        resolve();
      },
    })
  );
  const received = await readAll(p.peer, a.length + b.length + c.length);
  await Promise.all([first, second, third]);
  assert.deepEqual(settled.sort(), ["a undefined", "b", "c undefined"]);
  // Every byte of each arrives (writes in flight together may interleave: the channel never
  // makes them, it writes one at a time).
  assert.equal(received[0], 1, "the first write's first system call went first");
  assert.equal(received.filter((x) => x === 1).length, a.length);
  assert.equal(received.filter((x) => x === 2).length, b.length);
  assert.equal(received.filter((x) => x === 3).length, c.length);
});

Deno.test("PacketChannel over a plain socket reports a failed write once and aborts", async () => {
  await using p = await pair();
  let failures = 0;
  const channel = new PacketChannel<Packet>(
    p.conn,
    new PacketDecoder({ protocolVersion: 4, side: "server" }),
  );
  const running = channel.run({ receive: () => {}, writeFailed: () => failures++ });
  p.peer.close();
  await running;
  // Writing to a socket whose peer is gone fails (EPIPE / reset), or the channel is closing.
  const chunk = new Uint8Array(1024 * 1024);
  for (let i = 0; i < 50 && channel.writeError === undefined; i++) {
    channel.send(chunk);
    channel.flush();
    await channel.written();
  }
  assert.notEqual(channel.writeError, undefined);
  assert.equal(failures, 1);
  assert.equal(channel.aborted, true);
  await channel.finish();
});

Deno.test("PacketChannel over a plain socket writes a large output whole and resolves written()", async () => {
  await using p = await pair();
  const channel = new PacketChannel<Packet>(
    p.conn,
    new PacketDecoder({ protocolVersion: 4, side: "server" }),
  );
  const running = channel.run({ receive: () => {} });
  const chunk = new Uint8Array(8 * 1024 * 1024).fill(7);
  channel.send(chunk);
  const written = channel.written();
  const received = await readAll(p.peer, chunk.length);
  await written;
  assert.equal(channel.bytesSent, chunk.length);
  assert.ok(received.every((x) => x === 7));
  channel.close();
  p.peer.close();
  await running;
  await channel.finish();
});

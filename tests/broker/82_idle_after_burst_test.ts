// Broker, area 82: a connection that goes quiet after a burst keeps no more buffers than one that
// was always idle. Its pending read waits in a 256-byte slot rather than in the burst's large read
// buffer (up to 64 KiB, src/transport/socket.ts), and its decoder lets go of the buffer that
// gathered packets split across reads (PacketDecoder.trim). Here (400 connections, 64 KiB each,
// busy machine, 2026-12-07): 40,495 B of buffers more per connection than before its burst at
// 8cb7ba5, 8,321 B with the small read alone (the decoder's buffer), 476 B with both (a new slot,
// and the spare buffers that src/transport/socket.ts shares among broker sockets, at most 512 KiB
// in all). Measured in a broker of its own process, after compacting collections.

import assert from "node:assert/strict";
import { encodePacket, PacketType } from "../../src/packet/mod.ts";
import { BrokerProcess } from "../_helpers/memory_broker_process.ts";
import { openIdle } from "./_idle.ts";

/** 16 PUBLISHes QoS 0 of about 4 KB (no subscriber), then a PINGREQ: one write. */
function burst(i: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let k = 0; k < 16; k++) {
    parts.push(encodePacket({
      type: PacketType.PUBLISH,
      topic: `burst/${i}`,
      qos: 0,
      retain: false,
      dup: false,
      payload: new Uint8Array(4000).fill(k),
    }, 4));
  }
  parts.push(new Uint8Array([0xc0, 0]));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Writes all of `bytes`, then reads the PINGRESP: the broker has read everything before it. */
async function burstThenPing(conn: Deno.TcpConn, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) done += await conn.write(bytes.subarray(done));
  const pingresp = new Uint8Array(2);
  for (let got = 0; got < 2;) {
    const n = await conn.read(pingresp.subarray(got));
    if (n === null) throw new Error("the broker closed a connection during its burst");
    got += n;
  }
  assert.deepEqual([...pingresp], [0xd0, 0]);
}

Deno.test({
  name:
    "82 idle after a burst: a connection quiet after 64 KiB of PUBLISHes keeps less than 2,048 bytes of buffers more than before its burst",
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    const N = 400;
    await using broker = await BrokerProcess.start({});
    const conns: Deno.TcpConn[] = [];
    try {
      for (let first = 0; first < N; first += 100) {
        conns.push(
          ...await Promise.all(
            Array.from({ length: 100 }, (_, i) => openIdle(broker.port, `burst-${first + i}`)),
          ),
        );
      }
      const before = await broker.measure(true);
      for (let first = 0; first < N; first += 50) {
        await Promise.all(
          conns.slice(first, first + 50).map((c, i) => burstThenPing(c, burst(first + i))),
        );
      }
      const after = await broker.measure(true);
      // Every connection is still there, quiet.
      assert.equal(after.connected, N);
      const buffers = (after.external - before.external) / N;
      assert.ok(buffers < 2048, `${buffers.toFixed(0)} B of buffers more per connection`);
    } finally {
      for (const c of conns) c.close();
    }
  },
});

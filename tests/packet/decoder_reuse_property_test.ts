// PacketDecoder with a reader that reads into the same buffer again whenever `chunkReleased` says
// so (as PacketChannel and the TCP socket do), and a caller that keeps some packets' views and
// releases others: over many random streams and chunkings, a view kept is never overwritten, and
// every packet decodes to what was sent.

import assert from "node:assert/strict";
import {
  encodePacket,
  type Packet,
  PacketDecoder,
  PacketType,
  type ProtocolVersion,
} from "../../src/packet/mod.ts";
import { rng } from "../_helpers/rng.ts";

function packets(random: () => number, count: number, version: ProtocolVersion): Packet[] {
  const out: Packet[] = [];
  for (let i = 0; i < count; i++) {
    const kind = random();
    if (kind < 0.7) {
      const length = random() < 0.1 ? Math.floor(random() * 3000) : Math.floor(random() * 120);
      const payload = new Uint8Array(length);
      for (let j = 0; j < length; j++) payload[j] = (i * 31 + j) & 0xff;
      const qos = random() < 0.5 ? 0 : 1;
      const withProperties = version === 5 && random() < 0.2;
      out.push({
        type: PacketType.PUBLISH,
        topic: `t/${i % 7}`,
        payload,
        qos,
        retain: false,
        dup: false,
        ...(qos > 0 ? { packetId: (i % 60000) + 1 } : {}),
        ...(withProperties ? { properties: { contentType: "x" } } : {}),
      } as Packet);
    } else if (kind < 0.85) out.push({ type: PacketType.PINGREQ });
    else out.push({ type: PacketType.PUBACK, packetId: (i % 60000) + 1 } as Packet);
  }
  return out;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function run(seed: number, version: ProtocolVersion): void {
  const random = rng(seed);
  const sent = packets(random, 400, version);
  const bytes = new Uint8Array(sent.flatMap((p) => [...encodePacket(p, version)]));
  const decoder = new PacketDecoder({ protocolVersion: version });
  /** Views kept by the caller, with the bytes they must still hold. */
  const kept: { view: Uint8Array; expected: Uint8Array; index: number }[] = [];
  const got: Packet[] = [];
  let buffer: Uint8Array | undefined;
  let reusable = false;
  const maxRead = [16, 100, 700, 5000][seed % 4]!;
  for (let at = 0; at < bytes.length;) {
    const n = Math.min(1 + Math.floor(random() * maxRead), bytes.length - at);
    // The reader: the same buffer again when the decoder let go of it (scribbled over first, as a
    // read that fills only part of it leaves the rest as it was), else a fresh one.
    if (!reusable || buffer === undefined || buffer.length < n) buffer = new Uint8Array(maxRead);
    else buffer.fill(0xee);
    buffer.set(bytes.subarray(at, at + n));
    at += n;
    decoder.push(buffer.subarray(0, n));
    for (let p = decoder.next(); p !== undefined; p = decoder.next()) {
      const index = got.length;
      got.push(p);
      if (p.type === PacketType.PUBLISH) {
        // The broker releases most PUBLISHes (once routed, their payload copied where kept).
        if (random() < 0.3) kept.push({ view: p.payload, expected: p.payload.slice(), index });
        else {
          got[index] = { ...p, payload: p.payload.slice() };
          decoder.release();
        }
      }
    }
    reusable = decoder.chunkReleased;
    for (const k of kept) {
      if (!same(k.view, k.expected)) assert.fail(`seed ${seed}: kept payload of packet ${k.index}`);
    }
  }
  assert.equal(got.length, sent.length, `seed ${seed}`);
  for (let i = 0; i < sent.length; i++) {
    const a = got[i] as { payload?: Uint8Array };
    const b = sent[i] as { payload?: Uint8Array };
    assert.equal(got[i]!.type, sent[i]!.type, `seed ${seed}: packet ${i}`);
    if (b.payload !== undefined) {
      assert.deepEqual(a.payload, b.payload, `seed ${seed}: payload of packet ${i}`);
    }
  }
  for (const k of kept) assert.deepEqual(k.view, k.expected, `seed ${seed}: packet ${k.index}`);
}

Deno.test("PacketDecoder: a reader that reads into released chunks never overwrites a view kept, at 3.1.1", () => {
  for (let seed = 1; seed <= 100; seed++) run(seed, 4);
});

Deno.test("PacketDecoder: a reader that reads into released chunks never overwrites a view kept, at 5.0", () => {
  for (let seed = 1; seed <= 100; seed++) run(seed, 5);
});

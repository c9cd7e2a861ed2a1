// PacketDecoder: the buffer a packet split across chunks is gathered in. A slow peer's small reads
// get a buffer under 1 KiB (glibc's malloc merges every freed small chunk before a request of
// 1,008 bytes or more: a stall of the broker's main thread); a busy peer's larger reads get 16 KiB,
// to which its next chunks are appended.

import assert from "node:assert/strict";
import {
  encodePacket,
  PacketDecoder,
  PacketType,
  type PublishPacket,
} from "../../src/packet/mod.ts";

/** Ten 72-byte QoS 0 PUBLISH packets in a row, as a paced publisher sends them. */
function stream(count: number): Uint8Array {
  const one = encodePacket({
    type: PacketType.PUBLISH,
    topic: "lg/0",
    payload: new Uint8Array(64).fill(7),
    qos: 0,
    retain: false,
    dup: false,
  }, 4);
  const all = new Uint8Array(one.length * count);
  for (let i = 0; i < count; i++) all.set(one, i * one.length);
  return all;
}

/** Decodes `bytes` pushed in chunks of `size`, returning every PUBLISH. */
function decodeInChunks(bytes: Uint8Array, size: number): PublishPacket[] {
  const decoder = new PacketDecoder({ protocolVersion: 4 });
  const out: PublishPacket[] = [];
  for (let at = 0; at < bytes.length; at += size) {
    decoder.push(bytes.slice(at, at + size));
    for (let p = decoder.next(); p !== undefined; p = decoder.next()) out.push(p as PublishPacket);
  }
  return out;
}

Deno.test("PacketDecoder gathers a packet split across small chunks in a buffer under 1 KiB", () => {
  const bytes = stream(10);
  const packets = decodeInChunks(bytes, 256);
  assert.equal(packets.length, 10);
  for (const p of packets) assert.deepEqual([...p.payload], new Array(64).fill(7));
  // Packets split by a 256-byte chunk are views into the decoder's own buffer.
  const gathered = packets.filter((p) => p.payload.buffer.byteLength !== 256);
  assert.ok(gathered.length > 0, "some packets were split across chunks");
  for (const p of gathered) {
    assert.ok(p.payload.buffer.byteLength < 1008, `buffer of ${p.payload.buffer.byteLength} bytes`);
  }
});

Deno.test("PacketDecoder gathers only the rest of a packet split across larger chunks, then decodes the chunk itself", () => {
  const bytes = stream(100);
  const packets = decodeInChunks(bytes, 1500);
  assert.equal(packets.length, 100);
  for (const p of packets) assert.deepEqual([...p.payload], new Array(64).fill(7));
  // One packet per chunk boundary is gathered, in a buffer under 1 KiB; the others are views into
  // their chunks (the whole chunk is not copied).
  const chunkSizes = [1500, bytes.length % 1500];
  const gathered = packets.filter((p) => !chunkSizes.includes(p.payload.buffer.byteLength));
  assert.ok(gathered.length > 0, "some packets were split across chunks");
  assert.ok(gathered.length <= Math.ceil(bytes.length / 1500), `${gathered.length} gathered`);
  for (const p of gathered) {
    assert.ok(p.payload.buffer.byteLength < 1008, `buffer of ${p.payload.buffer.byteLength} bytes`);
  }
});

Deno.test("PacketDecoder: a chunk that completes a split packet is free once its packets are decoded and released", () => {
  const bytes = stream(3); // 72-byte packets
  const decoder = new PacketDecoder({ protocolVersion: 4 });
  decoder.push(bytes.slice(0, 100)); // one packet and 28 bytes of the next
  assert.equal(decoder.next()?.type, PacketType.PUBLISH);
  decoder.release();
  assert.equal(decoder.chunkReleased, false, "the split packet's first bytes wait in the chunk");
  assert.equal(decoder.next(), undefined);
  assert.equal(decoder.chunkReleased, true, "they were moved to the decoder's own buffer");
  decoder.push(bytes.slice(100));
  assert.equal(decoder.bufferedBytes, 144, "28 + 116 bytes");
  assert.equal(decoder.chunkReleased, false, "the chunk waits to be decoded");
  for (let i = 0; i < 2; i++) {
    const p = decoder.next() as PublishPacket;
    assert.deepEqual([...p.payload], new Array(64).fill(7));
    decoder.release();
  }
  assert.equal(decoder.next(), undefined);
  assert.equal(decoder.bufferedBytes, 0);
  assert.equal(decoder.chunkReleased, true);
});

Deno.test("PacketDecoder grows the small buffer for a packet larger than it", () => {
  const big = encodePacket({
    type: PacketType.PUBLISH,
    topic: "t",
    payload: new Uint8Array(3000).fill(1),
    qos: 0,
    retain: false,
    dup: false,
  }, 4);
  const packets = decodeInChunks(big, 200);
  assert.equal(packets.length, 1);
  assert.equal(packets[0]!.payload.length, 3000);
  assert.ok(packets[0]!.payload.every((b) => b === 1));
});

/** Decodes `bytes` in chunks of `size`, releasing each packet when `release`: payload buffers. */
function splitBuffers(bytes: Uint8Array, size: number, release: boolean): ArrayBufferLike[] {
  const decoder = new PacketDecoder({ protocolVersion: 4 });
  const buffers: ArrayBufferLike[] = [];
  for (let at = 0; at < bytes.length; at += size) {
    const chunk = bytes.slice(at, at + size);
    decoder.push(chunk);
    for (let p = decoder.next(); p !== undefined; p = decoder.next()) {
      const payload = (p as PublishPacket).payload;
      assert.deepEqual(payload, new Uint8Array(64).fill(7));
      if (payload.buffer !== chunk.buffer) buffers.push(payload.buffer);
      if (release) decoder.release();
    }
  }
  return buffers;
}

Deno.test("PacketDecoder gathers split PUBLISHes in the same buffer again once the caller released them", () => {
  // 72-byte packets in chunks of 100: nearly every chunk ends inside a packet, and the rest is
  // gathered in a 1,000-byte buffer, appended to until full.
  const released = new Set(splitBuffers(stream(400), 100, true));
  // The first packet from the buffer comes before the caller is known to release: a second
  // buffer, then that one for good.
  assert.ok(released.size <= 2, `${released.size} buffers`);
  const kept = new Set(splitBuffers(stream(400), 100, false));
  assert.ok(kept.size >= 25, `${kept.size} buffers: a fresh one whenever one is full`);
});

Deno.test("PacketDecoder trim lets go of the split-packet buffer once nothing waits in it: the next split packet is gathered in a new one", () => {
  const bytes = stream(3); // 72-byte packets
  const run = (trim: boolean) => {
    const decoder = new PacketDecoder({ protocolVersion: 4 });
    decoder.push(bytes.slice(0, 100)); // the first packet, and 28 bytes of the second
    const first = decoder.next() as PublishPacket;
    decoder.release();
    assert.equal(decoder.next(), undefined);
    decoder.push(bytes.slice(100, 144)); // the second's rest, gathered: nothing waits after it
    const second = decoder.next() as PublishPacket;
    decoder.release();
    assert.equal(decoder.next(), undefined);
    assert.equal(decoder.bufferedBytes, 0);
    if (trim) decoder.trim();
    decoder.push(bytes.slice(144, 180)); // half of the third, then its rest
    assert.equal(decoder.next(), undefined);
    decoder.push(bytes.slice(180));
    const third = decoder.next() as PublishPacket;
    assert.equal(decoder.next(), undefined);
    for (const p of [first, second, third]) assert.deepEqual([...p.payload], new Array(64).fill(7));
    return { second, third };
  };
  const kept = run(false);
  assert.equal(kept.third.payload.buffer, kept.second.payload.buffer, "reused without trim");
  const trimmed = run(true);
  assert.notEqual(trimmed.third.payload.buffer, trimmed.second.payload.buffer);
});

Deno.test("PacketDecoder trim keeps the bytes of a packet still being gathered", () => {
  const bytes = stream(2);
  const decoder = new PacketDecoder({ protocolVersion: 4 });
  decoder.push(bytes.slice(0, 100));
  decoder.next();
  decoder.release();
  decoder.push(bytes.slice(100, 101)); // one byte more of the second: gathered with the 28 before
  assert.equal(decoder.next(), undefined);
  decoder.trim();
  decoder.push(bytes.slice(101));
  const second = decoder.next() as PublishPacket;
  assert.deepEqual([...second.payload], new Array(64).fill(7));
  assert.equal(decoder.bufferedBytes, 0);
});

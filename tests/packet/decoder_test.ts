// PacketDecoder (streaming) and PacketDecoderStream behaviour.

import assert from "node:assert/strict";
import {
  decodePacket,
  encodePacket,
  type Packet,
  PacketDecoder,
  PacketDecoderStream,
  PacketType,
  type PublishPacket,
} from "../../src/packet/mod.ts";
import { assertPacketError, hex } from "./_helpers.ts";

const T = PacketType;

function pub(payload: number[], packetId?: number): PublishPacket {
  const p: PublishPacket = {
    type: T.PUBLISH,
    topic: "t",
    payload: new Uint8Array(payload),
    qos: packetId === undefined ? 0 : 1,
    retain: false,
    dup: false,
  };
  if (packetId !== undefined) p.packetId = packetId;
  return p;
}

function drain(d: PacketDecoder): Packet[] {
  const out: Packet[] = [];
  let p: Packet | undefined;
  while ((p = d.next()) !== undefined) out.push(p);
  return out;
}

const CONNECT5 = {
  type: T.CONNECT,
  protocolName: "MQTT",
  protocolVersion: 5,
  clean: true,
  keepAlive: 60,
  clientId: "c",
} as const;

Deno.test("PacketDecoder on the server side takes its level from CONNECT", () => {
  const d = new PacketDecoder({ side: "server" });
  assert.equal(d.protocolVersion, undefined);
  // CONNECT at 5 and a 5.0 PUBACK with a reason code in the same chunk.
  const bytes = new Uint8Array([...encodePacket(CONNECT5, 5), ...hex("40 03 00 01 10")]);
  d.push(bytes);
  assert.deepEqual(drain(d), [CONNECT5, { type: T.PUBACK, packetId: 1, reasonCode: 0x10 }]);
  assert.equal(d.protocolVersion, 5);
  assert.equal(d.bufferedBytes, 0);
});

Deno.test("PacketDecoder protocolVersion setter switches the level and checks it", () => {
  const d = new PacketDecoder();
  d.protocolVersion = 5;
  d.push(hex("40 03 00 01 10"));
  assert.deepEqual(d.next(), { type: T.PUBACK, packetId: 1, reasonCode: 0x10 });
  d.protocolVersion = 4;
  d.push(hex("40 03 00 01 10"));
  assertPacketError(() => d.next(), 0x81);
  assert.throws(() => (d.protocolVersion = 6 as 5), RangeError);
  assert.throws(() => new PacketDecoder({ protocolVersion: 2 as 3 }), RangeError);
  assert.throws(() => new PacketDecoder({ maxPacketSize: 0 }), RangeError);
});

Deno.test("PacketDecoder returns views and never overwrites data it handed out from its internal buffer", () => {
  const d = new PacketDecoder({ protocolVersion: 4 });
  const chunk = new Uint8Array([
    ...encodePacket(pub([1, 2, 3]), 4),
    ...encodePacket(pub([4, 5, 6]), 4),
  ]);
  // Push one whole packet plus the first bytes of the next.
  d.push(chunk.subarray(0, 10));
  const first = d.next() as PublishPacket;
  assert.deepEqual(first.payload, new Uint8Array([1, 2, 3]));
  assert.equal(first.payload.buffer, chunk.buffer, "a whole packet in a chunk is not copied");
  assert.equal(d.next(), undefined);
  assert.equal(d.bufferedBytes, 2);
  d.push(chunk.slice(10));
  const second = d.next() as PublishPacket;
  assert.deepEqual(second.payload, new Uint8Array([4, 5, 6]));
  assert.notEqual(second.payload.buffer, chunk.buffer);
  // Refill the internal buffer with other bytes many times: the earlier result must not change.
  const later: PublishPacket[] = [];
  for (let i = 0; i < 5000; i++) {
    const bytes = encodePacket(pub([i & 0xff, 9, 9]), 4);
    d.push(bytes.subarray(0, 3));
    assert.equal(d.next(), undefined);
    d.push(bytes.slice(3));
    later.push(d.next() as PublishPacket);
  }
  assert.deepEqual(second.payload, new Uint8Array([4, 5, 6]));
  later.forEach((p, i) => assert.deepEqual(p.payload, new Uint8Array([i & 0xff, 9, 9])));
});

Deno.test("PacketDecoder gathers a large packet from many small chunks", () => {
  const big = pub(Array.from({ length: 100_000 }, (_, i) => i & 0xff), 7);
  const bytes = encodePacket(big, 4);
  const d = new PacketDecoder({ protocolVersion: 4 });
  for (let i = 0; i < bytes.length; i += 997) {
    assert.equal(d.next(), undefined);
    d.push(bytes.slice(i, i + 997));
  }
  assert.equal(d.bufferedBytes, bytes.length);
  assert.deepEqual(d.next(), big);
  assert.equal(d.bufferedBytes, 0);
  assert.equal(d.next(), undefined);
});

Deno.test("PacketDecoder throws 0x95 after only the fixed header of a 256 MB packet was pushed", () => {
  const d = new PacketDecoder({ protocolVersion: 4, maxPacketSize: 1024 * 1024 });
  const before = Deno.memoryUsage().external;
  // PUBLISH with remaining length 268,435,455 (0xff 0xff 0xff 0x7f).
  d.push(new Uint8Array([0x30, 0xff]));
  assert.equal(d.next(), undefined, "remaining length not complete yet");
  d.push(new Uint8Array([0xff, 0xff, 0x7f]));
  const error = assertPacketError(() => d.next(), 0x95);
  assert.equal(error.offset, 1);
  assert.equal(d.bufferedBytes, 5);
  const grown = Deno.memoryUsage().external - before;
  assert.ok(grown < 16 * 1024 * 1024, `decoder allocated ${grown} bytes`);
});

Deno.test("PacketDecoder with the default maximum buffers only the bytes received for a 256 MB packet", () => {
  // No maxPacketSize: 268,435,455 is a legal remaining length, so the decoder must wait for the
  // body, but it may hold only what actually arrived, never the announced size.
  const d = new PacketDecoder({ protocolVersion: 4 });
  const before = Deno.memoryUsage().external;
  d.push(new Uint8Array([0x30, 0xff, 0xff, 0xff, 0x7f]));
  assert.equal(d.next(), undefined);
  d.push(new Uint8Array([0x00, 0x01, 0x74, ...new Array(997).fill(0x61)]));
  assert.equal(d.next(), undefined);
  assert.equal(d.bufferedBytes, 1005);
  const grown = Deno.memoryUsage().external - before;
  assert.ok(grown < 16 * 1024 * 1024, `decoder allocated ${grown} bytes`);
  assert.equal(decodePacket(new Uint8Array([0x30, 0xff, 0xff, 0xff, 0x7f]), {}), undefined);
});

Deno.test("PacketDecoder rejects a 5th remaining-length byte before the body arrives", () => {
  const d = new PacketDecoder({ protocolVersion: 4 });
  d.push(new Uint8Array([0x30, 0x80, 0x80, 0x80]));
  assert.equal(d.next(), undefined);
  d.push(new Uint8Array([0x80]));
  assertPacketError(() => d.next(), 0x81);
});

Deno.test("PacketDecoder compacts its buffer instead of growing without bound", () => {
  const d = new PacketDecoder({ protocolVersion: 4 });
  const bytes = encodePacket(pub(new Array(300).fill(1), 1), 4);
  // Keep a partial packet pending at every push so the internal buffer is in use throughout.
  const stream = new Uint8Array(bytes.length * 200);
  for (let i = 0; i < 200; i++) stream.set(bytes, i * bytes.length);
  let count = 0;
  for (let i = 0; i < stream.length; i += 301) {
    d.push(stream.slice(i, i + 301));
    count += drain(d).length;
    assert.ok(d.bufferedBytes < 2 * bytes.length);
  }
  assert.equal(count, 200);
});

Deno.test("PacketDecoderStream decodes bytes piped through a real ReadableStream", async () => {
  const packets: Packet[] = [CONNECT5, pub([1], 1), { type: T.PINGREQ }, {
    type: T.DISCONNECT,
    reasonCode: 4,
  }];
  const bytes = new Uint8Array(packets.flatMap((p) => [...encodePacket(p, 5)]));
  // Irregular chunks, split mid-packet.
  const chunks: Uint8Array[] = [];
  for (let i = 0, n = 1; i < bytes.length; i += n, n = (n % 5) + 1) {
    chunks.push(bytes.slice(i, i + n));
  }
  const stream = new PacketDecoderStream({ side: "server" });
  assert.equal(stream.protocolVersion, undefined);
  const out = await Array.fromAsync(ReadableStream.from(chunks).pipeThrough(stream));
  assert.deepEqual(out, packets);
  assert.equal(stream.protocolVersion, 5);
});

Deno.test("PacketDecoderStream errors the pipe with MqttPacketError on malformed input and on a truncated end", async () => {
  const bad = ReadableStream.from([hex("c0 00 36 03 00 01 74")]).pipeThrough(
    new PacketDecoderStream({ protocolVersion: 4 }),
  );
  const reader = bad.getReader();
  assert.deepEqual((await reader.read()).value, { type: T.PINGREQ });
  await assert.rejects(
    () => reader.read(),
    (e: unknown) => (e as { reasonCode?: number }).reasonCode === 0x81,
  );
  const cut = ReadableStream.from([hex("c0 00 30 05 00")]).pipeThrough(
    new PacketDecoderStream({ protocolVersion: 4 }),
  );
  await assert.rejects(() => Array.fromAsync(cut), /ended inside a packet/);
});

Deno.test("PacketDecoder.chunkReleased: free after acks and pings, held by a PUBLISH's payload or a partial packet until next() moves it", () => {
  const decoder = new PacketDecoder({ protocolVersion: 4 });
  decoder.push(new Uint8Array([0x40, 2, 0, 1, 0xc0, 0])); // PUBACK 1, PINGREQ
  assert.equal(decoder.next()?.type, PacketType.PUBACK);
  assert.equal(decoder.chunkReleased, false, "a PINGREQ still waits in it");
  assert.equal(decoder.next()?.type, PacketType.PINGREQ);
  assert.equal(decoder.chunkReleased, true);
  decoder.push(new Uint8Array([0x30, 4, 0, 1, 0x74, 0x21])); // PUBLISH "t" "!"
  assert.equal(decoder.next()?.type, PacketType.PUBLISH);
  assert.equal(decoder.chunkReleased, false, "the payload is a view into the chunk");
  decoder.push(new Uint8Array([0xc0])); // half a PINGREQ
  assert.equal(decoder.chunkReleased, false, "its byte waits in it");
  assert.equal(decoder.next(), undefined);
  assert.equal(decoder.chunkReleased, true, "the byte was moved to the decoder's own buffer");
  decoder.push(new Uint8Array([0x00])); // the rest, copied into the decoder's own buffer
  assert.equal(decoder.chunkReleased, true, "a chunk copied into the decoder's buffer is free");
  assert.equal(decoder.next()?.type, PacketType.PINGREQ);
});

Deno.test("PacketDecoder.chunkReleased: a CONNECT holds its chunk only when it has a password, a will or properties", () => {
  const connect = (extra: object, version: 4 | 5 = 4) =>
    encodePacket({
      type: T.CONNECT,
      protocolName: "MQTT",
      protocolVersion: version,
      clean: true,
      keepAlive: 60,
      clientId: "c",
      ...extra,
    } as Packet, version);
  const cases: [string, Uint8Array, boolean][] = [
    ["client id only", connect({}), true],
    ["user name (a string)", connect({ username: "u" }), true],
    ["5.0 without properties", connect({}, 5), true],
    ["password", connect({ username: "u", password: new Uint8Array([1, 2]) }), false],
    [
      "will",
      connect({ will: { topic: "w", payload: new Uint8Array([3]), qos: 0, retain: false } }),
      false,
    ],
    ["5.0 properties", connect({ properties: { sessionExpiryInterval: 10 } }, 5), false],
  ];
  for (const [name, bytes, released] of cases) {
    const decoder = new PacketDecoder();
    decoder.push(bytes);
    const packet = decoder.next();
    assert.equal(packet?.type, T.CONNECT, name);
    assert.equal(decoder.chunkReleased, released, name);
  }
});

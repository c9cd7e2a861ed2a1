// publishFrame: the received bytes of a decoded PUBLISH, only when they are exactly what
// encodePacket writes for it (golden cases, the shapes it refuses, and a property test over
// random PUBLISH packets decoded from a stream split at random points).

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodePacket,
  encodePacket,
  PacketDecoder,
  PacketType,
  type ProtocolVersion,
  type PublishPacket,
  type QoS,
} from "../../src/packet/mod.ts";
import { publishFrame } from "../../src/packet/publish_frame.ts";

function publish(
  topic: string,
  payload: Uint8Array,
  qos: QoS,
  extra: Partial<PublishPacket> = {},
): PublishPacket {
  return {
    type: PacketType.PUBLISH,
    topic,
    payload,
    qos,
    retain: false,
    dup: false,
    packetId: qos > 0 ? 300 : undefined,
    ...extra,
  };
}

function decoded(bytes: Uint8Array, version: ProtocolVersion): PublishPacket {
  return decodePacket(bytes, { protocolVersion: version })!.packet as PublishPacket;
}

for (const version of [3, 4, 5] as const) {
  for (const qos of [0, 1, 2] as const) {
    Deno.test(`publishFrame gives the received bytes of a level-${version} QoS ${qos} PUBLISH`, () => {
      const bytes = encodePacket(publish("a/b", new Uint8Array([1, 2, 3]), qos), version);
      // Received after other bytes, as in a read buffer.
      const chunk = new Uint8Array(bytes.length + 5);
      chunk.set(bytes, 5);
      const packet = decoded(chunk.subarray(5), version);
      const frame = publishFrame(packet, version)!;
      assert.deepEqual(frame, bytes);
      assert.equal(frame.buffer, chunk.buffer, "a view, not a copy");
      assert.equal(frame.byteOffset, 5);
    });
  }
}

Deno.test("publishFrame keeps RETAIN and DUP as received (the sender patches them)", () => {
  const bytes = encodePacket(
    publish("t", new Uint8Array([9]), 1, { retain: true, dup: true }),
    4,
  );
  assert.deepEqual(publishFrame(decoded(bytes, 4), 4), bytes);
});

Deno.test("publishFrame: a remaining length of 2 and 3 bytes", () => {
  for (const size of [200, 20_000]) {
    const bytes = encodePacket(publish("big", new Uint8Array(size).fill(7), 0), 4);
    assert.deepEqual(publishFrame(decoded(bytes, 4), 4), bytes);
  }
});

Deno.test("publishFrame refuses a remaining length not in its shortest form", () => {
  // PUBLISH QoS 0, topic "t", payload [1]: remaining length 4 written as 0x84 0x00.
  const bytes = new Uint8Array([0x30, 0x84, 0x00, 0x00, 0x01, 0x74, 0x01]);
  const packet = decoded(bytes, 4);
  assert.equal(packet.topic, "t");
  assert.equal(publishFrame(packet, 4), undefined);
});

Deno.test("publishFrame refuses a level-5 PUBLISH with properties, or an empty property list in two bytes", () => {
  const withProps = encodePacket(
    publish("t", new Uint8Array([1]), 0, { properties: { contentType: "x" } }),
    5,
  );
  assert.equal(publishFrame(decoded(withProps, 5), 5), undefined);
  // Property length 0 written as 0x80 0x00.
  const long = new Uint8Array([0x30, 0x06, 0x00, 0x01, 0x74, 0x80, 0x00, 0x01]);
  const packet = decoded(long, 5);
  assert.equal(packet.properties, undefined);
  assert.equal(publishFrame(packet, 5), undefined);
});

Deno.test("publishFrame refuses a topic that is not ASCII", () => {
  const bytes = encodePacket(publish("é/t", new Uint8Array([1]), 0), 4);
  assert.equal(publishFrame(decoded(bytes, 4), 4), undefined);
});

Deno.test("publishFrame refuses a payload that is not a view into the received bytes, or bytes that are another packet", () => {
  const bytes = encodePacket(publish("a/b", new Uint8Array([1, 2]), 0), 4);
  const packet = decoded(bytes, 4);
  assert.equal(publishFrame({ ...packet, payload: packet.payload.slice() }, 4), undefined);
  assert.equal(publishFrame({ ...packet, topic: "a/c" }, 4), undefined);
  assert.equal(publishFrame({ ...packet, topic: "a/bb" }, 4), undefined);
  assert.equal(publishFrame({ ...packet, qos: 1 }, 4), undefined);
  assert.equal(publishFrame(packet, 5), undefined, "decoded at 4, asked at 5");
});

Deno.test("publishFrame of PUBLISH packets decoded from a stream split anywhere is exactly their encoding, or nothing", () => {
  const topicChars = fc.constantFrom("a", "b", "/", "é", "0", "Z");
  const arbitrary = fc.record({
    version: fc.constantFrom(3, 4, 5) as fc.Arbitrary<ProtocolVersion>,
    topic: fc.array(topicChars, { minLength: 1, maxLength: 12 }).map((c) => c.join("")),
    payload: fc.uint8Array({ maxLength: 300 }),
    qos: fc.constantFrom(0, 1, 2) as fc.Arbitrary<QoS>,
    retain: fc.boolean(),
    userProperty: fc.boolean(),
    cut: fc.nat(),
  });
  fc.assert(fc.property(arbitrary, (a) => {
    const p = publish(a.topic, a.payload, a.qos, { retain: a.retain });
    if (a.version === 5 && a.userProperty) p.properties = { userProperties: [["k", "v"]] };
    const one = encodePacket(p, a.version);
    const stream = new Uint8Array(one.length * 2);
    stream.set(one, 0);
    stream.set(one, one.length);
    const cut = a.cut % (stream.length + 1);
    const decoder = new PacketDecoder({ protocolVersion: a.version });
    const got: PublishPacket[] = [];
    for (const chunk of [stream.slice(0, cut), stream.slice(cut)]) {
      decoder.push(chunk);
      for (let x = decoder.next(); x !== undefined; x = decoder.next()) {
        got.push(x as PublishPacket);
      }
    }
    assert.equal(got.length, 2);
    const ascii = [...a.topic].every((c) => c.charCodeAt(0) < 0x80);
    const plain = ascii && p.properties === undefined;
    for (const packet of got) {
      const frame = publishFrame(packet, a.version);
      if (plain) assert.deepEqual(frame, one);
      else assert.equal(frame, undefined);
    }
  }));
});

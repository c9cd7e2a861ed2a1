// writePublish writes what encodePacket writes for a PUBLISH without properties (RETAIN and DUP
// clear), at any offset of a buffer; publishSize refuses what it cannot write.

import assert from "node:assert/strict";
import fc from "fast-check";
import { encodePacket, PacketType, type ProtocolVersion, type QoS } from "../../src/packet/mod.ts";
import { publishSize, writePublish } from "../../src/packet/publish_writer.ts";

Deno.test("writePublish writes the bytes encodePacket writes, at any offset, for every level and QoS", () => {
  const arbitrary = fc.record({
    version: fc.constantFrom(3, 4, 5) as fc.Arbitrary<ProtocolVersion>,
    topic: fc.stringMatching(/^[a-zA-Z0-9/ _-]{1,40}$/),
    payload: fc.uint8Array({ maxLength: 20_000 }),
    qos: fc.constantFrom(0, 1, 2) as fc.Arbitrary<QoS>,
    packetId: fc.integer({ min: 1, max: 65535 }),
    at: fc.nat({ max: 50 }),
  });
  fc.assert(
    fc.property(arbitrary, (a) => {
      const expected = encodePacket({
        type: PacketType.PUBLISH,
        topic: a.topic,
        payload: a.payload,
        qos: a.qos,
        retain: false,
        dup: false,
        packetId: a.qos > 0 ? a.packetId : undefined,
      }, a.version);
      const size = publishSize(a.topic, a.payload.length, a.qos, a.version);
      assert.equal(size, expected.length);
      const out = new Uint8Array(a.at + size + 4).fill(0xee);
      assert.equal(
        writePublish(out, a.at, a.topic, a.payload, a.qos, a.packetId, a.version),
        a.at + size,
      );
      assert.deepEqual(out.subarray(a.at, a.at + size), expected);
      assert.ok(out.subarray(0, a.at).every((b) => b === 0xee), "nothing written before");
      assert.ok(out.subarray(a.at + size).every((b) => b === 0xee), "nothing written after");
    }),
    { numRuns: 300 },
  );
});

Deno.test("publishSize refuses a topic that is not ASCII, and an empty one", () => {
  assert.equal(publishSize("é", 1, 0, 4), -1);
  assert.equal(publishSize("a/\u{1F600}", 1, 0, 5), -1);
  assert.equal(publishSize("", 1, 0, 5), -1);
  assert.equal(publishSize("a", 0, 0, 4), 5);
});

// packetLength, the codec's framing function: the total length of a packet from its fixed header.

import assert from "node:assert/strict";
import fc from "fast-check";
import { encodePacket, MAX_PACKET_SIZE, packetLength, PacketType } from "../../src/packet/mod.ts";
import { packet } from "./_arbitraries.ts";
import { assertPacketError, hex } from "./_helpers.ts";

const MALFORMED = 0x81;
const TOO_LARGE = 0x95;

Deno.test("packetLength reads the remaining length at each of its 1-4 byte sizes (§2.1.4)", () => {
  assert.equal(packetLength(hex("c0 00")), 2);
  assert.equal(packetLength(hex("30 7f")), 2 + 127);
  assert.equal(packetLength(hex("30 80 01")), 3 + 128);
  assert.equal(packetLength(hex("30 ff 7f")), 3 + 16_383);
  assert.equal(packetLength(hex("30 80 80 01")), 4 + 16_384);
  assert.equal(packetLength(hex("30 ff ff 7f")), 4 + 2_097_151);
  assert.equal(packetLength(hex("30 80 80 80 01")), 5 + 2_097_152);
  assert.equal(packetLength(hex("30 ff ff ff 7f")), MAX_PACKET_SIZE);
});

Deno.test("packetLength needs only the fixed header, not the body", () => {
  // PUBLISH "t" with a 1-byte payload, of which only the header has arrived.
  assert.equal(packetLength(hex("30 04")), 6);
  assert.equal(packetLength(hex("30 04 00 01 74 78 c0 00")), 6, "bytes after the packet");
});

Deno.test("packetLength returns undefined while the fixed header is incomplete", () => {
  assert.equal(packetLength(new Uint8Array(0)), undefined);
  assert.equal(packetLength(hex("30")), undefined);
  assert.equal(packetLength(hex("30 80")), undefined);
  assert.equal(packetLength(hex("30 ff ff")), undefined);
  assert.equal(packetLength(hex("30 ff ff ff")), undefined);
  assert.equal(packetLength(hex("c0 00"), 2), undefined, "offset at the end");
});

Deno.test("packetLength reads the packet at an offset", () => {
  const bytes = hex("c0 00 30 05 00 01 74 68 69 d0 00");
  assert.equal(packetLength(bytes, 0), 2);
  assert.equal(packetLength(bytes, 2), 7);
  assert.equal(packetLength(bytes, 9), 2);
});

Deno.test("packetLength rejects a remaining length longer than 4 bytes [MQTT-1.5.5-1]", () => {
  // Known from the 4th length byte's continuation bit, without waiting for a 5th.
  const error = assertPacketError(() => packetLength(hex("30 ff ff ff ff")), MALFORMED);
  assert.equal(error.offset, 4);
  assert.equal(error.packetType, PacketType.PUBLISH);
  assert.equal(error.message, "Cannot decode PUBLISH: remaining length is longer than 4 bytes");
  // The offset is relative to the packet, not to the buffer.
  const at = assertPacketError(() => packetLength(hex("c0 00 30 80 80 80 80 01"), 2), MALFORMED);
  assert.equal(at.offset, 4);
  // A reserved type byte is not the framing function's concern, but names no packet type.
  const untyped = assertPacketError(() => packetLength(hex("00 80 80 80 80")), MALFORMED);
  assert.equal(untyped.packetType, undefined);
  assert.match(untyped.message, /^Cannot decode packet: /);
});

Deno.test("packetLength rejects a packet over maxPacketSize from its header (0x95)", () => {
  const error = assertPacketError(
    () => packetLength(hex("30 ff ff ff 7f"), 0, { maxPacketSize: 1 << 20 }),
    TOO_LARGE,
  );
  assert.equal(error.offset, 1);
  assert.equal(
    error.message,
    "Cannot decode PUBLISH: packet of 268435460 bytes exceeds the maximum of 1048576",
  );
  assert.equal(packetLength(hex("30 03"), 0, { maxPacketSize: 5 }), 5, "exactly at the limit");
  assertPacketError(() => packetLength(hex("30 03"), 0, { maxPacketSize: 4 }), TOO_LARGE);
});

Deno.test("packetLength refuses a bad offset or maximum with RangeError", () => {
  const bytes = hex("c0 00");
  assert.throws(() => packetLength(bytes, -1), RangeError);
  assert.throws(() => packetLength(bytes, 0.5), RangeError);
  assert.throws(() => packetLength(bytes, 0, { maxPacketSize: 1 }), RangeError);
  assert.throws(() => packetLength(bytes, 0, { maxPacketSize: Number.NaN }), RangeError);
});

for (const v of [3, 4, 5] as const) {
  Deno.test(`packetLength frames a stream of random packets at level ${v}, whatever its prefix`, () => {
    fc.assert(
      fc.property(fc.array(packet(v), { minLength: 1, maxLength: 5 }), (packets) => {
        const encoded = packets.map((p) => encodePacket(p, v));
        const bytes = new Uint8Array(encoded.reduce((n, e) => n + e.length, 0));
        let at = 0;
        for (const e of encoded) {
          bytes.set(e, at);
          at += e.length;
        }
        at = 0;
        for (const e of encoded) {
          assert.equal(packetLength(bytes, at), e.length);
          // Split input: a cut inside the fixed header needs more; past it, the length is known.
          const header = e.length - (e.length > 1 ? bodyLength(e) : 0);
          for (let cut = at; cut <= at + e.length; cut++) {
            const got = packetLength(bytes.subarray(0, cut), at);
            assert.equal(got, cut - at < header ? undefined : e.length, `cut at ${cut}`);
          }
          at += e.length;
        }
      }),
      { numRuns: 300 },
    );
  });
}

/** The body length of an encoded packet, from its remaining length field. */
function bodyLength(e: Uint8Array): number {
  let len = 0;
  for (let i = 1, mult = 1;; i++, mult *= 128) {
    len += (e[i] & 0x7f) * mult;
    if ((e[i] & 0x80) === 0) return len;
  }
}

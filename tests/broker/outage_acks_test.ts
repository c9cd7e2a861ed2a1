// withoutAcks: the success PUBACK/PUBREC of the PUBLISHes named are left out of a connection's
// held output, whatever else it holds; refusals and acknowledgements of other ids stay.
import assert from "node:assert/strict";
import { withoutAcks } from "../../src/broker/outage_acks.ts";
import { encodePacket, PacketType } from "../../src/packet/mod.ts";
import type { Packet } from "../../src/packet/mod.ts";

function concat(packets: Packet[]): Uint8Array {
  const parts = packets.map((p) => encodePacket(p, 5));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

Deno.test("withoutAcks leaves out the 5.0 success PUBACK/PUBREC of the ids named (also 0x10 No matching subscribers) and keeps everything else in order [MQTT-3.4.2-1] [MQTT-3.5.2-1]", () => {
  const publish: Packet = {
    type: PacketType.PUBLISH,
    topic: "t/x",
    payload: new Uint8Array(300).fill(0x40),
    qos: 1,
    retain: false,
    dup: false,
    packetId: 9,
  };
  const keep: Packet[] = [
    publish, // a delivery to this client, with bytes that look like acks inside
    { type: PacketType.PUBACK, packetId: 2 }, // another id
    { type: PacketType.PUBREC, packetId: 5, reasonCode: 0x80 }, // a refusal stays
    { type: PacketType.PUBACK, packetId: 3 }, // QoS 2 named, but this is a PUBACK
    { type: PacketType.PINGRESP },
  ];
  const bytes = concat([
    keep[0]!,
    { type: PacketType.PUBACK, packetId: 1 },
    keep[1]!,
    { type: PacketType.PUBREC, packetId: 3 },
    keep[2]!,
    { type: PacketType.PUBACK, packetId: 4, reasonCode: 0x10 },
    keep[3]!,
    keep[4]!,
  ]);
  const named = [
    { qos: 1, packetId: 1 },
    { qos: 2, packetId: 3 },
    { qos: 1, packetId: 4 },
    { qos: 2, packetId: 5 },
  ] as const;
  const { bytes: out, dropped } = withoutAcks(bytes, named);
  assert.deepEqual(out, concat(keep));
  assert.deepEqual(dropped, [named[0], named[1], named[2]]);
});

Deno.test("withoutAcks returns the bytes themselves when none of the acks is there", () => {
  const bytes = concat([{ type: PacketType.PUBACK, packetId: 1 }]);
  const result = withoutAcks(bytes, [{ qos: 1, packetId: 2 }]);
  assert.equal(result.bytes, bytes);
  assert.deepEqual(result.dropped, []);
});

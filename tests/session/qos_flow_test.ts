/**
 * The QoS 1/2 flow rules both sides use (`src/session/qos_flow.ts`).
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { InboundQos2 } from "../../src/session/inbound.ts";
import { OutboundFlow } from "../../src/session/outbound.ts";
import { receiveAck, receivePublish, receivePubrel } from "../../src/session/qos_flow.ts";

Deno.test("receivePublish delivers QoS 1 on every receipt and answers PUBACK [MQTT-4.3.2-2]", () => {
  const inbound = new InboundQos2();
  for (let i = 0; i < 2; i++) {
    assert.deepEqual(receivePublish(inbound, 1, 5), {
      deliver: true,
      reply: { type: PacketType.PUBACK, packetId: 5 },
    });
  }
  assert.equal(inbound.size, 0);
});

Deno.test("receivePublish delivers QoS 2 once until PUBREL, answering each receipt with PUBREC [MQTT-4.3.3-2]", () => {
  const inbound = new InboundQos2();
  const pubrec = { type: PacketType.PUBREC, packetId: 9 };
  assert.deepEqual(receivePublish(inbound, 2, 9), { deliver: true, reply: pubrec });
  assert.deepEqual(receivePublish(inbound, 2, 9), { deliver: false, reply: pubrec });
  assert.deepEqual(receivePubrel(inbound, 9), { type: PacketType.PUBCOMP, packetId: 9 });
  // Released: the id is a new message now.
  assert.equal(receivePublish(inbound, 2, 9).deliver, true);
});

Deno.test("receivePubrel answers PUBCOMP for an id not awaiting PUBREL [MQTT-4.3.3-2]", () => {
  const inbound = new InboundQos2();
  assert.deepEqual(receivePubrel(inbound, 77), { type: PacketType.PUBCOMP, packetId: 77 });
});

Deno.test("receiveAck answers PUBREC with PUBREL and completes on PUBCOMP [MQTT-4.3.3-1]", () => {
  const flow = new OutboundFlow<string>();
  const id = flow.offer("m", 2)!.packetId;
  assert.deepEqual(receiveAck(flow, "pubrec", id), {
    kind: "pubrel",
    reply: { type: PacketType.PUBREL, packetId: id },
  });
  // A repeated PUBREC (our PUBREL lost) gets PUBREL again.
  assert.equal(receiveAck(flow, "pubrec", id).kind, "pubrel");
  assert.equal(receiveAck(flow, "pubcomp", id).kind, "complete");
  assert.equal(flow.inflightCount, 0);
});

Deno.test("receiveAck: an acknowledgement of the wrong kind is a violation and leaves the flow [MQTT-4.8.0-1]", () => {
  const cases: [string, 1 | 2, boolean, "puback" | "pubrec" | "pubcomp", string][] = [
    ["QoS 1 answered with PUBREC", 1, false, "pubrec", "a QoS 1 message awaiting PUBACK"],
    ["QoS 1 answered with PUBCOMP", 1, false, "pubcomp", "a QoS 1 message awaiting PUBACK"],
    ["QoS 2 answered with PUBACK", 2, false, "puback", "a QoS 2 message awaiting PUBREC"],
    ["QoS 2 answered with PUBCOMP", 2, false, "pubcomp", "a QoS 2 message awaiting PUBREC"],
    ["PUBACK after PUBREL", 2, true, "puback", "a QoS 2 message awaiting PUBCOMP"],
  ];
  for (const [name, qos, released, kind, text] of cases) {
    const flow = new OutboundFlow<string>();
    const id = flow.offer("m", qos)!.packetId;
    if (released) receiveAck(flow, "pubrec", id);
    const outcome = receiveAck(flow, kind, id);
    assert.equal(outcome.kind, "violation", name);
    if (outcome.kind === "violation") {
      assert.equal(
        outcome.reason,
        `${kind.toUpperCase()} for packet id ${id}, ${text} [MQTT-4.8.0-1]`,
        name,
      );
    }
    assert.equal(flow.inflightCount, 1, `${name}: the flow changed`);
  }
});

Deno.test("receiveAck ignores an acknowledgement for an id not in flight, with a reason for the log", () => {
  const flow = new OutboundFlow<string>();
  assert.deepEqual(receiveAck(flow, "puback", 300), {
    kind: "unknown",
    reason: "PUBACK for packet id 300: no message is in flight with that id",
  });
});

Deno.test("receiveAck: a failed MQTT 5.0 PUBREC ends the QoS 2 flow", () => {
  const flow = new OutboundFlow<string>();
  const id = flow.offer("m", 2)!.packetId;
  assert.equal(receiveAck(flow, "pubrec", id, true).kind, "complete");
  assert.equal(flow.inflightCount, 0);
});

Deno.test("receivePubrel with reason codes (5.0): PUBCOMP 0x92 for an id not awaiting PUBREL, success for a held one [MQTT-3.7.2-1]", () => {
  const inbound = new InboundQos2();
  assert.deepEqual(receivePubrel(inbound, 77, true), {
    type: PacketType.PUBCOMP,
    packetId: 77,
    reasonCode: 0x92,
  });
  receivePublish(inbound, 2, 5);
  assert.deepEqual(receivePubrel(inbound, 5, true), { type: PacketType.PUBCOMP, packetId: 5 });
  assert.equal(inbound.size, 0);
});

Deno.test("receiveAck with reason codes (5.0): a PUBREC below 0x80 for an id not in flight is answered with PUBREL 0x92 [MQTT-3.6.2-1]", () => {
  const flow = new OutboundFlow<string>();
  assert.deepEqual(receiveAck(flow, "pubrec", 12, false, true), {
    kind: "unknown",
    reason: "PUBREC for packet id 12: no message is in flight with that id",
    reply: { type: PacketType.PUBREL, packetId: 12, reasonCode: 0x92 },
  });
  // A failed PUBREC, another ack, or no reason codes (3.1.1): nothing to answer.
  assert.equal(receiveAck(flow, "pubrec", 12, true, true).kind, "unknown");
  assert.equal(
    (receiveAck(flow, "pubrec", 12, true, true) as { reply?: unknown }).reply,
    undefined,
  );
  assert.equal(
    (receiveAck(flow, "pubcomp", 12, false, true) as { reply?: unknown }).reply,
    undefined,
  );
  assert.equal((receiveAck(flow, "pubrec", 12) as { reply?: unknown }).reply, undefined);
});

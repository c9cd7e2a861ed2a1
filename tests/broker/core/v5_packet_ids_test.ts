/**
 * The core's answers to QoS 2 packet ids it does not hold (MQTT 5.0: 0x92 Packet Identifier not
 * found; 3.1.1: as before), a failed PUBREC, and Retain Available 0 on a new subscription, without
 * sockets.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../../src/packet/mod.ts";
import type { Packet, PublishPacket } from "../../../src/packet/mod.ts";
import { BrokerMessage } from "../../../src/broker/message.ts";
import { FakeLink, testCore } from "../../_helpers/core.ts";
import type { TestCore } from "../../_helpers/core.ts";
import { connectPacket } from "../../_helpers/test_client.ts";

const T0 = 1_000_000;

function connected(core: TestCore, name: string, protocolVersion: 4 | 5): FakeLink {
  const link = new FakeLink(name);
  core.attach(link, T0);
  core.handle(link, connectPacket({ clientId: name, protocolVersion }), T0);
  return link;
}

function qos2(topic: string, packetId: number): PublishPacket {
  return {
    type: PacketType.PUBLISH,
    topic,
    payload: new Uint8Array([1]),
    qos: 2,
    retain: false,
    dup: false,
    packetId,
  };
}

const last = (link: FakeLink): Packet | undefined => link.sent.at(-1);

Deno.test("core v5: PUBREL for an id not awaiting PUBREL gets PUBCOMP 0x92, a held one PUBCOMP 0x00; 3.1.1 a plain PUBCOMP [MQTT-3.7.2-1] [MQTT-4.3.3-11]", () => {
  const core = testCore();
  const v5 = connected(core, "p5", 5);
  core.handle(v5, { type: PacketType.PUBREL, packetId: 8 }, T0);
  assert.deepEqual(last(v5), { type: PacketType.PUBCOMP, packetId: 8, reasonCode: 0x92 });
  core.handle(v5, qos2("t", 9), T0);
  core.handle(v5, { type: PacketType.PUBREL, packetId: 9 }, T0);
  assert.deepEqual(last(v5), { type: PacketType.PUBCOMP, packetId: 9 });
  const v4 = connected(core, "p4", 4);
  core.handle(v4, { type: PacketType.PUBREL, packetId: 8 }, T0);
  assert.deepEqual(last(v4), { type: PacketType.PUBCOMP, packetId: 8 });
  assert.equal(v5.closed, undefined);
  assert.equal(v4.closed, undefined);
});

Deno.test("core v5: a PUBREC below 0x80 for an id not in flight gets PUBREL 0x92; of 0x80 or more, or at 3.1.1, nothing [MQTT-3.6.2-1] [MQTT-4.3.3-4]", () => {
  const core = testCore();
  const v5 = connected(core, "s5", 5);
  core.handle(v5, { type: PacketType.PUBREC, packetId: 4 }, T0);
  assert.deepEqual(last(v5), { type: PacketType.PUBREL, packetId: 4, reasonCode: 0x92 });
  const before = v5.sent.length;
  core.handle(v5, { type: PacketType.PUBREC, packetId: 5, reasonCode: 0x80 }, T0);
  assert.equal(v5.sent.length, before);
  const v4 = connected(core, "s4", 4);
  const connack = v4.sent.length;
  core.handle(v4, { type: PacketType.PUBREC, packetId: 4 }, T0);
  assert.equal(v4.sent.length, connack);
  assert.equal(v5.closed, undefined);
  assert.equal(v4.closed, undefined);
});

Deno.test("core v5: a PUBREC of 0x80 or more ends the QoS 2 delivery without PUBREL and frees its slot [MQTT-4.3.3-4] [MQTT-4.4.0-2]", () => {
  const core = testCore({ maxInflight: 1 });
  const sub = connected(core, "s", 5);
  core.handle(sub, {
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic: "t", qos: 2 }],
  }, T0);
  const pub = connected(core, "p", 5);
  core.handle(pub, qos2("t", 1), T0);
  core.handle(pub, { type: PacketType.PUBREL, packetId: 1 }, T0);
  core.handle(pub, qos2("t", 2), T0);
  core.handle(pub, { type: PacketType.PUBREL, packetId: 2 }, T0);
  assert.equal(sub.published.length, 1, "a window of one");
  const first = sub.published[0].packetId;
  core.handle(sub, { type: PacketType.PUBREC, packetId: first, reasonCode: 0x87 }, T0);
  assert.ok(!sub.sent.some((p) => p.type === PacketType.PUBREL), "no PUBREL");
  assert.equal(sub.published.length, 2, "the next message went in its slot");
  assert.equal(sub.closed, undefined);
});

Deno.test("core v5: with Retain Available 0 a new subscription gets no retained message, at 5.0 and 3.1.1 (§3.2.2.3.5)", () => {
  const caps = { receiveMaximum: 65535, maximumPacketSize: 268_435_460, topicAliasMaximum: 0 };
  const core = testCore({ capabilities: { ...caps, retainAvailable: false } });
  core.publish(new BrokerMessage("r/1", new Uint8Array([1]), { qos: 1, retain: true }));
  assert.equal(core.retained.size, 1, "kept");
  for (const version of [5, 4] as const) {
    const sub = connected(core, `s${version}`, version);
    core.handle(sub, {
      type: PacketType.SUBSCRIBE,
      packetId: 1,
      subscriptions: [{ topic: "r/#", qos: 1 }],
    }, T0);
    assert.ok(sub.sent.some((p) => p.type === PacketType.SUBACK));
    assert.deepEqual(sub.published, []);
  }
  // The same store with Retain Available serves it.
  const served = testCore();
  served.publish(new BrokerMessage("r/1", new Uint8Array([1]), { qos: 1, retain: true }));
  const sub = connected(served, "s", 5);
  served.handle(sub, {
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic: "r/#", qos: 1 }],
  }, T0);
  assert.deepEqual(sub.published.map((p) => p.topic), ["r/1"]);
});

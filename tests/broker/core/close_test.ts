/**
 * The reason codes the broker core closes connections with (MQTT 5.0 reason codes: what a
 * DISCONNECT to a 5.0 client carries; logged for 3.1 and 3.1.1 clients, which get none).
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../../src/packet/mod.ts";
import { BrokerMessage } from "../../../src/broker/message.ts";
import { FakeLink, testCore } from "../../_helpers/core.ts";
import { connectPacket } from "../../_helpers/test_client.ts";

const T0 = 1_700_000_000_000;

function connected(clientId: string) {
  const core = testCore();
  const link = new FakeLink();
  core.attach(link, T0);
  core.handle(link, connectPacket({ clientId, keepAlive: 10 }), T0);
  assert.equal(link.sent[0]?.type, PacketType.CONNACK);
  return { core, link };
}

Deno.test("core close: a client's DISCONNECT closes with 0x00 normal disconnection [MQTT-3.14.4-1]", () => {
  const { core, link } = connected("c");
  core.handle(link, { type: PacketType.DISCONNECT }, T0 + 1);
  assert.deepEqual(link.closed, { how: "close", reason: "client disconnected", code: 0x00 });
});

Deno.test("core close: a protocol violation closes with 0x82 protocol error [MQTT-4.8.0-1]", () => {
  const { core, link } = connected("c");
  core.handle(link, connectPacket({ clientId: "c" }), T0 + 1);
  assert.deepEqual(link.closed, {
    how: "close",
    reason: "second CONNECT on one connection",
    code: 0x82,
  });
});

Deno.test("core close: an ack of the wrong kind closes with 0x82 protocol error [MQTT-4.8.0-1]", () => {
  const { core, link } = connected("c");
  core.handle(link, {
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic: "t", qos: 1 }],
  }, T0);
  core.publish(new BrokerMessage("t", new Uint8Array([1]), { qos: 1, retain: false }));
  const id = link.published[0]!.packetId;
  core.handle(link, { type: PacketType.PUBCOMP, packetId: id }, T0 + 1);
  assert.equal(link.closed?.code, 0x82);
  assert.match(
    link.closed?.reason ?? "",
    /PUBCOMP for packet id \d+, a QoS 1 message awaiting PUBACK/,
  );
});

Deno.test("core close: a level-5 CONNECT is accepted; a receive maximum exceeded closes with 0x93 [MQTT-3.3.4-7]", () => {
  const core = testCore({
    capabilities: { receiveMaximum: 1, maximumPacketSize: 1 << 20, topicAliasMaximum: 0 },
  });
  const link = new FakeLink();
  core.attach(link, T0);
  core.handle(link, connectPacket({ clientId: "five", protocolVersion: 5 }), T0);
  assert.deepEqual(link.sent, [{
    type: PacketType.CONNACK,
    sessionPresent: false,
    reasonCode: 0,
    properties: { receiveMaximum: 1, maximumPacketSize: 1 << 20 },
  }]);
  const publish = (packetId: number) => ({
    type: PacketType.PUBLISH,
    topic: "t",
    payload: new Uint8Array(),
    qos: 2 as const,
    retain: false,
    dup: false,
    packetId,
  });
  core.handle(link, publish(1), T0);
  const early = link.closed;
  assert.equal(early, undefined, "one unacknowledged QoS 2 PUBLISH is allowed");
  core.handle(link, publish(2), T0);
  assert.equal(link.closed?.code, 0x93);
});

Deno.test("core close: kick closes a client's connection with the host's reason code; its will follows the close [MQTT-3.1.2-8]", () => {
  const core = testCore();
  const watcher = new FakeLink("watcher");
  core.attach(watcher, T0);
  core.handle(watcher, connectPacket({ clientId: "w" }), T0);
  core.handle(watcher, {
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic: "will/#", qos: 0 }],
  }, T0);
  const link = new FakeLink("kicked");
  core.attach(link, T0);
  const will = { topic: "will/k", payload: new Uint8Array([1]), qos: 0 as const, retain: false };
  core.handle(link, connectPacket({ clientId: "k", will }), T0);
  assert.equal(core.core.kick("k", "disconnected by an administrator", 0x98), true);
  core.run();
  assert.deepEqual(link.closed, {
    how: "close",
    reason: "disconnected by an administrator",
    code: 0x98,
  });
  assert.equal(core.core.kick("k", "again", 0x98), false, "kicked twice");
  assert.equal(watcher.published.length, 0, "the will went out before the close");
  core.detach(link, T0 + 1);
  assert.deepEqual(watcher.published.map((p) => p.topic), ["will/k"]);
  assert.equal(core.core.kick("nobody", "x", 0x98), false);
});

/**
 * Sessions in the broker core, with no socket: takeover, the bounded queue behind the in-flight
 * window, and resending after a reconnect [MQTT-4.4.0-1].
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../../src/packet/mod.ts";
import type { QoS } from "../../../src/packet/mod.ts";
import { BrokerMessage } from "../../../src/broker/message.ts";
import { connect, subscribe, T0, testCore } from "../../_helpers/core.ts";
import { connectPacket } from "../../_helpers/test_client.ts";

function message(topic: string, qos: QoS): BrokerMessage {
  return new BrokerMessage(topic, new TextEncoder().encode(topic), { qos, retain: false });
}

Deno.test("core sessions: takeover closes the old link, publishes its will and resends in flight with DUP on the new one [MQTT-3.1.4-2] [MQTT-4.4.0-1]", () => {
  const core = testCore();
  const watcher = connect(core, connectPacket({ clientId: "w" }));
  subscribe(core, watcher, "will/#", 0);
  const will = { topic: "will/c", payload: new Uint8Array([1]), qos: 0 as QoS, retain: false };
  const first = connect(core, connectPacket({ clientId: "c", clean: false, will }));
  subscribe(core, first, "m/#", 1);
  core.publish(message("m/1", 1));
  assert.deepEqual(first.published, [{ topic: "m/1", qos: 1, packetId: 1, dup: false }]);

  const second = connect(core, connectPacket({ clientId: "c", clean: false }), T0 + 1);
  assert.equal(first.closed?.how, "takeOver");
  assert.deepEqual(second.sent[0], {
    type: PacketType.CONNACK,
    sessionPresent: true,
    reasonCode: 0,
  });
  assert.deepEqual(second.published, [{ topic: "m/1", qos: 1, packetId: 1, dup: true }]);
  assert.deepEqual(watcher.published.map((p) => p.topic), ["will/c"]);
  assert.equal(core.sessions.get("c")?.link?.handle, second);
  assert.equal(core.stats.clientsConnected, 2);
});

Deno.test("core sessions: offline QoS 1 messages fill the window, then a bounded queue that drops the oldest", () => {
  const core = testCore({ maxInflight: 2, maxQueuedMessages: 3 });
  const sub = connect(core, connectPacket({ clientId: "s", clean: false }));
  subscribe(core, sub, "q/#", 1);
  core.detach(sub, T0 + 1);
  for (let i = 0; i < 7; i++) core.publish(message(`q/${i}`, 1));
  // 2 in the window, 3 queued: q/2 and q/3, the oldest queued, were dropped and counted.
  assert.equal(core.stats.droppedBy.queueFull, 2);

  const back = connect(core, connectPacket({ clientId: "s", clean: false }), T0 + 2);
  // Never sent before: DUP 0 [MQTT-3.3.1-1]; only what the window holds.
  assert.deepEqual(back.published.map((p) => [p.topic, p.dup]), [["q/0", false], ["q/1", false]]);
  core.handle(back, { type: PacketType.PUBACK, packetId: back.published[0]!.packetId }, T0 + 3);
  core.handle(back, { type: PacketType.PUBACK, packetId: back.published[1]!.packetId }, T0 + 3);
  assert.deepEqual(back.published.map((p) => p.topic), ["q/0", "q/1", "q/4", "q/5"]);
  const ids = new Set(back.published.slice(2).map((p) => p.packetId));
  assert.equal(ids.size, 2, "two messages in flight share a packet id");
});

Deno.test("core sessions: a PUBREL in flight is resent, not the PUBLISH, after a reconnect [MQTT-4.4.0-1]", () => {
  const core = testCore();
  const sub = connect(core, connectPacket({ clientId: "s", clean: false }));
  subscribe(core, sub, "q2/#", 2);
  core.publish(message("q2/a", 2));
  const id = sub.published[0]!.packetId;
  core.handle(sub, { type: PacketType.PUBREC, packetId: id }, T0 + 1);
  assert.deepEqual(sub.sent.at(-1), { type: PacketType.PUBREL, packetId: id });
  core.detach(sub, T0 + 2);

  const back = connect(core, connectPacket({ clientId: "s", clean: false }), T0 + 3);
  assert.deepEqual(back.sent.slice(1), [{ type: PacketType.PUBREL, packetId: id }]);
  assert.deepEqual(back.published, []);
  core.handle(back, { type: PacketType.PUBCOMP, packetId: id }, T0 + 4);
  assert.equal(core.sessions.get("s")?.outbound.inflightCount, 0);
});

Deno.test("core sessions: a clean session ends with its connection; QoS 0 is not kept for an offline session [MQTT-3.1.2-6]", () => {
  const core = testCore();
  const clean = connect(core, connectPacket({ clientId: "c", clean: true }));
  core.detach(clean, T0 + 1);
  assert.equal(core.sessions.has("c"), false);

  const kept = connect(core, connectPacket({ clientId: "k", clean: false }));
  subscribe(core, kept, "z/#", 0);
  core.detach(kept, T0 + 1);
  core.publish(message("z/1", 0));
  const back = connect(core, connectPacket({ clientId: "k", clean: false }), T0 + 2);
  assert.equal((back.sent[0] as { sessionPresent: boolean }).sessionPresent, true);
  assert.deepEqual(back.published, []);
});

/**
 * The core at MQTT 5.0 with a made-up clock: message expiry of queued messages, session expiry
 * from CONNECT and DISCONNECT, and the will delay, without sockets.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../../src/packet/mod.ts";
import type { Properties, PublishPacket } from "../../../src/packet/mod.ts";
import { FakeLink, testCore } from "../../_helpers/core.ts";
import { connectPacket } from "../../_helpers/test_client.ts";

const T0 = 1_000_000;

function publish(topic: string, properties: Properties, packetId = 1): PublishPacket {
  return {
    type: PacketType.PUBLISH,
    topic,
    payload: new Uint8Array([1]),
    qos: 1,
    retain: false,
    dup: false,
    packetId,
    properties,
  };
}

Deno.test("core v5: a queued message whose Message Expiry Interval passed is not delivered on resume [MQTT-3.3.2-5]", () => {
  const core = testCore();
  const keep = { sessionExpiryInterval: 600 };
  const sub = new FakeLink("sub");
  core.attach(sub, T0);
  core.handle(
    sub,
    connectPacket({ clientId: "s", protocolVersion: 5, clean: false, properties: keep }),
    T0,
  );
  core.handle(sub, {
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic: "t/#", qos: 1 }],
  }, T0);
  core.detach(sub, T0);
  const pub = new FakeLink("pub");
  core.attach(pub, T0);
  core.handle(pub, connectPacket({ clientId: "p", protocolVersion: 5 }), T0);
  core.handle(pub, publish("t/short", { messageExpiryInterval: 10 }, 1), T0);
  core.handle(pub, publish("t/long", { messageExpiryInterval: 100 }, 2), T0);
  const back = new FakeLink("back");
  core.attach(back, T0 + 11_000);
  core.handle(
    back,
    connectPacket({ clientId: "s", protocolVersion: 5, clean: false, properties: keep }),
    T0 + 11_000,
  );
  assert.deepEqual(back.published.map((p) => p.topic), ["t/long"]);
  assert.equal(core.stats.droppedBy.expired, 1);
});

Deno.test("core v5: the session lives for the CONNECT's Session Expiry Interval, then ends [MQTT-3.1.2-23] [MQTT-4.1.0-2]", () => {
  const core = testCore();
  const link = new FakeLink();
  core.attach(link, T0);
  core.handle(
    link,
    connectPacket({
      clientId: "e",
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 30 },
    }),
    T0,
  );
  core.detach(link, T0);
  core.tick(T0 + 29_000);
  assert.ok(core.sessions.has("e"), "kept within its interval");
  core.tick(T0 + 31_000);
  assert.ok(!core.sessions.has("e"), "ended after it");
});

Deno.test("core v5: DISCONNECT with a longer Session Expiry Interval keeps the session longer", () => {
  const core = testCore();
  const link = new FakeLink();
  core.attach(link, T0);
  core.handle(
    link,
    connectPacket({
      clientId: "d",
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 10 },
    }),
    T0,
  );
  core.handle(link, {
    type: PacketType.DISCONNECT,
    properties: { sessionExpiryInterval: 100 },
  }, T0);
  assert.equal(link.closed?.code, 0);
  core.detach(link, T0);
  core.tick(T0 + 50_000);
  assert.ok(core.sessions.has("d"), "the DISCONNECT's interval applies");
  core.tick(T0 + 101_000);
  assert.ok(!core.sessions.has("d"));
});

Deno.test("core v5: a will with a delay longer than the session goes out when the session ends [MQTT-3.1.2-8]", () => {
  const core = testCore();
  const watcher = new FakeLink("watcher");
  core.attach(watcher, T0);
  core.handle(watcher, connectPacket({ clientId: "w", protocolVersion: 5 }), T0);
  core.handle(watcher, {
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic: "will", qos: 0 }],
  }, T0);
  const link = new FakeLink();
  core.attach(link, T0);
  core.handle(
    link,
    connectPacket({
      clientId: "x",
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 5 },
      will: {
        topic: "will",
        payload: new Uint8Array([1]),
        qos: 0,
        retain: false,
        properties: { willDelayInterval: 60 },
      },
    }),
    T0,
  );
  core.detach(link, T0);
  core.tick(T0 + 4_000);
  assert.equal(watcher.published.length, 0, "not before the session ends");
  core.tick(T0 + 6_000);
  assert.deepEqual(watcher.published.map((p) => p.topic), ["will"]);
});

Deno.test("core v5: a plugin refusal's reason code and string reach the CONNACK, PUBACK and SUBACK [MQTT-3.2.2-8] [MQTT-3.4.2-1] [MQTT-3.9.3-2]", () => {
  const unavailable = testCore({}, { policy: { hasPublishHooks: true, hasSubscribeHooks: true } });
  const refused = new FakeLink("refused");
  refused.answer = () => "unavailable";
  unavailable.attach(refused, T0);
  unavailable.handle(refused, connectPacket({ clientId: "r", protocolVersion: 5 }), T0);
  assert.equal(refused.sent[0]?.type === PacketType.CONNACK && refused.sent[0].reasonCode, 0x88);

  const link = new FakeLink();
  link.answer = (request) =>
    request.kind === "authenticate"
      ? true
      : request.kind === "publish"
      ? { allowed: false, reasonCode: 0x97, reasonString: "publish quota spent" }
      // 0x88 is no SUBACK code: the broker falls back to 0x87.
      : { allowed: false, reasonCode: "topic" in request && request.topic === "q" ? 0x97 : 0x88 };
  unavailable.attach(link, T0);
  unavailable.handle(link, connectPacket({ clientId: "c", protocolVersion: 5 }), T0);
  unavailable.handle(link, publish("t", {}, 7), T0);
  const puback = link.sent.find((p) => p.type === PacketType.PUBACK);
  assert.ok(puback?.type === PacketType.PUBACK);
  assert.equal(puback.reasonCode, 0x97);
  assert.equal(puback.properties?.reasonString, "publish quota spent");
  unavailable.handle(link, {
    type: PacketType.SUBSCRIBE,
    packetId: 2,
    subscriptions: [{ topic: "q", qos: 0 }, { topic: "x", qos: 0 }],
  }, T0);
  const suback = link.sent.find((p) => p.type === PacketType.SUBACK);
  assert.ok(suback?.type === PacketType.SUBACK);
  assert.deepEqual(suback.reasonCodes, [0x97, 0x87]);
});

Deno.test("core v5: a retained message past its Message Expiry Interval is not sent to a new subscription, and is dropped [MQTT-3.3.2-5]", () => {
  const core = testCore();
  const pub = new FakeLink("pub");
  core.attach(pub, T0);
  core.handle(pub, connectPacket({ clientId: "p", protocolVersion: 5 }), T0);
  core.handle(pub, { ...publish("r/old", { messageExpiryInterval: 5 }), retain: true }, T0);
  core.handle(pub, { ...publish("r/new", { messageExpiryInterval: 500 }, 2), retain: true }, T0);
  assert.equal(core.retained.size, 2);
  const sub = new FakeLink("sub");
  core.attach(sub, T0 + 6_000);
  core.handle(sub, connectPacket({ clientId: "s", protocolVersion: 5 }), T0 + 6_000);
  core.handle(sub, {
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic: "r/#", qos: 1 }],
  }, T0 + 6_000);
  assert.deepEqual(sub.published.map((p) => p.topic), ["r/new"]);
  assert.equal(core.retained.size, 1, "the expired one is gone from the store");
});

Deno.test("core v5: a message queued while offline that the new connection's Maximum Packet Size cannot take is dropped, counted, and the next goes in its slot [MQTT-3.1.2-24] [MQTT-3.1.2-25]", () => {
  const core = testCore();
  const keep = { sessionExpiryInterval: 600, receiveMaximum: 1 };
  const sub = new FakeLink("sub");
  core.attach(sub, T0);
  core.handle(
    sub,
    connectPacket({ clientId: "s", protocolVersion: 5, clean: false, properties: keep }),
    T0,
  );
  core.handle(sub, {
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic: "t/#", qos: 1 }],
  }, T0);
  core.detach(sub, T0);
  const pub = new FakeLink("pub");
  core.attach(pub, T0);
  core.handle(pub, connectPacket({ clientId: "p", protocolVersion: 5 }), T0);
  core.handle(pub, { ...publish("t/big", {}, 1), payload: new Uint8Array(300) }, T0);
  core.handle(pub, publish("t/small", {}, 2), T0);
  const back = new FakeLink("back");
  core.attach(back, T0 + 1000);
  core.handle(
    back,
    connectPacket({
      clientId: "s",
      protocolVersion: 5,
      clean: false,
      properties: { ...keep, maximumPacketSize: 100 },
    }),
    T0 + 1000,
  );
  assert.deepEqual(back.published.map((p) => p.topic), ["t/small"]);
  assert.equal(core.stats.droppedBy.tooLarge, 1);
});

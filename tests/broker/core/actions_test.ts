/**
 * The core's outputs as actions, in order, driven with FakeLink and an injected clock (no socket,
 * no sleep): what reaches a connection, and in which order, across connections too.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../../src/packet/mod.ts";
import type { Packet, PublishPacket, QoS } from "../../../src/packet/mod.ts";
import { BrokerMessage } from "../../../src/broker/message.ts";
import { ActionQueue } from "../../../src/broker/actions.ts";
import { connackReturnCode, toDecision } from "../../../src/broker/decision.ts";
import { FakeLink, type TestCore, testCore } from "../../_helpers/core.ts";
import { connectPacket } from "../../_helpers/test_client.ts";

const T0 = 1_700_000_000_000;

function connect(core: TestCore, name: string, packet: Packet, now = T0): FakeLink {
  const link = new FakeLink(name);
  core.attach(link, now);
  core.handle(link, packet, now);
  return link;
}

function subscribe(core: TestCore, link: FakeLink, topic: string, qos: QoS, now = T0): void {
  core.handle(
    link,
    { type: PacketType.SUBSCRIBE, packetId: 1, subscriptions: [{ topic, qos }] },
    now,
  );
}

function message(topic: string, qos: QoS): BrokerMessage {
  return new BrokerMessage(topic, new TextEncoder().encode(topic), { qos, retain: false });
}

function publish(topic: string, qos: QoS, packetId?: number): PublishPacket {
  return {
    type: PacketType.PUBLISH,
    topic,
    payload: new Uint8Array([1]),
    qos,
    packetId,
    retain: false,
    dup: false,
  };
}

Deno.test("core actions: on reconnect of a persistent session the CONNACK comes before the resent PUBLISH and PUBREL, in their original order [MQTT-4.4.0-1] [MQTT-3.3.1-1]", () => {
  const core = testCore();
  const first = connect(core, "first", connectPacket({ clientId: "p", clean: false }));
  subscribe(core, first, "m/#", 2);
  core.publish(message("m/1", 2));
  core.publish(message("m/2", 1));
  // m/1 acknowledged with PUBREC: PUBREL sent, PUBCOMP pending. m/2 unacknowledged.
  core.handle(first, { type: PacketType.PUBREC, packetId: 1 }, T0 + 1);
  assert.deepEqual(first.trace.slice(-3), ["PUBLISH m/1 1", "PUBLISH m/2 2", "PUBREL 1"]);
  core.detach(first, T0 + 2);

  const second = connect(core, "second", connectPacket({ clientId: "p", clean: false }), T0 + 3);
  assert.deepEqual(second.trace, [
    `deadline ${T0 + 3 + 10_000}`, // the connect timeout, replaced at login
    "ask authenticate",
    "deadline Infinity", // keepalive 0: no deadline
    "CONNACK",
    "PUBREL 1",
    "PUBLISH m/2 2 dup",
  ]);
  assert.deepEqual(second.sent[0], {
    type: PacketType.CONNACK,
    sessionPresent: true,
    reasonCode: 0,
  });
});

Deno.test("core actions: a takeover closes the old link with 0x8E before the new CONNACK, and the new link gets the resend [MQTT-3.1.4-2] [MQTT-4.4.0-1]", () => {
  const core = testCore();
  const old = connect(core, "old", connectPacket({ clientId: "t", clean: false }));
  subscribe(core, old, "m/#", 1);
  core.publish(message("m/1", 1));
  core.trace.length = 0;
  const fresh = connect(core, "new", connectPacket({ clientId: "t", clean: false }), T0 + 1);
  assert.deepEqual(core.trace, [
    `new: deadline ${T0 + 1 + 10_000}`,
    "new: ask authenticate",
    "new: deadline Infinity",
    "old: takeOver 0x8e",
    "new: CONNACK",
    "new: PUBLISH m/1 1 dup",
  ]);
  assert.match(old.closed!.reason, /session taken over/);
  // The old link's late packets do nothing: it is no longer the session's.
  core.handle(old, { type: PacketType.PUBACK, packetId: 1 }, T0 + 2);
  assert.equal(core.sessions.get("t")?.outbound.inflightCount, 1);
  assert.equal(core.sessions.get("t")?.link?.handle, fresh);
});

Deno.test("core actions: deadlines are set at attach, replaced at login, cleared for keepalive 0, and not re-announced for each packet [MQTT-3.1.2-24]", () => {
  const core = testCore({ connectTimeout: 5 });
  const link = new FakeLink();
  core.attach(link, T0);
  assert.deepEqual(link.deadlines, [T0 + 5_000], "connect timeout");
  core.handle(link, connectPacket({ clientId: "k", keepAlive: 10 }), T0 + 1_000);
  assert.deepEqual(link.deadlines, [T0 + 5_000, T0 + 16_000], "1.5 x keepalive");
  for (let t = T0 + 2_000; t < T0 + 10_000; t += 1_000) {
    core.handle(link, { type: PacketType.PINGREQ }, t);
  }
  assert.equal(link.deadlines.length, 2, "a deadline action per packet");
  // The tick at the announced deadline finds the allowance moved by traffic: announced anew.
  core.tick(T0 + 16_000);
  assert.deepEqual(link.deadlines.slice(2), [T0 + 9_000 + 15_000]);
  assert.equal(link.closing, false);

  const still = new FakeLink();
  core.attach(still, T0);
  core.handle(still, connectPacket({ clientId: "z", keepAlive: 0 }), T0);
  assert.deepEqual(still.deadlines, [T0 + 5_000, Infinity], "keepalive 0 clears the deadline");
});

Deno.test("core actions: keepalive expiry through tick(now) aborts with 0x8D, once [MQTT-3.1.2-24]", () => {
  const core = testCore();
  const link = connect(core, "k", connectPacket({ clientId: "k", keepAlive: 4 }));
  core.handle(link, { type: PacketType.PINGREQ }, T0 + 5_000);
  core.tick(T0 + 6_001);
  assert.equal(link.closing, false, "expired from the first allowance, not the last packet");
  assert.equal(link.deadlines.at(-1), T0 + 11_000);
  core.tick(T0 + 11_001);
  core.tick(T0 + 12_000);
  assert.deepEqual(link.trace.slice(-3), ["PINGRESP", `deadline ${T0 + 11_000}`, "abort 0x8d"]);
  assert.deepEqual(link.closed, { how: "abort", reason: "keepalive timeout", code: 0x8d });
});

Deno.test("core actions: packets behind a slow publish authorization come out in order once it answers [MQTT-4.6.0-6]", () => {
  const core = testCore({}, { policy: { hasPublishHooks: true } });
  const sub = connect(core, "sub", connectPacket({ clientId: "sub" }));
  subscribe(core, sub, "o/#", 1);
  const pub = connect(core, "pub", connectPacket({ clientId: "pub" }));
  let hold = true;
  pub.answer = () => hold ? undefined : true;
  core.handle(pub, publish("o/1", 1, 10), T0 + 1);
  core.handle(pub, { type: PacketType.PINGREQ }, T0 + 2);
  core.handle(pub, publish("o/2", 2, 11), T0 + 3);
  core.handle(pub, { type: PacketType.PUBREL, packetId: 11 }, T0 + 4);
  assert.deepEqual(pub.trace.slice(-1), ["ask publish"], "a packet behind the question acted");
  core.trace.length = 0;
  hold = false;
  core.decided(pub.asked.at(-1)!.id, true, T0 + 5);
  assert.deepEqual(core.trace, [
    "sub: PUBLISH o/1 1",
    "pub: PUBACK 10",
    "pub: PINGRESP",
    "pub: ask publish",
    "sub: PUBLISH o/2 2",
    "pub: PUBREC 11",
    "pub: PUBCOMP 11",
  ]);
  assert.equal(core.waiting(pub), false);
});

Deno.test("core actions: a QoS 1 PUBLISH the connection held back keeps DUP 0 and goes out in order once its output drained [MQTT-3.3.1-1] [MQTT-4.6.0-6]", () => {
  const core = testCore();
  const sub = connect(core, "sub", connectPacket({ clientId: "s", clean: false }));
  subscribe(core, sub, "h/#", 1);
  sub.holding = true;
  core.publish(message("h/1", 1));
  core.publish(message("h/2", 1));
  sub.holding = false;
  // Blocked: the core holds the next one itself, behind the two held back.
  core.publish(message("h/3", 1));
  assert.deepEqual(sub.published, []);
  assert.equal(core.stats.publishSent, 0);
  core.drained(sub);
  assert.deepEqual(sub.published, [
    { topic: "h/1", qos: 1, packetId: 1, dup: false },
    { topic: "h/2", qos: 1, packetId: 2, dup: false },
    { topic: "h/3", qos: 1, packetId: 3, dup: false },
  ]);
  assert.equal(core.stats.publishSent, 3);
});

Deno.test("core actions: a refused login's MQTT 5.0 reason code becomes the 3.1.1 return code of the CONNACK", () => {
  const cases: [number, number][] = [[0x86, 4], [0x87, 5], [0x88, 3], [0x8a, 5], [0x85, 2]];
  for (const [reasonCode, returnCode] of cases) {
    const core = testCore();
    const link = new FakeLink();
    link.answer = () => ({ allowed: false, reasonCode, reasonString: "no" });
    core.attach(link, T0);
    core.handle(link, connectPacket({ clientId: "r", username: "u" }), T0);
    assert.deepEqual(link.sent, [{
      type: PacketType.CONNACK,
      sessionPresent: false,
      reasonCode: returnCode,
    }]);
    assert.equal(link.closed?.how, "close");
    assert.match(link.closed!.reason, /: no$/);
  }
  assert.equal(connackReturnCode(0x84), 1);
  assert.equal(connackReturnCode(0x97), 3);
  assert.deepEqual(toDecision("unavailable"), {
    allowed: false,
    reasonCode: 0x88,
    reasonString: "authentication unavailable",
  });
});

Deno.test("core actions: the queue reuses its records and drops their references when cleared", () => {
  const queue = new ActionQueue();
  const m = message("q", 0);
  queue.journal({ type: "deleteSession", clientId: "c" });
  const first = queue.at(0);
  queue.clear();
  queue.deadline({} as never, 5);
  assert.equal(queue.at(0), first, "a record was allocated again");
  assert.equal(queue.at(0).kind, "deadline");
  assert.equal((queue.at(0) as { mutation?: unknown }).mutation, undefined);
  queue.clear();
  queue.publish({} as never, m, 0, 0, false);
  queue.clear();
  assert.equal(
    (first as { message?: unknown }).message,
    undefined,
    "a cleared record pins a message",
  );
});

Deno.test("core actions: a QoS 0 message is one fanOut action for its connected subscribers, one copy each [MQTT-3.3.5-1]", () => {
  const core = testCore();
  const a = connect(core, "a", connectPacket({ clientId: "a" }));
  const b = connect(core, "b", connectPacket({ clientId: "b" }));
  const away = connect(core, "away", connectPacket({ clientId: "away", clean: false }));
  for (const link of [a, b, away]) subscribe(core, link, "f/#", 1);
  subscribe(core, a, "f/+", 0); // overlapping: still one copy for a
  core.detach(away, T0 + 1);
  core.core.publish(message("f/1", 0));
  const actions = core.core.actions;
  assert.equal(actions.length, 1);
  const action = actions.at(0);
  assert.equal(action.kind, "fanOut");
  if (action.kind === "fanOut") {
    assert.deepEqual(
      action.links.slice(action.from, action.to).map((l) => (l.handle as FakeLink).name),
      ["a", "b"],
    );
  }
  core.run();
  assert.equal(actions.length, 0);
  for (const link of [a, b]) {
    assert.deepEqual(link.published, [{ topic: "f/1", qos: 0, packetId: 0, dup: false }]);
  }
  assert.deepEqual(away.published, []);
  assert.equal(core.stats.publishSent, 2);
});

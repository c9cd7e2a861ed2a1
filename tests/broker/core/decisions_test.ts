/**
 * Plugin decisions as core state: while a decision about one packet of a link is pending, the
 * link's later packets wait in the core and take effect in order once it is answered
 * [MQTT-4.6.0-6]. Driven with FakeLink and an injected clock, no socket.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../../src/packet/mod.ts";
import type { Packet, PublishPacket, QoS } from "../../../src/packet/mod.ts";
import type { TestCore } from "../../_helpers/core.ts";
import { FakeLink, testCore } from "../../_helpers/core.ts";
import { connectPacket } from "../../_helpers/test_client.ts";
import { rng } from "../../_helpers/rng.ts";

const T0 = 1_700_000_000_000;

function publish(topic: string, qos: QoS, packetId?: number): PublishPacket {
  return {
    type: PacketType.PUBLISH,
    topic,
    payload: new TextEncoder().encode(topic),
    qos,
    packetId,
    retain: false,
    dup: false,
  };
}

/** A connected link; its decisions after the login are held when `hold` is set. */
function connected(core: TestCore, clientId: string, packet?: Packet): FakeLink {
  const link = new FakeLink();
  core.attach(link, T0);
  core.handle(link, packet ?? connectPacket({ clientId, keepAlive: 10 }), T0);
  assert.equal(link.sent[0]?.type, PacketType.CONNACK);
  return link;
}

function types(link: FakeLink): number[] {
  return link.sent.map((p) => p.type);
}

Deno.test("core decisions: packets after a PUBLISH awaiting authorization wait in the core, in order [MQTT-4.6.0-6]", () => {
  const core = testCore({}, { policy: { hasPublishHooks: true } });
  const sub = connected(core, "sub");
  core.handle(sub, {
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic: "t/#", qos: 0 }],
  }, T0);
  const pub = connected(core, "pub");
  pub.answer = () => undefined;
  core.handle(pub, publish("t/a", 1, 1), T0 + 1);
  core.handle(pub, { type: PacketType.PINGREQ }, T0 + 2);
  core.handle(pub, publish("t/b", 1, 2), T0 + 3);
  assert.equal(core.waiting(pub), true);
  assert.deepEqual(
    pub.asked.map((a) => a.request.kind),
    ["authenticate", "publish"],
    "asked ahead of the answer",
  );
  assert.deepEqual(types(pub), [PacketType.CONNACK], "a held packet took effect");
  assert.equal(sub.published.length, 0);

  core.decided(pub.asked[1]!.id, true, T0 + 100);
  // t/a routed and acknowledged, then the PINGREQ answered, then t/b asks in its turn.
  assert.deepEqual(sub.published.map((p) => p.topic), ["t/a"]);
  assert.deepEqual(types(pub), [PacketType.CONNACK, PacketType.PUBACK, PacketType.PINGRESP]);
  assert.equal(pub.asked.length, 3);
  assert.equal(core.waiting(pub), true);

  core.decided(pub.asked[2]!.id, false, T0 + 200);
  // Refused: still acknowledged (3.1.1 cannot tell the publisher), not routed, counted.
  assert.deepEqual(types(pub).slice(3), [PacketType.PUBACK]);
  assert.equal((pub.sent[3] as { packetId: number }).packetId, 2);
  assert.deepEqual(sub.published.map((p) => p.topic), ["t/a"]);
  assert.equal(core.stats.droppedBy.notAuthorized, 1);
  assert.equal(core.waiting(pub), false);
});

Deno.test("core decisions: answers for the same link in turn; other links are not held", () => {
  const core = testCore({}, { policy: { hasPublishHooks: true } });
  const slow = connected(core, "slow");
  const fast = connected(core, "fast");
  slow.answer = () => undefined;
  core.handle(slow, publish("s/1", 1, 1), T0);
  core.handle(fast, publish("f/1", 1, 7), T0);
  assert.deepEqual(types(fast), [PacketType.CONNACK, PacketType.PUBACK]);
  assert.deepEqual(types(slow), [PacketType.CONNACK]);
  // An unknown id changes nothing.
  core.decided(12345, true, T0);
  assert.equal(core.waiting(slow), true);
});

Deno.test("core decisions: a SUBSCRIBE asks filter by filter; a PUBLISH after it waits for its SUBACK", () => {
  const core = testCore({}, { policy: { hasSubscribeHooks: true } });
  const link = connected(core, "c");
  link.answer = () => undefined;
  core.handle(link, {
    type: PacketType.SUBSCRIBE,
    packetId: 3,
    subscriptions: [{ topic: "x/#", qos: 1 }, { topic: "y/#", qos: 2 }],
  }, T0);
  core.handle(link, publish("x/1", 1, 4), T0);
  assert.deepEqual(link.asked.slice(1).map((a) => a.request), [
    { kind: "subscribe", client: link.client, topic: "x/#", qos: 1 },
  ]);
  core.decided(link.asked[1]!.id, true, T0 + 1);
  assert.equal(link.asked.length, 3);
  assert.equal((link.asked[2]!.request as { topic: string }).topic, "y/#");
  assert.deepEqual(types(link), [PacketType.CONNACK]);
  core.decided(link.asked[2]!.id, false, T0 + 2);
  assert.deepEqual(link.sent.slice(1), [
    { type: PacketType.SUBACK, packetId: 3, reasonCodes: [1, 0x80] },
    { type: PacketType.PUBACK, packetId: 4 },
  ]);
  // The granted filter received the PUBLISH that waited behind the SUBACK.
  assert.deepEqual(link.published.map((p) => p.topic), ["x/1"]);
});

Deno.test("core decisions: a CONNECT with a will asks for the login, then the will; packets sent meanwhile follow the CONNACK", () => {
  const core = testCore({}, { policy: { hasPublishHooks: true } });
  const link = new FakeLink();
  link.answer = () => undefined;
  core.attach(link, T0);
  const will = { topic: "w/t", payload: new Uint8Array([1]), qos: 0 as QoS, retain: false };
  core.handle(link, connectPacket({ clientId: "w", will }), T0);
  core.handle(link, { type: PacketType.PINGREQ }, T0);
  assert.deepEqual(link.asked.map((a) => a.request.kind), ["authenticate"]);
  core.decided(link.asked[0]!.id, true, T0 + 1);
  assert.deepEqual(link.asked.map((a) => a.request.kind), ["authenticate", "will"]);
  assert.deepEqual(link.sent, [], "accepted before the will was authorized");
  core.decided(link.asked[1]!.id, true, T0 + 2);
  assert.deepEqual(types(link), [PacketType.CONNACK, PacketType.PINGRESP]);
  assert.equal(core.sessions.get("w")?.will?.topic, "w/t");
});

Deno.test("core decisions: a refused will refuses the CONNECT with return code 5; held packets are dropped", () => {
  const core = testCore({}, { policy: { hasPublishHooks: true } });
  const link = new FakeLink();
  link.answer = (request) => request.kind === "will" ? undefined : true;
  core.attach(link, T0);
  const will = { topic: "w/t", payload: new Uint8Array([1]), qos: 0 as QoS, retain: false };
  core.handle(link, connectPacket({ clientId: "w", will }), T0);
  core.handle(link, { type: PacketType.PINGREQ }, T0);
  core.decided(link.asked[1]!.id, false, T0 + 1);
  assert.deepEqual(link.sent, [{ type: PacketType.CONNACK, sessionPresent: false, reasonCode: 5 }]);
  assert.equal(link.closed?.how, "close");
  assert.equal(core.sessions.size, 0);
});

Deno.test("core decisions: a login still unchecked when the connect timeout ends gets CONNACK 3 (server unavailable), not a close without CONNACK", () => {
  const core = testCore();
  const link = new FakeLink();
  link.answer = () => undefined;
  core.attach(link, T0);
  // The CONNECT comes in time (connect timeout 10 s); its check does not end.
  core.handle(link, connectPacket({ clientId: "slow", username: "u" }), T0 + 9_000);
  core.tick(T0 + 10_000);
  assert.equal(link.closing, false, "not before the connect timeout");
  core.tick(T0 + 10_001);
  assert.deepEqual(link.sent, [{ type: PacketType.CONNACK, sessionPresent: false, reasonCode: 3 }]);
  assert.equal(link.closed?.how, "close");
  assert.equal(core.waiting(link), false);
  // The late answer finds no decision.
  core.decided(link.asked[0]!.id, true, T0 + 10_002);
  assert.equal(core.sessions.size, 0);

  // A 5.0 client gets 0x88 with the reason.
  const link5 = new FakeLink();
  link5.answer = () => undefined;
  core.attach(link5, T0);
  core.handle(link5, connectPacket({ clientId: "slow5", protocolVersion: 5 }), T0 + 1);
  core.tick(T0 + 10_001);
  const connack = link5.sent[0] as {
    type: number;
    reasonCode: number;
    properties?: { reasonString?: string };
  };
  assert.deepEqual([connack.type, connack.reasonCode], [PacketType.CONNACK, 0x88]);
  assert.equal(connack.properties?.reasonString, "login not checked within the connect timeout");

  // Without a CONNECT, the connect timeout still closes the connection as before.
  const idle = new FakeLink();
  core.attach(idle, T0);
  core.tick(T0 + 10_001);
  assert.deepEqual(idle.sent, []);
  assert.equal(idle.closed?.how, "abort");
});

Deno.test("core decisions: the keepalive allowance restarts from the answer, not from the packet [MQTT-3.1.2-24]", () => {
  const core = testCore({}, { policy: { hasPublishHooks: true } });
  const link = connected(core, "k");
  link.answer = () => undefined;
  core.handle(link, publish("k/1", 0), T0 + 1_000);
  core.tick(T0 + 16_001);
  // The broker's wait counts against the client: the allowance from the PUBLISH has run out…
  assert.equal(link.closed?.reason, "keepalive timeout");

  const core2 = testCore({}, { policy: { hasPublishHooks: true } });
  const link2 = connected(core2, "k");
  link2.answer = () => undefined;
  core2.handle(link2, publish("k/1", 0), T0 + 1_000);
  core2.decided(link2.asked[1]!.id, true, T0 + 14_000);
  // …unless the answer came first: then the allowance counts from it.
  core2.tick(T0 + 29_000);
  assert.equal(link2.closing, false);
  core2.tick(T0 + 29_001);
  assert.equal(link2.closed?.reason, "keepalive timeout");
});

Deno.test("core decisions: a link closed while waiting has its held packets dropped; the late answer does nothing", () => {
  const core = testCore({}, { policy: { hasPublishHooks: true } });
  const sub = connected(core, "sub");
  core.handle(sub, {
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic: "t/#", qos: 0 }],
  }, T0);
  const pub = connected(core, "pub");
  pub.answer = () => undefined;
  core.handle(pub, publish("t/a", 0), T0);
  core.handle(pub, publish("t/b", 0), T0);
  pub.close("test");
  core.detach(pub, T0 + 1);
  assert.equal(core.waiting(pub), false);
  core.decided(pub.asked[1]!.id, true, T0 + 2);
  assert.deepEqual(sub.published, []);
  assert.deepEqual(types(pub), [PacketType.CONNACK]);
});

Deno.test("core decisions: receive authorizations answered out of order still deliver in routing order [MQTT-4.6.0-6]", () => {
  const asked: { id: number; topic: string }[] = [];
  let hold = true;
  const core = testCore({}, {
    policy: { hasReceiveHooks: true },
    decide: (id, request) => {
      if (request.kind !== "receive") return true;
      asked.push({ id, topic: request.topic });
      return hold ? undefined : true;
    },
  });
  const sub = connected(core, "sub");
  core.handle(sub, {
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic: "r/#", qos: 0 }],
  }, T0);
  const pub = connected(core, "pub");
  for (const t of ["r/1", "r/2", "r/3"]) core.handle(pub, publish(t, 0), T0);
  hold = false;
  // A synchronous answer behind pending ones waits its turn too.
  core.handle(pub, publish("r/4", 0), T0);
  assert.deepEqual(asked.map((a) => a.topic), ["r/1", "r/2", "r/3", "r/4"]);
  assert.equal(sub.published.length, 0);
  core.decided(asked[2]!.id, true, T0 + 1);
  core.decided(asked[1]!.id, false, T0 + 2);
  assert.equal(sub.published.length, 0, "delivered ahead of r/1");
  core.decided(asked[0]!.id, true, T0 + 3);
  assert.deepEqual(sub.published.map((p) => p.topic), ["r/1", "r/3", "r/4"]);
  assert.equal(core.stats.droppedBy.notAuthorized, 1);
  // Nothing waits any more: the next answer at once is delivered at once.
  core.handle(pub, publish("r/5", 0), T0 + 4);
  assert.deepEqual(sub.published.map((p) => p.topic), ["r/1", "r/3", "r/4", "r/5"]);
});

Deno.test("core decisions: many logins waiting at once, answered in random order, some closed first: each open link gets the CONNACK of its own answer, once", () => {
  // Pending decisions live in a table that keeps its newest entry aside from a Map: answers in
  // any order, logins waiting for their source's budget (a decision no plugin is asked) and late
  // answers for closed links must each reach their own link.
  for (const seed of [1, 2, 3, 4, 5]) {
    const random = rng(seed);
    const core = testCore();
    const links: FakeLink[] = [];
    const allowed = new Map<FakeLink, boolean>();
    for (let i = 0; i < 60; i++) {
      const link = new FakeLink(`l${i}`);
      link.answer = () => undefined;
      core.attach(link, T0);
      core.handle(link, connectPacket({ clientId: `c${i}`, keepAlive: 10 }), T0);
      links.push(link);
    }
    const answered = new Set<number>();
    const closed = new Set<FakeLink>();
    for (let step = 0; step < 10_000; step++) {
      const pending = links.flatMap((link) =>
        link.asked.filter((a) => !answered.has(a.id)).map((a) => ({ link, id: a.id }))
      );
      if (pending.length === 0) break;
      const { link, id } = pending[Math.floor(random() * pending.length)]!;
      if (random() < 0.15 && !closed.has(link)) {
        // The client goes away before the answer: the answer comes late.
        link.close("test");
        core.detach(link, T0 + step);
        closed.add(link);
      }
      const allow = random() < 0.8;
      if (!closed.has(link)) allowed.set(link, allow);
      answered.add(id);
      core.decided(id, allow, T0 + step);
      // An answer given twice does nothing the second time.
      if (random() < 0.1) core.decided(id, !allow, T0 + step);
    }
    for (const [i, link] of links.entries()) {
      const connacks = link.sent.filter((p) => p.type === PacketType.CONNACK);
      if (closed.has(link)) {
        assert.equal(connacks.length, 0, `seed ${seed}, link ${i}: closed before its answer`);
        continue;
      }
      assert.equal(connacks.length, 1, `seed ${seed}, link ${i}: one CONNACK`);
      assert.equal(
        connacks[0]!.type === PacketType.CONNACK && connacks[0]!.reasonCode === 0,
        allowed.get(link),
        `seed ${seed}, link ${i}: the CONNACK of its own answer`,
      );
      assert.equal(core.waiting(link), false);
    }
    // Nothing is left waiting: a new login is answered at once.
    const late = new FakeLink("late");
    core.attach(late, T0 + 20_000);
    core.handle(late, connectPacket({ clientId: "late" }), T0 + 20_000);
    assert.equal(late.sent[0]?.type, PacketType.CONNACK);
  }
});

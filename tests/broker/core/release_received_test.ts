/**
 * `BrokerCore.releaseReceived`: after a PUBLISH is routed, whether its bytes (a view into the
 * publisher's read buffer) may be read into again, and what was copied out for that. Driven as
 * the shell drives the core (FakeLink, injected clock); the message routed is caught through the
 * core's `messageReceived` event, so that the test sees where its payload lives.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../../src/packet/mod.ts";
import type { PublishPacket, QoS, Subscription } from "../../../src/packet/mod.ts";
import type { BrokerMessage } from "../../../src/broker/message.ts";
import { connect, type FakeLink, T0, type TestCore, testCore } from "../../_helpers/core.ts";
import { connectPacket } from "../../_helpers/test_client.ts";

interface Setup {
  core: TestCore;
  pub: FakeLink;
  routed: BrokerMessage[];
}

function setup(maxInflight = 20, maxQueuedMessages = 10): Setup {
  const routed: BrokerMessage[] = [];
  const core = testCore({ maxInflight, maxQueuedMessages }, {
    events: { messageReceived: (_id, m) => void routed.push(m) },
  });
  const pub = connect(core, connectPacket({ clientId: "pub" }));
  return { core, pub, routed };
}

function subscriber(
  { core }: Setup,
  clientId: string,
  subscription: Subscription,
  options: { v5?: boolean; identifier?: number; clean?: boolean } = {},
): FakeLink {
  // A session that outlives its connection: clean false, and at 5.0 an expiry [MQTT-3.1.2-23].
  const kept = options.clean === false;
  const link = connect(
    core,
    connectPacket({
      clientId,
      protocolVersion: options.v5 ? 5 : 4,
      clean: options.clean,
      properties: options.v5 && kept ? { sessionExpiryInterval: 60 } : undefined,
    }),
  );
  core.handle(link, {
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [subscription],
    ...(options.identifier === undefined
      ? {}
      : { properties: { subscriptionIdentifier: [options.identifier] } }),
  }, T0);
  return link;
}

/** A PUBLISH whose payload is a view into a larger "read buffer", as the decoder hands it out. */
function publish(qos: QoS, retain = false): { packet: PublishPacket; buffer: Uint8Array } {
  const buffer = new Uint8Array(64).fill(7);
  const packet: PublishPacket = {
    type: PacketType.PUBLISH,
    topic: "t/1",
    payload: buffer.subarray(10, 20),
    qos,
    packetId: qos > 0 ? 1 : undefined,
    retain,
    dup: false,
  };
  return { packet, buffer };
}

/** Routes `packet` from the publisher and asks the core whether its bytes may be reused. */
function route(s: Setup, packet: PublishPacket): boolean {
  s.core.handle(s.pub, packet, T0);
  return s.core.core.releaseReceived();
}

/** Whether the message let go of its payload without a copy (`BrokerMessage.writtenOut`). */
function letGo(m: BrokerMessage, buffer: Uint8Array): boolean {
  return m.payload.length === 0 && m.payload.buffer !== buffer.buffer;
}

Deno.test("releaseReceived: a QoS 1 message delivered only at QoS 0 is released without a copy of its payload [MQTT-3.8.4-6]", () => {
  const s = setup();
  const sub = subscriber(s, "s", { topic: "t/#", qos: 0 });
  const { packet, buffer } = publish(1);
  assert.equal(route(s, packet), true);
  assert.deepEqual(sub.published.map((p) => p.qos), [0]);
  assert.deepEqual([...sub.payloads[0]!], new Array(10).fill(7));
  // Nothing keeps it: no copy was made, the view into the read buffer let go of.
  assert.equal(letGo(s.routed[0]!, buffer), true);
});

for (const qos of [1, 2] as const) {
  Deno.test(`releaseReceived: a QoS ${qos} message in flight only to clean sessions is released without a copy, as they never resend it [MQTT-3.1.2-6]`, () => {
    const s = setup();
    const subs = [
      subscriber(s, "c4", { topic: "t/#", qos }),
      subscriber(s, "c5", { topic: "t/#", qos }, { v5: true }),
      subscriber(s, "c5id", { topic: "t/#", qos }, { v5: true, identifier: 3 }),
    ];
    const { packet, buffer } = publish(qos);
    assert.equal(route(s, packet), true);
    // Written out during the routing, with the bytes as published.
    for (const sub of subs) {
      assert.deepEqual(sub.published.map((p) => p.qos), [qos]);
      assert.deepEqual(sub.payloads.map((p) => [...p]), [new Array(10).fill(7)]);
    }
    assert.equal(letGo(s.routed[0]!, buffer), true);
    buffer.fill(9); // the read buffer read into again
    // Acknowledged: the flows end, nothing read the bytes again.
    for (const [i, sub] of subs.entries()) {
      const id = sub.published[0]!.packetId!;
      if (qos === 1) s.core.handle(sub, { type: PacketType.PUBACK, packetId: id }, T0);
      else {
        s.core.handle(sub, { type: PacketType.PUBREC, packetId: id }, T0);
        s.core.handle(sub, { type: PacketType.PUBCOMP, packetId: id }, T0);
      }
      assert.equal(s.core.sessions.get(["c4", "c5", "c5id"][i]!)!.inflightCount, 0);
      assert.equal(sub.closed, undefined);
    }
  });
}

Deno.test("releaseReceived: a QoS 1 message in flight to a clean session and to one that outlives its connection has its payload copied out for the resend [MQTT-4.4.0-1]", () => {
  const s = setup();
  subscriber(s, "clean", { topic: "t/#", qos: 1 });
  subscriber(s, "kept", { topic: "t/#", qos: 1 }, { clean: false });
  const { packet, buffer } = publish(1);
  assert.equal(route(s, packet), true);
  const kept = s.routed[0]!.payload;
  assert.notEqual(kept.buffer, buffer.buffer);
  buffer.fill(9);
  assert.deepEqual([...kept], new Array(10).fill(7));
});

Deno.test("releaseReceived: a QoS 1 message a clean session gets as a member of a shared group has its payload copied out, for another member should the session end [MQTT-4.8.2-3]", () => {
  const s = setup();
  subscriber(s, "m", { topic: "$share/g/t/#", qos: 1 }, { v5: true });
  const { packet, buffer } = publish(1);
  assert.equal(route(s, packet), true);
  const kept = s.routed[0]!.payload;
  assert.notEqual(kept.buffer, buffer.buffer);
  buffer.fill(9);
  assert.deepEqual([...kept], new Array(10).fill(7));
});

Deno.test("releaseReceived: a QoS 1 message in flight to one subscriber and at QoS 0 to another has its payload copied out [MQTT-4.4.0-1]", () => {
  const s = setup();
  subscriber(s, "s0", { topic: "t/#", qos: 0 });
  subscriber(s, "s1", { topic: "t/#", qos: 1 }, { clean: false });
  const { packet, buffer } = publish(1);
  assert.equal(route(s, packet), true);
  const kept = s.routed[0]!.payload;
  assert.notEqual(kept.buffer, buffer.buffer);
  buffer.fill(9); // the read buffer read into again
  assert.deepEqual([...kept], new Array(10).fill(7));
});

Deno.test("releaseReceived: a QoS 1 message queued behind a full window has its payload copied out while routed [MQTT-4.6.0-6]", () => {
  const t = setup(1);
  subscriber(t, "s1", { topic: "t/#", qos: 1 });
  assert.equal(route(t, publish(1).packet), true); // in flight
  const { packet, buffer } = publish(1);
  packet.packetId = 2;
  assert.equal(route(t, packet), true); // queued
  const queued = t.routed[1]!.payload;
  assert.notEqual(queued.buffer, buffer.buffer);
  buffer.fill(9);
  assert.deepEqual([...queued], new Array(10).fill(7));
});

Deno.test("releaseReceived: in a core without a queue (maxQueuedMessages 0; the YAML's 0 is unbounded) a QoS 1 message past a connected session's full window is dropped, counted, and its payload not copied out", () => {
  const t = setup(1, 0);
  const sub = subscriber(t, "s1", { topic: "t/#", qos: 1 });
  assert.equal(route(t, publish(1).packet), true); // in flight
  const { packet, buffer } = publish(1);
  packet.packetId = 2;
  assert.equal(route(t, packet), true); // no room, no queue: dropped
  assert.equal(t.core.stats.droppedBy.queueFull, 1);
  assert.equal(t.core.sessions.get("s1")!.queuedCount, 0);
  assert.equal(sub.published.length, 1);
  // Nothing keeps it: no copy made, the view into the read buffer let go of.
  assert.equal(letGo(t.routed[1]!, buffer), true);
});

Deno.test("releaseReceived: in a core without a queue (maxQueuedMessages 0; the YAML's 0 is unbounded) a QoS 1 message past an offline session's full window is dropped, counted, and not given a payload of its own", () => {
  const t = setup(1, 0);
  const sub = subscriber(t, "s1", { topic: "t/#", qos: 1 }, { clean: false });
  t.core.handle(sub, { type: PacketType.DISCONNECT }, T0);
  t.core.detach(sub, T0);
  assert.equal(t.core.sessions.get("s1")!.link, undefined);
  assert.equal(route(t, publish(1).packet), true); // kept in the offline session's window
  const { packet, buffer } = publish(1);
  packet.packetId = 2;
  assert.equal(route(t, packet), true); // dropped
  assert.equal(t.core.stats.droppedBy.queueFull, 1);
  assert.equal(t.core.sessions.get("s1")!.inflightCount, 1);
  assert.equal(letGo(t.routed[1]!, buffer), true);
});

for (const qos of [0, 1] as const) {
  Deno.test(`releaseReceived: a QoS ${qos} message to a 5.0 subscriber with a Subscription Identifier at QoS 0 is released [MQTT-3.3.4-3]`, () => {
    const s = setup();
    const sub = subscriber(s, "s5", { topic: "t/#", qos: 0 }, { v5: true, identifier: 7 });
    const { packet } = publish(qos);
    assert.equal(route(s, packet), true);
    assert.deepEqual(sub.published.map((p) => p.qos), [0]);
  });
}

Deno.test("releaseReceived: a retained message to a 5.0 subscriber with Retain As Published at QoS 0 is released [MQTT-3.3.1-12]", () => {
  const s = setup();
  const sub = subscriber(s, "s5", { topic: "t/#", qos: 0, retainAsPublished: true }, { v5: true });
  const { packet } = publish(0, true);
  assert.equal(route(s, packet), true);
  assert.equal(sub.published.length, 1);
});

Deno.test("releaseReceived: 5.0 subscribers' copies kept in flight share one copy of the payload [MQTT-3.3.4-3] [MQTT-4.4.0-1]", () => {
  const s = setup();
  const a = subscriber(s, "a", { topic: "t/#", qos: 1 }, { v5: true, identifier: 7, clean: false });
  const b = subscriber(s, "b", { topic: "t/#", qos: 1 }, { v5: true, identifier: 8, clean: false });
  const { packet, buffer } = publish(1);
  assert.equal(route(s, packet), true);
  buffer.fill(9); // the read buffer read into again
  const inFlight = [a, b].map((link) => {
    const session = s.core.sessions.get(link === a ? "a" : "b")!;
    const [entry] = [...session.outbound.inflight()];
    return entry!.message;
  });
  assert.deepEqual(inFlight.map((m) => m.subscriptionIdentifiers), [[7], [8]]);
  for (const m of inFlight) assert.deepEqual([...m.payload], new Array(10).fill(7));
  assert.equal(inFlight[0]!.payload, inFlight[1]!.payload);
});

for (const beside of ["clean sessions", "a session that outlives its connection"]) {
  Deno.test(`releaseReceived: a 5.0 clean session's copy in flight (Subscription Identifier) keeps no view into the read buffer once routed, beside ${beside} [MQTT-3.1.2-6] [MQTT-3.3.4-3]`, () => {
    const s = setup();
    subscriber(s, "c5id", { topic: "t/#", qos: 1 }, { v5: true, identifier: 3 });
    subscriber(s, "c4", { topic: "t/#", qos: 1 });
    const kept = beside !== "clean sessions";
    if (kept) {
      subscriber(s, "p5", { topic: "t/#", qos: 1 }, { v5: true, identifier: 4, clean: false });
    }
    const { packet, buffer } = publish(1);
    assert.equal(route(s, packet), true);
    buffer.fill(9); // the read buffer read into again, by another client's PUBLISH
    const entry = (id: string) => [...s.core.sessions.get(id)!.outbound.inflight()][0]!.message;
    // Never sent again [MQTT-3.1.2-6]: no bytes, and none of another client's.
    const copy = entry("c5id");
    assert.deepEqual(copy.subscriptionIdentifiers, [3]);
    assert.ok(!copy.payload.includes(9), "the clean session's copy views the reused buffer");
    assert.notEqual(copy.payload.buffer, buffer.buffer);
    if (kept) {
      // Resent after a reconnect [MQTT-4.4.0-1]: the bytes as published.
      assert.deepEqual([...entry("p5").payload], new Array(10).fill(7));
    }
  });
}

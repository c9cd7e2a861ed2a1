/**
 * Routing while MQTT 5.0 clients are connected, as actions (FakeLink, injected clock): the
 * deliveries that need nothing of their own stay one `fanOut` action per QoS 0 message, 3.1.1
 * and 5.0 subscribers alike; only the others (Subscription Identifiers, Retain As Published, No
 * Local, outbound topic aliases, expiry, Maximum Packet Size) are delivered one by one.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../../src/packet/mod.ts";
import type { Packet, PublishPacket, QoS, Subscription } from "../../../src/packet/mod.ts";
import { ActionQueue, type CoreAction } from "../../../src/broker/actions.ts";
import type { Link } from "../../../src/broker/link.ts";
import { BrokerMessage } from "../../../src/broker/message.ts";
import { FakeLink, T0, type TestCore, testCore } from "../../_helpers/core.ts";
import { connectPacket } from "../../_helpers/test_client.ts";

function connect(core: TestCore, name: string, packet: Packet): FakeLink {
  const link = new FakeLink(name);
  core.attach(link, T0);
  core.handle(link, packet, T0);
  return link;
}

function subscribe(
  core: TestCore,
  link: FakeLink,
  subscription: Subscription,
  identifier?: number,
): void {
  const packet: Packet = {
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [subscription],
  };
  if (identifier !== undefined) packet.properties = { subscriptionIdentifier: [identifier] };
  core.handle(link, packet, T0);
}

function publish(topic: string, qos: QoS, extra: Partial<PublishPacket> = {}): PublishPacket {
  return {
    type: PacketType.PUBLISH,
    topic,
    payload: new Uint8Array([1, 2, 3]),
    qos,
    packetId: qos > 0 ? 1 : undefined,
    retain: false,
    dup: false,
    ...extra,
  };
}

/** The queued actions, by kind and the names of their links. */
function describe(core: TestCore): string[] {
  const out: string[] = [];
  const actions = core.core.actions;
  for (let i = 0; i < actions.length; i++) {
    const a = actions.at(i);
    if (a.kind === "fanOut") {
      const names = a.links.slice(a.from, a.to).map((l) => (l.handle as FakeLink).name);
      out.push(`fanOut ${names.join(",")}`);
    } else if (a.kind === "publish") {
      out.push(`publish ${(a.link.handle as FakeLink).name} ${a.qos}`);
    } else {
      out.push(a.kind);
    }
  }
  return out;
}

function publishAction(core: TestCore, name: string): Extract<CoreAction, { kind: "publish" }> {
  const actions = core.core.actions;
  for (let i = 0; i < actions.length; i++) {
    const a = actions.at(i);
    if (a.kind === "publish" && (a.link.handle as FakeLink).name === name) return a;
  }
  throw new Error(`no publish action for ${name}`);
}

/** Four subscribers to `t/#` at QoS 0: two 3.1.1 (`a`, `b`) and two 5.0 (`c`, `d`). */
function mixed(
  options: Parameters<typeof testCore>[0] = {},
): { core: TestCore; links: FakeLink[] } {
  const core = testCore(options);
  const a = connect(core, "a", connectPacket({ clientId: "a" }));
  const b = connect(core, "b", connectPacket({ clientId: "b" }));
  const c = connect(core, "c", connectPacket({ clientId: "c", protocolVersion: 5 }));
  const d = connect(core, "d", connectPacket({ clientId: "d", protocolVersion: 5 }));
  for (const link of [a, b, c, d]) subscribe(core, link, { topic: "t/#", qos: 0 });
  return { core, links: [a, b, c, d] };
}

Deno.test("core mixed route: with 5.0 clients connected a QoS 0 message is still one fanOut action for 3.1.1 and 5.0 subscribers", () => {
  const { core, links } = mixed();
  core.core.publish(new BrokerMessage("t/1", new Uint8Array([1]), { qos: 0, retain: false }));
  assert.deepEqual(describe(core), ["fanOut a,b,c,d"]);
  core.run();
  for (const link of links) {
    assert.deepEqual(link.published, [{ topic: "t/1", qos: 0, packetId: 0, dup: false }]);
  }
  assert.equal(core.stats.publishSent, 4);
});

Deno.test("core mixed route: a client's QoS 0 PUBLISH to mixed subscribers is one fanOut action", () => {
  const { core, links } = mixed();
  const pub = connect(core, "pub", connectPacket({ clientId: "pub", protocolVersion: 5 }));
  core.core.handle(
    pub.link,
    publish("t/2", 0, { properties: { userProperties: [["k", "v"]] } }),
    T0,
  );
  assert.deepEqual(describe(core), ["fanOut a,b,c,d"]);
  core.run();
  for (const link of links) assert.equal(link.published.length, 1);
});

Deno.test("core mixed route: a 5.0 client's QoS 0 PUBLISH without properties takes the 3.1.1 path, one fanOut of the message as published", () => {
  const { core, links } = mixed();
  const pub = connect(core, "pub", connectPacket({ clientId: "pub", protocolVersion: 5 }));
  for (let i = 0; i < 3; i++) {
    core.core.handle(pub.link, publish("t/plain", 0), T0);
    assert.deepEqual(describe(core), ["fanOut a,b,c,d"]);
    const fanOut = core.core.actions.at(0);
    assert.ok(fanOut.kind === "fanOut");
    // The message itself, not a copy per delivery: nothing of its own to carry.
    assert.equal(fanOut.message.subscriptionIdentifiers, undefined);
    assert.equal(fanOut.message.retainOut, false);
    core.run();
  }
  for (const link of links) assert.equal(link.published.length, 3);
});

Deno.test("core mixed route: a QoS 1 message without subscription options still gathers its QoS 0 deliveries in one fanOut [MQTT-3.8.4-8]", () => {
  const { core } = mixed();
  const q1 = connect(core, "q1", connectPacket({ clientId: "q1", protocolVersion: 5 }));
  subscribe(core, q1, { topic: "t/#", qos: 1 });
  const pub = connect(core, "pub", connectPacket({ clientId: "pub", protocolVersion: 5 }));
  core.core.handle(pub.link, publish("t/q", 1), T0);
  assert.deepEqual(describe(core), ["publish q1 1", "fanOut a,b,c,d", "send"]);
  core.run();
});

Deno.test("core mixed route: a 5.0 client's QoS 0 PUBLISH takes the per-delivery path again as soon as a subscription asks for it [MQTT-3.3.4-3]", () => {
  const { core } = mixed();
  const pub = connect(core, "pub", connectPacket({ clientId: "pub", protocolVersion: 5 }));
  core.core.handle(pub.link, publish("t/1", 0), T0);
  assert.deepEqual(describe(core), ["fanOut a,b,c,d"]);
  core.run();
  const e = connect(core, "e", connectPacket({ clientId: "e", protocolVersion: 5 }));
  subscribe(core, e, { topic: "t/1", qos: 0 }, 3);
  core.run();
  core.core.handle(pub.link, publish("t/1", 0), T0);
  assert.deepEqual(describe(core), ["publish e 0", "fanOut a,b,c,d"]);
  assert.deepEqual(publishAction(core, "e").message.subscriptionIdentifiers, [3]);
  core.run();
  // Back to one fanOut, e in it, once e subscribes again without an identifier.
  subscribe(core, e, { topic: "t/1", qos: 0 });
  core.run();
  core.core.handle(pub.link, publish("t/1", 0), T0);
  assert.deepEqual(describe(core), ["fanOut a,b,c,d,e"]);
  core.run();
});

Deno.test("core mixed route: a 5.0 subscription with a Subscription Identifier gets its own copy, the others share the fanOut [MQTT-3.3.4-3]", () => {
  const { core } = mixed();
  const e = connect(core, "e", connectPacket({ clientId: "e", protocolVersion: 5 }));
  subscribe(core, e, { topic: "t/+", qos: 0 }, 7);
  const message = new BrokerMessage("t/1", new Uint8Array([1]), { qos: 0, retain: false });
  core.core.publish(message);
  assert.deepEqual(describe(core), ["publish e 0", "fanOut a,b,c,d"]);
  const own = publishAction(core, "e");
  assert.notEqual(own.message, message);
  assert.deepEqual(own.message.subscriptionIdentifiers, [7]);
  core.run();
  assert.equal(e.published.length, 1);
});

Deno.test("core mixed route: Retain As Published with a retained message is delivered on its own with RETAIN 1, the others without [MQTT-3.3.1-12] [MQTT-3.3.1-13]", () => {
  const { core } = mixed();
  const e = connect(core, "e", connectPacket({ clientId: "e", protocolVersion: 5 }));
  subscribe(core, e, { topic: "t/+", qos: 0, retainAsPublished: true, retainHandling: 2 });
  const pub = connect(core, "pub", connectPacket({ clientId: "pub" }));
  core.core.handle(pub.link, publish("t/r", 0, { retain: true }), T0);
  assert.deepEqual(describe(core), ["publish e 0", "fanOut a,b,c,d"]);
  assert.equal(publishAction(core, "e").message.retainOut, true);
  const fanOut = core.core.actions.at(1);
  assert.ok(fanOut.kind === "fanOut" && fanOut.message.retainOut === false);
  core.run();
});

Deno.test("core mixed route: No Local keeps the publisher's own message from it; the others share the fanOut [MQTT-3.8.3-3]", () => {
  const { core, links } = mixed();
  const self = connect(core, "self", connectPacket({ clientId: "self", protocolVersion: 5 }));
  subscribe(core, self, { topic: "t/#", qos: 0, noLocal: true });
  core.core.handle(self.link, publish("t/n", 0), T0);
  assert.deepEqual(describe(core), ["fanOut a,b,c,d"]);
  core.run();
  assert.deepEqual(self.published, []);
  for (const link of links) assert.equal(link.published.length, 1);
});

Deno.test("core mixed route: a message with an expiry interval goes one by one to 5.0 subscribers only [MQTT-3.3.2-6]", () => {
  const { core } = mixed();
  const pub = connect(core, "pub", connectPacket({ clientId: "pub", protocolVersion: 5 }));
  core.core.handle(pub.link, publish("t/x", 0, { properties: { messageExpiryInterval: 60 } }), T0);
  assert.deepEqual(describe(core), ["publish c 0", "publish d 0", "fanOut a,b"]);
  core.run();
});

Deno.test("core mixed route: with outbound topic aliases 5.0 subscribers that accept aliases are delivered one by one", () => {
  const core = testCore({
    capabilities: {
      receiveMaximum: 65535,
      maximumPacketSize: 268_435_460,
      topicAliasMaximum: 0,
      outboundTopicAliases: true,
    },
  });
  const a = connect(core, "a", connectPacket({ clientId: "a" }));
  const c = connect(
    core,
    "c",
    connectPacket({ clientId: "c", protocolVersion: 5, properties: { topicAliasMaximum: 4 } }),
  );
  const d = connect(core, "d", connectPacket({ clientId: "d", protocolVersion: 5 }));
  for (const link of [a, c, d]) subscribe(core, link, { topic: "t/#", qos: 0 });
  core.core.publish(new BrokerMessage("t/1", new Uint8Array([1]), { qos: 0, retain: false }));
  assert.deepEqual(describe(core), ["publish c 0", "fanOut a,d"]);
  core.run();
});

Deno.test("core mixed route: a PUBLISH over a 5.0 subscriber's Maximum Packet Size is dropped and counted, the others share the fanOut [MQTT-3.1.2-24] [MQTT-3.1.2-25]", () => {
  const { core, links } = mixed();
  const small = connect(
    core,
    "small",
    connectPacket({ clientId: "small", protocolVersion: 5, properties: { maximumPacketSize: 20 } }),
  );
  subscribe(core, small, { topic: "t/#", qos: 0 });
  core.core.publish(new BrokerMessage("t/1", new Uint8Array(64), { qos: 0, retain: false }));
  assert.deepEqual(describe(core), ["fanOut a,b,c,d"]);
  assert.equal(core.stats.droppedBy.tooLarge, 1);
  core.run();
  assert.deepEqual(small.published, []);
  for (const link of links) assert.equal(link.published.length, 1);
  // Small enough: it shares the fanOut.
  core.core.publish(new BrokerMessage("t/2", new Uint8Array(1), { qos: 0, retain: false }));
  assert.deepEqual(describe(core), ["fanOut a,b,c,d,small"]);
  core.run();
});

Deno.test("core mixed route: QoS 0 deliveries of a QoS 1 message are one fanOut; QoS 1 ones share the message unless they carry identifiers [MQTT-3.8.4-8]", () => {
  const { core } = mixed();
  const q1 = connect(core, "q1", connectPacket({ clientId: "q1", protocolVersion: 5 }));
  subscribe(core, q1, { topic: "t/#", qos: 1 });
  const old = connect(core, "old", connectPacket({ clientId: "old" }));
  subscribe(core, old, { topic: "t/#", qos: 1 });
  const ids = connect(core, "ids", connectPacket({ clientId: "ids", protocolVersion: 5 }));
  subscribe(core, ids, { topic: "t/#", qos: 2 }, 9);
  const message = new BrokerMessage("t/1", new Uint8Array([1]), { qos: 1, retain: false });
  core.core.publish(message);
  assert.deepEqual(describe(core), [
    "publish q1 1",
    "publish old 1",
    "publish ids 1",
    "fanOut a,b,c,d",
  ]);
  assert.equal(publishAction(core, "q1").message, message, "no copy for a plain 5.0 delivery");
  assert.equal(publishAction(core, "old").message, message);
  assert.deepEqual(publishAction(core, "ids").message.subscriptionIdentifiers, [9]);
  core.run();
  assert.deepEqual(q1.published, [{ topic: "t/1", qos: 1, packetId: 1, dup: false }]);
});

Deno.test("core mixed route: an offline session's identifiers are kept with its queued copy", () => {
  const { core } = mixed();
  const away = connect(
    core,
    "away",
    connectPacket({
      clientId: "away",
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 600 },
    }),
  );
  subscribe(core, away, { topic: "t/#", qos: 1 }, 5);
  core.detach(away, T0 + 1);
  core.core.publish(new BrokerMessage("t/1", new Uint8Array([1]), { qos: 1, retain: false }));
  assert.deepEqual(describe(core), ["fanOut a,b,c,d"]);
  core.run();
  const queued = [...core.sessions.get("away")!.outbound.pending()];
  assert.equal(queued.length, 1);
  assert.deepEqual(queued[0]!.message.subscriptionIdentifiers, [5]);
});

Deno.test("core mixed route: a subscription with an identifier added after a message was routed is honoured for the next one [MQTT-3.3.4-3]", () => {
  const { core } = mixed();
  core.core.publish(new BrokerMessage("t/1", new Uint8Array([1]), { qos: 0, retain: false }));
  assert.deepEqual(describe(core), ["fanOut a,b,c,d"]);
  core.run();
  const e = connect(core, "e", connectPacket({ clientId: "e", protocolVersion: 5 }));
  subscribe(core, e, { topic: "t/+", qos: 0 }, 7);
  core.core.publish(new BrokerMessage("t/1", new Uint8Array([2]), { qos: 0, retain: false }));
  assert.deepEqual(describe(core), ["publish e 0", "fanOut a,b,c,d"]);
  assert.deepEqual(publishAction(core, "e").message.subscriptionIdentifiers, [7]);
  core.run();
});

Deno.test("core mixed route: members of a shared group take their own Subscription Identifiers in turn [MQTT-3.3.4-3]", () => {
  const core = testCore();
  const m1 = connect(core, "m1", connectPacket({ clientId: "m1", protocolVersion: 5 }));
  const m2 = connect(core, "m2", connectPacket({ clientId: "m2", protocolVersion: 5 }));
  subscribe(core, m1, { topic: "$share/g/t/#", qos: 0 });
  subscribe(core, m2, { topic: "$share/g/t/#", qos: 0 }, 3);
  const seen: string[] = [];
  for (let i = 0; i < 4; i++) {
    core.core.publish(new BrokerMessage("t/1", new Uint8Array([i]), { qos: 0, retain: false }));
    const kinds = describe(core);
    if (kinds[0] === "publish m2 0") {
      assert.deepEqual(publishAction(core, "m2").message.subscriptionIdentifiers, [3]);
      seen.push("m2");
    } else {
      assert.deepEqual(kinds, ["fanOut m1"]);
      seen.push("m1");
    }
    core.run();
  }
  assert.deepEqual(seen.toSorted(), ["m1", "m1", "m2", "m2"]);
  assert.equal(m2.published.length, 2);
});

Deno.test("ActionQueue: a fan-out gathered with addFanOut names its links once, and clear() forgets one not queued", () => {
  const queue = new ActionQueue();
  const [x, y] = [{ id: "x" }, { id: "y" }] as unknown as Link[];
  const m = new BrokerMessage("t", new Uint8Array(0), { qos: 0, retain: false });
  queue.addFanOut(x!);
  queue.send(y!, { type: PacketType.PINGRESP });
  queue.addFanOut(y!);
  queue.fanOutAdded(m);
  queue.fanOutAdded(m); // nothing added since: no action
  assert.equal(queue.length, 2);
  const a = queue.at(1);
  assert.ok(a.kind === "fanOut");
  assert.deepEqual(a.links.slice(a.from, a.to), [x, y]);
  assert.equal(a.message, m);
  queue.addFanOut(x!);
  queue.clear();
  queue.fanOutAdded(m);
  assert.equal(queue.length, 0);
  queue.addFanOut(y!);
  queue.fanOutAdded(m);
  const b = queue.at(0);
  assert.ok(b.kind === "fanOut");
  assert.deepEqual(b.links.slice(b.from, b.to), [y]);
});

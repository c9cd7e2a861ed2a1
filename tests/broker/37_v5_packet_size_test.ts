/**
 * Broker, area 37: the client's Maximum Packet Size at level 5, byte by byte over TCP: PUBLISH
 * packets that would be over it are never sent and end as if delivered, and the Reason Strings and
 * User Properties of the broker's acknowledgements are left out where they would push a packet
 * over it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodedLength, PacketType } from "../../src/packet/mod.ts";
import type { Packet, Properties, PublishPacket } from "../../src/packet/mod.ts";
import type { BrokerPlugin, Refusal } from "../../src/plugins/types.ts";
import { startBroker } from "../_helpers/broker.ts";
import {
  connectPacket,
  publishPacket,
  subscribe5,
  TestClient,
  text,
} from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const V5 = { protocolVersion: 5 as const };

test("37 v5 packet size: a resend over the Maximum Packet Size of the new connection is dropped, counted, and frees its window slot [MQTT-3.1.2-24] [MQTT-3.1.2-25]", async () => {
  await using b = await startBroker();
  const session = { sessionExpiryInterval: 3600, receiveMaximum: 1 };
  const first = await TestClient.connect(b.port, {
    ...V5,
    clientId: "s",
    clean: false,
    properties: session,
  });
  await subscribe5(first, [{ topic: "q/#", qos: 1 }]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("q/big", "x".repeat(200), { qos: 1, packetId: 1 }));
  await pub.expect(PacketType.PUBACK);
  const big = await first.expect(PacketType.PUBLISH);
  assert.equal(big.payload.length, 200);
  // Not acknowledged: with Receive Maximum 1 the next message waits behind it.
  await pub.send(publishPacket("q/small", "small 1", { qos: 1, packetId: 2 }));
  await pub.expect(PacketType.PUBACK);
  await first.expectNothing(100);
  await first.close();

  // Back with a Maximum Packet Size the big PUBLISH does not fit.
  await using again = await TestClient.open(b.port, V5);
  const connack = await again.handshake({
    ...V5,
    clientId: "s",
    clean: false,
    properties: { ...session, maximumPacketSize: 100 },
  });
  assert.equal(connack.sessionPresent, true);
  const next = await again.expect(PacketType.PUBLISH);
  assert.equal(text(next), "small 1", "the big resend was dropped and its slot went on");
  assert.equal(next.dup, false);
  assert.equal(b.broker.stats.droppedBy.tooLarge, 1);
  await again.send({ type: PacketType.PUBACK, packetId: next.packetId! });
  await pub.send(publishPacket("q/small", "small 2", { qos: 1, packetId: 3 }));
  await pub.expect(PacketType.PUBACK);
  assert.equal(text(await again.expect(PacketType.PUBLISH)), "small 2");
  await again.disconnect();
  await pub.disconnect();
});

// ---------------------------------------------------------------------------------------------
// Reason Strings and User Properties of the broker's packets: each left out where it would make
// the packet larger than the client's Maximum Packet Size, the Reason String tried first.

const REASON = "refused by the test plugin";
const USER: [string, string][] = [["policy", "p".repeat(40)]];

/** The limits that let a packet carry nothing, the Reason String alone, or both. */
function limitsFor(bare: Packet): { none: number; reasonOnly: number; both: number } {
  const props = (bare as { properties?: Properties }).properties ?? {};
  const withReason = { ...bare, properties: { ...props, reasonString: REASON } } as Packet;
  const withBoth = {
    ...bare,
    properties: { ...props, reasonString: REASON, userProperties: USER },
  } as Packet;
  return {
    none: encodedLength(withReason, 5) - 1,
    reasonOnly: encodedLength(withBoth, 5) - 1,
    both: encodedLength(withBoth, 5),
  };
}

/** Asserts what a packet carries, and that it is within `limit`. */
function assertCarries(p: Packet, limit: number, reason: boolean, user: boolean, what: string) {
  const props = (p as { properties?: Properties }).properties;
  assert.ok(encodedLength(p, 5) <= limit, `${what}: ${encodedLength(p, 5)} bytes over ${limit}`);
  assert.equal(props?.reasonString, reason ? REASON : undefined, `${what}: Reason String`);
  assert.deepEqual(props?.userProperties, user ? USER : undefined, `${what}: User Properties`);
}

const refusing: Refusal = { refuse: 0x87, reasonString: REASON, userProperties: USER };

test("37 v5 connect: a plugin refusing the client identifier gets CONNACK 0x85 with its reason, then the close; 3.1.1 gets return code 2 [MQTT-3.1.3-8]", async () => {
  const plugin: BrokerPlugin = {
    name: "ids",
    authenticate: (client) =>
      client.clientId.startsWith("dev-")
        ? true
        : { refuse: 0x85, reasonString: "ids start with dev-" },
  };
  await using b = await startBroker({}, { plugins: [plugin] });
  await using c = await TestClient.open(b.port, V5);
  const connack = await c.handshake({ ...V5, clientId: "other" });
  assert.equal(connack.reasonCode, 0x85);
  assert.equal(connack.sessionPresent, false);
  assert.equal(connack.properties?.reasonString, "ids start with dev-");
  await c.expectClosed();
  await using old = await TestClient.open(b.port);
  assert.equal((await old.handshake({ clientId: "other" })).reasonCode, 2);
  await old.expectClosed();
  await using ok = await TestClient.open(b.port, V5);
  assert.equal((await ok.handshake({ ...V5, clientId: "dev-1" })).reasonCode, 0);
  await ok.disconnect();
});

test("37 v5 packet size: a refusing CONNACK carries the plugin's User Properties only where they fit the client's Maximum Packet Size [MQTT-3.2.2-19] [MQTT-3.2.2-20]", async () => {
  await using b = await startBroker({}, {
    plugins: [{ name: "no", authenticate: () => refusing }],
  });
  const limits = limitsFor({ type: PacketType.CONNACK, sessionPresent: false, reasonCode: 0x87 });
  for (
    const [limit, reason, user] of [
      [limits.none, false, false],
      [limits.reasonOnly, true, false],
      [limits.both, true, true],
    ] as const
  ) {
    await using c = await TestClient.open(b.port, V5);
    const connack = await c.handshake({
      ...V5,
      clientId: "c",
      properties: { maximumPacketSize: limit },
    });
    assert.equal(connack.reasonCode, 0x87);
    assertCarries(connack, limit, reason, user, `CONNACK within ${limit}`);
    await c.expectClosed();
  }
});

test("37 v5 packet size: a refusing PUBACK and PUBREC carry the plugin's User Properties only where they fit [MQTT-3.4.2-2] [MQTT-3.4.2-3] [MQTT-3.5.2-2] [MQTT-3.5.2-3]", async () => {
  await using b = await startBroker({}, {
    plugins: [{ name: "acl", authorizePublish: () => refusing }],
  });
  const limits = limitsFor({ type: PacketType.PUBACK, packetId: 1, reasonCode: 0x87 });
  for (
    const [limit, reason, user] of [
      [limits.none, false, false],
      [limits.reasonOnly, true, false],
      [limits.both, true, true],
    ] as const
  ) {
    await using c = await TestClient.connect(b.port, {
      ...V5,
      clientId: "p",
      properties: { maximumPacketSize: limit },
    });
    await c.send(publishPacket("t", "x", { qos: 1, packetId: 1 }));
    const puback = await c.expect(PacketType.PUBACK);
    assert.equal(puback.reasonCode, 0x87);
    assertCarries(puback, limit, reason, user, `PUBACK within ${limit}`);
    await c.send(publishPacket("t", "x", { qos: 2, packetId: 1 }));
    const pubrec = await c.expect(PacketType.PUBREC);
    assert.equal(pubrec.reasonCode, 0x87);
    assertCarries(pubrec, limit, reason, user, `PUBREC within ${limit}`);
    await c.disconnect();
  }
});

test("37 v5 packet size: a SUBACK refusing a filter carries the Reason String and the plugin's User Properties only where they fit [MQTT-3.9.2-1] [MQTT-3.9.2-2]", async () => {
  await using b = await startBroker({}, {
    plugins: [{ name: "acl", authorizeSubscribe: (_c, topic) => topic === "ok" ? true : refusing }],
  });
  const limits = limitsFor({ type: PacketType.SUBACK, packetId: 1, reasonCodes: [0, 0x87] });
  for (
    const [limit, reason, user] of [
      [limits.none, false, false],
      [limits.reasonOnly, true, false],
      [limits.both, true, true],
    ] as const
  ) {
    await using c = await TestClient.connect(b.port, {
      ...V5,
      clientId: "s",
      properties: { maximumPacketSize: limit },
    });
    await c.send({
      type: PacketType.SUBSCRIBE,
      packetId: 1,
      subscriptions: [{ topic: "ok", qos: 0 }, { topic: "no", qos: 0 }],
    });
    const suback = await c.expect(PacketType.SUBACK);
    assert.deepEqual(suback.reasonCodes, [0, 0x87]);
    assertCarries(suback, limit, reason, user, `SUBACK within ${limit}`);
    await c.disconnect();
  }
});

test("37 v5 packet size: the broker's own SUBACK reasons (invalid filter) are sent, and dropped with Request Problem Information 0 [MQTT-3.1.2-29]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  assert.deepEqual(await subscribe5(c, [{ topic: "a/#/b", qos: 0 }]), [0x8f]);
  await c.send({
    type: PacketType.SUBSCRIBE,
    packetId: 2,
    subscriptions: [{ topic: "x/#/y", qos: 1 }],
  });
  const suback = await c.expect(PacketType.SUBACK);
  assert.match(suback.properties?.reasonString ?? "", /invalid topic filter "x\/#\/y"/);
  await using quiet = await TestClient.connect(b.port, {
    ...V5,
    clientId: "q",
    properties: { requestProblemInformation: 0 },
  });
  await quiet.send({
    type: PacketType.SUBSCRIBE,
    packetId: 3,
    subscriptions: [{ topic: "x/#/y", qos: 1 }],
  });
  const bare = await quiet.expect(PacketType.SUBACK);
  assert.deepEqual(bare.reasonCodes, [0x8f]);
  assert.equal(bare.properties?.reasonString, undefined);
  await quiet.disconnect();
  await c.disconnect();
});

test("37 v5 packet size: an UNSUBACK says which filters removed nothing only where the Reason String fits; it carries no User Property past the limit [MQTT-3.11.2-1] [MQTT-3.11.2-2]", async () => {
  await using b = await startBroker();
  const bare: Packet = { type: PacketType.UNSUBACK, packetId: 1, reasonCodes: [0, 0x11, 0x8f] };
  const reason = `no subscription to "never" existed; invalid topic filter "a/#/b": `;
  for (const roomy of [false, true]) {
    const limit: number = roomy ? 1000 : encodedLength(bare, 5) + 5;
    await using c = await TestClient.connect(b.port, {
      ...V5,
      clientId: "u",
      properties: { maximumPacketSize: limit },
    });
    await subscribe5(c, [{ topic: "had", qos: 0 }]);
    await c.send({ type: PacketType.UNSUBSCRIBE, packetId: 1, topics: ["had", "never", "a/#/b"] });
    const unsuback = await c.expect(PacketType.UNSUBACK);
    assert.deepEqual(unsuback.reasonCodes, [0, 0x11, 0x8f]);
    assert.ok(encodedLength(unsuback, 5) <= limit);
    assert.equal(unsuback.properties?.userProperties, undefined);
    if (roomy) assert.ok(unsuback.properties?.reasonString?.startsWith(reason));
    else assert.equal(unsuback.properties?.reasonString, undefined);
    await c.disconnect();
  }
});

test("37 v5 packet size: PUBREL and PUBCOMP to a client with a small Maximum Packet Size carry no Reason String or User Property [MQTT-3.6.2-2] [MQTT-3.6.2-3] [MQTT-3.7.2-2] [MQTT-3.7.2-3]", async () => {
  // The broker's PUBREL and PUBCOMP say success (a PUBREL for an unknown id is completed too, as
  // Mosquitto does): there is no diagnostic to leave out, and none may push them past the limit.
  await using b = await startBroker();
  const limit = 40;
  await using c = await TestClient.connect(b.port, {
    ...V5,
    clientId: "q2",
    properties: { maximumPacketSize: limit },
  });
  await subscribe5(c, [{ topic: "t", qos: 2 }]);
  await c.send(publishPacket("t", "x", { qos: 2, packetId: 9 }));
  const seen: Packet[] = [];
  // Our PUBREC arrives, then the broker's PUBLISH to us (either order): collect both.
  for (let i = 0; i < 2; i++) seen.push(await c.receive());
  const delivery = seen.find((p) => p.type === PacketType.PUBLISH) as PublishPacket;
  assert.ok(seen.some((p) => p.type === PacketType.PUBREC));
  await c.send({ type: PacketType.PUBREL, packetId: 9 });
  const pubcomp = await c.expect(PacketType.PUBCOMP);
  await c.send({ type: PacketType.PUBREC, packetId: delivery.packetId! });
  const pubrel = await c.expect(PacketType.PUBREL);
  await c.send({ type: PacketType.PUBCOMP, packetId: delivery.packetId! });
  await c.send({ type: PacketType.PUBREL, packetId: 77 });
  const unknown = await c.expect(PacketType.PUBCOMP);
  for (const p of [pubcomp, pubrel, unknown]) {
    assert.ok(encodedLength(p, 5) <= limit);
    assert.equal(p.properties?.reasonString, undefined);
    assert.equal(p.properties?.userProperties, undefined);
  }
  assert.equal(unknown.packetId, 77);
  await c.disconnect();
});

/** AUTH 0x18 with the plugin's challenge and diagnostics, then refused at re-authentication. */
const chatty: BrokerPlugin = {
  name: "chatty",
  authenticationMethods: ["x-chat"],
  authenticateEnhanced: ({ step, reauthenticate }) =>
    step === 0
      ? { continue: new Uint8Array([1]), reasonString: REASON, userProperties: USER }
      : reauthenticate
      ? refusing
      : { success: true },
};

test("37 v5 packet size: an AUTH carries the plugin's Reason String and User Properties only where they fit [MQTT-3.15.2-2] [MQTT-3.15.2-3]", async () => {
  await using b = await startBroker({}, { plugins: [chatty] });
  const method = { authenticationMethod: "x-chat" };
  const limits = limitsFor({
    type: PacketType.AUTH,
    reasonCode: 0x18,
    properties: { ...method, authenticationData: new Uint8Array([1]) },
  });
  for (
    const [limit, reason, user] of [
      [limits.none, false, false],
      [limits.reasonOnly, true, false],
      [limits.both, true, true],
    ] as const
  ) {
    await using c = await TestClient.open(b.port, V5);
    await c.send(
      connectPacket({ ...V5, clientId: "a", properties: { ...method, maximumPacketSize: limit } }),
    );
    const challenge = await c.expect(PacketType.AUTH);
    assert.equal(challenge.reasonCode, 0x18);
    assertCarries(challenge, limit, reason, user, `AUTH within ${limit}`);
    await c.send({ type: PacketType.AUTH, reasonCode: 0x18, properties: method });
    assert.equal((await c.expect(PacketType.CONNACK)).reasonCode, 0);
    await c.disconnect();
  }
  // With Request Problem Information 0 the AUTH carries neither [MQTT-3.1.2-29].
  await using q = await TestClient.open(b.port, V5);
  await q.send(
    connectPacket({
      ...V5,
      clientId: "q",
      properties: { ...method, requestProblemInformation: 0 },
    }),
  );
  assertCarries(
    await q.expect(PacketType.AUTH),
    1000,
    false,
    false,
    "AUTH without problem information",
  );
});

test("37 v5 packet size: the DISCONNECT refusing a re-authentication carries the plugin's User Properties only where they fit [MQTT-3.14.2-3] [MQTT-3.14.2-4]", async () => {
  await using b = await startBroker({}, { plugins: [chatty] });
  const method = { authenticationMethod: "x-chat" };
  const limits = limitsFor({ type: PacketType.DISCONNECT, reasonCode: 0x87 });
  for (
    const [limit, reason, user] of [
      [limits.none, false, false],
      [limits.reasonOnly, true, false],
      [limits.both, true, true],
    ] as const
  ) {
    await using c = await TestClient.open(b.port, V5);
    // A large limit for the exchange at CONNECT is not needed: the AUTH leaves out what does not fit.
    await c.send(
      connectPacket({ ...V5, clientId: "r", properties: { ...method, maximumPacketSize: limit } }),
    );
    await c.expect(PacketType.AUTH);
    await c.send({ type: PacketType.AUTH, reasonCode: 0x18, properties: method });
    assert.equal((await c.expect(PacketType.CONNACK)).reasonCode, 0);
    await c.send({ type: PacketType.AUTH, reasonCode: 0x19, properties: method });
    await c.expect(PacketType.AUTH);
    await c.send({ type: PacketType.AUTH, reasonCode: 0x18, properties: method });
    const seen = await c.expectClosed(10_000, { allowPackets: true });
    const disconnect = seen.at(-1)!;
    assert.equal(disconnect.type, PacketType.DISCONNECT);
    assert.equal(disconnect.type === PacketType.DISCONNECT && disconnect.reasonCode, 0x87);
    assertCarries(disconnect, limit, reason, user, `DISCONNECT within ${limit}`);
  }
});

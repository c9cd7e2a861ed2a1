/**
 * The sans-IO client core at MQTT 5.0: server limits per connection, receive maximum both ways,
 * topic aliases, resubscribe with subscription identifiers, AUTH. Injected clock, no sockets.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/constants.ts";
import type { Packet, Properties } from "../../src/packet/types.ts";
import {
  type ClientAction,
  ClientSession,
  type ClientSessionOptions,
  type ConnectParams,
} from "../../src/session/client_session.ts";

const enc = new TextEncoder();

function sent(actions: ClientAction[]): Packet[] {
  return actions.flatMap((a) => a.type === "send" ? [a.packet] : []);
}

function connack(properties?: Properties, sessionPresent = false): Packet {
  const p: Packet = { type: PacketType.CONNACK, sessionPresent, reasonCode: 0 };
  if (properties !== undefined) p.properties = properties;
  return p;
}

function session(
  options: Partial<ClientSessionOptions> = {},
  params: ConnectParams = {},
  properties?: Properties,
): ClientSession {
  const s = new ClientSession({ clientId: "c5", ...options });
  s.connect(0, { protocolVersion: 5, keepAlive: 0, ...params });
  s.handlePacket(connack(properties), 0);
  s.takeActions();
  return s;
}

const msg = (topic: string, qos: 0 | 1 | 2, retain = false) => ({
  topic,
  payload: enc.encode(topic),
  qos,
  retain,
});

Deno.test("ClientSession v5 forgets the server's limits on the next connection", () => {
  const s = session({ maxInflight: 10 }, {}, { receiveMaximum: 1, maximumQoS: 0 });
  s.publish(msg("a", 1), 0);
  const refused = s.takeActions();
  assert.equal(refused[0]?.type === "reject" && refused[0].returnCode, 0x9b);
  s.connectionLost();
  s.connect(1, undefined);
  s.handlePacket(connack(), 1); // this server has no limits
  s.takeActions();
  for (let i = 0; i < 5; i++) s.publish(msg(`t/${i}`, 1), 1);
  // The window is ours again (10), not the last server's 1, and QoS 1 is allowed.
  assert.equal(sent(s.takeActions()).length, 5);
  assert.equal(s.inflightCount, 5);
});

Deno.test("ClientSession v5 checks limits for messages held offline when they go out [MQTT-3.2.2-14]", () => {
  const s = new ClientSession({ clientId: "c5" });
  const kept = s.publish(msg("r", 0, true), 0);
  const plain = s.publish(msg("p", 0), 0);
  const connecting = s.connect(0, { protocolVersion: 5, keepAlive: 0 });
  s.takeActions();
  s.handlePacket(connack({ retainAvailable: 0 }), 0);
  const actions = s.takeActions();
  assert.deepEqual(
    actions.filter((a) => a.type === "reject" || a.type === "resolve").map((a) =>
      a.type === "reject" ? [a.token, a.reason, a.returnCode] : [a.type === "resolve" && a.token]
    ),
    [[connecting], [kept, "not_allowed", 0x9a], [plain]],
  );
  const publishes = sent(actions).filter((p) => p.type === PacketType.PUBLISH);
  assert.deepEqual(publishes.map((p) => p.type === PacketType.PUBLISH && p.topic), ["p"]);
});

Deno.test("ClientSession v5 skips the topic alias when it would push a packet over the maximum size", () => {
  const s = session({ topicAliases: true }, {}, { topicAliasMaximum: 5, maximumPacketSize: 30 });
  // 2 + 2 + 8 topic + 1 property length + 14 payload = 27 bytes: fits, but not with an alias.
  s.publish({ topic: "abcdefgh", payload: new Uint8Array(15), qos: 0, retain: false }, 0);
  s.publish({ topic: "x", payload: new Uint8Array(1), qos: 0, retain: false }, 0);
  const packets = sent(s.takeActions());
  assert.deepEqual(
    packets.map((p) => p.type === PacketType.PUBLISH && [p.topic, p.properties?.topicAlias]),
    [["abcdefgh", undefined], ["x", 1]],
  );
});

Deno.test("ClientSession v5 resubscribes with each subscription's identifier when the server lost the session", () => {
  const s = session({}, { clean: true });
  s.subscribe([{ topic: "a/#", qos: 1 }], 0, { subscriptionIdentifier: [4] });
  s.subscribe([{ topic: "b/#", qos: 1 }, { topic: "c", qos: 0 }], 0);
  for (const p of sent(s.takeActions())) {
    if (p.type !== PacketType.SUBSCRIBE) continue;
    s.handlePacket({
      type: PacketType.SUBACK,
      packetId: p.packetId,
      reasonCodes: p.subscriptions.map((x) => x.qos),
    }, 0);
  }
  s.takeActions();
  s.connectionLost();
  s.connect(1, undefined);
  s.handlePacket(connack(undefined, false), 1);
  const subs = sent(s.takeActions()).flatMap((p) =>
    p.type === PacketType.SUBSCRIBE
      ? [[p.subscriptions.map((x) => x.topic), p.properties?.subscriptionIdentifier]]
      : []
  );
  assert.deepEqual(subs, [[["a/#"], [4]], [["b/#", "c"], undefined]]);
});

Deno.test("ClientSession v5 counts QoS 1 held for the application against its Receive Maximum [MQTT-3.3.4-9]", () => {
  const s = session({ manualAcks: true }, { properties: { receiveMaximum: 1 } });
  const publish = (id: number): Packet => ({
    type: PacketType.PUBLISH,
    topic: "t",
    payload: new Uint8Array(),
    qos: 1,
    retain: false,
    dup: false,
    packetId: id,
  });
  s.handlePacket(publish(1), 0);
  const [delivered] = s.takeActions();
  assert.equal(delivered?.type, "deliver");
  // Taken and acknowledged: room for one more.
  if (delivered?.type === "deliver") s.accept(delivered.message, 0);
  assert.deepEqual(sent(s.takeActions()), [{ type: PacketType.PUBACK, packetId: 1 }]);
  s.handlePacket(publish(2), 0);
  assert.equal(s.takeActions()[0]?.type, "deliver");
  // Not taken yet: a third is one too many.
  s.handlePacket(publish(3), 0);
  const actions = s.takeActions();
  assert.deepEqual(sent(actions), [{ type: PacketType.DISCONNECT, reasonCode: 0x93 }]);
  assert.equal(actions.at(-1)?.type === "close" && actions.at(-1)?.type, "close");
  assert.equal(s.state, "disconnected");
});

Deno.test("ClientSession v5 AUTH during connect: continue goes to the application, its answer goes out", () => {
  const s = new ClientSession({ clientId: "c5" });
  s.connect(0, { protocolVersion: 5, properties: { authenticationMethod: "m" } }, enc.encode("i"));
  const [connect] = sent(s.takeActions());
  assert.deepEqual(connect?.type === PacketType.CONNECT && connect.properties, {
    authenticationMethod: "m",
    authenticationData: enc.encode("i"),
  });
  s.handlePacket({
    type: PacketType.AUTH,
    reasonCode: 0x18,
    properties: { authenticationMethod: "m", authenticationData: enc.encode("c") },
  }, 1);
  assert.deepEqual(s.takeActions(), [{
    type: "auth",
    reasonCode: 0x18,
    properties: { authenticationMethod: "m", authenticationData: enc.encode("c") },
  }]);
  s.authContinue(enc.encode("r"), 2);
  assert.deepEqual(sent(s.takeActions()), [{
    type: PacketType.AUTH,
    reasonCode: 0x18,
    properties: { authenticationMethod: "m", authenticationData: enc.encode("r") },
  }]);
  // AUTH for another method is a protocol error.
  s.handlePacket({
    type: PacketType.AUTH,
    reasonCode: 0x18,
    properties: { authenticationMethod: "n" },
  }, 3);
  assert.deepEqual(sent(s.takeActions()), [{ type: PacketType.DISCONNECT, reasonCode: 0x82 }]);
});

Deno.test("ClientSession v5 resends no more than the new server's Receive Maximum after a reconnect [MQTT-3.3.4-7] [MQTT-4.6.0-1]", () => {
  const s = session({ maxInflight: 10 });
  for (let i = 1; i <= 4; i++) s.publish(msg(`t/${i}`, 1), 0);
  const ids = sent(s.takeActions()).map((p) => p.type === PacketType.PUBLISH ? p.packetId! : 0);
  assert.equal(ids.length, 4);
  s.connectionLost();
  s.connect(1, undefined);
  s.takeActions();
  s.handlePacket(connack({ receiveMaximum: 2 }, true), 1);
  const resent = sent(s.takeActions());
  // The first two, in their original order, with DUP.
  assert.deepEqual(
    resent.map((p) => p.type === PacketType.PUBLISH && [p.topic, p.dup]),
    [["t/1", true], ["t/2", true]],
  );
  // Each acknowledgement lets the next one of the old window out, still in order.
  s.handlePacket({ type: PacketType.PUBACK, packetId: ids[0]! }, 2);
  assert.deepEqual(
    sent(s.takeActions()).map((p) => p.type === PacketType.PUBLISH && p.topic),
    ["t/3"],
  );
  s.handlePacket({ type: PacketType.PUBACK, packetId: ids[1]! }, 2);
  assert.deepEqual(
    sent(s.takeActions()).map((p) => p.type === PacketType.PUBLISH && p.topic),
    ["t/4"],
  );
});

Deno.test("ClientSession v5: a server DISCONNECT comes before the re-authentication and pings it fails, so they can name it [MQTT-4.12.1-2]", () => {
  const s = session({}, { properties: { authenticationMethod: "m" } });
  const reauth = s.reauthenticate(undefined, 1);
  const ping = s.ping(1);
  s.takeActions();
  s.handlePacket({ type: PacketType.DISCONNECT, reasonCode: 0x87 }, 2);
  const actions = s.takeActions();
  assert.deepEqual(actions.map((a) => a.type), ["close", "reject", "reject"]);
  assert.equal(actions[0]?.type === "close" && actions[0].reasonCode, 0x87);
  assert.deepEqual(
    actions.flatMap((a) => a.type === "reject" ? [a.token] : []).sort(),
    [reauth, ping].sort(),
  );
});

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/constants.ts";
import type { Packet, PublishPacket } from "../../src/packet/types.ts";
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

function types(actions: ClientAction[]): string[] {
  return actions.map((a) => a.type === "send" ? `send:${a.packet.type}` : a.type);
}

function connack(sessionPresent = false, reasonCode = 0): Packet {
  return { type: PacketType.CONNACK, sessionPresent, reasonCode };
}

/** A session that is connected at t=0, with its actions drained. */
function connected(
  options: Partial<ClientSessionOptions> = {},
  params: ConnectParams = { keepAlive: 10 },
): ClientSession {
  const s = new ClientSession({ clientId: "c1", ...options });
  s.connect(0, params);
  s.handlePacket(connack(), 0);
  s.takeActions();
  return s;
}

function msg(topic: string, qos: 0 | 1 | 2, text = topic) {
  return { topic, payload: enc.encode(text), qos, retain: false } as const;
}

Deno.test("ClientSession.connect sends CONNECT with the given fields [MQTT-3.1.2-1]", () => {
  const s = new ClientSession({ clientId: "abc" });
  const will = { topic: "w", payload: enc.encode("bye"), qos: 1 as const, retain: true };
  s.connect(0, {
    clean: false,
    keepAlive: 9,
    will,
    username: "u",
    password: enc.encode("p"),
  });
  const [packet] = sent(s.takeActions());
  assert.deepEqual(packet, {
    type: PacketType.CONNECT,
    protocolName: "MQTT",
    protocolVersion: 4,
    clean: false,
    keepAlive: 9,
    clientId: "abc",
    will,
    username: "u",
    password: enc.encode("p"),
  });
  assert.equal(s.state, "connecting");
});

Deno.test("ClientSession.connect at level 3 names the protocol MQIsdp", () => {
  const s = new ClientSession({ clientId: "abc" });
  s.connect(0, { protocolVersion: 3 });
  const [packet] = sent(s.takeActions());
  assert.equal(packet?.type, PacketType.CONNECT);
  if (packet?.type !== PacketType.CONNECT) return;
  assert.equal(packet.protocolName, "MQIsdp");
  assert.equal(packet.protocolVersion, 3);
});

Deno.test("ClientSession.connect rejects a bad protocol version or keepalive", () => {
  const s = new ClientSession({ clientId: "abc" });
  // @ts-expect-error: checking a value the type forbids
  assert.throws(() => s.connect(0, { protocolVersion: 6 }), RangeError);
  assert.throws(() => s.connect(0, { keepAlive: 70000 }), RangeError);
  s.connect(0, {});
  assert.throws(() => s.connect(0, {}), /already connecting/);
});

Deno.test("ClientSession resolves connect with the CONNACK result", () => {
  const s = new ClientSession({ clientId: "abc" });
  const token = s.connect(0, {});
  s.takeActions();
  s.handlePacket(connack(true), 3);
  assert.deepEqual(s.takeActions(), [
    { type: "resolve", token, value: { sessionPresent: true, returnCode: 0 } },
  ]);
  assert.equal(s.state, "connected");
});

Deno.test("ClientSession rejects connect on a refusing CONNACK and closes [MQTT-3.2.2-5]", () => {
  const s = new ClientSession({ clientId: "abc" });
  const token = s.connect(0, {});
  s.takeActions();
  s.handlePacket(connack(false, 5), 1);
  const actions = s.takeActions();
  assert.equal(actions.length, 2);
  const [reject, close] = actions;
  assert.equal(reject?.type, "reject");
  if (reject?.type !== "reject") return;
  assert.equal(reject.token, token);
  assert.equal(reject.reason, "refused");
  assert.equal(reject.returnCode, 5);
  assert.equal(close?.type, "close");
  assert.equal(s.state, "disconnected");
});

Deno.test("ClientSession treats a first packet other than CONNACK as a protocol error [MQTT-3.2.0-1]", () => {
  const s = new ClientSession({ clientId: "abc" });
  const token = s.connect(0, {});
  s.takeActions();
  s.handlePacket({ type: PacketType.PINGRESP }, 1);
  const actions = s.takeActions();
  assert.deepEqual(types(actions), ["reject", "close"]);
  assert.equal(actions[0]?.type === "reject" && actions[0].token, token);
  assert.equal(actions[1]?.type === "close" && actions[1].reason, "protocol_error");
  assert.equal(s.state, "disconnected");
});

Deno.test("ClientSession closes when CONNACK is overdue", () => {
  const s = new ClientSession({ clientId: "abc" });
  const token = s.connect(100, { connectTimeout: 500 });
  s.takeActions();
  assert.equal(s.nextDeadline(), 600);
  s.tick(599);
  assert.deepEqual(s.takeActions(), []);
  s.tick(600);
  const actions = s.takeActions();
  assert.deepEqual(types(actions), ["reject", "close"]);
  assert.equal(actions[0]?.type === "reject" && actions[0].token, token);
  assert.equal(actions[0]?.type === "reject" && actions[0].reason, "timeout");
  assert.equal(actions[1]?.type === "close" && actions[1].reason, "connack_timeout");
  // The message names the timeout that ran out (the socket tests tell it from the default by it).
  assert.match(actions[1]?.type === "close" ? actions[1].message : "", /\(500 ms\)/);
});

Deno.test("ClientSession publishes QoS 0 at once and resolves it", () => {
  const s = connected();
  const token = s.publish(msg("a/b", 0), 1);
  const actions = s.takeActions();
  assert.deepEqual(actions, [
    {
      type: "send",
      packet: {
        type: PacketType.PUBLISH,
        topic: "a/b",
        payload: enc.encode("a/b"),
        qos: 0,
        retain: false,
        dup: false,
      },
    },
    { type: "resolve", token },
  ]);
});

Deno.test("ClientSession QoS 1 publish resolves on PUBACK [MQTT-4.3.2-1]", () => {
  const s = connected();
  const token = s.publish(msg("a", 1), 1);
  const [packet] = sent(s.takeActions()) as PublishPacket[];
  assert.equal(packet?.qos, 1);
  assert.equal(packet?.dup, false);
  const id = packet!.packetId!;
  assert.ok(id >= 1);
  assert.equal(s.inflightCount, 1);
  s.handlePacket({ type: PacketType.PUBACK, packetId: id }, 2);
  assert.deepEqual(s.takeActions(), [{ type: "resolve", token }]);
  assert.equal(s.inflightCount, 0);
});

Deno.test("ClientSession QoS 2 publish sends PUBREL on PUBREC and resolves on PUBCOMP [MQTT-4.3.3-1]", () => {
  const s = connected();
  const token = s.publish(msg("a", 2), 1);
  const id = (sent(s.takeActions())[0] as PublishPacket).packetId!;
  s.handlePacket({ type: PacketType.PUBREC, packetId: id }, 2);
  assert.deepEqual(s.takeActions(), [
    { type: "send", packet: { type: PacketType.PUBREL, packetId: id } },
  ]);
  s.handlePacket({ type: PacketType.PUBCOMP, packetId: id }, 3);
  assert.deepEqual(s.takeActions(), [{ type: "resolve", token }]);
});

Deno.test("ClientSession holds messages beyond the in-flight window and sends them on ack", () => {
  const s = connected({ maxInflight: 1 });
  const t1 = s.publish(msg("a", 1), 1);
  s.publish(msg("b", 1), 1);
  const first = sent(s.takeActions()) as PublishPacket[];
  assert.deepEqual(first.map((p) => p.topic), ["a"]);
  s.handlePacket({ type: PacketType.PUBACK, packetId: first[0]!.packetId! }, 2);
  const actions = s.takeActions();
  assert.deepEqual(types(actions), ["resolve", `send:${PacketType.PUBLISH}`]);
  assert.equal(actions[0]?.type === "resolve" && actions[0].token, t1);
  assert.equal((sent(actions)[0] as PublishPacket).topic, "b");
});

Deno.test("ClientSession resends unacknowledged PUBLISH with DUP and PUBREL in order after reconnect [MQTT-4.4.0-1]", () => {
  const s = new ClientSession({ clientId: "c1" });
  s.connect(0, { clean: false, keepAlive: 10 });
  s.handlePacket(connack(), 0);
  s.takeActions();
  s.publish(msg("one", 1), 1);
  s.publish(msg("two", 2), 1);
  s.publish(msg("three", 2), 1);
  const ids = (sent(s.takeActions()) as PublishPacket[]).map((p) => p.packetId!);
  // "two" reaches the PUBREL stage; "one" and "three" stay unacknowledged.
  s.handlePacket({ type: PacketType.PUBREC, packetId: ids[1]! }, 2);
  s.takeActions();
  s.connectionLost();
  assert.equal(s.state, "disconnected");
  assert.deepEqual(s.takeActions(), []);

  s.connect(10); // automatic reconnect: reuses the CONNECT fields
  const connect = sent(s.takeActions())[0];
  assert.equal(connect?.type === PacketType.CONNECT && connect.clean, false);
  s.handlePacket(connack(true), 11);
  const resent = sent(s.takeActions());
  assert.deepEqual(
    resent.map((p) =>
      p.type === PacketType.PUBLISH
        ? `PUBLISH ${p.topic} id=${p.packetId} dup=${p.dup}`
        : p.type === PacketType.PUBREL
        ? `PUBREL id=${p.packetId}`
        : String(p.type)
    ),
    [
      `PUBLISH one id=${ids[0]} dup=true`,
      `PUBREL id=${ids[1]}`,
      `PUBLISH three id=${ids[2]} dup=true`,
    ],
  );
});

Deno.test("ClientSession holds publishes made offline and sends them after CONNACK", () => {
  const s = new ClientSession({ clientId: "c1" });
  const t0 = s.publish(msg("zero", 0), 0);
  s.publish(msg("one", 1), 0);
  assert.deepEqual(s.takeActions(), []);
  assert.equal(s.queuedCount, 1);
  assert.equal(s.inflightCount, 1);
  s.connect(1, {});
  s.takeActions();
  s.handlePacket(connack(), 2);
  const actions = s.takeActions();
  const packets = sent(actions) as PublishPacket[];
  assert.deepEqual(packets.map((p) => [p.topic, p.dup]), [["one", false], ["zero", false]]);
  assert.ok(actions.some((a) => a.type === "resolve" && a.token === t0));
});

Deno.test("ClientSession rejects a publish when the offline queue is full", () => {
  const s = new ClientSession({ clientId: "c1", maxQueued: 2, maxInflight: 1 });
  s.publish(msg("a", 0), 0);
  s.publish(msg("b", 0), 0);
  const t0 = s.publish(msg("c", 0), 0);
  s.publish(msg("q1", 1), 0); // takes the window
  s.publish(msg("q2", 1), 0);
  s.publish(msg("q3", 1), 0);
  const t1 = s.publish(msg("q4", 1), 0);
  const actions = s.takeActions();
  assert.deepEqual(
    actions.map((a) => a.type === "reject" ? [a.token, a.reason] : a.type),
    [[t0, "queue_full"], [t1, "queue_full"]],
  );
  assert.equal(s.queuedCount, 4);
});

Deno.test("ClientSession delivers inbound QoS 0 and acknowledges QoS 1 with PUBACK [MQTT-4.3.2-2]", () => {
  const s = connected();
  s.handlePacket({
    type: PacketType.PUBLISH,
    topic: "t",
    payload: enc.encode("x"),
    qos: 0,
    retain: true,
    dup: false,
  }, 1);
  s.handlePacket({
    type: PacketType.PUBLISH,
    topic: "t",
    payload: enc.encode("y"),
    qos: 1,
    retain: false,
    dup: false,
    packetId: 7,
  }, 1);
  const actions = s.takeActions();
  assert.deepEqual(types(actions), ["deliver", "deliver", `send:${PacketType.PUBACK}`]);
  assert.deepEqual(actions[0]?.type === "deliver" && actions[0].message, {
    topic: "t",
    payload: enc.encode("x"),
    qos: 0,
    retain: true,
    dup: false,
  });
  assert.equal(actions[1]?.type === "deliver" && actions[1].message.packetId, 7);
  assert.deepEqual(sent(actions)[0], { type: PacketType.PUBACK, packetId: 7 });
});

Deno.test("ClientSession delivers an inbound QoS 2 message once despite a DUP resend [MQTT-4.3.3-2]", () => {
  const s = connected();
  const publish: Packet = {
    type: PacketType.PUBLISH,
    topic: "t",
    payload: enc.encode("x"),
    qos: 2,
    retain: false,
    dup: false,
    packetId: 9,
  };
  s.handlePacket(publish, 1);
  s.handlePacket({ ...publish, dup: true }, 2);
  const actions = s.takeActions();
  assert.deepEqual(types(actions), [
    "deliver",
    `send:${PacketType.PUBREC}`,
    `send:${PacketType.PUBREC}`,
  ]);
  s.handlePacket({ type: PacketType.PUBREL, packetId: 9 }, 3);
  assert.deepEqual(sent(s.takeActions()), [{ type: PacketType.PUBCOMP, packetId: 9 }]);
  // After PUBREL the id is free: the same id is a new message.
  s.handlePacket(publish, 4);
  assert.deepEqual(types(s.takeActions()), ["deliver", `send:${PacketType.PUBREC}`]);
});

Deno.test("ClientSession answers PUBREL for an unknown id with PUBCOMP", () => {
  const s = connected();
  s.handlePacket({ type: PacketType.PUBREL, packetId: 44 }, 1);
  assert.deepEqual(sent(s.takeActions()), [{ type: PacketType.PUBCOMP, packetId: 44 }]);
});

/** A connected session with one message in flight at `qos`, advanced to PUBREL when asked. */
function inFlight(qos: 1 | 2, atPubrel = false): { s: ClientSession; id: number; token: number } {
  const s = connected({}, { clean: false, keepAlive: 10 });
  const token = s.publish(msg("m", qos), 1);
  const id = (sent(s.takeActions())[0] as PublishPacket).packetId!;
  if (atPubrel) {
    s.handlePacket({ type: PacketType.PUBREC, packetId: id }, 2);
    assert.deepEqual(sent(s.takeActions()), [{ type: PacketType.PUBREL, packetId: id }]);
  }
  return { s, id, token };
}

const ACKS = {
  PUBACK: PacketType.PUBACK,
  PUBREC: PacketType.PUBREC,
  PUBCOMP: PacketType.PUBCOMP,
} as const;

for (
  const [what, qos, atPubrel, ack, awaiting] of [
    ["QoS 1 PUBLISH answered with PUBREC", 1, false, "PUBREC", "a QoS 1 message awaiting PUBACK"],
    ["QoS 1 PUBLISH answered with PUBCOMP", 1, false, "PUBCOMP", "a QoS 1 message awaiting PUBACK"],
    ["QoS 2 PUBLISH answered with PUBACK", 2, false, "PUBACK", "a QoS 2 message awaiting PUBREC"],
    ["QoS 2 PUBLISH answered with PUBCOMP", 2, false, "PUBCOMP", "a QoS 2 message awaiting PUBREC"],
    ["PUBACK after PUBREL", 2, true, "PUBACK", "a QoS 2 message awaiting PUBCOMP"],
  ] as const
) {
  Deno.test(`ClientSession closes the connection on a ${what} [MQTT-4.8.0-1]`, () => {
    const { s, id, token } = inFlight(qos, atPubrel);
    s.handlePacket({ type: ACKS[ack], packetId: id }, 3);
    const actions = s.takeActions();
    assert.deepEqual(actions, [{
      type: "close",
      reason: "protocol_error",
      message: `Server sent ${ack} for packet id ${id}, ${awaiting} [MQTT-4.8.0-1]`,
    }]);
    assert.equal(s.state, "disconnected");
    // The publish is not settled: the message stays in flight and goes again on reconnect.
    assert.equal(s.inflightCount, 1);
    s.connect(10);
    s.takeActions();
    s.handlePacket(connack(true), 11);
    const resent = sent(s.takeActions());
    assert.deepEqual(
      resent.map((p) => [p.type, p.type === PacketType.PUBLISH ? p.dup : undefined]),
      [atPubrel ? [PacketType.PUBREL, undefined] : [PacketType.PUBLISH, true]],
    );
    assert.equal((resent[0] as { packetId?: number }).packetId, id, "with its original id");
    const done = atPubrel ? "PUBCOMP" : qos === 1 ? "PUBACK" : "PUBREC";
    s.handlePacket({ type: ACKS[done], packetId: id }, 12);
    if (done === "PUBREC") s.handlePacket({ type: PacketType.PUBCOMP, packetId: id }, 13);
    assert.ok(s.takeActions().some((a) => a.type === "resolve" && a.token === token));
  });
}

Deno.test("ClientSession ignores a PUBACK or PUBCOMP for an id not in flight and reports it", () => {
  const s = connected();
  const token = s.publish(msg("a", 1), 1);
  const id = (sent(s.takeActions())[0] as PublishPacket).packetId!;
  s.handlePacket({ type: PacketType.PUBACK, packetId: id }, 2);
  assert.deepEqual(s.takeActions(), [{ type: "resolve", token }]);
  s.handlePacket({ type: PacketType.PUBACK, packetId: id }, 3); // a duplicate
  s.handlePacket({ type: PacketType.PUBCOMP, packetId: 300 }, 4);
  assert.deepEqual(s.takeActions(), [
    {
      type: "unsolicited",
      kind: "puback",
      packetId: id,
      message: `Ignored PUBACK for packet id ${id}: no message is in flight with that id`,
    },
    {
      type: "unsolicited",
      kind: "pubcomp",
      packetId: 300,
      message: "Ignored PUBCOMP for packet id 300: no message is in flight with that id",
    },
  ]);
  assert.equal(s.state, "connected");
});

Deno.test("ClientSession answers a PUBREC for an id not in flight with PUBREL and reports it", () => {
  const s = connected();
  s.handlePacket({ type: PacketType.PUBREC, packetId: 12 }, 1);
  assert.deepEqual(s.takeActions(), [
    { type: "send", packet: { type: PacketType.PUBREL, packetId: 12 } },
    {
      type: "unsolicited",
      kind: "pubrec",
      packetId: 12,
      message: "Ignored PUBREC for packet id 12: no message is in flight with that id",
    },
  ]);
  assert.equal(s.state, "connected");
});

Deno.test("ClientSession answers a repeated PUBREC of a QoS 2 message at PUBREL with PUBREL again", () => {
  const { s, id } = inFlight(2, true);
  s.handlePacket({ type: PacketType.PUBREC, packetId: id }, 3);
  assert.deepEqual(s.takeActions(), [
    { type: "send", packet: { type: PacketType.PUBREL, packetId: id } },
  ]);
  assert.equal(s.state, "connected");
});

Deno.test("ClientSession subscribe resolves with the SUBACK codes and releases the id", () => {
  const s = connected();
  const token = s.subscribe([{ topic: "a/#", qos: 1 }, { topic: "b", qos: 2 }], 1);
  const [packet] = sent(s.takeActions());
  assert.equal(packet?.type, PacketType.SUBSCRIBE);
  if (packet?.type !== PacketType.SUBSCRIBE) return;
  assert.deepEqual(packet.subscriptions, [{ topic: "a/#", qos: 1 }, { topic: "b", qos: 2 }]);
  s.handlePacket({ type: PacketType.SUBACK, packetId: packet.packetId, reasonCodes: [1, 0x80] }, 2);
  assert.deepEqual(s.takeActions(), [{ type: "resolve", token, value: [1, 0x80] }]);
  assert.deepEqual(s.subscriptions(), [{ topic: "a/#", qos: 1 }], "refused filter not kept");
});

Deno.test("ClientSession subscribe rejects an empty list [MQTT-3.8.3-3]", () => {
  const s = connected();
  assert.throws(() => s.subscribe([], 0), TypeError);
  assert.throws(() => s.unsubscribe([], 0), TypeError);
});

Deno.test("ClientSession unsubscribe resolves on UNSUBACK and forgets the filter", () => {
  const s = connected();
  const sub = s.subscribe([{ topic: "a", qos: 0 }], 1);
  const subId = (sent(s.takeActions())[0] as { packetId: number }).packetId;
  s.handlePacket({ type: PacketType.SUBACK, packetId: subId, reasonCodes: [0] }, 1);
  assert.deepEqual(s.takeActions(), [{ type: "resolve", token: sub, value: [0] }]);
  const token = s.unsubscribe(["a"], 2);
  const [packet] = sent(s.takeActions());
  assert.equal(packet?.type, PacketType.UNSUBSCRIBE);
  const id = (packet as { packetId: number }).packetId;
  s.handlePacket({ type: PacketType.UNSUBACK, packetId: id }, 3);
  assert.deepEqual(s.takeActions(), [{ type: "resolve", token, value: [] }]);
  assert.deepEqual(s.subscriptions(), []);
});

Deno.test("ClientSession sends a subscribe made offline after CONNACK", () => {
  const s = new ClientSession({ clientId: "c1" });
  s.subscribe([{ topic: "x", qos: 1 }], 0);
  assert.deepEqual(s.takeActions(), []);
  s.connect(0, {});
  s.takeActions();
  s.handlePacket(connack(), 1);
  const packets = sent(s.takeActions());
  assert.deepEqual(packets.map((p) => p.type), [PacketType.SUBSCRIBE]);
});

Deno.test("ClientSession resubscribes after reconnect when the server lost the session", () => {
  const s = connected();
  const sub = s.subscribe([{ topic: "a", qos: 1 }], 1);
  const id = (sent(s.takeActions())[0] as { packetId: number }).packetId;
  s.handlePacket({ type: PacketType.SUBACK, packetId: id, reasonCodes: [1] }, 1);
  assert.deepEqual(s.takeActions(), [{ type: "resolve", token: sub, value: [1] }]);
  s.connectionLost();

  s.connect(5);
  s.takeActions();
  s.handlePacket(connack(false), 6);
  const [packet] = sent(s.takeActions());
  assert.equal(packet?.type, PacketType.SUBSCRIBE);
  if (packet?.type !== PacketType.SUBSCRIBE) return;
  assert.deepEqual(packet.subscriptions, [{ topic: "a", qos: 1 }]);
  // The internal SUBSCRIBE settles no application request.
  s.handlePacket({ type: PacketType.SUBACK, packetId: packet.packetId, reasonCodes: [1] }, 7);
  assert.deepEqual(s.takeActions(), []);

  s.connectionLost();
  s.connect(8);
  s.takeActions();
  s.handlePacket(connack(true), 9);
  assert.deepEqual(sent(s.takeActions()), [], "session present: nothing to resubscribe");
});

Deno.test("ClientSession forgets subscriptions on a new clean connect [MQTT-3.1.2-6]", () => {
  const s = connected();
  s.subscribe([{ topic: "a", qos: 1 }], 1);
  const id = (sent(s.takeActions())[0] as { packetId: number }).packetId;
  s.handlePacket({ type: PacketType.SUBACK, packetId: id, reasonCodes: [1] }, 1);
  s.disconnect(2);
  assert.deepEqual(sent(s.takeActions()), [{ type: PacketType.DISCONNECT }]);
  s.connect(3, { clean: true });
  s.takeActions();
  s.handlePacket(connack(false), 4);
  assert.deepEqual(sent(s.takeActions()), []);
  assert.deepEqual(s.subscriptions(), []);
});

Deno.test("ClientSession resends a SUBSCRIBE that lost its connection before SUBACK", () => {
  const s = connected();
  const token = s.subscribe([{ topic: "a", qos: 1 }], 1);
  const first = sent(s.takeActions())[0] as { packetId: number };
  s.connectionLost();
  s.connect(2);
  s.takeActions();
  s.handlePacket(connack(true), 3);
  const again = sent(s.takeActions());
  assert.deepEqual(again.map((p) => p.type), [PacketType.SUBSCRIBE]);
  assert.equal((again[0] as { packetId: number }).packetId, first.packetId);
  s.handlePacket({ type: PacketType.SUBACK, packetId: first.packetId, reasonCodes: [1] }, 4);
  assert.deepEqual(s.takeActions(), [{ type: "resolve", token, value: [1] }]);
});

Deno.test("ClientSession pings after keepalive seconds without sending [MQTT-3.1.2-23]", () => {
  const s = connected(); // keepalive 10 s, CONNECT sent at 0
  assert.equal(s.nextDeadline(), 10_000);
  s.publish(msg("a", 0), 4_000);
  s.takeActions();
  // Hearing from the server does not excuse the client from sending.
  s.handlePacket({
    type: PacketType.PUBLISH,
    topic: "t",
    payload: new Uint8Array(),
    qos: 0,
    retain: false,
    dup: false,
  }, 13_000);
  s.takeActions();
  assert.equal(s.nextDeadline(), 14_000);
  s.tick(13_999);
  assert.deepEqual(s.takeActions(), []);
  s.tick(14_000);
  assert.deepEqual(sent(s.takeActions()), [{ type: PacketType.PINGREQ }]);
  assert.equal(s.nextDeadline(), 19_000, "PINGRESP due within half the keepalive");
  s.handlePacket({ type: PacketType.PINGRESP }, 14_010);
  assert.deepEqual(s.takeActions(), []);
  assert.equal(s.nextDeadline(), 24_000);
});

Deno.test("ClientSession pings when it has heard nothing for the keepalive, though it sends", () => {
  const s = connected();
  s.publish(msg("a", 0), 9_000);
  s.takeActions();
  s.tick(10_000);
  assert.deepEqual(sent(s.takeActions()), [{ type: PacketType.PINGREQ }]);
});

Deno.test("ClientSession closes a link whose PINGRESP is overdue [MQTT-3.1.2-24]", () => {
  const s = connected({}, { keepAlive: 2, pingTimeout: 700 });
  s.tick(2_000);
  assert.deepEqual(sent(s.takeActions()), [{ type: PacketType.PINGREQ }]);
  assert.equal(s.nextDeadline(), 2_700);
  s.tick(2_699);
  assert.deepEqual(s.takeActions(), []);
  s.tick(2_700);
  const actions = s.takeActions();
  assert.equal(actions.length, 1);
  assert.equal(actions[0]?.type === "close" && actions[0].reason, "keepalive_timeout");
  assert.equal(s.state, "disconnected");
  assert.equal(s.nextDeadline(), undefined);
});

Deno.test("ClientSession with keepalive 0 needs no timer [MQTT-3.1.2-10]", () => {
  const s = connected({}, { keepAlive: 0 });
  assert.equal(s.nextDeadline(), undefined);
  s.tick(1e9);
  assert.deepEqual(s.takeActions(), []);
});

Deno.test("ClientSession uses the MQTT 5.0 server keepalive [MQTT-3.2.2-21]", () => {
  const s = new ClientSession({ clientId: "c" });
  s.connect(0, { protocolVersion: 5, keepAlive: 60 });
  s.takeActions();
  s.handlePacket({
    type: PacketType.CONNACK,
    sessionPresent: false,
    reasonCode: 0,
    properties: { serverKeepAlive: 5 },
  }, 0);
  s.takeActions();
  assert.equal(s.nextDeadline(), 5_000);
});

Deno.test("ClientSession ping resolves on PINGRESP and is rejected when the link drops", () => {
  const s = connected();
  const t1 = s.ping(1);
  assert.deepEqual(sent(s.takeActions()), [{ type: PacketType.PINGREQ }]);
  s.handlePacket({ type: PacketType.PINGRESP }, 2);
  assert.deepEqual(s.takeActions(), [{ type: "resolve", token: t1 }]);
  const t2 = s.ping(3);
  s.takeActions();
  s.connectionLost();
  const actions = s.takeActions();
  assert.equal(actions.length, 1);
  assert.equal(actions[0]?.type === "reject" && actions[0].token, t2);
  const t3 = s.ping(4);
  assert.deepEqual(types(s.takeActions()), ["reject"], `ping ${t3} while offline`);
});

Deno.test("ClientSession treats a server-only packet as a protocol error", () => {
  const s = connected();
  s.handlePacket({ type: PacketType.PINGREQ }, 1);
  const actions = s.takeActions();
  assert.equal(actions[0]?.type === "close" && actions[0].reason, "protocol_error");
  assert.equal(s.state, "disconnected");
});

Deno.test("ClientSession ignores packets after the connection was lost", () => {
  const s = connected();
  s.connectionLost();
  s.handlePacket({ type: PacketType.PINGREQ }, 1);
  assert.deepEqual(s.takeActions(), []);
});

Deno.test("ClientSession.abandon returns every unsettled token", () => {
  const s = connected({ maxInflight: 1 });
  const a = s.publish(msg("a", 1), 1);
  const b = s.publish(msg("b", 2), 1);
  const c = s.subscribe([{ topic: "x", qos: 0 }], 1);
  const d = s.ping(1);
  s.connectionLost();
  const e = s.publish(msg("e", 0), 2);
  // The ping was already rejected with the connection; abandon returns the rest.
  assert.deepEqual(s.takeActions().flatMap((x) => x.type === "reject" ? [x.token] : []), [d]);
  assert.deepEqual(s.abandon().sort((x, y) => x - y), [a, b, c, e]);
  assert.equal(s.inflightCount, 0);
  assert.equal(s.queuedCount, 0);
  // Ids come back: a fresh subscribe works and nothing is resent on the next connect.
  s.connect(3, {});
  s.takeActions();
  s.handlePacket(connack(), 4);
  assert.deepEqual(s.takeActions().filter((x) => x.type === "send"), []);
});

Deno.test("ClientSession disconnect sends DISCONNECT and keeps held messages", () => {
  const s = connected();
  s.publish(msg("a", 1), 1);
  s.takeActions();
  s.disconnect(2);
  assert.deepEqual(sent(s.takeActions()), [{ type: PacketType.DISCONNECT }]);
  assert.equal(s.state, "disconnected");
  assert.equal(s.inflightCount, 1);
});

Deno.test("ClientSession rejects a failed MQTT 5.0 PUBACK with its reason code", () => {
  const s = new ClientSession({ clientId: "c" });
  s.connect(0, { protocolVersion: 5 });
  s.handlePacket(connack(), 0);
  s.takeActions();
  const token = s.publish(msg("a", 1), 1);
  const id = (sent(s.takeActions())[0] as PublishPacket).packetId!;
  s.handlePacket({ type: PacketType.PUBACK, packetId: id, reasonCode: 0x87 }, 2);
  const actions = s.takeActions();
  assert.equal(actions.length, 1);
  const [reject] = actions;
  assert.equal(reject?.type === "reject" && reject.token, token);
  assert.equal(reject?.type === "reject" && reject.returnCode, 0x87);
});

// ---- manualAcks: acknowledgements wait for accept() ----

function inbound(qos: 1 | 2, packetId: number, dup = false, text = `m${packetId}`): Packet {
  return {
    type: PacketType.PUBLISH,
    topic: "t",
    payload: enc.encode(text),
    qos,
    retain: false,
    dup,
    packetId,
  };
}

function delivered(actions: ClientAction[]) {
  return actions.flatMap((a) => a.type === "deliver" ? [a.message] : []);
}

Deno.test("ClientSession with manualAcks sends PUBACK only when the message is accepted [MQTT-4.3.2-2]", () => {
  const s = connected({ manualAcks: true });
  s.handlePacket(inbound(1, 7), 1);
  const actions = s.takeActions();
  assert.deepEqual(types(actions), ["deliver"]);
  assert.equal(s.unacceptedCount, 1);
  const [message] = delivered(actions);
  s.accept(message!, 2);
  assert.deepEqual(sent(s.takeActions()), [{ type: PacketType.PUBACK, packetId: 7 }]);
  assert.equal(s.unacceptedCount, 0);
  s.accept(message!, 3); // a second accept sends nothing
  assert.deepEqual(s.takeActions(), []);
});

Deno.test("ClientSession with manualAcks sends PUBREC on accept, then for every resend until PUBREL [MQTT-4.3.3-2]", () => {
  const s = connected({ manualAcks: true });
  s.handlePacket(inbound(2, 9), 1);
  const [message] = delivered(s.takeActions());
  s.handlePacket(inbound(2, 9, true), 2); // resent before accept: neither delivered nor answered
  assert.deepEqual(s.takeActions(), []);
  s.accept(message!, 3);
  assert.deepEqual(sent(s.takeActions()), [{ type: PacketType.PUBREC, packetId: 9 }]);
  s.handlePacket(inbound(2, 9, true), 4);
  assert.deepEqual(types(s.takeActions()), [`send:${PacketType.PUBREC}`]);
  s.handlePacket({ type: PacketType.PUBREL, packetId: 9 }, 5);
  assert.deepEqual(sent(s.takeActions()), [{ type: PacketType.PUBCOMP, packetId: 9 }]);
});

Deno.test("ClientSession with manualAcks acknowledges in the order accepted, which is delivery order [MQTT-4.6.0-2] [MQTT-4.6.0-3]", () => {
  const s = connected({ manualAcks: true });
  s.handlePacket(inbound(1, 1), 1);
  s.handlePacket(inbound(2, 2), 1);
  s.handlePacket(inbound(1, 3), 1);
  const messages = delivered(s.takeActions());
  assert.deepEqual(messages.map((m) => m.packetId), [1, 2, 3]);
  for (const m of messages) s.accept(m, 2);
  assert.deepEqual(sent(s.takeActions()), [
    { type: PacketType.PUBACK, packetId: 1 },
    { type: PacketType.PUBREC, packetId: 2 },
    { type: PacketType.PUBACK, packetId: 3 },
  ]);
});

Deno.test("ClientSession with manualAcks does not deliver again a QoS 1 resend of a message not yet accepted", () => {
  const s = new ClientSession({ clientId: "c1", manualAcks: true });
  s.connect(0, { clean: false, keepAlive: 10 });
  s.handlePacket(connack(), 0);
  s.takeActions();
  s.handlePacket(inbound(1, 4), 1);
  const [message] = delivered(s.takeActions());
  s.connectionLost();
  s.connect(2);
  s.handlePacket(connack(true), 3);
  s.takeActions();
  // The server resends what we never acknowledged [MQTT-4.4.0-1].
  s.handlePacket(inbound(1, 4, true), 4);
  assert.deepEqual(s.takeActions(), []);
  s.accept(message!, 5);
  assert.deepEqual(sent(s.takeActions()), [{ type: PacketType.PUBACK, packetId: 4 }]);
  // Acknowledged: the id is free, and the same id is a new message [MQTT-4.3.2-2].
  s.handlePacket(inbound(1, 4, false, "new"), 6);
  assert.deepEqual(delivered(s.takeActions()).map((m) => new TextDecoder().decode(m.payload)), [
    "new",
  ]);
});

Deno.test("ClientSession with manualAcks answers the resend of a QoS 1 message accepted offline with PUBACK only", () => {
  const s = new ClientSession({ clientId: "c1", manualAcks: true });
  s.connect(0, { clean: false, keepAlive: 10 });
  s.handlePacket(connack(), 0);
  s.takeActions();
  s.handlePacket(inbound(1, 5), 1);
  const [message] = delivered(s.takeActions());
  s.connectionLost();
  s.accept(message!, 2); // taken while offline: nothing can be sent
  assert.deepEqual(s.takeActions(), []);
  s.connect(3);
  s.handlePacket(connack(true), 4);
  s.takeActions();
  s.handlePacket(inbound(1, 5, true), 5);
  assert.deepEqual(types(s.takeActions()), [`send:${PacketType.PUBACK}`]);
});

Deno.test("ClientSession with manualAcks owes nothing to a server that lost the session", () => {
  const s = new ClientSession({ clientId: "c1", manualAcks: true });
  s.connect(0, { clean: false, keepAlive: 10 });
  s.handlePacket(connack(), 0);
  s.takeActions();
  s.handlePacket(inbound(1, 6), 1);
  s.handlePacket(inbound(2, 8), 1);
  const messages = delivered(s.takeActions());
  s.connectionLost();
  s.connect(2);
  s.handlePacket(connack(false), 3);
  s.takeActions();
  assert.equal(s.unacceptedCount, 0);
  for (const m of messages) s.accept(m, 4);
  assert.deepEqual(s.takeActions(), [], "ids of the lost session are not acknowledged");
  // A new message with a recycled id is delivered, not taken for a resend.
  s.handlePacket(inbound(2, 8), 5);
  assert.deepEqual(types(s.takeActions()), ["deliver"]);
});

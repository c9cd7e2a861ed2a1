/**
 * Broker, area 04: will messages.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import type { QoS, Will } from "../../src/packet/mod.ts";
import { startBroker, userRetained, waitFor } from "../_helpers/broker.ts";
import { TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

function will(topic: string, payload: string, qos: QoS = 0, retain = false): Will {
  return { topic, payload: new TextEncoder().encode(payload), qos, retain };
}

/** A client subscribed to `will/#` at QoS 2. */
async function watcher(port: number): Promise<TestClient> {
  const w = await TestClient.connect(port, { clientId: "watcher" });
  await w.subscribe({ "will/#": 2 });
  return w;
}

test("04 will: published when the socket closes without DISCONNECT [MQTT-3.1.2-8]", async () => {
  await using b = await startBroker();
  await using w = await watcher(b.port);
  const c = await TestClient.connect(b.port, { clientId: "c", will: will("will/c", "lost") });
  await c.close();
  const got = await w.expect(PacketType.PUBLISH);
  assert.equal(got.topic, "will/c");
  assert.equal(text(got), "lost");
});

test("04 will: not published after DISCONNECT [MQTT-3.1.2-10]", async () => {
  await using b = await startBroker();
  await using w = await watcher(b.port);
  const c = await TestClient.connect(b.port, { clientId: "c", will: will("will/c", "lost") });
  await c.send({ type: PacketType.DISCONNECT });
  await c.expectClosed(); // The broker closes after DISCONNECT [MQTT-3.14.4-1].
  await c.close();
  await waitFor(() => b.broker.clients().length === 1, 2000, "c to be gone");
  await w.expectNothing(300);
});

test("04 will: published on keepalive timeout [MQTT-3.1.2-24]", async () => {
  await using b = await startBroker();
  await using w = await watcher(b.port);
  await using c = await TestClient.connect(b.port, {
    clientId: "silent",
    keepAlive: 1,
    will: will("will/silent", "timed out"),
  });
  const got = await w.expect(PacketType.PUBLISH, 3500);
  assert.equal(text(got), "timed out");
  await c.expectClosed(500);
});

test("04 will: published on a protocol error (malformed packet) [MQTT-4.8.0-1]", async () => {
  await using b = await startBroker();
  await using w = await watcher(b.port);
  await using c = await TestClient.connect(b.port, {
    clientId: "bad",
    will: will("will/bad", "malformed"),
  });
  await c.sendBytes([0x36, 0x03, 0x00, 0x01, 0x61]); // PUBLISH with QoS 3
  await c.expectClosed();
  assert.equal(text(await w.expect(PacketType.PUBLISH)), "malformed");
});

test("04 will: published on takeover by the same client id [MQTT-3.1.4-2]", async () => {
  await using b = await startBroker();
  await using w = await watcher(b.port);
  await using first = await TestClient.connect(b.port, {
    clientId: "same",
    will: will("will/same", "taken over"),
  });
  await using second = await TestClient.connect(b.port, { clientId: "same" });
  await first.expectClosed();
  assert.equal(text(await w.expect(PacketType.PUBLISH)), "taken over");
  // The new connection's own (absent) will is not published when it is still up.
  await w.expectNothing(150);
  assert.equal(second.ended, false);
});

test("04 will: published with its QoS, live copies with RETAIN=0 [MQTT-3.1.2-14]", async () => {
  await using b = await startBroker();
  await using w = await watcher(b.port);
  const c = await TestClient.connect(b.port, {
    clientId: "c",
    will: will("will/q2", "two", 2, false),
  });
  await c.close();
  const got = await w.expect(PacketType.PUBLISH);
  assert.equal(got.qos, 2);
  assert.equal(got.retain, false);
  await w.send({ type: PacketType.PUBREC, packetId: got.packetId! });
  assert.equal((await w.expect(PacketType.PUBREL)).packetId, got.packetId);
  await w.send({ type: PacketType.PUBCOMP, packetId: got.packetId! });
});

test("04 will: a will with retain is stored as a retained message [MQTT-3.1.2-17]", async () => {
  await using b = await startBroker();
  const c = await TestClient.connect(b.port, {
    clientId: "c",
    will: will("will/status", "offline", 1, true),
  });
  await c.close();
  await waitFor(() => userRetained(b.broker).length === 1, 2000, "the retained will");
  await using late = await TestClient.connect(b.port, { clientId: "late" });
  await late.subscribe({ "will/status": 1 });
  const got = await late.expect(PacketType.PUBLISH);
  assert.equal(text(got), "offline");
  assert.equal(got.retain, true);
  assert.equal(got.qos, 1);
});

test("04 will: delivered at min(will QoS, granted QoS) [MQTT-3.8.4-6]", async () => {
  await using b = await startBroker();
  await using w0 = await TestClient.connect(b.port, { clientId: "w0" });
  await w0.subscribe({ "will/x": 0 });
  const c = await TestClient.connect(b.port, { clientId: "c", will: will("will/x", "x", 2) });
  await c.close();
  const got = await w0.expect(PacketType.PUBLISH);
  assert.equal(got.qos, 0);
});

test("04 will: an MQTT 3.1 client's will is published too", async () => {
  await using b = await startBroker();
  await using w = await watcher(b.port);
  const c = await TestClient.open(b.port, { protocolVersion: 3 });
  const connack = await c.handshake({
    clientId: "old",
    protocolVersion: 3,
    will: will("will/old", "v31", 1),
  });
  assert.equal(connack.reasonCode, 0);
  await c.close();
  const got = await w.expect(PacketType.PUBLISH);
  assert.equal(text(got), "v31");
  assert.equal(got.qos, 1);
});

test("04 will: a persistent session's will is published on an abrupt close too", async () => {
  await using b = await startBroker();
  await using w = await watcher(b.port);
  const c = await TestClient.connect(b.port, {
    clientId: "durable",
    clean: false,
    will: will("will/durable", "d"),
  });
  await c.close();
  assert.equal(text(await w.expect(PacketType.PUBLISH)), "d");
  // The session stays, offline.
  const s = b.broker.clients().find((x) => x.clientId === "durable");
  assert.equal(s?.connected, false);
});

test("04 will: a will is published once, not again on reconnect", async () => {
  await using b = await startBroker();
  await using w = await watcher(b.port);
  const c = await TestClient.connect(b.port, {
    clientId: "once",
    clean: false,
    will: will("will/once", "1"),
  });
  await c.close();
  await w.expect(PacketType.PUBLISH);
  await using again = await TestClient.connect(b.port, { clientId: "once", clean: false });
  await again.disconnect();
  await w.expectNothing(300);
});

test("04 will: a will on a $SYS topic is refused with CONNACK 5: clients cannot publish there", async () => {
  await using b = await startBroker();
  const version = b.broker.retainedMessages().find((m) => m.topic === "$SYS/broker/version");
  assert.ok(version !== undefined, "the $SYS plugin retains the version");
  await using c = await TestClient.open(b.port);
  const connack = await c.handshake({
    clientId: "forger",
    will: will("$SYS/broker/version", "forged", 0, true),
  });
  assert.equal(connack.reasonCode, 5);
  await c.expectClosed();
  assert.deepEqual(
    b.broker.retainedMessages().find((m) => m.topic === "$SYS/broker/version"),
    version,
  );
});

test("04 will: a will the publish authorization refuses is refused with CONNACK 5", async () => {
  const decided: string[] = [];
  await using b = await startBroker({}, {
    plugins: [{
      name: "no_alarms",
      authorizePublish: (client, topic, qos, retain) => {
        decided.push(`${client.clientId} ${topic} ${qos} ${retain}`);
        return !topic.startsWith("alarm/");
      },
    }],
  });
  await using w = await TestClient.connect(b.port, { clientId: "watcher" });
  await w.subscribe({ "alarm/#": 0, "will/#": 0 });
  await using refused = await TestClient.open(b.port);
  const connack = await refused.handshake({ clientId: "bad", will: will("alarm/fire", "!", 1) });
  assert.equal(connack.reasonCode, 5);
  await refused.expectClosed();
  // An allowed will is still accepted, and published on an abrupt close.
  const ok = await TestClient.connect(b.port, { clientId: "good", will: will("will/good", "g") });
  await ok.close();
  assert.equal(text(await w.expect(PacketType.PUBLISH)), "g");
  await w.expectNothing(100);
  assert.deepEqual(decided, ["bad alarm/fire 1 false", "good will/good 0 false"]);
});

test("04 will: a DISCONNECT behind a PUBLISH awaiting authorization: the PUBLISH is routed first, the will discarded [MQTT-3.14.4-3]", async () => {
  const timers = new Set<ReturnType<typeof setTimeout>>();
  await using b = await startBroker({}, {
    plugins: [{
      name: "slow_acl",
      authorizePublish: () =>
        new Promise<boolean>((resolve) => {
          const t = setTimeout(() => {
            timers.delete(t);
            resolve(true);
          }, 200);
          timers.add(t);
        }),
    }],
  });
  try {
    await using w = await watcher(b.port);
    await w.subscribe({ "data/#": 1 }, 2);
    const c = await TestClient.connect(b.port, { clientId: "c", will: will("will/c", "lost") });
    await c.send(
      {
        type: PacketType.PUBLISH,
        topic: "data/1",
        payload: new TextEncoder().encode("d"),
        qos: 1,
        retain: false,
        dup: false,
        packetId: 1,
      },
      { type: PacketType.DISCONNECT },
    );
    assert.equal((await c.expect(PacketType.PUBACK)).packetId, 1);
    await c.expectClosed();
    await c.close();
    const got = await w.expect(PacketType.PUBLISH);
    assert.deepEqual([got.topic, text(got)], ["data/1", "d"]);
    await w.send({ type: PacketType.PUBACK, packetId: got.packetId! });
    await w.expectNothing(300);
  } finally {
    for (const t of timers) clearTimeout(t);
  }
});

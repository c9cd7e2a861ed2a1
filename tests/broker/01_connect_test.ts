/**
 * Broker, area 01: CONNECT handling, byte by byte over TCP.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Session } from "../../src/broker/session.ts";
import { encodePacket, PacketType } from "../../src/packet/mod.ts";
import type { BrokerPlugin } from "../../src/plugins/types.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import { FakeLink, testCore } from "../_helpers/core.ts";
import { connectPacket, publishPacket, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

/** CONNECT "MQTT" level `level`, clean session, keepalive 60, client id "a". */
function rawConnect(name: string, level: number, flags = 0x02): number[] {
  const nameBytes = [...new TextEncoder().encode(name)];
  const body = [0x00, nameBytes.length, ...nameBytes, level, flags, 0x00, 0x3c, 0x00, 0x01, 0x61];
  return [0x10, body.length, ...body];
}

test("01 connect: MQTT 3.1.1 CONNECT gets CONNACK 0 with session present 0 [MQTT-3.2.2-1]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.open(b.port);
  const connack = await c.handshake({ clientId: "c1" });
  assert.equal(connack.reasonCode, 0);
  assert.equal(connack.sessionPresent, false);
});

test("01 connect: a first packet other than CONNECT closes the connection [MQTT-3.1.0-1]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.open(b.port);
  await c.sendBytes([0xc0, 0x00]); // PINGREQ
  await c.expectClosed();
});

test("01 connect: a PUBLISH before CONNECT is not routed and closes [MQTT-3.1.0-1]", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { clientId: "sub" });
  await sub.subscribe({ "t": 0 });
  await using c = await TestClient.open(b.port);
  await c.send(publishPacket("t", "sneaky"));
  await c.expectClosed();
  await sub.expectNothing(200);
});

test("01 connect: no CONNECT within connect_timeout closes the connection", async () => {
  await using b = await startBroker({ connect_timeout: 1 });
  await using c = await TestClient.open(b.port);
  // A wait, not a bound: a slow machine makes the close late, never missing.
  const elapsed = await c.waitEnd(15_000);
  assert.ok(elapsed !== undefined, "connection still open 15 s after accept");
  assert.ok(
    b.log.has("no CONNECT accepted within the connect timeout"),
    "closed for another reason",
  );
  // Deadline 1 s, checked by a sweep every 500 ms.
  assert.ok(elapsed >= 900, `closed after ${elapsed} ms, before the 1 s timeout`);
});

test("01 connect: a partial CONNECT does not stop the connect timeout", async () => {
  await using b = await startBroker({ connect_timeout: 1 });
  await using c = await TestClient.open(b.port);
  await c.sendBytes(rawConnect("MQTT", 4).slice(0, 6));
  const elapsed = await c.waitEnd(15_000);
  assert.ok(elapsed !== undefined, "half a CONNECT kept the connection open");
  assert.ok(
    b.log.has("no CONNECT accepted within the connect timeout"),
    "closed for another reason",
  );
});

test("01 connect: protocol level 6 gets CONNACK 0x01 then close [MQTT-3.1.2-2]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.open(b.port);
  await c.sendBytes(rawConnect("MQTT", 6));
  const connack = await c.expect(PacketType.CONNACK);
  assert.equal(connack.reasonCode, 0x01);
  assert.equal(connack.sessionPresent, false);
  await c.expectClosed();
});

test("01 connect: an unknown protocol name is refused and closed [MQTT-3.1.2-1]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.open(b.port);
  await c.sendBytes(rawConnect("MQTX", 4));
  // The spec lets the server close without CONNACK; a refusing CONNACK first is fine too.
  const before = await c.expectClosed(2000, { allowPackets: true });
  for (const p of before) {
    assert.ok(p.type === PacketType.CONNACK && p.reasonCode !== 0, `got ${JSON.stringify(p)}`);
  }
  assert.equal(b.broker.clients().length, 0);
});

test("01 connect: MQIsdp with level 3 (MQTT 3.1) is accepted", async () => {
  await using b = await startBroker();
  await using c = await TestClient.open(b.port, { protocolVersion: 3 });
  const connack = await c.handshake({ clientId: "v31", protocolVersion: 3 });
  assert.equal(connack.reasonCode, 0);
  await c.subscribe({ "v31/t": 1 });
  await c.send(publishPacket("v31/t", "hello", { qos: 1, packetId: 5 }));
  // Both orders are legal: the PUBACK and the forwarded copy.
  const got = [await c.receive(), await c.receive()];
  const puback = got.find((p) => p.type === PacketType.PUBACK);
  const pub = got.find((p) => p.type === PacketType.PUBLISH);
  assert.equal(puback?.type === PacketType.PUBACK && puback.packetId, 5);
  assert.equal(pub?.type === PacketType.PUBLISH && text(pub), "hello");
});

test("01 connect: reserved flag in CONNECT closes the connection [MQTT-3.1.2-3]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.open(b.port);
  await c.sendBytes(rawConnect("MQTT", 4, 0x03));
  await c.expectClosed();
});

test("01 connect: empty client id with clean session gets a generated id [MQTT-3.1.3-6]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.open(b.port);
  const connack = await c.handshake({ clientId: "", clean: true });
  assert.equal(connack.reasonCode, 0);
  const clients = b.broker.clients();
  assert.equal(clients.length, 1);
  assert.ok(clients[0].clientId.length > 0, "generated id is empty");
  await using _c2 = await TestClient.connect(b.port, { clientId: "" });
  const ids = new Set(b.broker.clients().map((x) => x.clientId));
  assert.equal(ids.size, 2, "two empty-id clients got the same generated id");
});

test("01 connect: empty client id without clean session is refused with 0x02 [MQTT-3.1.3-8]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.open(b.port);
  const connack = await c.handshake({ clientId: "", clean: false });
  assert.equal(connack.reasonCode, 0x02);
  assert.equal(connack.sessionPresent, false);
  await c.expectClosed();
  assert.equal(b.broker.clients().length, 0);
});

test("01 connect: a second CONNECT closes the connection [MQTT-3.1.0-2]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.connect(b.port, { clientId: "twice" });
  await c.sendBytes(rawConnect("MQTT", 4));
  await c.expectClosed();
});

test("01 connect: a second CONNECT is a protocol error: the will is published [MQTT-3.1.2-8]", async () => {
  await using b = await startBroker();
  await using watcher = await TestClient.connect(b.port, { clientId: "watcher" });
  await watcher.subscribe({ "will/twice": 0 });
  await using c = await TestClient.connect(b.port, {
    clientId: "twice",
    will: { topic: "will/twice", payload: new TextEncoder().encode("gone"), qos: 0, retain: false },
  });
  await c.sendBytes(rawConnect("MQTT", 4));
  await c.expectClosed();
  const will = await watcher.expect(PacketType.PUBLISH);
  assert.equal(text(will), "gone");
});

test("01 connect: takeover closes the old connection [MQTT-3.1.4-2] and publishes its will", async () => {
  await using b = await startBroker();
  await using watcher = await TestClient.connect(b.port, { clientId: "watcher" });
  await watcher.subscribe({ "will/dup": 1 });
  await using first = await TestClient.connect(b.port, {
    clientId: "dup",
    will: { topic: "will/dup", payload: new TextEncoder().encode("first"), qos: 1, retain: false },
  });
  await using second = await TestClient.connect(b.port, { clientId: "dup" });
  await first.expectClosed();
  const will = await watcher.expect(PacketType.PUBLISH);
  assert.equal(text(will), "first");
  assert.equal(will.qos, 1);
  // The new connection works.
  await second.send({ type: PacketType.PINGREQ });
  await second.expect(PacketType.PINGRESP);
  const clients = b.broker.clients().filter((x) => x.clientId === "dup");
  assert.equal(clients.length, 1);
  assert.equal(clients[0].connected, true);
  assert.equal(clients[0].remoteAddress?.endsWith(`:${second.localPort}`), true);
});

test("01 connect: the old connection's close after takeover does not detach the new one", async () => {
  await using b = await startBroker();
  await using first = await TestClient.connect(b.port, { clientId: "dup", clean: false });
  await using second = await TestClient.connect(b.port, { clientId: "dup", clean: false });
  await first.expectClosed();
  await second.subscribe({ "after/takeover": 1 });
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  await pub.send(publishPacket("after/takeover", "x"));
  const got = await second.expect(PacketType.PUBLISH);
  assert.equal(text(got), "x");
  assert.equal(b.broker.stats.clientsConnected, 2);
});

test("01 connect: MQTT 3.1 with an empty client id is refused with 0x02", async () => {
  await using b = await startBroker();
  await using c = await TestClient.open(b.port, { protocolVersion: 3 });
  const connack = await c.handshake({ clientId: "", protocolVersion: 3, clean: true });
  assert.equal(connack.reasonCode, 0x02);
  await c.expectClosed();
});

test("01 connect: CONNECT, SUBSCRIBE and PUBLISH pipelined in one write are handled in order", async () => {
  await using b = await startBroker();
  await using c = await TestClient.open(b.port);
  await c.send(
    connectPacket({ clientId: "pipe" }),
    { type: PacketType.SUBSCRIBE, packetId: 1, subscriptions: [{ topic: "p/t", qos: 1 }] },
    publishPacket("p/t", "first", { qos: 1, packetId: 2 }),
    { type: PacketType.PINGREQ },
  );
  assert.equal((await c.expect(PacketType.CONNACK)).reasonCode, 0);
  assert.deepEqual((await c.expect(PacketType.SUBACK)).reasonCodes, [1]);
  // The PUBACK and the copy for our own subscription may come in either order.
  const next = [await c.receive(), await c.receive()].map((p) => p.type).sort();
  assert.deepEqual(next, [PacketType.PUBLISH, PacketType.PUBACK]);
  await c.expect(PacketType.PINGRESP);
});

test("01 connect: MQTT 3.1 client ids over 23 characters are refused with 0x02", async () => {
  await using b = await startBroker();
  await using c = await TestClient.open(b.port, { protocolVersion: 3 });
  const connack = await c.handshake({ clientId: "x".repeat(24), protocolVersion: 3 });
  assert.equal(connack.reasonCode, 0x02);
  await c.expectClosed();
});

test("01 connect: MQTT 3.1.1 accepts client ids longer than 23 characters [MQTT-3.1.3-5]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.open(b.port);
  const connack = await c.handshake({ clientId: "a-rather-long-client-identifier-0123456789" });
  assert.equal(connack.reasonCode, 0);
});

test("01 connect: a will QoS of 3 closes the connection [MQTT-3.1.2-14]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.open(b.port);
  // Flags: will QoS 3 (0x18), will flag (0x04), clean (0x02); will topic "w", payload "".
  const body = [0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x1e, 0, 0, 0, 1, 0x61, 0, 1, 0x77, 0, 0];
  await c.sendBytes([0x10, body.length, ...body]);
  await c.expectClosed();
});

test("01 connect: will retain without the will flag closes the connection [MQTT-3.1.2-15]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.open(b.port);
  await c.sendBytes(rawConnect("MQTT", 4, 0x22));
  await c.expectClosed();
});

test("01 connect: a password without a user name closes the connection [MQTT-3.1.2-22]", async () => {
  await using b = await startBroker();
  await using c = await TestClient.open(b.port);
  const body = [0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x42, 0, 0, 0, 1, 0x61, 0, 1, 0x70];
  await c.sendBytes([0x10, body.length, ...body]);
  await c.expectClosed();
});

test("01 connect: a listener's max-connections refuses connections past the limit", async () => {
  await using b = await startBroker({
    listeners: { default: { bind: "127.0.0.1:0", "max-connections": 2 } },
  });
  await using c1 = await TestClient.connect(b.port, { clientId: "c1" });
  await using c2 = await TestClient.connect(b.port, { clientId: "c2" });
  await using c3 = await TestClient.open(b.port);
  await c3.expectClosed();
  assert.ok(b.log.has("max-connections"));
  await c1.disconnect();
  await c2.send({ type: PacketType.PINGREQ });
  await c2.expect(PacketType.PINGRESP);
});

test("01 connect: many simultaneous connections with one client id leave exactly one connected", async () => {
  await using b = await startBroker();
  const clients = await Promise.all(
    Array.from({ length: 10 }, () => TestClient.open(b.port)),
  );
  try {
    await Promise.all(
      clients.map((c) => c.send(connectPacket({ clientId: "same", clean: false }))),
    );
    await waitFor(() => clients.filter((c) => !c.socketEnded).length === 1, 3000, "one survivor");
    const survivor = clients.find((c) => !c.socketEnded)!;
    await survivor.send({ type: PacketType.PINGREQ });
    assert.equal(await survivor.waitEnd(300), undefined, "the survivor was closed too");
    const summary = b.broker.clients();
    assert.equal(summary.length, 1);
    assert.equal(summary[0].connected, true);
    assert.equal(summary[0].remoteAddress, `127.0.0.1:${survivor.localPort}`);
    assert.equal(b.broker.stats.clientsConnected, 1);
  } finally {
    for (const c of clients) await c.close();
  }
  await waitFor(() => b.broker.stats.clientsConnected === 0, 2000, "every client gone");
});

test("01 connect: takeover of a connection whose writes are stuck frees it at once [MQTT-3.1.4-2]", async () => {
  // Default drain_timeout (30 s); max-connections 2 shows when the old socket is really gone.
  await using b = await startBroker({
    listeners: { default: { bind: "127.0.0.1:0", "max-connections": 2 } },
  });
  const stuck = await Deno.connect({ hostname: "127.0.0.1", port: b.port });
  try {
    await stuck.write(encodePacket(connectPacket({ clientId: "dev", clean: false }), 4));
    await stuck.write(encodePacket({
      type: PacketType.SUBSCRIBE,
      packetId: 1,
      subscriptions: [{ topic: "big", qos: 0 }],
    }, 4));
    await waitFor(() => b.broker.subscriptions().length === 1);
    const payload = new Uint8Array(64 * 1024);
    for (let i = 0; i < 200; i++) b.broker.publish("big", payload);
    // The device comes back on a new connection.
    await using fresh = await TestClient.open(b.port);
    assert.equal((await fresh.handshake({ clientId: "dev", clean: false })).sessionPresent, true);
    await waitFor(() => b.log.has("taken over"), 2000, "the takeover");
    let third: TestClient | undefined;
    try {
      await waitFor(() => b.broker.stats.clientsConnected === 1);
      third = await TestClient.open(b.port);
      const connack = await third.handshake({ clientId: "third" });
      assert.equal(connack.reasonCode, 0, "the old socket still holds a connection slot");
    } finally {
      await third?.close();
    }
  } finally {
    stuck.close();
  }
});

/** Settles with `promise`, or with "timeout" after `ms`; clears its timer either way. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => timer = setTimeout(resolve, ms, "timeout"));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

test("01 connect: an authentication hook that does not answer neither holds the connection nor hangs shutdown", async () => {
  // The hook answers only when the test says so (the plugin host's own 10 s hook timeout would
  // end it eventually): the connection must not wait for it once the connect timeout closed it.
  let answer: (ok: boolean) => void = () => {};
  const b = await startBroker({
    connect_timeout: 1,
    listeners: { default: { bind: "127.0.0.1:0", "max-connections": 1 } },
  }, {
    plugins: [{
      name: "stuck_auth",
      authenticate: () => new Promise<boolean>((resolve) => answer = resolve),
    }],
  });
  try {
    await using c = await TestClient.open(b.port);
    await c.send(connectPacket({ clientId: "waiting" }));
    // The connect timeout gives up on it: "server unavailable", then the close...
    assert.equal((await c.expect(PacketType.CONNACK)).reasonCode, 3);
    assert.ok((await c.waitEnd(15_000)) !== undefined, "still open 15 s after CONNECT");
    assert.ok(b.log.has("login not checked within the connect timeout"), "the reason is logged");
    // ...and its slot is free again: max-connections 1 accepts the next socket.
    await using next = await TestClient.open(b.port);
    assert.equal(await next.waitEnd(300), undefined, "the stuck connection still holds the slot");
    await next.close();
    assert.equal(await within(b.broker.shutdown(), 3000), undefined, "shutdown hung");
  } finally {
    answer(true);
    await b.broker.shutdown();
  }
  // The late answer is ignored: nobody was connected.
  assert.equal(b.broker.stats.clientsTotal, 0);
});

test("01 connect: a generated client id never takes over an existing session [MQTT-3.1.3-6]", async () => {
  const core = testCore();
  // Offline sessions of clients that chose ids shaped like generated ones, for the next 5 s.
  const now = Date.now();
  const taken: Session[] = [];
  for (let t = now - 5; t < now + 5000; t++) {
    const id = `auto-${t.toString(36)}-1`;
    const session = new Session(id, {
      maxInflight: 20,
      maxQueued: 10,
      out: core.core.actions,
    });
    core.sessions.set(id, session);
    taken.push(session);
  }
  const link = new FakeLink();
  core.attach(link, now);
  await core.handle(link, connectPacket({ clientId: "", clean: true }), now);
  assert.deepEqual(link.sent[0], {
    type: PacketType.CONNACK,
    sessionPresent: false,
    reasonCode: 0,
  });
  const assigned = link.session!.clientId;
  assert.ok(assigned.length > 0);
  assert.equal(core.sessions.size, taken.length + 1, "an existing session was replaced");
  for (const s of taken) {
    assert.equal(core.sessions.get(s.clientId), s, `${s.clientId} was replaced`);
  }
});

/** A plugin that accepts everyone, answering clients named `username` only after 300 ms. */
function slowAuthFor(username: string, timers: Set<ReturnType<typeof setTimeout>>): BrokerPlugin {
  return {
    name: "slow_for_slow",
    authenticate: (client) =>
      client.username !== username ? true : new Promise<boolean>((resolve) => {
        const t = setTimeout(() => {
          timers.delete(t);
          resolve(true);
        }, 300);
        timers.add(t);
      }),
  };
}

test("01 connect: takeovers while another CONNECT for the id awaits authentication leave one connection [MQTT-3.1.4-2]", async () => {
  const timers = new Set<ReturnType<typeof setTimeout>>();
  await using b = await startBroker({}, { plugins: [slowAuthFor("slow", timers)] });
  const wills: string[] = [];
  await using watcher = await TestClient.connect(b.port, { clientId: "watcher" });
  await watcher.subscribe({ "will/#": 0 });
  const will = (name: string) => ({
    topic: `will/${name}`,
    payload: new TextEncoder().encode(name),
    qos: 0 as const,
    retain: false,
  });
  try {
    await using a = await TestClient.connect(b.port, { clientId: "x", will: will("a") });
    // B's CONNECT waits 300 ms for authentication; C's is answered at once and takes over A.
    await using slow = await TestClient.open(b.port);
    await slow.send(connectPacket({ clientId: "x", username: "slow", will: will("b") }));
    await using c = await TestClient.connect(b.port, { clientId: "x", will: will("c") });
    await a.expectClosed();
    // Then B's answer comes: it takes over C.
    assert.equal((await slow.expect(PacketType.CONNACK, 2000)).reasonCode, 0);
    await c.expectClosed();
    for (let i = 0; i < 2; i++) wills.push(text(await watcher.expect(PacketType.PUBLISH)));
    assert.deepEqual(wills, ["a", "c"]);
    await slow.send({ type: PacketType.PINGREQ });
    await slow.expect(PacketType.PINGRESP);
    assert.equal(b.broker.clients().filter((s) => s.clientId === "x").length, 1);
    assert.equal(b.broker.stats.clientsConnected, 2);
  } finally {
    for (const t of timers) clearTimeout(t);
  }
});

test("01 connect: a CONNECT whose socket closes while authentication is pending takes over nothing", async () => {
  const timers = new Set<ReturnType<typeof setTimeout>>();
  await using b = await startBroker({}, { plugins: [slowAuthFor("slow", timers)] });
  try {
    await using a = await TestClient.connect(b.port, { clientId: "x" });
    const gone = await TestClient.open(b.port);
    await gone.send(connectPacket({ clientId: "x", username: "slow" }));
    await gone.close(); // the peer is gone before the answer comes
    await new Promise((resolve) => setTimeout(resolve, 500));
    // A is still the session's connection and still served.
    await a.send({ type: PacketType.PINGREQ });
    await a.expect(PacketType.PINGRESP);
    assert.equal(b.broker.clients().find((s) => s.clientId === "x")?.connected, true);
    assert.equal(b.broker.stats.clientsConnected, 1);
  } finally {
    for (const t of timers) clearTimeout(t);
  }
});

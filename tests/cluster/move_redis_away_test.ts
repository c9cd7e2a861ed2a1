// A client moving to a node whose connection to Redis is down (B cannot load its session) is
// served with a provisional session, which gives way when Redis is back: B claims nothing, so the
// node that has the session (A) keeps it with the messages it queued, and the client's next try on
// B gets them; a brand-new client's provisional session becomes B's. A login whose load is under
// way when Redis is lost is refused as server busy. A clean start goes on. Real processes, redis-server, a TCP proxy between B and Redis that the test cuts,
// byte-level clients at 3.1.1 and 5.0.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { publishPacket, subscribe5, TestClient, text } from "../_helpers/test_client.ts";
import { PacketType, ReasonCode } from "../../src/packet/constants.ts";
import { Node, until } from "./_nodes.ts";
import { leaveWithQueued, resumeConnect, resumeQueued } from "./_resume.ts";
import { bringBack, cutOff } from "./_away.ts";
import { StallProxy } from "./_stall_proxy.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/** Polls `read` every 20 ms until it gives `want` (a guard of 30 s, not a bound). */
async function settles<T>(read: () => Promise<T>, want: T): Promise<T> {
  let got = await read();
  for (let i = 0; i < 1500 && got !== want; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    got = await read();
  }
  return got;
}

/**
 * Logs `clientId` in on `port` resuming its session, trying again while refused as server busy
 * (the node's store connection comes back on a schedule of its own, after the bus's); returns the
 * accepted connection.
 */
async function resume(port: number, clientId: string, version: 4 | 5): Promise<TestClient> {
  for (let attempt = 1;; attempt++) {
    const client = await TestClient.open(port, { protocolVersion: version });
    const connack = await client.handshake(resumeConnect(clientId, version));
    if (connack.reasonCode === 0) {
      assert.equal(connack.sessionPresent, true, `session of ${clientId}`);
      return client;
    }
    assert.equal(connack.reasonCode, version === 5 ? ReasonCode.SERVER_BUSY : 3);
    assert.equal(connack.sessionPresent, false);
    await client.expectClosed();
    await client.close();
    assert.ok(attempt < 30, `${clientId} accepted again`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

Deno.test(
  "cluster: a login resuming a session another node holds, on a node that cannot reach Redis, is served with a provisional session (Session Present 0) that gives way once Redis is back (5.0 DISCONNECT 0x89, 3.1.1 closed); the next login resumes the real session with its queued message, nothing of the provisional one stored; a clean start goes on [MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-3.2.2-2] [MQTT-3.1.4-3]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    // No node is taken for dead while B's Redis connection is down.
    await using a = await Node.start(redis, { nodeId: "a", prefix: "mw1:" });
    await using b = await Node.start(proxy, { nodeId: "b", prefix: "mw1:" });
    await leaveWithQueued(a, "away4", 4, "kept4");
    await leaveWithQueued(a, "away5", 5, "kept5");
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      // B's connections to Redis are cut, and the new ones never answered: B's bus is not ready.
      await cutOff(proxy, b);

      // Served provisionally: B knows no session of them (Session Present 0). Their
      // subscriptions work on B, and a message published on B reaches them.
      await using c4 = await TestClient.open(b.port);
      await using c5 = await TestClient.open(b.port, { protocolVersion: 5 });
      const [a4, a5] = await Promise.all([
        c4.handshake(resumeConnect("away4", 4)),
        c5.handshake(resumeConnect("away5", 5)),
      ]);
      for (const connack of [a4, a5]) {
        assert.equal(connack.reasonCode, 0);
        assert.equal(connack.sessionPresent, false);
      }
      await c4.subscribe({ "prov/away4": 1 });
      await subscribe5(c5, [{ topic: "prov/away5", qos: 1 }]);
      await using fresh = await TestClient.connect(b.port, { clientId: "fresh", clean: true });
      for (const [client, id] of [[c4, "away4"], [c5, "away5"]] as const) {
        await fresh.send(publishPacket(`prov/${id}`, `local ${id}`, { qos: 1, packetId: 7 }));
        assert.equal((await fresh.expect(PacketType.PUBACK)).packetId, 7);
        const p = await client.expect(PacketType.PUBLISH);
        assert.equal(text(p), `local ${id}`);
        await client.send({ type: PacketType.PUBACK, packetId: p.packetId! });
      }
      assert.match(b.log(), /away4 is served with a provisional session/);

      // Redis is back for B: the sessions exist on A, so the provisional ones give way (5.0:
      // DISCONNECT 0x89 server busy; 3.1.1: closed), nothing of them claimed or stored but their
      // subscriptions, kept in the sessions that exist (sent to A, which holds them and adds
      // them there).
      await bringBack(proxy, b);
      const disconnect = await c5.expect(PacketType.DISCONNECT);
      assert.equal(disconnect.reasonCode, ReasonCode.SERVER_BUSY);
      await c5.expectClosed();
      await c4.expectClosed();
      assert.match(
        b.log(),
        /provisional session of away4 gives way to the session that exists on node a/,
      );
      // The clean start's claim, made when Redis is back, is through.
      for (let i = 0; i < 1500 && await admin.hget("mw1:owner", "fresh") !== "b"; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(await admin.hget("mw1:owner", "fresh"), "b");
      for (const id of ["away4", "away5"]) {
        await until(
          () =>
            new RegExp(
              `the 1 subscriptions ${id} made in its provisional session on node b are kept`,
            )
              .test(a.log()),
          `the subscription of ${id} kept`,
        );
        assert.equal(await admin.hget("mw1:owner", id), "a", id);
        for (
          let i = 0;
          i < 1500 && await admin.hexists(`mw1:store:sub:${id}`, `prov/${id}`) !== 1;
          i++
        ) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        assert.equal(await admin.hexists(`mw1:store:sub:${id}`, `prov/${id}`), 1, id);
        assert.equal(await admin.hexists(`mw1:store:sub:${id}`, `s/${id}`), 1, id);
      }
      // The connection that stays is still served.
      await fresh.send({ type: PacketType.PINGREQ });
      await fresh.expect(PacketType.PINGRESP);

      // The next tries get the sessions from A, with what A had queued.
      for (
        const [clientId, version, body] of [["away4", 4, "kept4"], ["away5", 5, "kept5"]] as const
      ) {
        await using again = await resume(b.port, clientId, version);
        const p = await again.expect(PacketType.PUBLISH);
        assert.equal(text(p), body);
        await again.send({ type: PacketType.PUBACK, packetId: p.packetId! });
        assert.equal(await admin.hget("mw1:owner", clientId), "b");
        assert.equal(await again.poll(500), undefined, "nothing of the provisional session");
        assert.equal(again.socketEnded, false);
        // Its subscription made in the provisional session is in the session [MQTT-3.8.4-3].
        await fresh.send(
          publishPacket(`prov/${clientId}`, `kept ${clientId}`, { qos: 1, packetId: 8 }),
        );
        assert.equal((await fresh.expect(PacketType.PUBACK)).packetId, 8);
        const q = await again.expect(PacketType.PUBLISH);
        assert.equal(text(q), `kept ${clientId}`);
        await again.send({ type: PacketType.PUBACK, packetId: q.packetId! });
      }
      assert.match(b.log(), /session of away4 loaded from the shared store \(was on node a\)/);
    } finally {
      admin.disconnect();
    }
  },
);

Deno.test(
  "cluster: a login resuming a session, whose load is under way when the node loses Redis, is refused as server busy (5.0 0x89, Session Present 0) and the queued message reaches the next try [MQTT-3.1.2-5] [MQTT-3.2.2-2] [MQTT-3.2.2-6] [MQTT-3.2.2-7]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    await using a = await Node.start(redis, { nodeId: "a", prefix: "mw2:" });
    await using b = await Node.start(proxy, { nodeId: "b", prefix: "mw2:" });
    await leaveWithQueued(a, "midway", 5, "kept");
    // Redis answers nobody for a while: B's read of the session waits, and B loses its
    // connections (cut by the proxy) before the answer.
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      await admin.call("CLIENT", "PAUSE", "6000", "ALL");
      await using v5 = await TestClient.open(b.port, { protocolVersion: 5 });
      await v5.send({
        type: PacketType.CONNECT,
        protocolName: "MQTT",
        protocolVersion: 5,
        clean: false,
        keepAlive: 60,
        clientId: "midway",
        properties: { sessionExpiryInterval: 600 },
      });
      // Time for B to start the read (a guard: had it not, the login would meet Redis away, and
      // be refused the same way; the log line below tells which).
      await new Promise((resolve) => setTimeout(resolve, 1500));
      proxy.mode = "stall";
      proxy.cut();
      const connack = await v5.expect(PacketType.CONNACK);
      assert.equal(connack.reasonCode, ReasonCode.SERVER_BUSY);
      assert.equal(connack.sessionPresent, false);
      await v5.expectClosed();
      assert.match(
        b.log(),
        /stored session of midway \((?!Redis is unreachable)[^)]*\).*server busy/,
      );

      proxy.mode = "forward";
      proxy.cut();
      await until(() => /Cluster: Redis is back/.test(b.log()), "B reconnecting to Redis");
      assert.equal(await admin.hget("mw2:owner", "midway"), "a");
      await using again = await resume(b.port, "midway", 5);
      const p = await again.expect(PacketType.PUBLISH);
      assert.equal(text(p), "kept");
      await again.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    } finally {
      admin.disconnect();
    }
  },
);

Deno.test(
  "cluster: a login of a brand-new client id resuming a session on a node that cannot reach Redis is served with a provisional session (Session Present 0), which is the node's once Redis is back: claimed, written whole, and resumed on another node with a message queued for it [MQTT-3.1.2-4] [MQTT-3.2.2-2]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    await using a = await Node.start(redis, { nodeId: "a", prefix: "mw3:" });
    await using b = await Node.start(proxy, { nodeId: "b", prefix: "mw3:" });
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      await cutOff(proxy, b);
      const clients: TestClient[] = [];
      try {
        for (const version of [4, 5] as const) {
          const client = await TestClient.open(b.port, { protocolVersion: version });
          clients.push(client);
          const connack = await client.handshake(resumeConnect(`new${version}`, version));
          assert.equal(connack.reasonCode, 0);
          assert.equal(connack.sessionPresent, false, "a new session");
          if (version === 5) await subscribe5(client, [{ topic: "n/new5", qos: 1 }]);
          else await client.subscribe({ "n/new4": 1 });
        }
        // 5.0 Clean Start 0 with no Session Expiry Interval: a session that ends with its
        // connection, nothing to store; claimed all the same once Redis is back.
        const ends = await TestClient.open(b.port, { protocolVersion: 5 });
        clients.push(ends);
        const connack = await ends.handshake({
          clientId: "new0",
          clean: false,
          protocolVersion: 5,
        });
        assert.equal(connack.reasonCode, 0);
        assert.equal(connack.sessionPresent, false);
        assert.equal(await admin.hexists("mw3:owner", "new4"), 0, "not claimed while away");
        await bringBack(proxy, b);
        for (const version of [4, 5] as const) {
          const id = `new${version}`;
          for (let i = 0; i < 1500 && await admin.hget("mw3:owner", id) !== "b"; i++) {
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
          assert.equal(await admin.hget("mw3:owner", id), "b");
          await until(
            () => new RegExp(`provisional session of ${id} is this node's`).test(b.log()),
            id,
          );
          // Written whole: the session and its subscription are in the store.
          for (
            let i = 0;
            i < 1500 && await admin.hexists("mw3:store:sub:" + id, `n/${id}`) === 0;
            i++
          ) {
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
          assert.equal(await admin.hexists("mw3:store:sessions", id), 1, id);
          assert.equal(await admin.hexists(`mw3:store:sub:${id}`, `n/${id}`), 1, id);
        }
        assert.equal(await settles(() => admin.hget("mw3:owner", "new0"), "b"), "b");
        assert.equal(await admin.hexists("mw3:store:sessions", "new0"), 0, "not stored");
        // Still connected: the sessions are real ones now.
        for (const client of clients) {
          await client.send({ type: PacketType.PINGREQ });
          await client.expect(PacketType.PINGRESP);
          await client.disconnect();
        }
      } finally {
        for (const client of clients) await client.close();
      }
      // A message for each, queued while they are away; they resume on A.
      await using pub = await TestClient.connect(a.port, { clientId: "pub" });
      for (const version of [4, 5] as const) {
        await pub.send(
          publishPacket(`n/new${version}`, `q${version}`, { qos: 1, packetId: version }),
        );
        assert.equal((await pub.expect(PacketType.PUBACK)).packetId, version);
      }
      for (const version of [4, 5] as const) {
        await resumeQueued(a.port, `new${version}`, version, `q${version}`);
      }
    } finally {
      admin.disconnect();
    }
  },
);

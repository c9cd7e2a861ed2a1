// A login whose stored session Redis is slow to give (connected, but answering nothing for a
// while: `CLIENT PAUSE`) waits for it rather than going on with an empty session, and past the
// node's bound is refused as server busy, the session kept for the client's next try. Real
// processes, redis-server, byte-level clients at 3.1.1 and 5.0.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { subscribe5, TestClient, text } from "../_helpers/test_client.ts";
import { PacketType, ReasonCode } from "../../src/packet/constants.ts";
import { Inbox, Node, until } from "./_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/**
 * Redis answers no client for `ms` (it stays connected); with `WRITE`, it answers reads but
 * holds writes and scripts.
 */
async function pause(redis: RedisServer, ms: number, mode: "ALL" | "WRITE" = "ALL"): Promise<void> {
  const admin = new Redis(redis.url, { lazyConnect: true });
  await admin.connect();
  try {
    await admin.call("CLIENT", "PAUSE", String(ms), mode);
  } finally {
    admin.disconnect();
  }
}

/** A persistent subscriber to `s/#` at QoS 1 that left `node`, with one message queued. */
async function leaveWithQueued(
  node: Node,
  clientId: string,
  protocolVersion: 4 | 5,
  body: string,
): Promise<void> {
  const connect = {
    clientId,
    clean: false,
    protocolVersion,
    ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 600 } } : {}),
  };
  {
    await using sub = await TestClient.connect(node.port, connect);
    if (protocolVersion === 5) await subscribe5(sub, [{ topic: `s/${clientId}`, qos: 1 }]);
    else await sub.subscribe({ [`s/${clientId}`]: 1 });
    await sub.disconnect();
  }
  // Acknowledged once stored.
  await using pub = await Inbox.connect(node, `pub-${clientId}`);
  await pub.client.publish(`s/${clientId}`, body, { qos: 1 });
}

Deno.test(
  "cluster: a login whose stored session Redis gives after more than a second gets it before its CONNACK (session present, queued message delivered) [MQTT-3.1.2-4] [MQTT-3.2.2-2]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    // No node is taken for dead while Redis is paused.
    await using a = await Node.start(redis, { nodeId: "a", prefix: "sl1:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "sl1:" });
    await leaveWithQueued(a, "slow", 4, "queued");
    // More than the second a login used to wait before it went on with an empty session.
    await pause(redis, 2500);
    await using back = await TestClient.open(b.port);
    const connack = await back.handshake({ clientId: "slow", clean: false });
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.sessionPresent, true);
    const p = await back.expect(PacketType.PUBLISH);
    assert.equal(text(p), "queued");
    await back.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    assert.match(b.log(), /session of slow loaded from the shared store \(was on node a\)/);
  },
);

Deno.test(
  "cluster: a login resuming a session Redis does not give within the node's bound is refused as server busy (3.1.1 return code 3, 5.0 0x89, Session Present 0, connection closed) and the session is there at the next try; a clean start goes on [MQTT-3.1.2-4] [MQTT-3.2.2-4] [MQTT-3.2.2-5] [MQTT-3.2.2-6] [MQTT-3.2.2-7]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "sl2:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "sl2:" });
    await leaveWithQueued(a, "slow4", 4, "kept4");
    await leaveWithQueued(a, "slow5", 5, "kept5");
    // Longer than a login waits (4 s), shorter than the connect timeout (10 s).
    await pause(redis, 7000);
    await using v4 = await TestClient.open(b.port);
    await using v5 = await TestClient.open(b.port, { protocolVersion: 5 });
    // A clean start asks for no stored state: it goes on (as while Redis pauses writes in a
    // failover).
    await using fresh = await TestClient.open(b.port);
    const [c4, c5, clean] = await Promise.all([
      v4.handshake({ clientId: "slow4", clean: false }),
      v5.handshake({
        clientId: "slow5",
        clean: false,
        protocolVersion: 5,
        properties: { sessionExpiryInterval: 600 },
      }),
      fresh.handshake({ clientId: "fresh", clean: true }),
    ]);
    assert.equal(clean.reasonCode, 0);
    assert.equal(clean.sessionPresent, false);
    assert.equal(c4.reasonCode, 3);
    assert.equal(c4.sessionPresent, false);
    assert.equal(c5.reasonCode, ReasonCode.SERVER_BUSY);
    assert.equal(c5.sessionPresent, false);
    await v4.expectClosed();
    await v5.expectClosed();
    assert.match(b.log(), /stored session of slow4 .*refused as server busy/);

    // Redis answers again: the next tries get the sessions with what was queued.
    for (
      const [clientId, version, body] of [["slow4", 4, "kept4"], ["slow5", 5, "kept5"]] as const
    ) {
      await using again = await TestClient.open(b.port, { protocolVersion: version });
      const connack = await again.handshake({
        clientId,
        clean: false,
        protocolVersion: version,
        ...(version === 5 ? { properties: { sessionExpiryInterval: 600 } } : {}),
      });
      assert.equal(connack.reasonCode, 0);
      assert.equal(connack.sessionPresent, true, `session of ${clientId}`);
      const p = await again.expect(PacketType.PUBLISH);
      assert.equal(text(p), body);
      await again.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    }
  },
);

Deno.test(
  "cluster: a login refused as server busy after its claim went through gives the session's ownership back, and the next try gets the session [MQTT-3.1.2-4] [MQTT-3.2.2-6]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const yaml = ["connect_timeout: 60"];
    // B waits for a previous owner's handoff at most 2.2 s (its node timeout and a heartbeat).
    await using a = await Node.start(redis, { nodeId: "a", prefix: "sl3:", yaml });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "sl3:", nodeTimeout: 2, yaml });
    await leaveWithQueued(a, "claimed", 5, "kept");
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    let stopped = false;
    try {
      // A holds the session offline and does not answer the takeover (stopped).
      a.process.kill("SIGSTOP");
      stopped = true;
      await using v5 = await TestClient.open(b.port, { protocolVersion: 5 });
      await v5.send({
        type: PacketType.CONNECT,
        protocolName: "MQTT",
        protocolVersion: 5,
        clean: false,
        keepAlive: 60,
        clientId: "claimed",
        properties: { sessionExpiryInterval: 600 },
      });
      // B loaded the session and claimed it; then Redis answers nobody, so B's load after the
      // wait for A's handoff gets no answer in time.
      for (let i = 0; i < 1000 && await admin.hget("sl3:owner", "claimed") !== "b"; i++) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      assert.equal(await admin.hget("sl3:owner", "claimed"), "b");
      await pause(redis, 12_000);
      const connack = await v5.expect(PacketType.CONNACK, 60_000);
      assert.equal(connack.reasonCode, ReasonCode.SERVER_BUSY);
      assert.equal(connack.sessionPresent, false);
      await v5.expectClosed();
      // Once Redis answers, the ownership is given back (B does not hold the session).
      for (let i = 0; i < 3000 && await admin.hexists("sl3:owner", "claimed"); i++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.equal(await admin.hget("sl3:owner", "claimed"), null);
      await until(
        () =>
          /gave the session of claimed back \(its login was refused as server busy\)/.test(b.log()),
        "B giving the session back",
      );
      a.process.kill("SIGCONT");
      stopped = false;
      // The next try gets the session with what was queued.
      await using again = await TestClient.open(b.port, { protocolVersion: 5 });
      const back = await again.handshake({
        clientId: "claimed",
        clean: false,
        protocolVersion: 5,
        properties: { sessionExpiryInterval: 600 },
      });
      assert.equal(back.reasonCode, 0);
      assert.equal(back.sessionPresent, true);
      const p = await again.expect(PacketType.PUBLISH);
      assert.equal(text(p), "kept");
      await again.send({ type: PacketType.PUBACK, packetId: p.packetId! });
      assert.equal(await admin.hget("sl3:owner", "claimed"), "b");
    } finally {
      if (stopped) a.process.kill("SIGCONT");
      admin.disconnect();
    }
  },
);

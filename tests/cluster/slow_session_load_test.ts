// A login whose stored session Redis is slow to give (connected, but answering nothing for a
// while: `CLIENT PAUSE`) waits for it rather than going on with an empty session, and past the
// node's bound is refused as server busy, the session kept for the client's next try. Real
// processes, redis-server, byte-level clients at 3.1.1 and 5.0.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { TestClient } from "../_helpers/test_client.ts";
import { PacketType, ReasonCode } from "../../src/packet/constants.ts";
import { Node, until } from "./_nodes.ts";
import { busyButClean, leaveWithQueued, resumeQueued } from "./_resume.ts";

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
    await resumeQueued(b.port, "slow", 4, "queued");
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
    // A clean start asks for no stored state: it goes on (as while Redis pauses writes in a
    // failover).
    await using _fresh = await busyButClean(b.port, "slow4", "slow5");
    assert.match(b.log(), /stored session of slow4 .*refused as server busy/);

    // Redis answers again: the next tries get the sessions with what was queued.
    for (
      const [clientId, version, body] of [["slow4", 4, "kept4"], ["slow5", 5, "kept5"]] as const
    ) {
      await resumeQueued(b.port, clientId, version, body);
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
      await resumeQueued(b.port, "claimed", 5, "kept");
      assert.equal(await admin.hget("sl3:owner", "claimed"), "b");
    } finally {
      if (stopped) a.process.kill("SIGCONT");
      admin.disconnect();
    }
  },
);

// A persistent session that ends on node A while A cannot reach Redis (3.1.1: its client starts a
// clean session there; 5.0: its client resumes it there and disconnects with Session Expiry
// Interval 0) is not resumed on node B, which the client reaches before A can write the end:
// B claims the session from A (A, cut off, misses the notice), and A's deletion, written once
// Redis is back, must remove what Redis still holds of it although B owns it now (B only loaded
// it, it wrote nothing of it). Before, A's deletion skipped a session another node owned, and the
// client got the ended session back, with its subscription and the message queued for it. A,
// back, learns of B's claim (its notice was lost) and hands the session over once it wrote the
// end, so B does not wait out its bound.
// Real processes, redis-server, a TCP proxy between A and Redis that the test cuts, byte-level
// clients.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { connectPacket, TestClient } from "../_helpers/test_client.ts";
import { FAILURE_LINE, GUARD_MS } from "../_helpers/store_full.ts";
import { PacketType, ReasonCode } from "../../src/packet/constants.ts";
import { Node, until } from "./_nodes.ts";
import { StallProxy } from "./_stall_proxy.ts";
import { bringBack, cutOff } from "./_away.ts";
import { leaveStale, resumeConnect } from "./_resume.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/**
 * The scenario at `version`: the session of `ended`, with a message queued on A, ends on A while A
 * is cut off; the client then resumes on B, and must get a new session.
 */
async function endedAway(version: 4 | 5, prefix: string): Promise<void> {
  const persistent = resumeConnect("ended", version);
  await using redis = await RedisServer.start();
  await using proxy = new StallProxy(redis.port);
  // Nobody is taken for dead while A is cut off (B's wait for A's handoff is bounded by it).
  await using a = await Node.start(proxy, { nodeId: "a", prefix, nodeTimeout: 30 });
  // B's login is not refused for its wait for A (30 s at most, A's handoff).
  await using b = await Node.start(redis, {
    nodeId: "b",
    prefix,
    nodeTimeout: 30,
    yaml: ["connect_timeout: 120"],
  });
  const admin = new Redis(redis.url, { lazyConnect: true });
  await admin.connect();
  try {
    // A persistent session on A with a message queued for it.
    await leaveStale(a, "ended", version);
    assert.equal(await admin.hexists(`${prefix}store:sub:ended`, "ended/#"), 1);

    await cutOff(proxy, a);
    if (version === 4) {
      // The client starts a clean session on A (served while Redis is away): the stored one
      // ends [MQTT-3.1.2-6], and A cannot write that.
      await using clean = await TestClient.connect(a.port, { clientId: "ended", clean: true });
      await clean.disconnect();
    } else {
      // The client resumes on A (which holds the session), takes the queued message, and ends
      // the session with its DISCONNECT [MQTT-3.1.2-23].
      await using resumed = await TestClient.connect(a.port, persistent);
      const p = await resumed.expect(PacketType.PUBLISH);
      await resumed.send({ type: PacketType.PUBACK, packetId: p.packetId! });
      await resumed.send({ type: PacketType.DISCONNECT, properties: { sessionExpiryInterval: 0 } });
      await resumed.expectClosed();
    }
    await until(() => a.log().includes(FAILURE_LINE), "A's failed store write", GUARD_MS);

    // The client resumes on B: B loads what Redis holds, claims it from A and waits for A's
    // handoff (A missed the notice).
    const first = await TestClient.open(b.port, { protocolVersion: version });
    await first.send(connectPacket(persistent));
    for (let i = 0; i < 1500 && await admin.hget(`${prefix}owner`, "ended") !== "b"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(await admin.hget(`${prefix}owner`, "ended"), "b", "B's claim");

    // Redis is back for A, which writes what it could not.
    await bringBack(proxy, a);

    // Refused as server busy until B has an answer for the session, then a new one.
    let client = first;
    let connack = await first.expect(PacketType.CONNACK, GUARD_MS);
    for (let attempt = 1; connack.reasonCode !== 0; attempt++) {
      assert.equal(connack.reasonCode, version === 5 ? ReasonCode.SERVER_BUSY : 3);
      assert.equal(connack.sessionPresent, false);
      assert.ok(attempt < 30, "ended accepted again");
      await client.expectClosed();
      await client.close();
      await new Promise((resolve) => setTimeout(resolve, 200));
      client = await TestClient.open(b.port, { protocolVersion: version });
      await client.send(connectPacket(persistent));
      connack = await client.expect(PacketType.CONNACK, GUARD_MS);
    }
    await using last = client;
    assert.equal(connack.sessionPresent, false, "the ended session is not resumed");
    // Nothing queued for the ended session arrives, and the connection stays open.
    assert.equal(await last.poll(1000), undefined);
    assert.equal(last.socketEnded, false);
    assert.equal(await admin.hexists(`${prefix}store:sub:ended`, "ended/#"), 0);
    // A told B, once back, rather than B waiting out its bound.
    assert.match(
      a.log(),
      /ended was claimed by node b while Redis was away, after this node let go of it .*: handed over/,
    );
    await last.disconnect();
  } finally {
    admin.disconnect();
  }
}

Deno.test(
  "cluster: a 3.1.1 session ended on a node cut off from Redis (a clean session there) is not resumed on another node the client reaches first: Session Present 0, nothing of it delivered [MQTT-3.1.2-6] [MQTT-3.2.2-2]",
  opts,
  () => endedAway(4, "de1:"),
);

Deno.test(
  "cluster: a 5.0 session ended on a node cut off from Redis (DISCONNECT with Session Expiry Interval 0) is not resumed on another node the client reaches first: Session Present 0 [MQTT-3.1.2-23] [MQTT-3.2.2-2]",
  opts,
  () => endedAway(5, "de2:"),
);

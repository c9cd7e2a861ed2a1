// A clean start served on node A while A cannot reach Redis discards the client's stored session
// [MQTT-3.1.2-6] even when another node, B, holds it: once A is back, its claim made again takes
// the session from B, and A then deletes what Redis holds of it (its own session is not stored).
// Before, B handed the session over and it stayed in Redis: the client's next login, on B,
// resumed it (Session Present 1, the queued message delivered). (A client gone from A before A is
// back is not covered: see ARCHITECTURE.md.)
// Real processes, redis-server, a TCP proxy between A and Redis that the test cuts, byte-level
// clients.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { connectPacket, TestClient } from "../_helpers/test_client.ts";
import { GUARD_MS } from "../_helpers/store_full.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { Node, until } from "./_nodes.ts";
import { StallProxy } from "./_stall_proxy.ts";
import { bringBack, cutOff } from "./_away.ts";
import { leaveStale, resumeConnect } from "./_resume.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/**
 * The scenario at `version`: the persistent session of `held`, with a message queued for it, is on
 * B; the client starts clean on A while A is cut off (a session that is not stored: 3.1.1 clean,
 * 5.0 Session Expiry Interval 0) and stays connected while A gets Redis back; then it resumes on B.
 */
async function cleanAway(version: 4 | 5, prefix: string): Promise<void> {
  const persistent = resumeConnect("held", version);
  await using redis = await RedisServer.start();
  await using proxy = new StallProxy(redis.port);
  await using a = await Node.start(proxy, { nodeId: "a", prefix });
  await using b = await Node.start(redis, { nodeId: "b", prefix });
  const admin = new Redis(redis.url, { lazyConnect: true });
  await admin.connect();
  try {
    // A persistent session on B, with a message queued for it.
    await leaveStale(b, "held", version);
    assert.equal(await admin.hget(`${prefix}owner`, "held"), "b");

    await cutOff(proxy, a);
    // The client starts a clean session on A (served while Redis is away): its stored session
    // is discarded [MQTT-3.1.2-6], wherever it is. It stays connected while A gets Redis back,
    // and A's claim, made again then, takes the session from B.
    {
      await using clean = await TestClient.connect(a.port, {
        clientId: "held",
        clean: true,
        protocolVersion: version,
      });
      await bringBack(proxy, a);
      await until(
        () => /held continues on node a: handed over/.test(b.log()),
        "B handing the session over",
      );
      // Then A deletes what Redis holds of the session it discarded.
      for (let i = 0; i < 1500 && await admin.hexists(`${prefix}store:sessions`, "held"); i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(await admin.hexists(`${prefix}store:sessions`, "held"), 0, "deleted");
      assert.equal(await admin.exists(`${prefix}store:sub:held`), 0);
      // A logs it once the deletion is answered, which may be after the poll above saw it.
      await until(
        () =>
          /session of held, which started clean .* discarded cluster-wide \(node b handed it over\)/
            .test(a.log()),
        "A saying it discarded the session",
      );
      await clean.disconnect();
    }
    for (let i = 0; i < 1500 && await admin.hexists(`${prefix}owner`, "held") === 1; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(await admin.hexists(`${prefix}owner`, "held"), 0, "A's release");

    const client = await TestClient.open(b.port, { protocolVersion: version });
    await using last = client;
    await client.send(connectPacket(persistent));
    const connack = await client.expect(PacketType.CONNACK, GUARD_MS);
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.sessionPresent, false, "the discarded session is not resumed");
    assert.equal(await last.poll(1000), undefined, "nothing of the discarded session arrives");
    assert.equal(last.socketEnded, false);
    await last.disconnect();
  } finally {
    admin.disconnect();
  }
}

Deno.test(
  "cluster: a 3.1.1 clean session served on a node cut off from Redis discards the session another node holds: Session Present 0 there after the node got Redis back [MQTT-3.1.2-6] [MQTT-3.2.2-2]",
  opts,
  () => cleanAway(4, "ca1:"),
);

Deno.test(
  "cluster: a 5.0 clean start served on a node cut off from Redis discards the session another node holds: Session Present 0 there after the node got Redis back [MQTT-3.1.2-4] [MQTT-3.2.2-2]",
  opts,
  () => cleanAway(5, "ca2:"),
);

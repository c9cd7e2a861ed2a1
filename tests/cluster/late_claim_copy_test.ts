// A login's claim with its read answered after the login gave up on it (Redis slow: refused as
// server busy), the session's queue longer than one read's part of entries (`READ_PART_ENTRIES`).
// The claim makes this node the session's writer, so its read leaves the entries where they are,
// to be read in place a part at a time (before, it copied them to `P read:N`, and a late answer
// had to delete the copy, else kept 10 min, about 8 MB for 100,000 entries): the late answer
// leaves nothing behind and deletes nothing of the session (`RedisStore.discardRead`), and the
// client's next login gets the session whole. Real processes and redis-server (a TCP proxy
// holding back the node's command connection's answers).
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { TestClient } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { RedisStore } from "../../src/cluster/redis_store.ts";
import { READ_PART_ENTRIES } from "../../src/cluster/_redis_store_scripts.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import { Node, UNBOUNDED_QUEUE, until } from "./_nodes.ts";
import { StallProxy } from "./_stall_proxy.ts";
import { resumeConnect } from "./_resume.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/** 3.1.1's CONNACK return code 3, server unavailable (5.0's 0x89 Server busy). */
const UNAVAILABLE = 3;

Deno.test(
  "cluster: a claim answered after its login was refused as busy leaves no copy of the session's long queue behind, and its queue whole",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    const prefix = "lc:";
    await using b = await Node.start(proxy, { prefix, nodeId: "b", yaml: [UNBOUNDED_QUEUE] });
    const count = READ_PART_ENTRIES + 100;
    {
      // A session owned by no node (written after B's start: B did not adopt it), queue longer
      // than one read's part of entries.
      await using store = await RedisStore.open({ url: redis.url, prefix: `${prefix}store:` });
      store.apply([{
        type: "putSession",
        session: {
          clientId: "long",
          protocolVersion: 4,
          clean: false,
          expiryInterval: undefined,
          offlineSince: 1,
        },
      }]);
      for (let i = 0; i < count; i += 1000) {
        const batch: StoreMutation[] = [];
        for (let j = i; j < Math.min(count, i + 1000); j++) {
          batch.push(
            {
              type: "putMessage",
              id: j + 1,
              message: {
                topic: `long/${j}`,
                payload: new Uint8Array([j % 251]),
                qos: 1,
                retain: false,
              },
            },
            { type: "queueOutbound", clientId: "long", seq: j + 1, messageId: j + 1, qos: 1 },
          );
        }
        store.apply(batch);
        await store.commit();
      }
    }
    const admin = new Redis({ port: redis.port, host: "127.0.0.1", lazyConnect: true });
    await admin.connect();
    // Released at the end whatever happens (a failed assertion before its release left the
    // proxy's end waiting on it: this test hung 26 min once).
    let release = () => {};
    try {
      // The answers on B's command connection (the one that set the cluster's epoch, SET … NX)
      // held back: B's claim with its read runs in Redis (the copy made) and its answer waits.
      release = proxy.delayReplies("\r\n$2\r\nNX\r\n");
      await using first = await TestClient.open(b.port, { protocolVersion: 4 });
      const refused = await first.handshake(resumeConnect("long", 4));
      assert.equal(refused.reasonCode, UNAVAILABLE, "refused as server busy");
      await first.expectClosed();
      assert.match(b.log(), /cannot load the stored session of long \(claim: no answer from Redis/);
      // Read in place by its writer: nothing copied.
      assert.deepEqual(await admin.keys(`${prefix}store:read:*`), []);
      assert.equal(await admin.hget(`${prefix}store:writer`, "long"), "b");
      // The answer comes late: nobody reads it, and the session's entries stay.
      release();
      await until(() => /gave the session of long back/.test(b.log()), "the claim given back");
      assert.deepEqual(await admin.keys(`${prefix}store:read:*`), []);
      assert.equal(await admin.hlen(`${prefix}store:out:long`), count);
      // The next login reads the session whole (in place again).
      await using second = await TestClient.open(b.port, { protocolVersion: 4 });
      const accepted = await second.handshake(resumeConnect("long", 4));
      assert.equal(accepted.reasonCode, 0);
      assert.equal(accepted.sessionPresent, true);
      for (let i = 0; i < 3; i++) {
        assert.equal((await second.expect(PacketType.PUBLISH)).topic, `long/${i}`);
      }
      assert.equal(await admin.get(`${prefix}store:reads`), null, "no copy ever made");
      assert.deepEqual(await admin.keys(`${prefix}store:read:*`), []);
      assert.ok(!second.socketEnded);
    } finally {
      release();
      admin.disconnect();
    }
  },
);

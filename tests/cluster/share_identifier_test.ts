// A clean 5.0 member of a shared group that subscribed with a Subscription Identifier gets each
// message as a copy carrying it [MQTT-3.3.4-3]: a message published at QoS 2 and read from the
// node's stream is still taken in Redis (`TAKE_SCRIPT`, `P passed:ID`) before its first PUBLISH,
// so that the rescue of the node's stream after its death passes it on only if never sent
// [MQTT-4.8.2-5]. Real processes on a redis-server; the publishing node is the test, writing a
// frame into B's stream as a node does.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { waitFor } from "../_helpers/broker.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { TestClient, text } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { Node } from "./_nodes.ts";
import { chosen, SHARE } from "./_share.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: a shared QoS 2 message for a member whose subscription has an identifier is taken in Redis before its PUBLISH, which carries the identifier [MQTT-4.8.2-5] [MQTT-3.3.4-3]",
  opts,
  async () => {
    const prefix = "sid1:";
    await using redis = await RedisServer.start();
    await using b = await Node.start(redis, { nodeId: "b", prefix });
    const r = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
    await r.connect();
    try {
      await using member = await TestClient.connect(b.port, {
        clientId: "member",
        protocolVersion: 5,
      });
      await member.send({
        type: PacketType.SUBSCRIBE,
        packetId: 1,
        subscriptions: [{ topic: SHARE, qos: 2 }],
        properties: { subscriptionIdentifier: [7] },
      });
      assert.deepEqual((await member.expect(PacketType.SUBACK)).reasonCodes, [2]);
      await waitFor(
        async () => (await r.smembers(`${prefix}interest:b`)).includes(SHARE),
        30_000,
        "B's interest",
      );
      const id = await r.xadd(`${prefix}s:b`, "*", "f", Buffer.from(chosen("marked", 1, 2)));
      const publish = await member.expect(PacketType.PUBLISH, 30_000);
      assert.deepEqual([text(publish), publish.qos], ["marked", 2]);
      assert.deepEqual(publish.properties?.subscriptionIdentifier, [7]);
      // Taken before it was written: a take's score is its entry's ms and a half.
      const ms = id!.split("-")[0];
      assert.equal(await r.zscore(`${prefix}passed:b`, `${id} 0 ${SHARE}`), `${ms}.5`);
    } finally {
      r.disconnect();
    }
  },
);

// A shared QoS 2 copy whose take is refused (`TAKE_SCRIPT`: its key in `P passed:ID` is a pass,
// the message went to another member) is dropped from the member's window, never written. What
// the node held for it lets go as well: the stream entry it came in is acknowledged in the group
// `r` once every copy's take is answered, taken or refused. A refused key is a pass made already;
// an entry left pending would never be acknowledged, and hold the trim of the node's stream.
// Real processes on a redis-server; the publishing node is the test, writing a frame into B's
// stream as a node does.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { waitFor } from "../_helpers/broker.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { type TestClient, text } from "../_helpers/test_client.ts";
import { TestClient as Client } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { Node } from "./_nodes.ts";
import { chosen } from "./_share.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

const G1 = "$share/g1/s/#";
const G2 = "$share/g2/s/#";

/** Receives a QoS 2 PUBLISH and completes its flow [MQTT-4.3.3-1]; returns its payload. */
async function receive(member: TestClient): Promise<string> {
  const publish = await member.expect(PacketType.PUBLISH, 30_000);
  assert.equal(publish.qos, 2);
  await member.send({ type: PacketType.PUBREC, packetId: publish.packetId! });
  await member.expect(PacketType.PUBREL);
  await member.send({ type: PacketType.PUBCOMP, packetId: publish.packetId! });
  return text(publish);
}

/** The entries of B's stream pending in its group `r` (read, not acknowledged). */
async function pending(r: Redis, prefix: string): Promise<number> {
  const [count] = await r.xpending(`${prefix}s:b`, "r") as [number];
  return count;
}

for (
  const [groups, passedOn, name] of [
    [[G1, G2], [G1], "one of its two groups' copies refused, the other written"],
    [[G1], [G1], "its only copy refused"],
  ] as const
) {
  Deno.test(
    `cluster: a shared QoS 2 message with ${name} has its stream entry acknowledged, not held pending for ever [MQTT-4.8.2-5]`,
    opts,
    async () => {
      const prefix = `srf${groups.length}:`;
      await using redis = await RedisServer.start();
      await using _b = await Node.start(redis, { nodeId: "b", prefix });
      const r = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
      await r.connect();
      using _r = { [Symbol.dispose]: () => r.disconnect() };
      await using member = await Client.connect(_b.port, {
        clientId: "member",
        protocolVersion: 5,
      });
      const filters = Object.fromEntries(groups.map((g) => [g, 2 as const]));
      assert.deepEqual(
        (await member.subscribe(filters)).reasonCodes,
        groups.map(() => 2),
      );
      await waitFor(
        async () => (await r.smembers(`${prefix}interest:b`)).sort().join() === groups.join(),
        30_000,
        "B's interest in the groups",
      );
      const id = `${Date.now()}-7`;
      const ms = id.split("-")[0]!;
      // The refused groups' copies passed on already (as a rescue of B's stream notes them).
      for (const g of passedOn) await r.zadd(`${prefix}passed:b`, ms, `${id} 0 ${g}`);
      await r.xadd(`${prefix}s:b`, id, "f", Buffer.from(chosen("m", 1, 2, [...groups])));
      if (groups.length > passedOn.length) assert.equal(await receive(member), "m");
      // Every take answered (the taken ones as a take's score, the refused left as passes).
      for (const g of groups) {
        await waitFor(
          async () => (await r.zscore(`${prefix}passed:b`, `${id} 0 ${g}`)) !== null,
          30_000,
          `the key of ${g}`,
        );
      }
      // The entry leaves B's pending list: nothing of it is held any more.
      await waitFor(async () => (await pending(r, prefix)) === 0, 30_000, "the entry acknowledged");
      // The refused copy was never written: nothing more arrives, the connection still open.
      await member.send({ type: PacketType.PINGREQ });
      await member.expect(PacketType.PINGRESP);
    },
  );
}

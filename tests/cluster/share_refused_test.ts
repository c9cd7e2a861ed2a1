// A shared QoS 2 copy whose take is refused (`TAKE_SCRIPT`: its key in `P passed:ID` is a pass,
// the message went to another member) is dropped from the member's window, never written. What
// the node held for it lets go as well: the stream entry it came in is acknowledged in the group
// `r` once every copy's take is answered, taken or refused. A refused key is a pass made already;
// an entry left pending would never be acknowledged, and hold the trim of the node's stream.
// Only a group's copy is dropped: the member's own subscription to the topic (a copy of the same
// message, at another QoS) is written whatever the group's take, and the copies that go out keep
// their order.
// Real processes on a redis-server; the publishing node is the test, writing a frame into B's
// stream as a node does.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { waitFor } from "../_helpers/broker.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { type TestClient, text } from "../_helpers/test_client.ts";
import { TestClient as Client } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { FrameBatch } from "../../src/cluster/bus_frame.ts";
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

/**
 * Receives `n` QoS 1/2 PUBLISHes, several in flight at a time, completing each flow as its packets
 * come [MQTT-4.3.2-1] [MQTT-4.3.3-1]; returns their payloads in the order they came, each with
 * `@` and its QoS.
 */
async function receiveAll(member: TestClient, n: number): Promise<string[]> {
  const got: string[] = [];
  let open = 0;
  while (got.length < n || open > 0) {
    const p = await member.receive(30_000);
    if (p.type === PacketType.PUBLISH && p.qos === 1) {
      got.push(`${text(p)}@1`);
      await member.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    } else if (p.type === PacketType.PUBLISH) {
      assert.equal(p.qos, 2);
      got.push(`${text(p)}@2`);
      open++;
      await member.send({ type: PacketType.PUBREC, packetId: p.packetId! });
    } else {
      assert.equal(p.type, PacketType.PUBREL);
      open--;
      await member.send({ type: PacketType.PUBCOMP, packetId: p.packetId });
    }
  }
  return got;
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

for (const receiveMaximum of [1, 8]) {
  Deno.test(
    `cluster: shared QoS 2 copies whose takes are refused are left out, while the member's own subscription to the topic keeps its copy of each, all in order, Receive Maximum ${receiveMaximum} [MQTT-4.6.0-6] [MQTT-4.8.2-5]`,
    opts,
    async () => {
      const prefix = `sro${receiveMaximum}:`;
      await using redis = await RedisServer.start();
      await using b = await Node.start(redis, { nodeId: "b", prefix });
      const r = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
      await r.connect();
      using _r = { [Symbol.dispose]: () => r.disconnect() };
      await using member = await Client.connect(b.port, {
        clientId: "member",
        protocolVersion: 5,
        properties: { receiveMaximum },
      });
      // A member of the group at QoS 2, and a subscriber of the topic at QoS 1 besides: one copy
      // per subscription, told apart by their QoS.
      assert.deepEqual((await member.subscribe({ [G1]: 2, "s/#": 1 })).reasonCodes, [2, 1]);
      await waitFor(
        async () => (await r.smembers(`${prefix}interest:b`)).sort().join() === `${G1},s/#`,
        30_000,
        "B's interest",
      );
      const id = `${Date.now()}-7`;
      const ms = id.split("-")[0]!;
      // Messages 1 and 3 of the entry were passed on for the group already: B's takes of them
      // are refused, their shared copies never written.
      for (const i of [0, 2]) await r.zadd(`${prefix}passed:b`, ms, `${id} ${i} ${G1}`);
      const batch = new FrameBatch();
      for (let i = 1; i <= 5; i++) batch.add(chosen(String(i), i, 2, [G1]));
      await r.xadd(`${prefix}s:b`, id, "f", Buffer.from(batch.finish()));
      // Every message through `s/#`, and messages 2, 4 and 5 through the group: in order.
      const got = await receiveAll(member, 8);
      assert.deepEqual(got.filter((m) => m.endsWith("@1")), ["1@1", "2@1", "3@1", "4@1", "5@1"]);
      assert.deepEqual(got.filter((m) => m.endsWith("@2")), ["2@2", "4@2", "5@2"]);
      // Per topic in the order published, whatever the subscription [MQTT-4.6.0-6].
      const order = got.map((m) => Number(m[0]));
      assert.deepEqual(order, [...order].sort());
      // Nothing more (no copy of 1 or 3 through the group), the connection still open.
      await member.send({ type: PacketType.PINGREQ });
      await member.expect(PacketType.PINGRESP);
      await waitFor(async () => (await pending(r, prefix)) === 0, 30_000, "the entry acknowledged");
    },
  );
}

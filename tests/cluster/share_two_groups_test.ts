// One clean session, a member of two shared groups on the same filter, gets a QoS 2 message once
// through each group: two copies (MQTT 5.0 on shared subscriptions, each group delivers it once).
// A node takes each group's key in Redis (`TAKE_SCRIPT`, `P passed:ID`) before it writes that
// group's copy, so that the rescue of its stream after its death passes on only the copies never
// taken [MQTT-4.8.2-5]. Each group's take is its own: one refused (that group's copy passed on
// already) keeps back that copy only. Real processes on a redis-server; the publishing node is the
// test, writing a frame into B's stream as a node does.
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

/**
 * Redis, node B, a plain Redis client, and B's clean 5.0 member of both groups at QoS 2 (with
 * `receiveMaximum`, that Receive Maximum).
 */
interface Cluster extends AsyncDisposable {
  r: Redis;
  member: TestClient;
}

async function start(prefix: string, receiveMaximum?: number): Promise<Cluster> {
  await using stack = new AsyncDisposableStack();
  const redis = stack.use(await RedisServer.start());
  const b = stack.use(await Node.start(redis, { nodeId: "b", prefix }));
  const r = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
  await r.connect();
  stack.defer(() => r.disconnect());
  const member = stack.use(
    await Client.connect(b.port, {
      clientId: "member",
      protocolVersion: 5,
      ...(receiveMaximum === undefined ? {} : { properties: { receiveMaximum } }),
    }),
  );
  assert.deepEqual((await member.subscribe({ [G1]: 2, [G2]: 2 })).reasonCodes, [2, 2]);
  await waitFor(
    async () => (await r.smembers(`${prefix}interest:b`)).sort().join() === `${G1},${G2}`,
    30_000,
    "B's interest in both groups",
  );
  const rest = stack.move();
  return { r, member, [Symbol.asyncDispose]: () => rest.disposeAsync() };
}

/** A stream entry id of now, for an entry whose keys the test writes before it. */
function entryId(): string {
  return `${Date.now()}-7`;
}

/** Receives a QoS 2 PUBLISH and completes its flow [MQTT-4.3.3-1]; returns its payload. */
async function receive(member: TestClient): Promise<string> {
  const publish = await member.expect(PacketType.PUBLISH, 30_000);
  assert.equal(publish.qos, 2);
  await member.send({ type: PacketType.PUBREC, packetId: publish.packetId! });
  await member.expect(PacketType.PUBREL);
  await member.send({ type: PacketType.PUBCOMP, packetId: publish.packetId! });
  return text(publish);
}

Deno.test(
  "cluster: a session in two shared groups gets a QoS 2 message once per group, each group's copy taken in Redis before it is written [MQTT-4.8.2-5]",
  opts,
  async () => {
    const prefix = "stg1:";
    await using cluster = await start(prefix);
    const { r, member } = cluster;
    const id = entryId();
    await r.xadd(`${prefix}s:b`, id, "f", Buffer.from(chosen("both", 1, 2, [G1, G2])));
    // Both copies written at once (each with a packet id of its own), then acknowledged.
    const copies = [
      await member.expect(PacketType.PUBLISH, 30_000),
      await member.expect(PacketType.PUBLISH, 30_000),
    ];
    assert.deepEqual(copies.map((p) => [text(p), p.qos]), [["both", 2], ["both", 2]]);
    assert.notEqual(copies[0]!.packetId, copies[1]!.packetId);
    for (const p of copies) {
      await member.send({ type: PacketType.PUBREC, packetId: p.packetId! });
      await member.expect(PacketType.PUBREL);
      await member.send({ type: PacketType.PUBCOMP, packetId: p.packetId! });
    }
    // Both groups' keys taken (a take's score is its entry's ms and a half): a rescue of B's
    // stream passes on neither copy.
    const ms = id.split("-")[0];
    const keys = await r.zrange(`${prefix}passed:b`, 0, -1, "WITHSCORES");
    const scores = new Map<string, string>();
    for (let i = 0; i + 1 < keys.length; i += 2) scores.set(keys[i]!, keys[i + 1]!);
    assert.equal(scores.get(`${id} 0 ${G1}`), `${ms}.5`);
    assert.equal(scores.get(`${id} 0 ${G2}`), `${ms}.5`);
  },
);

Deno.test(
  "cluster: a session in two shared groups whose take for one group is refused (its copy passed on already) still gets the other group's copy of the QoS 2 message, once [MQTT-4.8.2-5]",
  opts,
  async () => {
    const prefix = "stg2:";
    await using cluster = await start(prefix);
    const { r, member } = cluster;
    const id = entryId();
    const ms = id.split("-")[0]!;
    // G1's copy passed on (as the rescue of B's stream by another node notes it: a whole ms), so
    // B's take of it is refused.
    await r.zadd(`${prefix}passed:b`, ms, `${id} 0 ${G1}`);
    await r.xadd(`${prefix}s:b`, id, "f", Buffer.from(chosen("both", 1, 2, [G1, G2])));
    assert.equal(await receive(member), "both");
    // G2's key taken by B, G1's left as the pass wrote it.
    assert.equal(await r.zscore(`${prefix}passed:b`, `${id} 0 ${G2}`), `${ms}.5`);
    assert.equal(await r.zscore(`${prefix}passed:b`, `${id} 0 ${G1}`), ms);
    // G1's copy is not written: nothing more arrives, the connection still open.
    await member.send({ type: PacketType.PINGREQ });
    await member.expect(PacketType.PINGRESP);
  },
);

Deno.test(
  "cluster: a shared QoS 2 message whose take is refused (passed on already) is dropped, never sent, and the session's later messages do not wait for it [MQTT-4.8.2-5]",
  opts,
  async () => {
    const prefix = "stg3:";
    // One message in flight at a time: the second waits in the queue behind the first.
    await using cluster = await start(prefix, 1);
    const { r, member } = cluster;
    const id = entryId();
    const ms = id.split("-")[0]!;
    // The entry's first message, for G1, was passed on already: B's take of it is refused. Its
    // second, for G1 too, is B's to send.
    await r.zadd(`${prefix}passed:b`, ms, `${id} 0 ${G1}`);
    const batch = new FrameBatch();
    batch.add(chosen("passed on", 1, 2, [G1]));
    batch.add(chosen("after it", 2, 2, [G1]));
    await r.xadd(`${prefix}s:b`, id, "f", Buffer.from(batch.finish()));
    assert.equal(await receive(member), "after it");
    assert.equal(await r.zscore(`${prefix}passed:b`, `${id} 1 ${G1}`), `${ms}.5`);
    // The first is never sent: nothing more arrives, the connection still open.
    await member.send({ type: PacketType.PINGREQ });
    await member.expect(PacketType.PINGRESP);
  },
);

// A clean member ending with shared QoS 2 copies never sent hands each group's copy to another
// member here (`shared_redelivery.ts`), and with it that group's take record only
// (`SharedWatch.handed`, `ClusterLink.#handedUntaken`). Before, the whole record went to the
// member taking over one group: the other group's take came along, and a copy of that member's
// own subscription was held for it, taken under it, or dropped when it was refused: a take of a
// group whose copy no member here writes [MQTT-4.8.2-5]. Real processes on a redis-server; the
// publishing node is the test, writing frames into B's stream as a node does.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { waitFor } from "../_helpers/broker.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { TestClient, text } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { FrameBatch } from "../../src/cluster/bus_frame.ts";
import { Node } from "./_nodes.ts";
import { chosen } from "./_share.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

const G1 = "$share/g1/s/#";
const G2 = "$share/g2/s/#";

/** Completes the flow of a QoS 2 PUBLISH [MQTT-4.3.3-1]. */
async function complete(client: TestClient, packetId: number): Promise<void> {
  await client.send({ type: PacketType.PUBREC, packetId });
  await client.expect(PacketType.PUBREL, 30_000);
  await client.send({ type: PacketType.PUBCOMP, packetId });
}

/**
 * On node B: member S of G1 and G2, and X with a subscription of its own to `s/x`, one message in
 * flight each. `first` (G1) goes out to both; `both` (G1 and G2) waits in both windows: S's two
 * copies, X's own. X joins G1, and S's session ends: its G1 copy goes to X, its G2 copy (no
 * other member) with the session. With `passedG2`, G2's copy was passed on already (its key a
 * pass in `P passed:b`). X then finishes `first`; returns the `both` copies it gets (completed)
 * and what Redis holds for G1's and G2's keys of `both`.
 */
async function handOver(prefix: string, passedG2: boolean) {
  await using redis = await RedisServer.start();
  await using b = await Node.start(redis, { nodeId: "b", prefix });
  const r = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
  await r.connect();
  using _r = { [Symbol.dispose]: () => r.disconnect() };
  const one = { protocolVersion: 5 as const, properties: { receiveMaximum: 1 } };
  await using x = await TestClient.connect(b.port, { clientId: "x", ...one });
  assert.deepEqual((await x.subscribe({ "s/x": 2 })).reasonCodes, [2]);
  const s = await TestClient.connect(b.port, { clientId: "s", ...one });
  let first;
  let id;
  try {
    assert.deepEqual((await s.subscribe({ [G1]: 2, [G2]: 2 })).reasonCodes, [2, 2]);
    await waitFor(
      async () => {
        const interest = await r.smembers(`${prefix}interest:b`);
        return interest.includes(G1) && interest.includes(G2);
      },
      30_000,
      "B's interest in both groups",
    );
    id = `${Date.now()}-7`;
    if (passedG2) await r.zadd(`${prefix}passed:b`, id.split("-")[0]!, `${id} 1 ${G2}`);
    const batch = new FrameBatch();
    batch.add(chosen("first", 1, 2, [G1]));
    batch.add(chosen("both", 2, 2, [G1, G2]));
    await r.xadd(`${prefix}s:b`, id, "f", Buffer.from(batch.finish()));
    assert.equal(text(await s.expect(PacketType.PUBLISH, 30_000)), "first");
    first = await x.expect(PacketType.PUBLISH, 30_000);
    assert.equal(text(first), "first");
    await x.send({
      type: PacketType.SUBSCRIBE,
      packetId: 2,
      subscriptions: [{ topic: G1, qos: 2 }],
    });
    assert.deepEqual((await x.expect(PacketType.SUBACK, 30_000)).reasonCodes, [2]);
    await s.disconnect();
  } finally {
    await s.close();
  }
  // A login of S's client id is answered once S's end (and its hand-over to X) is done.
  await (await TestClient.connect(b.port, { clientId: "s", protocolVersion: 5 })).close();
  await complete(x, first.packetId!);
  const got: string[] = [];
  for (let i = 0; i < 2; i++) {
    const p = await x.expect(PacketType.PUBLISH, 30_000);
    got.push(`${text(p)}@${p.qos}`);
    await complete(x, p.packetId!);
  }
  // Nothing more, the connection still open.
  await x.send({ type: PacketType.PINGREQ });
  await x.expect(PacketType.PINGRESP, 30_000);
  return {
    got,
    g1: await r.zscore(`${prefix}passed:b`, `${id} 1 ${G1}`),
    g2: await r.zscore(`${prefix}passed:b`, `${id} 1 ${G2}`),
    ms: id.split("-")[0]!,
  };
}

Deno.test(
  "cluster: a member taking over one group's never-sent QoS 2 copy of an ended session takes that group's key only, not the other group's [MQTT-4.8.2-5]",
  opts,
  async () => {
    const { got, g1, g2, ms } = await handOver("shg1:", false);
    // Its own subscription's copy and G1's.
    assert.deepEqual(got, ["both@2", "both@2"]);
    assert.equal(g1, `${ms}.5`);
    // G2's copy went with S's session: never taken here.
    assert.equal(g2, null);
  },
);

Deno.test(
  "cluster: a member taking over one group's never-sent QoS 2 copy of an ended session still gets its own subscription's copy when the other group's was passed on [MQTT-4.8.2-5]",
  opts,
  async () => {
    const { got, g1, g2, ms } = await handOver("shg2:", true);
    assert.deepEqual(got, ["both@2", "both@2"]);
    assert.equal(g1, `${ms}.5`);
    assert.equal(g2, ms);
  },
);

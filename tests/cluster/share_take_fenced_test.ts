// A take (TAKE_SCRIPT) of a clean member's shared QoS 2 message that waited while its node was
// cut off from Redis, and taken for dead meanwhile (reaped: its incarnation replaced), is never
// made: the node steps down and registers again as a new incarnation, and the take asked by the
// reaped one goes with it, not under the new one. Made, it would keep the rescuer of the node's
// stream from passing the message on, never sent [MQTT-4.8.2-5]: lost. Real processes on a
// redis-server; B reaches Redis through a proxy that cuts it off; the test reaps B itself (the
// heartbeat script, as a node `x`), and no node rescues B's stream, so that the take, if asked,
// would come first.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { waitFor } from "../_helpers/broker.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { text } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { FrameBatch } from "../../src/cluster/bus_frame.ts";
import { HEARTBEAT_SCRIPT } from "../../src/cluster/_bus_scripts.ts";
import { cutOff } from "./_away.ts";
import { Node, until } from "./_nodes.ts";
import { byteMember, chosen, SHARE } from "./_share.ts";
import { StallProxy } from "./_stall_proxy.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: a shared QoS 2 take that waited while its node was reaped is not made by the node's next incarnation [MQTT-4.8.2-5]",
  opts,
  async () => {
    const prefix = "stf1:";
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    await using b = await Node.start(proxy, { nodeId: "b", prefix, nodeTimeout: 1 });
    const r = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
    await r.connect();
    try {
      // One message in flight at a time: the second waits in the member's session, not taken.
      await using memberB = await byteMember(b, "member-b", 2, {
        protocolVersion: 5,
        properties: { receiveMaximum: 1 },
      });
      await waitFor(
        async () => (await r.smembers(`${prefix}interest:b`)).includes(SHARE),
        30_000,
        "B's interest",
      );
      const batch = new FrameBatch();
      batch.add(chosen("first", 1, 2));
      batch.add(chosen("second", 2, 2));
      const entry = await r.xadd(`${prefix}s:b`, "*", "f", Buffer.from(batch.finish()));
      const first = await memberB.expect(PacketType.PUBLISH);
      assert.equal(text(first), "first");
      await cutOff(proxy, b);
      // Its delivery done, the member's next message is taken: Redis away, the take waits.
      await memberB.send({ type: PacketType.PUBREC, packetId: first.packetId! });
      await memberB.expect(PacketType.PUBREL);
      await memberB.send({ type: PacketType.PUBCOMP, packetId: first.packetId! });
      await memberB.send({ type: PacketType.PINGREQ });
      await memberB.expect(PacketType.PINGRESP);
      // B's liveness key expired: reaped by `x`, with no rescue of its stream.
      await waitFor(async () => (await r.exists(`${prefix}alive:b`)) === 0, 30_000, "B's TTL");
      const reply = await r.eval(HEARTBEAT_SCRIPT, 0, prefix, "x", "1000", "", "", "0", "0");
      assert.deepEqual((reply as unknown[])[2], ["b", ["member-b"]]);
      proxy.mode = "forward";
      proxy.cut();
      await until(() => /joined again as a new incarnation/.test(b.log()), "B to join again");
      // A take of the new incarnation, made after the reaped one's would have gone (one
      // connection, in order): its member gets its message.
      await using memberB2 = await byteMember(b, "member-b2", 2, { protocolVersion: 5 });
      await waitFor(
        async () => (await r.smembers(`${prefix}interest:b`)).includes(SHARE),
        30_000,
        "B's interest again",
      );
      const next = await r.xadd(`${prefix}s:b`, "*", "f", Buffer.from(chosen("third", 3, 2)));
      const third = await memberB2.expect(PacketType.PUBLISH, 30_000);
      assert.equal(text(third), "third");
      // The second message is not taken: the rescue of B's dead stream would pass it on. (The
      // first was, before B was cut off.)
      assert.deepEqual((await r.zrange(`${prefix}passed:b`, 0, -1)).sort(), [
        `${entry} 0 ${SHARE}`,
        `${next} 0 ${SHARE}`,
        "~",
      ]);
    } finally {
      r.disconnect();
    }
  },
);

// A 5.0 persistent session resumed with a Session Expiry Interval of 0 ends with its connection
// [MQTT-3.1.2-23]: a clean member of its shared groups meanwhile, whose QoS 2 copies are taken in
// Redis before they are written, and still journaled to the shared store. A copy whose take is
// refused (another member has the message) leaves its window unwritten, and now its stored entry
// too: before, the entry stayed in the store until the session ended. Real processes on a
// redis-server; the publishing node is the test, writing frames into B's stream as a node does.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { waitFor } from "../_helpers/broker.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { TestClient, text } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { FrameBatch } from "../../src/cluster/bus_frame.ts";
import { Node } from "./_nodes.ts";
import { chosen, SHARE } from "./_share.ts";
import { resumeConnect } from "./_resume.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: a shared QoS 2 copy whose take is refused leaves the stored queue of a 5.0 session resumed with Session Expiry 0 as it is dropped [MQTT-4.8.2-5]",
  opts,
  async () => {
    const prefix = "sdj1:";
    await using redis = await RedisServer.start();
    await using b = await Node.start(redis, { nodeId: "b", prefix });
    const r = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
    await r.connect();
    using _r = { [Symbol.dispose]: () => r.disconnect() };
    {
      await using member = await TestClient.connect(b.port, resumeConnect("member", 5));
      assert.deepEqual((await member.subscribe({ [SHARE]: 2 })).reasonCodes, [2]);
      await member.disconnect();
    }
    // Resumed, ending with this connection: clean here, its queue still journaled.
    await using member = await TestClient.connect(b.port, {
      ...resumeConnect("member", 5),
      properties: { sessionExpiryInterval: 0 },
    });
    await waitFor(
      async () => (await r.smembers(`${prefix}interest:b`)).includes(SHARE),
      30_000,
      "B's interest in the group",
    );
    const id = `${Date.now()}-7`;
    const ms = id.split("-")[0]!;
    // The entry's first message was passed on already: B's take of it is refused. Its second is
    // B's to send.
    await r.zadd(`${prefix}passed:b`, ms, `${id} 0 ${SHARE}`);
    const batch = new FrameBatch();
    batch.add(chosen("passed on", 1, 2, [SHARE]));
    batch.add(chosen("after it", 2, 2, [SHARE]));
    await r.xadd(`${prefix}s:b`, id, "f", Buffer.from(batch.finish()));
    const publish = await member.expect(PacketType.PUBLISH, 30_000);
    assert.deepEqual([text(publish), publish.qos], ["after it", 2]);
    await member.send({ type: PacketType.PUBREC, packetId: publish.packetId! });
    await member.expect(PacketType.PUBREL);
    await member.send({ type: PacketType.PUBCOMP, packetId: publish.packetId! });
    // Both deliveries' entries leave the store: the one completed, and the one dropped.
    await waitFor(
      async () => await r.hlen(`${prefix}store:out:member`) === 0,
      30_000,
      "the session's stored queue emptied",
    );
    // The dropped copy never comes: nothing more, the connection still open.
    await member.send({ type: PacketType.PINGREQ });
    await member.expect(PacketType.PINGRESP);
  },
);

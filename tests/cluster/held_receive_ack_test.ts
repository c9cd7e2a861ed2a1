// A QoS 1/2 message published on a node where its delivery to a persistent session waits on a
// receive authorization (a plugin that answers later) is acknowledged to its publisher only once
// that delivery is stored: when the node is killed right after the PUBACK/PUBREC, the session,
// adopted by another node, gets the message. Real processes (the publisher's node runs a plugin
// that allows `slow/` half a second after it is asked) and redis-server.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { publishPacket, TestClient } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { adopted, Inbox, Node, until } from "./_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
const PREFIX = "hra1:";

Deno.test(
  "cluster: a QoS 1 or 2 message whose delivery to a persistent session waits on a receive authorization is acknowledged (PUBACK, PUBREC) only once that delivery is stored, and reaches the session when its node dies right after [MQTT-4.3.2-1] [MQTT-4.3.3-1]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const view = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
    await view.connect();
    /** Deliveries stored for the session `sub` (its queue in the shared store). */
    const stored = () => view.hlen(`${PREFIX}store:out:sub`);
    const x = await Node.start(redis, {
      nodeId: "x",
      prefix: PREFIX,
      program: "../tests/cluster/_held_receive_node.ts",
      nodeTimeout: 1,
    });
    let crashed = false;
    try {
      await using c = await Node.start(redis, { nodeId: "c", prefix: PREFIX });
      {
        await using sub = await Inbox.connect(x, "sub", { cleanSession: false });
        assert.deepEqual(await sub.client.subscribe([{ topic: "slow/#", qos: 2 }]), [2]);
      }
      await using pub = await TestClient.connect(x.port, { clientId: "pub" });
      await pub.send(publishPacket("slow/1", "one", { qos: 1, packetId: 1 }));
      assert.equal((await pub.expect(PacketType.PUBACK)).packetId, 1);
      assert.equal(await stored(), 1, "stored when PUBACK came");
      await pub.send(publishPacket("slow/2", "two", { qos: 2, packetId: 2 }));
      assert.equal((await pub.expect(PacketType.PUBREC)).packetId, 2);
      assert.equal(await stored(), 2, "stored when PUBREC came");

      await x.crash();
      crashed = true;
      await until(() => adopted(c.log(), "sub"), "the adoption of the session");
      await using back = await Inbox.connect(c, "sub", { cleanSession: false });
      await until(() => back.messages.length >= 2, "both messages");
      assert.deepEqual(
        back.messages.map((m) => `${m.topic}=${new TextDecoder().decode(m.payload)}`),
        [
          "slow/1=one",
          "slow/2=two",
        ],
      );
    } finally {
      if (!crashed) await x.stop();
      await Deno.remove(x.config).catch(() => {});
      view.disconnect();
    }
  },
);

// A 5.0 session started with Clean Start 1 and a Session Expiry Interval above 0 outlives its
// connection [MQTT-3.1.2-23]: it is stored like any persistent session, so that it follows its
// client to another node with what was queued for it. Real processes, redis-server, byte-level
// clients.
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";
import { subscribe5, TestClient, text } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { Inbox, Node } from "./_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: a 5.0 session started with Clean Start 1 and a session expiry moves to another node with its queued message (session present) [MQTT-3.1.2-23] [MQTT-3.2.2-2]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "cs1:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "cs1:" });
    {
      await using sub = await TestClient.connect(a.port, {
        clientId: "fresh",
        clean: true,
        protocolVersion: 5,
        properties: { sessionExpiryInterval: 600 },
      });
      await subscribe5(sub, [{ topic: "cs/fresh", qos: 1 }]);
      await sub.disconnect();
    }
    {
      // Acknowledged once stored.
      await using pub = await Inbox.connect(a, "pub");
      await pub.client.publish("cs/fresh", "queued", { qos: 1 });
    }
    await using back = await TestClient.open(b.port, { protocolVersion: 5 });
    const connack = await back.handshake({
      clientId: "fresh",
      clean: false,
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 600 },
    });
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.sessionPresent, true);
    const p = await back.expect(PacketType.PUBLISH);
    assert.equal(text(p), "queued");
    await back.send({ type: PacketType.PUBACK, packetId: p.packetId! });
  },
);

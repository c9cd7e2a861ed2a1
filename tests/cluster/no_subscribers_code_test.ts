// A 5.0 PUBACK and PUBREC say 0x10 No matching subscribers only when no node of the cluster has a
// subscriber for the topic (5.0 §3.4.2.1: the server uses it when it knows there are none). A
// subscriber on another node is a matching subscriber: its publisher is told 0x00 Success. Real
// `amqtt` processes on a real redis-server, a 5.0 publisher of ours.
import assert from "node:assert/strict";
import { MQTTClient } from "../../client.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { Inbox, Node, routeReady } from "./_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: a 5.0 publisher is told 0x10 only when no node has a subscriber",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const prefix = "nosubs";
    await using a = await Node.start(redis, { prefix, nodeId: "a" });
    await using b = await Node.start(redis, { prefix, nodeId: "b" });
    await using subscriber = await Inbox.connect(b, "sub-on-b");
    await subscriber.client.subscribe([["elsewhere/#", 1]]);
    await using pub = new MQTTClient({ clientId: "pub5-on-a", config: { auto_reconnect: false } });
    await pub.connect(a.url, { protocolVersion: 5 });
    await routeReady(pub, subscriber, "elsewhere/probe");

    for (const qos of [1, 2] as const) {
      // Subscribed only on B: A's core matches nothing, the cluster does.
      const there = await pub.publish("elsewhere/m", `q${qos}`, { qos });
      assert.equal(there?.reasonCode, 0x00, `QoS ${qos} to a subscriber on another node`);
      // Subscribed nowhere: 0x10, still a success.
      const nowhere = await pub.publish("nobody/m", `q${qos}`, { qos });
      assert.equal(nowhere?.reasonCode, 0x10, `QoS ${qos} to no subscriber`);
    }
    await subscriberGets(subscriber, ["q1", "q2"]);
    assert.ok(pub.connected, "the publisher is still connected");
  },
);

async function subscriberGets(inbox: Inbox, payloads: string[]): Promise<void> {
  for (let i = 0; i < 600 && inbox.on("elsewhere/m").length < payloads.length; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.deepEqual(inbox.on("elsewhere/m").map((m) => m.payload), payloads);
}

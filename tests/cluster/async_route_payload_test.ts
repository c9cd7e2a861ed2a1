// Messages routed on a cluster node by an asynchronous publish authorization (answers that come
// in another order than the PUBLISHes of several publishers, 3.1.1 and 5.0, QoS 0/1/2, payloads
// up to 20 KB) reach subscribers on another node, and on their own, byte for byte, with their
// Correlation Data and the subscribers' Subscription Identifiers [MQTT-3.3.2-16] [MQTT-3.3.4-3]:
// the forward to the cluster's stream is written from the message before the routing turn
// releases its read buffer (BrokerCore.releaseReceived). Real processes and redis-server.
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";
import { rng } from "../_helpers/rng.ts";
import { subscribe5, TestClient } from "../_helpers/test_client.ts";
import { collect, messages, publishAll, type Sent } from "../broker/_async_payloads.ts";
import { Node, probeRoute } from "./_nodes.ts";

const PUBLISHERS = [
  { id: "p0", v: 4 },
  { id: "p1", v: 5 },
  { id: "p2", v: 4 },
] as const;

Deno.test(
  "cluster: payloads routed by asynchronous publish answers in shuffled order reach subscribers on both nodes byte for byte [MQTT-3.3.2-16] [MQTT-3.3.4-3]",
  { sanitizeOps: true, sanitizeResources: true },
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, {
      nodeId: "a",
      prefix: "arp:",
      program: "../tests/cluster/_slow_publish_node.ts",
    });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "arp:" });
    const random = rng(4242);
    const lists = PUBLISHERS.map(({ id, v }) => messages(id, v, random));
    const sent = new Map<string, Sent>();
    for (const list of lists) for (const m of list) sent.set(m.key, m);
    const allowed = [...sent.values()].filter((m) => m.allowed);

    await using s1 = await TestClient.connect(b.port, { clientId: "s1" });
    await s1.subscribe({ "t/#": 2, "probe/#": 0 });
    await using s2 = await TestClient.connect(b.port, { clientId: "s2", protocolVersion: 5 });
    await subscribe5(s2, [{ topic: "t/#", qos: 2 }, { topic: "probe/#", qos: 0 }], {
      identifier: 7,
    });
    await using s3 = await TestClient.connect(a.port, { clientId: "s3", protocolVersion: 5 });
    await subscribe5(s3, [{ topic: "t/#", qos: 1 }], { identifier: 5 });
    const pubs: TestClient[] = [];
    try {
      for (const { id, v } of PUBLISHERS) {
        pubs.push(await TestClient.connect(a.port, { clientId: id, protocolVersion: v }));
      }
      await probeRoute(pubs[0]!, s1);
      await probeRoute(pubs[0]!, s2);
      const all = (seen: Set<string>) => () => allowed.every((m) => seen.has(m.key));
      const seen = [new Set<string>(), new Set<string>(), new Set<string>()];
      const readers = [
        collect(s1, sent, {
          who: "s1 on b",
          v: 4,
          seen: seen[0]!,
          done: all(seen[0]!),
          skip: "probe/",
        }),
        collect(s2, sent, {
          who: "s2 on b",
          v: 5,
          identifier: 7,
          seen: seen[1]!,
          done: all(seen[1]!),
          skip: "probe/",
        }),
        collect(s3, sent, {
          who: "s3 on a",
          v: 5,
          identifier: 5,
          seen: seen[2]!,
          done: all(seen[2]!),
        }),
      ];
      await Promise.all(pubs.map((pub, i) => publishAll(pub, lists[i]!, PUBLISHERS[i]!.id)));
      // (Not in order across topics: each message has a topic of its own, and the cluster may
      // forward QoS 0 apart from QoS 1/2.)
      await Promise.all(readers);
      for (const c of [s1, s2, s3, ...pubs]) assert.ok(!c.socketEnded, "still connected");
      for (const pub of pubs) await pub.disconnect();
    } finally {
      for (const pub of pubs) await pub.close();
    }
  },
);

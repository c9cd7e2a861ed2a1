// A node that adopts a dead node's persistent session and cannot read the dead node's stream
// (Redis refusing it for a while: here its ACL denies XRANGE, as a Redis lost at that moment
// would) tries again until it can, and only then restores the session: what the dead node had
// been sent and had not stored reaches the session when its client comes back, with everything
// published meanwhile, the first arrivals in order. Real processes and redis-server.
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";
import { acl, Inbox, Node, routeReady, until } from "./_nodes.ts";
import { Publisher } from "./_publisher.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: an adopter that cannot read the dead node's stream tries again before it restores the session; every QoS 1 message acknowledged reaches it, in order [MQTT-4.3.2-1] [MQTT-4.6.0-6]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    // A is found dead 3 s after its death; B and C, busy on a loaded machine, only after 30 s.
    const options = { prefix: "dr1:", yaml: ["max_queued_messages: 1000000"] };
    await using a = await Node.start(redis, { nodeId: "a", nodeTimeout: 3, ...options });
    await using b = await Node.start(redis, { nodeId: "b", nodeTimeout: 30, ...options });
    await using c = await Node.start(redis, { nodeId: "c", nodeTimeout: 30, ...options });
    const seen: string[] = [];
    let inbox: Inbox | undefined = await Inbox.connect(a, "orphan", { cleanSession: false });
    let denied = false;
    try {
      assert.deepEqual(await inbox.client.subscribe([{ topic: "dr/#", qos: 1 }]), [1]);
      await using pub = await Inbox.connect(c, "pub-c");
      await routeReady(pub.client, inbox, "dr/probe");
      // Disposed before `pub`: no publish left pending when its connection closes.
      await using publisher = new Publisher(pub.client, "dr/x");
      await until(publisher.reached(20), "messages published before the death");
      // Only the read of the dead node's streams uses XRANGE.
      await acl(redis, "-xrange");
      denied = true;
      await a.crash();
      await inbox[Symbol.asyncDispose]();
      seen.push(...inbox.on("dr/x").map((m) => m.payload));
      inbox = undefined;
      const failed = /cannot read what node a had not stored/;
      await until(() => failed.test(b.log() + c.log()), "the adopter's failed read");
      await acl(redis, "+xrange");
      denied = false;
      await until(
        () => /adopted the session of orphan/.test(b.log() + c.log()),
        "the adoption of the session",
      );
      await until(publisher.reached(publisher.sent + 20), "messages published after the adoption");
      const back = inbox = await Inbox.connect(b, "orphan", { cleanSession: false });
      await until(publisher.reached(publisher.sent + 20), "messages published after the return");
      await publisher.stop();
      const acked = publisher.sent;
      await until(
        () => back.on("dr/x").some((m) => m.payload === String(acked - 1)),
        "the last message",
      );
      seen.push(...back.on("dr/x").map((m) => m.payload));
      const first = [...new Set(seen)].map(Number);
      const missing = Array.from({ length: acked }, (_, i) => i).filter((i) => !first.includes(i));
      assert.deepEqual(missing, [], "messages acknowledged and never delivered");
      assert.deepEqual(first, [...first].sort((x, y) => x - y), "first arrivals in order");
    } finally {
      if (denied) await acl(redis, "+xrange");
      await inbox?.[Symbol.asyncDispose]();
    }
  },
);

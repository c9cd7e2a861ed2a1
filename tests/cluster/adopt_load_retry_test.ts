// A node that wins the adoption of a dead node's persistent session and then cannot load it
// from the store (Redis refusing it for a while: here its ACL denies the session's queue key,
// which the load reads and nothing else uses meanwhile) loads it again until it can: the session
// is kept [MQTT-3.1.2-4], messages published while its client is away are queued for it, and
// every one acknowledged reaches it when the client comes back, the first arrivals in order.
// Real processes and redis-server.
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";
import { acl, Inbox, Node, routeReady, until } from "./_nodes.ts";
import { Publisher } from "./_publisher.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
const prefix = "al1:";

/**
 * ACL key patterns that allow every key but those starting with `deny` (after the prefix): one
 * pattern per character of it, each allowing whatever differs from `deny` there.
 */
function allBut(deny: string): string[] {
  const patterns: string[] = [];
  for (let i = 0; i < deny.length; i++) {
    patterns.push(`~${prefix}${deny.slice(0, i)}[^${deny[i]}]*`);
  }
  return patterns;
}

Deno.test(
  "cluster: a node that won a dead node's persistent session and cannot load it loads it again; the session is kept and every QoS 1 message acknowledged reaches it, in order [MQTT-3.1.2-4] [MQTT-4.3.2-1] [MQTT-4.6.0-6]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    // A is found dead 3 s after its death; B and C, busy on a loaded machine, only after 30 s.
    const options = { prefix, yaml: ["max_queued_messages: 1000000"] };
    await using a = await Node.start(redis, { nodeId: "a", nodeTimeout: 3, ...options });
    await using b = await Node.start(redis, { nodeId: "b", nodeTimeout: 30, ...options });
    await using c = await Node.start(redis, { nodeId: "c", nodeTimeout: 30, ...options });
    const seen: string[] = [];
    let inbox: Inbox | undefined = await Inbox.connect(a, "orphan", { cleanSession: false });
    let denied = false;
    try {
      assert.deepEqual(await inbox.client.subscribe([{ topic: "al/#", qos: 1 }]), [1]);
      await using pub = await Inbox.connect(c, "pub-c");
      await routeReady(pub.client, inbox, "al/probe");
      // Disposed before `pub`: no publish left pending when its connection closes.
      await using publisher = new Publisher(pub.client, "al/x");
      await until(publisher.reached(20), "messages published before the death");
      // The orphan's queue (`al1:store:out:orphan`): read by the load; written only by the
      // session's owner, and A, its owner, is about to die. The adoption script's keys stay.
      await acl(redis, "resetkeys", ...allBut("store:out:"));
      denied = true;
      await a.crash();
      await inbox[Symbol.asyncDispose]();
      seen.push(...inbox.on("al/x").map((m) => m.payload));
      inbox = undefined;
      await until(
        () => /cannot (load|adopt) the session of orphan/.test(b.log() + c.log()),
        "the adopter's failed load",
      );
      await acl(redis, "resetkeys", "~*");
      denied = false;
      await until(
        () => /adopted the session of orphan/.test(b.log() + c.log()),
        "the adoption of the session",
      );
      await until(publisher.reached(publisher.sent + 20), "messages published after the adoption");
      const adopter = /adopted the session of orphan/.test(b.log()) ? b : c;
      const back = inbox = await Inbox.connect(adopter, "orphan", { cleanSession: false });
      await until(publisher.reached(publisher.sent + 20), "messages published after the return");
      await publisher.stop();
      const acked = publisher.sent;
      await until(
        () => back.on("al/x").some((m) => m.payload === String(acked - 1)),
        "the last message",
      );
      seen.push(...back.on("al/x").map((m) => m.payload));
      const first = [...new Set(seen)].map(Number);
      const missing = Array.from({ length: acked }, (_, i) => i).filter((i) => !first.includes(i));
      assert.deepEqual(missing, [], "messages acknowledged and never delivered");
      assert.deepEqual(first, [...first].sort((x, y) => x - y), "first arrivals in order");
    } finally {
      if (denied) await acl(redis, "resetkeys", "~*");
      await inbox?.[Symbol.asyncDispose]();
    }
  },
);

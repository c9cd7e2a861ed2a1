// A client that reaches a node while its session's previous owner is dead and not reaped, when
// that node cannot read the dead node's stream in time (Redis refusing it for a while: here its
// ACL denies XRANGE): the login goes on without waiting for Redis, and the messages the dead node
// had been sent and had not stored reach the session late, once the stream can be read, each
// once. Real processes and redis-server.
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";
import { assertDelivered } from "./_arrivals.ts";
import { acl, Inbox, Node, routeReady, UNBOUNDED_QUEUE, until } from "./_nodes.ts";
import { Publisher } from "./_publisher.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: a node that cannot read a dead previous owner's stream at a login delivers what it had not stored once the stream can be read; every QoS 1 message acknowledged arrives, those published after the death once [MQTT-4.3.2-1]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    // A is found dead 3 s after its death; B and C, busy on a loaded machine, only after 30 s.
    const options = { prefix: "dl1:", yaml: [UNBOUNDED_QUEUE] };
    await using a = await Node.start(redis, { nodeId: "a", nodeTimeout: 3, ...options });
    await using b = await Node.start(redis, { nodeId: "b", ...options });
    await using c = await Node.start(redis, { nodeId: "c", ...options });
    const seen: string[] = [];
    let inbox: Inbox | undefined = await Inbox.connect(a, "mover", { cleanSession: false });
    let denied = false;
    try {
      assert.deepEqual(await inbox.client.subscribe([{ topic: "dl/#", qos: 1 }]), [1]);
      await using pub = await Inbox.connect(c, "pub-c");
      await routeReady(pub.client, inbox, "dl/probe");
      // Disposed before `pub`: no publish left pending when its connection closes.
      await using publisher = new Publisher(pub.client, "dl/x");
      await until(publisher.reached(20), "messages published before the death");
      // Only the read of the dead node's streams uses XRANGE.
      await acl(redis, "-xrange");
      denied = true;
      await a.crash();
      const afterDeath = publisher.sent;
      await inbox[Symbol.asyncDispose]();
      seen.push(...inbox.on("dl/x").map((m) => m.payload));
      inbox = undefined;
      await until(publisher.reached(afterDeath + 20), "messages published while A is dead");
      const moved = inbox = await Inbox.connect(b, "mover", { cleanSession: false });
      assert.match(b.log(), /cannot read what node a had not stored/);
      await acl(redis, "+xrange");
      denied = false;
      await until(() => /went to mover late/.test(b.log()), "the late delivery");
      await until(publisher.reached(publisher.sent + 20), "messages published after the move");
      await publisher.stop();
      const acked = publisher.sent;
      await until(
        () => moved.on("dl/x").some((m) => m.payload === String(acked - 1)),
        "the last message",
      );
      const later = moved.on("dl/x").map((m) => m.payload);
      seen.push(...later);
      assertDelivered(seen, acked);
      const twice = later.map(Number).filter((n, i, all) =>
        n >= afterDeath && all.indexOf(n) !== i
      );
      assert.deepEqual(twice, [], "messages published after the death delivered twice");
    } finally {
      if (denied) await acl(redis, "+xrange");
      await inbox?.[Symbol.asyncDispose]();
    }
  },
);

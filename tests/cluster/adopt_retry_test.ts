// A dead node's persistent session whose adoption script fails on every node (Redis refusing it
// for a while: here its ACL denies the key of the wills, which the script reads first, as a Redis
// lost at that moment would) is adopted once the script runs again: messages published while its
// client is away are queued for it, and every one acknowledged reaches it when the client comes
// back, the first arrivals in order. Real processes and redis-server.
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";
import { acl, Inbox, Node, routeReady, until } from "./_nodes.ts";
import { Publisher } from "./_publisher.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/**
 * The scenario, with the nodes' key `prefix`; `refusedMs`: how long Redis goes on refusing the
 * adoption script after its first failure; `pauseMs`: the publisher's pause after each message.
 */
async function adoptRetry(prefix: string, refusedMs: number, pauseMs = 0): Promise<void> {
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
    assert.deepEqual(await inbox.client.subscribe([{ topic: "ar/#", qos: 1 }]), [1]);
    await using pub = await Inbox.connect(c, "pub-c");
    await routeReady(pub.client, inbox, "ar/probe");
    // Disposed before `pub`: no publish left pending when its connection closes.
    await using publisher = new Publisher(pub.client, "ar/x", 1, pauseMs);
    await until(publisher.reached(20), "messages published before the death");
    // Every key but the wills (`ar1:wills`), which nothing else uses meanwhile.
    await acl(redis, "resetkeys", `~${prefix}[^w]*`);
    denied = true;
    await a.crash();
    await inbox[Symbol.asyncDispose]();
    seen.push(...inbox.on("ar/x").map((m) => m.payload));
    inbox = undefined;
    // Each node that hears of A's departure with its clients tries to adopt them (one that
    // found it gone otherwise does not know them): after the first failure, the others' tries
    // have a moment to fail too.
    await until(
      () => /cannot adopt the session of orphan/.test(b.log() + c.log()),
      "a failed adoption",
    );
    await new Promise((resolve) => setTimeout(resolve, refusedMs));
    await acl(redis, "resetkeys", "~*");
    denied = false;
    await until(
      () => /adopted the session of orphan/.test(b.log() + c.log()),
      "the adoption of the session",
    );
    await until(publisher.reached(publisher.sent + 20), "messages published after the adoption");
    // To the adopter: the session, with all that was queued meanwhile, is there.
    const adopter = /adopted the session of orphan/.test(b.log()) ? b : c;
    const back = inbox = await Inbox.connect(adopter, "orphan", { cleanSession: false });
    await until(publisher.reached(publisher.sent + 20), "messages published after the return");
    await publisher.stop();
    const acked = publisher.sent;
    await until(
      () => back.on("ar/x").some((m) => m.payload === String(acked - 1)),
      "the last message",
    );
    seen.push(...back.on("ar/x").map((m) => m.payload));
    const first = [...new Set(seen)].map(Number);
    const arrived = new Set(first);
    const missing = Array.from({ length: acked }, (_, i) => i).filter((i) => !arrived.has(i));
    assert.deepEqual(missing, [], "messages acknowledged and never delivered");
    assert.deepEqual(first, [...first].sort((x, y) => x - y), "first arrivals in order");
  } finally {
    if (denied) await acl(redis, "resetkeys", "~*");
    await inbox?.[Symbol.asyncDispose]();
  }
}

Deno.test(
  "cluster: a dead node's persistent session whose adoption script failed is adopted when it runs again; every QoS 1 message acknowledged reaches it, in order [MQTT-4.3.2-1] [MQTT-4.6.0-6]",
  opts,
  () => adoptRetry("ar1:", 1000),
);

// The other nodes keep a departed node's interest for 30 s (the grace): an adoption refused for
// longer lost what was published after it, acknowledged with no subscription left to queue it
// for. Each node whose adoption is still trying keeps the interest, counted from each try.
Deno.test(
  "cluster: a dead node's persistent session whose adoption script fails for longer than the 30 s its interest is kept after its death still gets every QoS 1 message acknowledged meanwhile [MQTT-4.3.2-1] [MQTT-4.6.0-6]",
  opts,
  // Paced: without pause the 40 s put 100,000 messages in the dead stream, whose replay stalled
  // the adopter for seconds on a loaded machine, and a client's connection to it was lost.
  () => adoptRetry("ar2:", 40_000, 10),
);

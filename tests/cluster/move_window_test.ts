// A persistent session moving between nodes misses nothing published meanwhile: publishers on a
// third node and on one of the two nodes publish QoS 1 without pause while the subscriber moves
// between the two nodes several times; every message acknowledged reaches the subscriber.
// Subscribed to the topics, the first arrivals come in the order published; as a shared group's
// only member, it also gets those that a node passed on for the group while the session was on
// its way. Real processes and redis-server.
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";
import { arrival, assertArrivals } from "./_arrivals.ts";
import { Inbox, Node, routeReady, UNBOUNDED_QUEUE, until } from "./_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/**
 * The scenario, with the subscriber's `filter` (on `mv/#`) and the nodes' key `prefix`; `ordered`:
 * whether the first arrivals must be in the order published.
 */
async function moveWindow(filter: string, prefix: string, ordered: boolean): Promise<void> {
  await using redis = await RedisServer.start();
  // No node dies here: one that a starved machine stalls past a short `node_timeout` is taken for
  // dead and steps down, closing the test's clients as taken over, which is not the scenario
  // tested (`paused_node_test.ts` is): the helper's default of 30 s, as no stall lasts.
  // The publishers do not wait for the subscriber, and nothing slows them while it is away (flow
  // control pauses a publisher only for a connected session): on a loaded machine a move lasting
  // a second queued over 1,500 messages for the session, and past `max_queued_messages` (default
  // 1000) the oldest queued ones were dropped, as configured, counted as "queue full" (in the
  // node's log at its next summary line, or when it stops), while the test saw a run of
  // acknowledged messages never delivered. A bound no run reaches leaves only what the cluster
  // does.
  const options = { prefix, yaml: [UNBOUNDED_QUEUE] };
  await using a = await Node.start(redis, { nodeId: "a", ...options });
  await using b = await Node.start(redis, { nodeId: "b", ...options });
  await using c = await Node.start(redis, { nodeId: "c", ...options });
  const seen: string[] = [];
  let inbox = await Inbox.connect(a, "mover", { cleanSession: false });
  try {
    assert.deepEqual(await inbox.client.subscribe([{ topic: filter, qos: 1 }]), [1]);
    await using onC = await Inbox.connect(c, "pub-c");
    await using onA = await Inbox.connect(a, "pub-a");
    await routeReady(onC.client, inbox, "mv/probe");
    // Each publishes without pause; `acked` counts its PUBACKs.
    const acked = { c: 0, a: 0 };
    let stop = false;
    const publishing = (["c", "a"] as const).map(async (name) => {
      const client = name === "c" ? onC.client : onA.client;
      while (!stop) await client.publish(`mv/${name}`, String(acked[name]++), { qos: 1 });
    });
    for (const node of [b, a, b, a, b, a]) {
      const before = acked.c;
      await until(() => acked.c >= before + 20, "messages published before the move");
      // Everything it received before its connection closed (and acknowledged) counts.
      await inbox[Symbol.asyncDispose]();
      seen.push(...inbox.messages.map(arrival));
      inbox = await Inbox.connect(node, "mover", { cleanSession: false });
    }
    const last = acked.c + 20;
    await until(() => acked.c >= last, "messages published after the moves");
    stop = true;
    await Promise.all(publishing);
    // The last message of each publisher, delivered last, or the test's guard tells.
    await until(
      () =>
        inbox.on("mv/c").some((m) => m.payload === String(acked.c - 1)) &&
        inbox.on("mv/a").some((m) => m.payload === String(acked.a - 1)),
      "the last messages",
    );
    seen.push(...inbox.messages.map(arrival));
    assertArrivals(seen, "mv", acked, ordered);
  } finally {
    await inbox[Symbol.asyncDispose]();
  }
}

Deno.test(
  "cluster: QoS 1 messages acknowledged on a third node and on the nodes themselves while a persistent session moves between two nodes all reach it, in order [MQTT-4.3.2-1] [MQTT-4.6.0-6]",
  opts,
  () => moveWindow("mv/#", "mvw:", true),
);

Deno.test(
  "cluster: QoS 1 messages for a shared group whose only member is a persistent session moving between two nodes all reach it (MQTT 5.0 §4.8.2) [MQTT-4.3.2-1]",
  opts,
  () => moveWindow("$share/g/mv/#", "mvws:", false),
);

// A persistent session adopted from a node that died misses nothing published meanwhile:
// publishers on the two other nodes publish QoS 1 without pause while the subscriber's node is
// killed (SIGKILL), found dead and its session adopted; every message acknowledged reaches the
// subscriber when it comes back. Subscribed to the topics, the first arrivals come in the order
// published; as a shared group's only member, it also gets those published between the node's
// reaping and the adopter's announcement of the group. Real processes and redis-server.
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";
import { arrival, assertArrivals } from "./_arrivals.ts";
import { adopted, Inbox, Node, routeReady, UNBOUNDED_QUEUE, until } from "./_nodes.ts";
import { Publisher } from "./_publisher.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/**
 * The scenario, with the subscriber's `filter` (on `aw/#`) and the nodes' key `prefix`; `ordered`:
 * whether the first arrivals must be in the order published.
 */
async function adoptWindow(filter: string, prefix: string, ordered: boolean): Promise<void> {
  // The subscriber is away for a few seconds while the publisher goes on: its queue must not
  // overflow (messages dropped for a full queue are dropped on one broker too).
  // X, killed, is found dead 3 s after its death; C and D, which the test does not kill, only
  // after 30 s: on a starved machine a survivor stalled past a short `node_timeout` was taken for
  // dead and stepped down, closing the test's publishers as taken over (`paused_node_test.ts`
  // tests that case).
  const node = (nodeId: string, nodeTimeout: number) => ({
    nodeId,
    prefix,
    nodeTimeout,
    yaml: [UNBOUNDED_QUEUE],
  });
  await using redis = await RedisServer.start();
  const x = await Node.start(redis, node("x", 3));
  let crashed = false;
  try {
    await using c = await Node.start(redis, node("c", 30));
    await using d = await Node.start(redis, node("d", 30));
    const seen: string[] = [];
    let inbox = await Inbox.connect(x, "orphan", { cleanSession: false });
    try {
      assert.deepEqual(await inbox.client.subscribe([{ topic: filter, qos: 1 }]), [1]);
      // Publishers on both surviving nodes: either may adopt the session, so one publishes on
      // the adopting node and one on another node.
      await using onC = await Inbox.connect(c, "pub-c");
      await using onD = await Inbox.connect(d, "pub-d");
      await routeReady(onC.client, inbox, "aw/probe");
      await routeReady(onD.client, inbox, "aw/probe");
      // Each publishes without pause. Disposed before their clients, and a failed publish ends
      // the waits with its error: no publish is left to fail unhandled when a client closes.
      await using pubC = new Publisher(onC.client, "aw/c");
      await using pubD = new Publisher(onD.client, "aw/d");
      const before = [pubC.reached(20), pubD.reached(20)];
      await until(
        () => before.every((reached) => reached()),
        "messages published before the crash",
      );
      await x.crash();
      crashed = true;
      // Everything it received before its connection closed (and acknowledged) counts.
      await inbox[Symbol.asyncDispose]();
      seen.push(...inbox.messages.map(arrival));
      await until(
        () => adopted(c.log() + d.log(), "orphan"),
        "the adoption of the session",
      );
      await until(pubC.reached(pubC.sent + 20), "messages published after the adoption");
      inbox = await Inbox.connect(d, "orphan", { cleanSession: false });
      await until(pubC.reached(pubC.sent + 20), "messages published after the return");
      await Promise.all([pubC.stop(), pubD.stop()]);
      const acked = { c: pubC.sent, d: pubD.sent };
      await until(
        () =>
          inbox.on("aw/c").some((m) => m.payload === String(acked.c - 1)) &&
          inbox.on("aw/d").some((m) => m.payload === String(acked.d - 1)),
        "the last messages",
      );
      seen.push(...inbox.messages.map(arrival));
      assertArrivals(seen, "aw", acked, ordered);
    } finally {
      await inbox[Symbol.asyncDispose]();
    }
  } finally {
    if (!crashed) await x.stop();
    await Deno.remove(x.config).catch(() => {});
  }
}

Deno.test(
  "cluster: QoS 1 messages acknowledged on the other nodes while a dead node's persistent session is adopted all reach it, in order [MQTT-4.3.2-1] [MQTT-4.6.0-6]",
  opts,
  () => adoptWindow("aw/#", "aw1:", true),
);

Deno.test(
  "cluster: QoS 1 messages for a shared group whose only member is a dead node's adopted persistent session all reach it (MQTT 5.0 §4.8.2) [MQTT-4.3.2-1]",
  opts,
  () => adoptWindow("$share/g/aw/#", "saw1:", false),
);

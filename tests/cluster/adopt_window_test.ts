// A persistent session adopted from a node that died misses nothing published meanwhile:
// publishers on the two other nodes publish QoS 1 without pause while the subscriber's node is
// killed (SIGKILL), found dead and its session adopted; every message acknowledged reaches the
// subscriber when it comes back, the first arrivals in the order published. Real processes and
// redis-server.
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";
import { Inbox, Node, routeReady, until } from "./_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
// The subscriber is away for a few seconds while the publisher goes on: its queue must not
// overflow (messages dropped for a full queue are dropped on one broker too).
const node = (nodeId: string) => ({
  nodeId,
  prefix: "aw1:",
  yaml: ["max_queued_messages: 1000000"],
});

Deno.test(
  "cluster: QoS 1 messages acknowledged on the other nodes while a dead node's persistent session is adopted all reach it, in order [MQTT-4.3.2-1] [MQTT-4.6.0-6]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const x = await Node.start(redis, node("x"));
    let crashed = false;
    try {
      await using c = await Node.start(redis, node("c"));
      await using d = await Node.start(redis, node("d"));
      const seen: string[] = [];
      let inbox = await Inbox.connect(x, "orphan", { cleanSession: false });
      try {
        assert.deepEqual(await inbox.client.subscribe([{ topic: "aw/#", qos: 1 }]), [1]);
        // Publishers on both surviving nodes: either may adopt the session, so one publishes on
        // the adopting node and one on another node.
        await using onC = await Inbox.connect(c, "pub-c");
        await using onD = await Inbox.connect(d, "pub-d");
        await routeReady(onC.client, inbox, "aw/probe");
        await routeReady(onD.client, inbox, "aw/probe");
        // Each publishes without pause; `acked` counts its PUBACKs.
        const acked = { c: 0, d: 0 };
        let stop = false;
        const publishing = (["c", "d"] as const).map(async (name) => {
          const client = name === "c" ? onC.client : onD.client;
          while (!stop) await client.publish(`aw/${name}`, String(acked[name]++), { qos: 1 });
        });
        await until(() => acked.c >= 20 && acked.d >= 20, "messages published before the crash");
        await x.crash();
        crashed = true;
        // Everything it received before its connection closed (and acknowledged) counts.
        await inbox[Symbol.asyncDispose]();
        const text = (m: { topic: string; payload: Uint8Array }) =>
          `${m.topic} ${new TextDecoder().decode(m.payload)}`;
        seen.push(...inbox.messages.map(text));
        await until(
          () => /adopted the session of orphan/.test(c.log() + d.log()),
          "the adoption of the session",
        );
        const after = acked.c + 20;
        await until(() => acked.c >= after, "messages published after the adoption");
        inbox = await Inbox.connect(d, "orphan", { cleanSession: false });
        const last = acked.c + 20;
        await until(() => acked.c >= last, "messages published after the return");
        stop = true;
        await Promise.all(publishing);
        await until(
          () =>
            inbox.on("aw/c").some((m) => m.payload === String(acked.c - 1)) &&
            inbox.on("aw/d").some((m) => m.payload === String(acked.d - 1)),
          "the last messages",
        );
        seen.push(...inbox.messages.map(text));
        for (const name of ["c", "d"] as const) {
          const first = [
            ...new Set(seen.filter((m) => m.startsWith(`aw/${name} `)).map((m) => m.slice(5))),
          ].map(Number);
          const missing = Array.from({ length: acked[name] }, (_, i) => i)
            .filter((i) => !first.includes(i));
          assert.deepEqual(missing, [], `messages acknowledged on ${name} and never delivered`);
          assert.deepEqual(first, [...first].sort((p, q) => p - q), "first arrivals in order");
        }
      } finally {
        await inbox[Symbol.asyncDispose]();
      }
    } finally {
      if (!crashed) await x.stop();
      await Deno.remove(x.config).catch(() => {});
    }
  },
);

// A persistent session moving between nodes misses nothing published meanwhile: publishers on a
// third node and on one of the two nodes publish QoS 1 without pause while the subscriber moves
// between the two nodes several times; every message acknowledged reaches the subscriber, the
// first arrivals in the order published. Real processes and redis-server.
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";
import { Inbox, Node, routeReady, until } from "./_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: QoS 1 messages acknowledged on a third node and on the nodes themselves while a persistent session moves between two nodes all reach it, in order [MQTT-4.3.2-1] [MQTT-4.6.0-6]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "mw1:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "mw1:" });
    await using c = await Node.start(redis, { nodeId: "c", prefix: "mw1:" });
    const seen: string[] = [];
    let inbox = await Inbox.connect(a, "mover", { cleanSession: false });
    try {
      assert.deepEqual(await inbox.client.subscribe([{ topic: "mv/#", qos: 1 }]), [1]);
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
        seen.push(
          ...inbox.messages.map((m) => `${m.topic} ${new TextDecoder().decode(m.payload)}`),
        );
        inbox = await Inbox.connect(node, "mover", { cleanSession: false });
      }
      const last = acked.c + 20;
      await until(() => acked.c >= last, "messages published after the moves");
      stop = true;
      await Promise.all(publishing);
      await until(
        () =>
          inbox.on("mv/c").some((m) => m.payload === String(acked.c - 1)) &&
          inbox.on("mv/a").some((m) => m.payload === String(acked.a - 1)),
        "the last messages",
      );
      seen.push(...inbox.messages.map((m) => `${m.topic} ${new TextDecoder().decode(m.payload)}`));
      for (const name of ["c", "a"] as const) {
        const first = [
          ...new Set(seen.filter((m) => m.startsWith(`mv/${name} `)).map((m) => m.slice(5))),
        ].map(Number);
        const missing = Array.from({ length: acked[name] }, (_, i) => i)
          .filter((i) => !first.includes(i));
        assert.deepEqual(missing, [], `messages acknowledged on ${name} and never delivered`);
        assert.deepEqual(first, [...first].sort((x, y) => x - y), "first arrivals in order");
      }
    } finally {
      await inbox[Symbol.asyncDispose]();
    }
  },
);

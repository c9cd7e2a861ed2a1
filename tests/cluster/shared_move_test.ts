// A persistent session that is a shared group's only member moves between nodes while QoS 1
// messages for the group are published without pause on a third node and on one of the two
// nodes: every message acknowledged reaches it once (the group has no other member), also those
// that a node passed on for the group while the session was on its way. Real processes and
// redis-server.
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";
import { Inbox, Node, routeReady, until } from "./_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
const SHARE = "$share/g/mv/#";

Deno.test(
  "cluster: QoS 1 messages for a shared group whose only member is a persistent session moving between two nodes all reach it (MQTT 5.0 §4.8.2) [MQTT-4.3.2-1]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "smv1:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "smv1:" });
    await using c = await Node.start(redis, { nodeId: "c", prefix: "smv1:" });
    const seen: string[] = [];
    const text = (m: { topic: string; payload: Uint8Array }) =>
      `${m.topic} ${new TextDecoder().decode(m.payload)}`;
    let inbox = await Inbox.connect(a, "mover", { cleanSession: false });
    try {
      assert.deepEqual(await inbox.client.subscribe([{ topic: SHARE, qos: 1 }]), [1]);
      await using onC = await Inbox.connect(c, "pub-c");
      await using onA = await Inbox.connect(a, "pub-a");
      await routeReady(onC.client, inbox, "mv/probe");
      const acked = { c: 0, a: 0 };
      let stop = false;
      const publishing = (["c", "a"] as const).map(async (name) => {
        const client = name === "c" ? onC.client : onA.client;
        while (!stop) await client.publish(`mv/${name}`, String(acked[name]++), { qos: 1 });
      });
      for (const node of [b, a, b, a, b, a]) {
        const before = acked.c;
        await until(() => acked.c >= before + 20, "messages published before the move");
        await inbox[Symbol.asyncDispose]();
        seen.push(...inbox.messages.map(text));
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
      seen.push(...inbox.messages.map(text));
      for (const name of ["c", "a"] as const) {
        const got = new Set(
          seen.filter((m) => m.startsWith(`mv/${name} `)).map((m) => Number(m.slice(5))),
        );
        const missing = Array.from({ length: acked[name] }, (_, i) => i)
          .filter((i) => !got.has(i));
        assert.deepEqual(missing, [], `messages acknowledged on ${name} and never delivered`);
      }
    } finally {
      await inbox[Symbol.asyncDispose]();
    }
  },
);

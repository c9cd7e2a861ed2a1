// A dead node's persistent session that was a shared group's only member misses nothing of the
// group published meanwhile: publishers on the two other nodes publish QoS 1 without pause while
// the subscriber's node is killed (SIGKILL), found dead and its session adopted; every message
// acknowledged reaches the subscriber when it comes back, also those published between the
// node's reaping and the adopter's announcement of the group. Real processes and redis-server.
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";
import { Inbox, Node, routeReady, until } from "./_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
const node = (nodeId: string) => ({
  nodeId,
  prefix: "saw1:",
  yaml: ["max_queued_messages: 1000000"],
});
const SHARE = "$share/g/aw/#";

Deno.test(
  "cluster: QoS 1 messages for a shared group whose only member is a dead node's adopted persistent session all reach it (MQTT 5.0 §4.8.2) [MQTT-4.3.2-1]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const x = await Node.start(redis, node("x"));
    let crashed = false;
    try {
      await using c = await Node.start(redis, node("c"));
      await using d = await Node.start(redis, node("d"));
      const seen: string[] = [];
      const text = (m: { topic: string; payload: Uint8Array }) =>
        `${m.topic} ${new TextDecoder().decode(m.payload)}`;
      let inbox = await Inbox.connect(x, "orphan", { cleanSession: false });
      try {
        assert.deepEqual(await inbox.client.subscribe([{ topic: SHARE, qos: 1 }]), [1]);
        await using onC = await Inbox.connect(c, "pub-c");
        await using onD = await Inbox.connect(d, "pub-d");
        await routeReady(onC.client, inbox, "aw/probe");
        await routeReady(onD.client, inbox, "aw/probe");
        const acked = { c: 0, d: 0 };
        let stop = false;
        const publishing = (["c", "d"] as const).map(async (name) => {
          const client = name === "c" ? onC.client : onD.client;
          while (!stop) await client.publish(`aw/${name}`, String(acked[name]++), { qos: 1 });
        });
        await until(() => acked.c >= 20 && acked.d >= 20, "messages published before the crash");
        await x.crash();
        crashed = true;
        await inbox[Symbol.asyncDispose]();
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
          const got = new Set(
            seen.filter((m) => m.startsWith(`aw/${name} `)).map((m) => Number(m.slice(5))),
          );
          const missing = Array.from({ length: acked[name] }, (_, i) => i)
            .filter((i) => !got.has(i));
          assert.deepEqual(missing, [], `messages acknowledged on ${name} and never delivered`);
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

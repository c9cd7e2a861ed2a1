// A persistent session whose node was killed, reached on another node before the dead node is
// reaped: what other nodes had sent the dead node and it had not stored (its stream past its
// read mark, including what came while it was dead) reaches the session once, with what the new
// node kept meanwhile, the first arrivals in the order published. Real processes, redis-server.
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";
import { TestClient } from "../_helpers/test_client.ts";
import { assertDelivered } from "./_arrivals.ts";
import { Inbox, Node, routeReady, until } from "./_nodes.ts";
import { Publisher } from "./_publisher.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: QoS 1 messages acknowledged on a third node while a subscriber's node is dead but not reaped, and after the subscriber reached another node, all reach it; those published after the death once [MQTT-4.3.2-1] [MQTT-4.6.0-6]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    // A is found dead only 3 s after its last heartbeat: the client reaches B well before. B and
    // C are found dead only after 30 s: B replays thousands of messages in one turn, which on a
    // loaded machine may block it longer than 3 s, and a live node taken for dead is another
    // story. The session's queue holds all that is published while its client is away.
    const options = { prefix: "do1:", yaml: ["max_queued_messages: 100000"] };
    await using a = await Node.start(redis, { nodeId: "a", nodeTimeout: 3, ...options });
    await using b = await Node.start(redis, { nodeId: "b", ...options });
    await using c = await Node.start(redis, { nodeId: "c", ...options });
    const seen: string[] = [];
    let inbox: Inbox | undefined = await Inbox.connect(a, "mover", { cleanSession: false });
    try {
      assert.deepEqual(await inbox.client.subscribe([{ topic: "do/#", qos: 1 }]), [1]);
      await using pub = await Inbox.connect(c, "pub-c");
      await routeReady(pub.client, inbox, "do/probe");
      // Disposed before `pub`: no publish left pending when its connection closes.
      await using publisher = new Publisher(pub.client, "do/x");
      await until(publisher.reached(20), "messages published before the death");
      await a.crash();
      // Every message numbered from here on was published after A died: A never delivered it.
      const afterDeath = publisher.sent;
      await inbox[Symbol.asyncDispose]();
      seen.push(...inbox.on("do/x").map((m) => m.payload));
      inbox = undefined;
      // Published while the client is away and A is dead (C still sends A's stream its share).
      await until(publisher.reached(afterDeath + 20), "messages published while A is dead");
      const moved = inbox = await Inbox.connect(b, "mover", { cleanSession: false });
      await until(publisher.reached(publisher.sent + 20), "messages published after the move");
      await publisher.stop();
      const acked = publisher.sent;
      await until(
        () => moved.on("do/x").some((m) => m.payload === String(acked - 1)),
        "the last message",
      );
      const later = moved.on("do/x").map((m) => m.payload);
      seen.push(...later);
      assertDelivered(seen, acked, { ordered: true });
      const twice = later.map(Number).filter((n, i, all) =>
        n >= afterDeath && all.indexOf(n) !== i
      );
      assert.deepEqual(twice, [], "messages published after the death delivered twice");
      assert.match(b.log(), /session of mover loaded from the shared store \(was on node a\)/);
    } finally {
      await inbox?.[Symbol.asyncDispose]();
    }
  },
);

Deno.test(
  "cluster: a subscriber's node killed in the middle of handing its session over (after storing messages the new node kept too) makes the new node deliver each acknowledged message once [MQTT-4.3.2-1]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const yaml = ["max_queued_messages: 100000"];
    // A is found dead 2 s after its death; B and C wait longer than that for a handoff; D, stopped
    // below, stays registered meanwhile, so that A's fence waits for its answer (1 s) while A goes
    // on reading, storing and trimming what C sends it, which B keeps too.
    await using a = await Node.start(redis, { nodeId: "a", prefix: "do2:", nodeTimeout: 2, yaml });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "do2:", nodeTimeout: 10, yaml });
    await using c = await Node.start(redis, { nodeId: "c", prefix: "do2:", nodeTimeout: 10, yaml });
    await using d = await Node.start(redis, { nodeId: "d", prefix: "do2:", yaml });
    // The first connection reads nothing: what A sends it stays unacknowledged, in A's store.
    const old = await TestClient.connect(a.port, { clientId: "mover", clean: false });
    let inbox: Inbox | undefined;
    try {
      await old.subscribe({ "dm/#": 1 });
      await using pub = await Inbox.connect(c, "pub-c");
      // Disposed before `pub`: no publish left pending when its connection closes.
      await using publisher = new Publisher(pub.client, "dm/x");
      await until(publisher.reached(50), "messages published to A's subscriber");
      d.process.kill("SIGSTOP");
      try {
        const moving = Inbox.connect(b, "mover", { cleanSession: false });
        // A now waits for D's fence answer, storing what it reads.
        await new Promise((resolve) => setTimeout(resolve, 500));
        await a.crash();
        inbox = await moving;
      } finally {
        d.process.kill("SIGCONT");
      }
      await until(publisher.reached(publisher.sent + 50), "messages published after the move");
      await publisher.stop();
      const acked = publisher.sent;
      await until(
        () => inbox!.on("dm/x").some((m) => m.payload === String(acked - 1)),
        "the last message",
      );
      const got = inbox.on("dm/x").map((m) => Number(m.payload));
      assertDelivered(got, acked);
      const twice = got.filter((n, i) => got.indexOf(n) !== i);
      assert.deepEqual(twice, [], "messages delivered twice");
    } finally {
      await inbox?.[Symbol.asyncDispose]();
      await old.close();
    }
  },
);

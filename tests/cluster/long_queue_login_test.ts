// A login resuming a session whose queue takes many parts to read (100,000 queued deliveries:
// some 25 parts of `READ_PART_ENTRIES`, read in place one call at a time) on a node whose
// store connection is slow: the read as a whole takes longer than the login's bound on a Redis
// answer (`LOGIN_WAIT_MS`, 4 s), each part well within it. Bounded as a whole, the login was
// refused as server busy on every try, the client never resuming its session; bounded part by
// part (a read making progress is not stuck), it is accepted with Session Present 1
// [MQTT-3.2.2-2] and gets every queued message of its topic, in the order published
// [MQTT-4.6.0-6].
// Real processes and redis-server (a TCP proxy slowing the reading node's replies).
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";
import { delay } from "../_helpers/broker.ts";
import { MQTTClient } from "../../client.ts";
import type { ApplicationMessage } from "../../client.ts";
import { Inbox, Node, ownedBy, UNBOUNDED_QUEUE, until } from "./_nodes.ts";
import { StallProxy } from "./_stall_proxy.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/** Queued deliveries: the size the brief names (`max_queued_messages` raised that far). */
const COUNT = 100_000;
/**
 * The reading node's store replies from its first part of entries on, bytes per second: the read
 * as a whole takes well past the 4 s bound (about 12 s here; refused at 4 s without the bound per
 * part), each part (entries and their messages) a fraction of a second.
 */
const RATE = 8 * 1024 * 1024;

Deno.test(
  "cluster: a login resuming a 100,000-message queue read in parts slower than the login bound is accepted with its session and every message in order [MQTT-3.2.2-2] [MQTT-4.6.0-6]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    const options = { prefix: "lq:", yaml: [UNBOUNDED_QUEUE] };
    await using a = await Node.start(redis, { ...options, nodeId: "a" });
    await using b = await Node.start(proxy, { ...options, nodeId: "b" });
    {
      await using long = await Inbox.connect(a, "long", { cleanSession: false });
      assert.deepEqual(await long.client.subscribe([{ topic: "long/#", qos: 1 }]), [1]);
    }
    {
      // Acknowledged, so stored (queued for the offline session) on A.
      await using publisher = await Inbox.connect(a, "pub");
      for (let i = 0; i < COUNT; i += 1000) {
        const batch = [];
        for (let j = i; j < Math.min(COUNT, i + 1000); j++) {
          batch.push(publisher.client.publish("long/q", String(j), { qos: 1 }));
        }
        await Promise.all(batch);
      }
    }
    // B's login claims the session from A, waits for its handoff and reads it: its entries
    // (past one part) in place, a part at a time (`READ_ENTRIES_SCRIPT`, naming the session's
    // `store:out:long`, which no earlier command on that connection names).
    const slowed = proxy.throttleRepliesFrom("lq:store:out:long", RATE);
    const client = new MQTTClient({ clientId: "long", config: { auto_reconnect: false } });
    await using _client = client;
    const messages: ApplicationMessage[] = [];
    let reading: Promise<void> | undefined;
    try {
      const connack = await client.connect(b.url, { cleanSession: false });
      reading = (async () => {
        for await (const m of client.messages()) messages.push(m);
      })().catch(() => {});
      assert.equal(connack.sessionPresent, true, "Session Present 1 [MQTT-3.2.2-2]");
      await slowed.reached;
      await ownedBy(redis, "lq:", "long", "b");
      // A guard against a stuck delivery, not a speed requirement: 100,000 QoS 1 deliveries
      // take a while on a busy machine, so the wait goes on while messages arrive.
      for (let seen = -1; messages.length < COUNT && messages.length > seen;) {
        seen = messages.length;
        await until(() => messages.length >= COUNT || messages.length > seen, "the next message");
      }
      slowed.release();
      // Nothing more comes.
      await delay(200);
      assert.equal(messages.length, COUNT, "every message once");
      messages.forEach((m, i) => {
        assert.equal(m.topic, "long/q");
        assert.equal(new TextDecoder().decode(m.payload), String(i), `message ${i} in order`);
      });
      assert.ok(client.connected);
      assert.match(b.log(), /Cluster: session of long loaded from the shared store/);
    } finally {
      slowed.release();
      if (client.connected) await client.disconnect().catch(() => {});
      await reading;
    }
  },
);

// A QoS 1 message acknowledged to its publisher and read by the node of a persistent subscriber,
// whose delivery there waits on a receive authorization when that node dies, reaches the
// subscriber through the node that adopts its session: the dead node's read mark does not pass
// a delivery that is in memory only. Real processes (the dying node runs a plugin whose receive
// authorization for `held/` never answers) and redis-server.
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";
import { Redis } from "ioredis";
import { adopted, Inbox, Node, routeReady, until } from "./_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
const PREFIX = "hr1:";

/** A persistent session's queue in the shared store, read from Redis. */
class StoreView implements AsyncDisposable {
  readonly #redis: Redis;
  private constructor(redis: Redis) {
    this.#redis = redis;
  }

  static async open(server: RedisServer): Promise<StoreView> {
    const redis = new Redis({ host: "127.0.0.1", port: server.port, lazyConnect: true });
    await redis.connect();
    return new StoreView(redis);
  }

  /** Waits until `n` messages are queued for `other`; fails after 30 s (a guard). */
  async until(n: number): Promise<void> {
    for (let i = 0; i < 1500; i++) {
      if (await this.#redis.hlen(`${PREFIX}store:out:other`) >= n) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error(`Timed out waiting for ${n} messages stored for the subscriber`);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#redis.quit();
  }
}

Deno.test(
  "cluster: a QoS 1 delivery waiting on a receive authorization when its node dies reaches the persistent subscriber through the adopting node [MQTT-4.3.2-1]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const x = await Node.start(redis, {
      nodeId: "x",
      prefix: PREFIX,
      program: "../tests/cluster/_held_receive_node.ts",
      nodeTimeout: 1,
    });
    let crashed = false;
    try {
      await using c = await Node.start(redis, { nodeId: "c", prefix: PREFIX });
      await using d = await Node.start(redis, { nodeId: "d", prefix: PREFIX });
      // Two persistent sessions, away: `sub` gets held/1, `other` what X stores meanwhile.
      for (const [clientId, topic] of [["sub", "held/#"], ["other", "free/#"]]) {
        await using client = await Inbox.connect(x, clientId!, { cleanSession: false });
        assert.deepEqual(await client.client.subscribe([{ topic: topic!, qos: 1 }]), [1]);
      }
      await using probe = await Inbox.connect(x, "probe");
      assert.deepEqual(await probe.client.subscribe([{ topic: "free/#", qos: 1 }]), [1]);
      await using onC = await Inbox.connect(c, "pub");
      await routeReady(onC.client, probe, "free/probe");
      // X marks in the store how far it read its stream when it stored something since its last
      // mark (written after what it stored of that read, in the same or the next atomic write).
      // held/1 is read and waits on its authorization (which would deny it after the plugin
      // host's timeout of 10 s); the read of free/2 marks the stream past held/1 unless the mark
      // is held back; free/3 stored: that mark is written.
      await using store = await StoreView.open(redis);
      for (const topic of ["free/1", "held/1", "free/2", "free/3"]) {
        await onC.client.publish(topic, topic, { qos: 1 });
        if (topic === "held/1") continue;
        await until(() => probe.on(topic).length > 0, `X to read ${topic}`);
        await store.until(Number(topic.slice(5)));
      }
      await x.crash();
      crashed = true;
      await until(
        () => adopted(c.log() + d.log(), "sub"),
        "the adoption of the session",
      );
      await using back = await Inbox.connect(c, "sub", { cleanSession: false });
      await until(
        () => back.on("held/1").length > 0,
        "held/1",
      );
      assert.deepEqual(back.on("held/1").map((m) => m.payload), ["held/1"]);
    } finally {
      if (!crashed) await x.stop();
      await Deno.remove(x.config).catch(() => {});
    }
  },
);

// A publisher's QoS 1/2 reply on a cluster node waits until Redis has acknowledged the forwards of
// its message to the other nodes: ForwardAcks alone, the bus's gate on a real redis-server paused
// for writes (CLIENT PAUSE WRITE), and a broker's PUBACK held by it. QoS 0 waits for nothing, and
// nothing waits while Redis is away.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { ForwardAcks } from "../../src/cluster/forward_acks.ts";
import type { MessageRecord } from "../../src/store/message_record.ts";
import { Broker } from "../../broker.ts";
import { MQTTClient } from "../../client.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { delay } from "../_helpers/broker.ts";
import { collect, startBus, until } from "./_bus_helpers.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

function msg(topic: string, qos: 0 | 1 | 2): MessageRecord {
  return { topic, payload: new TextEncoder().encode(topic), qos, retain: false };
}

/** Whether `promise` has settled, seen from the next turns. */
function watch(promise: Promise<unknown> | undefined): { settled: boolean } {
  const state = { settled: promise === undefined };
  promise?.then(() => state.settled = true);
  return state;
}

/** A connection of the test's own to `server`, for CLIENT PAUSE / UNPAUSE. */
async function control(server: RedisServer): Promise<Redis> {
  const redis = new Redis(server.url, { lazyConnect: true });
  await redis.connect();
  return redis;
}

Deno.test("ForwardAcks resolves each wait once the flush covering it is settled, in order", async () => {
  const acks = new ForwardAcks();
  assert.equal(acks.acknowledged(0), undefined);
  acks.queued();
  const first = acks.acknowledged(0);
  assert.ok(first !== undefined);
  // Two connections asking for the same mark share one wait.
  assert.equal(acks.acknowledged(0), first);
  const mark = acks.emitted;
  acks.queued();
  const second = watch(acks.acknowledged(0));
  // A connection whose mark is past everything queued waits for nothing.
  assert.equal(acks.acknowledged(acks.emitted), undefined);
  acks.settle(mark);
  await first;
  await delay(0);
  assert.equal(second.settled, false);
  acks.release();
  await delay(0);
  assert.equal(second.settled, true);
  assert.equal(acks.acknowledged(0), undefined);
});

Deno.test(
  "ClusterBus.forwards: a QoS 1/2 forward is waited for until Redis answers its XADD; QoS 0 is not counted",
  opts,
  async () => {
    await using server = await RedisServer.start();
    await using a = await startBus(server, "a");
    await using b = await startBus(server, "b");
    const atB = collect(b, "message");
    await b.addInterest("f/#");
    await until(() => a.wants("f/x"));
    const pause = await control(server);
    try {
      const before = a.forwards.emitted;
      assert.equal(a.publish(msg("f/zero", 0)), 1);
      assert.equal(a.forwards.emitted, before, "QoS 0 is not counted");
      assert.equal(a.forwards.acknowledged(before), undefined);
      // Not forwarded (no node wants it): not counted either.
      assert.equal(a.publish(msg("nobody/x", 1)), 0);
      assert.equal(a.forwards.emitted, before);

      await pause.call("CLIENT", "PAUSE", "60000", "WRITE");
      assert.equal(a.publish(msg("f/one", 1)), 1);
      assert.equal(a.publish(msg("f/two", 2)), 1);
      const waiting = watch(a.forwards.acknowledged(before));
      assert.equal(waiting.settled, false);
      await delay(300); // a lower bound on the hold, not a speed assertion
      assert.equal(waiting.settled, false, "acknowledged while Redis executed no write");
      await pause.call("CLIENT", "UNPAUSE");
      await until(() => waiting.settled);
      // Acknowledged means in B's stream: B reads it.
      await until(() => atB.some((f) => f.message.topic === "f/two"));
      assert.deepEqual(
        atB.map((f) => f.message.topic).filter((t) => t !== "f/zero"),
        ["f/one", "f/two"],
      );
    } finally {
      await pause.call("CLIENT", "UNPAUSE").catch(() => {});
      pause.disconnect();
    }
  },
);

Deno.test(
  "ClusterBus.forwards: a wait ends when Redis is lost (the forward stays queued), and nothing waits while it is away",
  opts,
  async () => {
    await using server = await RedisServer.start();
    await using a = await startBus(server, "a");
    await using b = await startBus(server, "b");
    await b.addInterest("f/#");
    await until(() => a.wants("f/x"));
    const pause = await control(server);
    await pause.call("CLIENT", "PAUSE", "60000", "WRITE");
    pause.disconnect();
    const before = a.forwards.emitted;
    assert.equal(a.publish(msg("f/held", 1)), 1);
    const waiting = watch(a.forwards.acknowledged(before));
    await delay(100);
    assert.equal(waiting.settled, false);
    await server.stop();
    await until(() => waiting.settled);
    // The XADDs travel on a connection of their own: its loss may end the wait a moment before
    // the command connection's loss makes the node not ready.
    await until(() => !a.ready);
    // While Redis is away a QoS 1 forward is queued (bounded) but no reply waits for it.
    const mark = a.forwards.emitted;
    assert.equal(a.publish(msg("f/away", 1)), 1);
    assert.equal(a.forwards.acknowledged(mark), undefined);
    await server.resume();
    await until(() => a.ready && b.ready);
  },
);

Deno.test(
  "Broker on a cluster node: a publisher's PUBACK is held until Redis acknowledged the forward to the interested node",
  opts,
  async () => {
    await using server = await RedisServer.start();
    await using b = await startBus(server, "b", { prefix: "gate:" });
    const atB = collect(b, "message");
    await b.addInterest("g/#");
    const quiet = { debug() {}, info() {}, warning() {}, error() {} };
    const broker = new Broker({
      listeners: { default: { bind: "127.0.0.1:0" } },
      cluster: { redis: [server.url], node_id: "a", key_prefix: "gate:" },
    }, { logger: quiet });
    await broker.start();
    const client = new MQTTClient({ clientId: "pub", config: { auto_reconnect: false } });
    const pause = await control(server);
    try {
      await client.connect(`mqtt://127.0.0.1:${broker.listeners[0]!.port}`);
      // The broker learns of B's interest a moment after it was announced.
      for (let i = 0; i < 600 && !atB.some((f) => f.message.topic === "g/probe"); i++) {
        await client.publish("g/probe", "probe", { qos: 0 });
        await delay(50);
      }
      assert.ok(atB.some((f) => f.message.topic === "g/probe"));

      await pause.call("CLIENT", "PAUSE", "60000", "WRITE");
      const puback = watch(client.publish("g/held", "held", { qos: 1 }));
      const pubcomp = watch(client.publish("g/held2", "held too", { qos: 2 }));
      await delay(300); // a lower bound on the hold, not a speed assertion
      assert.equal(puback.settled, false, "PUBACK before Redis took the forward");
      assert.equal(pubcomp.settled, false, "PUBREC before Redis took the forward");
      // A QoS 0 publish and a PINGRESP on another client are not held by them.
      await using other = new MQTTClient({ clientId: "other", config: { auto_reconnect: false } });
      await other.connect(`mqtt://127.0.0.1:${broker.listeners[0]!.port}`);
      await other.publish("g/zero", "zero", { qos: 0 });
      await other.ping();
      await other.disconnect();
      await pause.call("CLIENT", "UNPAUSE");
      await until(() => puback.settled && pubcomp.settled);
      await until(() => atB.some((f) => f.message.topic === "g/held2"));
    } finally {
      await pause.call("CLIENT", "UNPAUSE").catch(() => {});
      pause.disconnect();
      if (client.connected) await client.disconnect();
      await client[Symbol.asyncDispose]();
      await broker.shutdown();
    }
  },
);

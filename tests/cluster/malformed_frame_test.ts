// A node refuses malformed bus frames and retained records written straight into Redis (as a
// buggy node, another release or a hand-edited key would): each is counted and logged, none
// reaches the core or a client, and the node keeps serving its clients and the cluster.
// Real processes, redis-server, our clients.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { Buffer } from "node:buffer";
import { type BusFrame, encodeFrame } from "../../src/cluster/bus_frame.ts";
import { ByteWriter, encodeMessage } from "../../src/store/record_codec.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { Inbox, Node, received, retainedTopics, routeReady, until } from "./_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

function refusals(log: string): number {
  return log.match(/Cluster: refused a malformed/g)?.length ?? 0;
}

Deno.test(
  "cluster: malformed bus frames and retained records are refused, logged and counted; the node keeps serving [MQTT-3.3.2-2] [MQTT-4.7.3-1]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      // Retained records in Redis that B reads as it starts: a wildcard topic, and bytes that
      // are no record.
      await admin.hset(
        "mf1:retained",
        "x/+",
        Buffer.from(encodeMessage({
          topic: "x/+",
          payload: new Uint8Array([1]),
          qos: 0,
          retain: true,
        })),
        "x/y",
        Buffer.from([3]),
      );
      await using a = await Node.start(redis, {
        nodeId: "a",
        prefix: "mf1:",
        yaml: ["sys_interval: 0.2"],
      });
      await using b = await Node.start(redis, { nodeId: "b", prefix: "mf1:" });
      await until(() => refusals(b.log()) >= 2, "B refusing the two retained records");
      assert.match(b.log(), /malformed retained record "x\/\+" \(Topic name contains wildcard/);

      await using sub = await Inbox.connect(a, "sub");
      assert.deepEqual(
        await sub.client.subscribe([{ topic: "t/#", qos: 1 }, { topic: "a/#", qos: 1 }]),
        [1, 1],
      );
      await using pub = await Inbox.connect(b, "pub");
      await routeReady(pub.client, sub, "t/ready");

      const message = (topic: string, properties?: unknown): BusFrame => ({
        type: "message",
        origin: "b",
        publisher: "pub",
        seq: 1_000_000,
        message: {
          topic,
          payload: new TextEncoder().encode("bad"),
          qos: 1,
          retain: false,
          ...(properties === undefined ? {} : { properties: properties as never }),
        },
      });
      const frame = (f: BusFrame) => Buffer.from(encodeFrame(f));
      const head = encodeFrame({ type: "emptied", origin: "b" });
      const subscribedType = encodeFrame({
        type: "subscribed",
        origin: "b",
        clientId: "sub",
        subscriptions: [],
      })[1]!;
      // A subscribed frame whose filter the subscription tree throws on.
      const subscribed = Buffer.from(
        new ByteWriter().u8(head[0]!).u8(subscribedType).text("b").text("sub")
          .text('[{"topic":"a/#/b","qos":1}]').finish(),
      );
      // On A's channel, in A's stream and on the control channel every node hears.
      await admin.publish("mf1:to:a", frame(message("a/+")));
      await admin.xadd("mf1:s:a", "*", "f", frame(message("a/x", { userProperties: 5 })));
      await admin.publish("mf1:to:a", subscribed);
      await admin.publish(
        "mf1:to:a",
        frame({ type: "handoff", origin: "b", clientId: "sub", marks: { b: NaN } }),
      );
      await admin.publish("mf1:ctl", frame({ type: "retained", origin: "b", topic: "a/#" }));
      await admin.publish(
        "mf1:ctl",
        frame({ type: "members", origin: "b", filter: "a/b", count: 3 }),
      );
      await admin.publish("mf1:ctl", Buffer.from([5, 0, 1]));
      await until(() => refusals(a.log()) >= 7, "A refusing the seven frames");
      const log = a.log();
      assert.match(log, /malformed frame on mf1:to:a \(Cannot decode bus frame: message: Topic/);
      assert.match(log, /malformed frame on mf1:to:a \(Cannot decode bus frame: message: bad user/);
      assert.match(log, /malformed frame on mf1:ctl \(Cannot decode bus frame: members/);
      assert.match(log, /malformed subscriptions/);
      assert.match(log, /handoff mark/);
      assert.match(log, /retained topic/);
      assert.doesNotMatch(log, /ERROR/);
      // Counted: the two retained records A read as it started, and the seven frames.
      await using watcher = await Inbox.connect(a, "watcher");
      await watcher.client.subscribe([["$SYS/broker/cluster/node/malformed", 0]]);
      const count = () => watcher.on("$SYS/broker/cluster/node/malformed").at(-1)?.payload;
      await until(() => count() === "9", "A's malformed count");

      // A serves on: its client gets what B's client publishes and what it publishes itself.
      await pub.client.publish("t/after", "from b", { qos: 1 });
      await sub.client.publish("t/self", "from a", { qos: 1 });
      await until(
        () => received(sub, "t/after").length > 0 && received(sub, "t/self").length > 0,
        "the messages after the bad frames",
      );
      assert.deepEqual(received(sub, "t/after"), ["from b@1"]);
      assert.deepEqual(received(sub, "t/self"), ["from a@1"]);
      // Nothing of the bad frames reached it, and its connection is open.
      assert.deepEqual(sub.messages.filter((m) => m.topic.startsWith("a/")), []);
      assert.ok(sub.client.connected);
      // No retained message came of them, on either node.
      assert.deepEqual(await retainedTopics(a, "ra", "#"), []);
      assert.deepEqual(await retainedTopics(b, "rb", "#"), []);
      assert.equal(await a.stop(), 0);
      assert.equal(await b.stop(), 0);
    } finally {
      admin.disconnect();
    }
  },
);

Deno.test(
  "cluster: a login whose stored session rows cannot be read is refused as busy, saying so; the rows stay, the node serves on",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      {
        // Two sessions stored by a node that left, alone: held by no node, in the store.
        await using a = await Node.start(redis, { nodeId: "a", prefix: "mf2:" });
        for (const id of ["v1", "v2"]) {
          await using v = await Inbox.connect(a, id, { cleanSession: false });
          assert.deepEqual(await v.client.subscribe([{ topic: "v/#", qos: 1 }]), [1]);
          await v.client.disconnect();
        }
        assert.equal(await a.stop(), 0);
      }
      // A subscription row whose filter the subscription tree refuses; a session row that is
      // not JSON.
      await admin.hset("mf2:store:sub:v1", "v/#", '{"filter":"v/#/x","qos":1}');
      await admin.hset("mf2:store:sessions", "v2", "{bad");
      const rows = async () => [
        await admin.hget("mf2:store:sub:v1", "v/#"),
        await admin.hget("mf2:store:sessions", "v2"),
      ];
      const before = await rows();
      await using b = await Node.start(redis, { nodeId: "b", prefix: "mf2:" });
      for (const id of ["v1", "v2"]) {
        await assert.rejects(
          Inbox.connect(b, id, { cleanSession: false }),
          /refused the connection \(return code 0x03\)/,
        );
      }
      const log = b.log();
      // Found by the adoption of the sessions no node had, once, not tried again and again.
      assert.match(
        log,
        /ERROR - Cluster: the stored session of v1 cannot be read \(Cannot read the stored session: subscription "v\/#\/x": Topic filter/,
      );
      assert.match(log, /ERROR - Cluster: the stored session of v2 cannot be read \(.*JSON/);
      assert.doesNotMatch(log, /adoption of the session of v\d ran again/);
      assert.match(log, /cannot load the stored session of v1 \(Cannot read the stored session/);
      assert.match(
        log,
        /Refused client "v1" .*session not loaded: its stored session cannot be read/,
      );
      assert.match(log, /cannot load the stored session of v2 \(.*JSON/);
      assert.match(
        log,
        /Refused client "v2" .*session not loaded: its stored session cannot be read/,
      );
      assert.deepEqual(await rows(), before);
      // B serves its other clients.
      await using sub = await Inbox.connect(b, "sub");
      assert.deepEqual(await sub.client.subscribe([{ topic: "t/#", qos: 1 }]), [1]);
      await sub.client.publish("t/1", "on", { qos: 1 });
      await until(() => received(sub, "t/1").length > 0, "B delivering");
      assert.deepEqual(received(sub, "t/1"), ["on@1"]);
      assert.ok(sub.client.connected);
    } finally {
      admin.disconnect();
    }
  },
);

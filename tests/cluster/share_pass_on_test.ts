// A message passed on for a shared group to a node whose members of the group also just left
// (the passing node's view lagged): that node passes it on again to a node with members, at once
// up to MAX_PASSES passes, then a heartbeat later each (still reaching a member), and one past
// MAX_HOPS passes is dropped, counted and said in the log, never dropped silently. The
// passing node is the test itself, writing the frame a lagging node writes into the receiving
// node's stream, and the count of passes made so far (`P hops:…`) as the passing nodes' script
// leaves it; the nodes are real processes on a redis-server.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { encodeFrame, type MessageFrame } from "../../src/cluster/bus_frame.ts";
import { MAX_HOPS, MAX_PASSES } from "../../src/cluster/cluster_bus.ts";
import { Inbox, Node, until } from "./_nodes.ts";
import { startBus } from "./_bus_helpers.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
const SHARE = "$share/g/s/#";
const PREFIX = "spo1:";

/** Payloads of the messages `inbox` got on `topic`. */
const payloads = (inbox: Inbox, topic: string) => inbox.on(topic).map((m) => m.payload);

/**
 * Writes into C's stream a QoS 1 message for the group as a lagging node passes it on, after
 * `passes` passes of it in all.
 */
async function passOn(redis: Redis, body: string, seq: number, passes: number): Promise<void> {
  await redis.set(`${PREFIX}hops:p pub ${seq} 0 ${SHARE}`, passes);
  await redis.xadd(`${PREFIX}s:c`, "*", "f", Buffer.from(passedOn(body, seq)));
}

/** A QoS 1 message for the group, passed on (as a lagging node sends it). */
function passedOn(body: string, seq: number): Uint8Array {
  const frame: MessageFrame = {
    type: "message",
    origin: "p",
    publisher: "pub",
    seq,
    shares: [SHARE],
    only: true,
    message: {
      topic: "s/x",
      payload: new TextEncoder().encode(body),
      qos: 1,
      retain: false,
    },
  };
  return encodeFrame(frame);
}

Deno.test(
  "cluster: a message passed on for a shared group to a node whose members also left goes on to a node with members, for that group only, past MAX_PASSES too; past MAX_HOPS it is counted and logged as reaching no member (MQTT 5.0 §4.8.2)",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using c = await Node.start(redis, {
      nodeId: "c",
      prefix: PREFIX,
      yaml: ["sys_interval: 0.2"],
    });
    await using d = await Node.start(redis, { nodeId: "d", prefix: PREFIX });
    // The test's own node, to see when the others know who has members of the group.
    await using p = await startBus(redis, "p", { prefix: PREFIX, livenessTtl: 60_000 });
    await using memberC = await Inbox.connect(c, "member-c");
    await using memberD = await Inbox.connect(d, "member-d");
    await using plainC = await Inbox.connect(c, "plain-c");
    await using plainD = await Inbox.connect(d, "plain-d");
    assert.deepEqual(await memberC.client.subscribe([[SHARE, 1]]), [1]);
    assert.deepEqual(await memberD.client.subscribe([[SHARE, 1]]), [1]);
    assert.deepEqual(await plainC.client.subscribe([["s/#", 1]]), [1]);
    assert.deepEqual(await plainD.client.subscribe([["s/#", 1]]), [1]);
    const chosen = () => {
      const seen = new Set<string>();
      for (let i = 0; i < 4; i++) for (const n of p.chooseShares("s/x")?.keys() ?? []) seen.add(n);
      return [...seen].sort().join(",");
    };
    await until(() => chosen() === "c,d", "both nodes in the group");
    // C's member leaves; C (and, by the same announcements, P) knows that only D has members.
    await memberC.client.unsubscribe([SHARE]);
    await until(() => chosen() === "d", "only D in the group");

    const xadd = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
    await xadd.connect();
    try {
      // A node that did not know C's member had left passed a message on to C.
      await passOn(xadd, "again", 1, 1);
      await until(() => payloads(memberD, "s/x").includes("again"), "member D to get it");
      // One passed on as often as passes go at once still reaches a member: C keeps it for the
      // group and passes it on at its next heartbeat.
      await passOn(xadd, "bounded", 2, MAX_PASSES);
      await until(() => payloads(memberD, "s/x").includes("bounded"), "member D to get it");
      // One passed on as often as it may be is dropped at C: counted, and said in C's log.
      await passOn(xadd, "dropped", 3, MAX_HOPS);
      await until(
        () => /message to s\/x reached no member of \$share\/g\/s\/#/.test(c.log()),
        "C to say it reached no member",
      );
    } finally {
      xadd.disconnect();
    }
    // Published after it on C: what C routed before has reached D's members by then.
    await plainC.client.publish("s/x", "next", { qos: 1 });
    await until(() => payloads(plainD, "s/x").includes("next"), "the next message on D");
    await until(() => payloads(memberD, "s/x").includes("next"), "the next message to the group");
    assert.deepEqual(payloads(memberD, "s/x"), ["again", "bounded", "next"]);
    // C's drop counter says so too.
    await plainC.client.subscribe([["$SYS/broker/publish/messages/dropped/no-share-member", 0]]);
    const topic = "$SYS/broker/publish/messages/dropped/no-share-member";
    await until(() => payloads(plainC, topic).includes("1"), "C's counter");
    // For the group only: the plain subscribers got only what was published.
    assert.deepEqual(payloads(plainC, "s/x"), ["next"]);
    assert.deepEqual(payloads(plainD, "s/x"), ["next"]);
    assert.deepEqual(payloads(memberC, "s/x"), []);
    assert.ok(memberC.client.connected && memberD.client.connected);
  },
);

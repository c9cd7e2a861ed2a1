// A message for a shared group sent to a node with no member of the group left (chosen by a node
// that had not heard its members leave, or passed on to it by one) is passed on to a node with
// members. Its publisher was acknowledged once the message was in that node's stream: if the node
// dies before passing it on, the node that reaps it (or, when it restarts at once under its id,
// the first other node) passes it on instead, and what the dead node
// had passed on already is not passed on twice. One that finds no member anywhere waits in the
// node's stream (not trimmed) for one to come, even after the node died; a node that stops with
// such a message counts it as dropped and logs it. The lagging nodes are the test itself, writing
// the frames they write into the node's stream; the nodes are real processes on a redis-server,
// one killed with SIGKILL.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { encodeFrame, type MessageFrame } from "../../src/cluster/bus_frame.ts";
import { Inbox, Node, until } from "./_nodes.ts";
import { startBus } from "./_bus_helpers.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
const SHARE = "$share/g/s/#";
const PREFIX = "spd1:";

/** Payloads of the messages `inbox` got on `topic`. */
const payloads = (inbox: Inbox, topic: string) => inbox.on(topic).map((m) => m.payload);

/**
 * A QoS 1 message for the group as a lagging node sends it: chosen for the group, or passed on
 * (`only`).
 */
function sentFor(body: string, seq: number, only: boolean): Uint8Array {
  const frame: MessageFrame = {
    type: "message",
    origin: "p",
    publisher: "pub",
    seq,
    order: seq,
    shares: [SHARE],
    message: { topic: "s/x", payload: new TextEncoder().encode(body), qos: 1, retain: false },
  };
  if (only) frame.only = true;
  return encodeFrame(frame);
}

Deno.test(
  "cluster: a shared-group message in the stream of a node with no member of the group left reaches a member once, though that node dies before passing it on (MQTT 5.0 §4.8.2)",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using b = await Node.start(redis, { nodeId: "b", prefix: PREFIX, nodeTimeout: 1 });
    await using c = await Node.start(redis, { nodeId: "c", prefix: PREFIX });
    // The test's own node, to see when the others know who has members of the group.
    await using p = await startBus(redis, "p", { prefix: PREFIX, livenessTtl: 60_000 });
    await using memberB = await Inbox.connect(b, "member-b");
    await using memberC = await Inbox.connect(c, "member-c");
    assert.deepEqual(await memberB.client.subscribe([[SHARE, 1]]), [1]);
    assert.deepEqual(await memberC.client.subscribe([[SHARE, 1]]), [1]);
    const chosen = () => {
      const seen = new Set<string>();
      for (let i = 0; i < 4; i++) for (const n of p.chooseShares("s/x")?.keys() ?? []) seen.add(n);
      return [...seen].sort().join(",");
    };
    await until(() => chosen() === "b,c", "both nodes in the group");
    // B's member leaves; B (and, by the same announcements, P) knows that only C has members.
    await memberB.client.unsubscribe([SHARE]);
    await until(() => chosen() === "c", "only C in the group");

    const xadd = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
    await xadd.connect();
    try {
      // A node that had not heard B's member leave chose B: B, alive, passes it on to C. Its
      // entry stays the last of B's stream (a stream is trimmed up to its last entry read).
      await xadd.xadd(`${PREFIX}s:b`, "*", "f", Buffer.from(sentFor("passed by B", 1, false)));
      await until(() => payloads(memberC, "s/x").includes("passed by B"), "C's member to get it");
      await b.crash();
      // Acknowledged to its publisher once in B's stream; B is dead and never reads it. One
      // chosen for the group, one passed on to B by a node that lagged too.
      await xadd.xadd(`${PREFIX}s:b`, "*", "f", Buffer.from(sentFor("chosen B", 2, false)));
      await xadd.xadd(`${PREFIX}s:b`, "*", "f", Buffer.from(sentFor("passed to B", 3, true)));
    } finally {
      xadd.disconnect();
    }
    // C finds B dead and passes on what B's stream held for the group and B had not passed on.
    await until(
      () => payloads(memberC, "s/x").includes("passed to B"),
      "C's member to get what B could not pass on",
    );
    // Published after them on C: what C passed on before has been routed by then.
    await memberC.client.publish("s/x", "next", { qos: 1 });
    await until(() => payloads(memberC, "s/x").includes("next"), "the next message");
    assert.deepEqual(payloads(memberC, "s/x"), ["passed by B", "chosen B", "passed to B", "next"]);
    assert.ok(memberC.client.connected);
  },
);

/** A QoS 0 message for a topic nobody subscribes to: it only moves the reading node on. */
function nudge(seq: number): Uint8Array {
  return encodeFrame({
    type: "message",
    origin: "p",
    publisher: "nudge",
    seq,
    message: { topic: "n/x", payload: new Uint8Array(), qos: 0, retain: false },
  });
}

/**
 * Writes into a node's `stream` a shared-group message chosen by a node that lagged ("kept"), when
 * no node has a member of the group, so that the node keeps it; then entries after it until the
 * node trimmed what it read: up to the kept one, not past it (asserted).
 */
async function keptInStream(redis: RedisServer, stream: string): Promise<void> {
  const xadd = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
  await xadd.connect();
  try {
    const first = await xadd.xadd(stream, "*", "f", Buffer.from(nudge(1)));
    const held = await xadd.xadd(stream, "*", "f", Buffer.from(sentFor("kept", 2, false)));
    for (
      let seq = 3;
      (await xadd.xrange(stream, "-", "+", "COUNT", 1))[0]?.[0] === first;
      seq++
    ) {
      await xadd.xadd(stream, "*", "f", Buffer.from(nudge(seq)));
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    assert.equal((await xadd.xrange(stream, "-", "+", "COUNT", 1))[0]?.[0], held);
  } finally {
    xadd.disconnect();
  }
}

Deno.test(
  "cluster: a shared-group message a node read and could not pass on yet (no member anywhere) stays in its stream, and reaches the member that subscribes after the node died (MQTT 5.0 §4.8.2)",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using b = await Node.start(redis, { nodeId: "b", prefix: PREFIX + "2", nodeTimeout: 1 });
    await using c = await Node.start(redis, { nodeId: "c", prefix: PREFIX + "2" });
    await keptInStream(redis, `${PREFIX}2s:b`);
    await b.crash();
    // A member subscribes on C after B died: C, which reaps B, passes the message on to it.
    await using memberC = await Inbox.connect(c, "member-c");
    assert.deepEqual(await memberC.client.subscribe([[SHARE, 1]]), [1]);
    await until(() => payloads(memberC, "s/x").includes("kept"), "C's member to get it");
    await memberC.client.publish("s/x", "next", { qos: 1 });
    await until(() => payloads(memberC, "s/x").includes("next"), "the next message");
    assert.deepEqual(payloads(memberC, "s/x"), ["kept", "next"]);
    assert.ok(memberC.client.connected);
  },
);

Deno.test(
  "cluster: a node stopping while a shared-group message it read waits for a member counts it as dropped and says so in its log, never silently",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const b = await Node.start(redis, { nodeId: "b", prefix: PREFIX + "3" });
    try {
      await keptInStream(redis, `${PREFIX}3s:b`);
    } finally {
      assert.equal(await b.stop(), 0);
      await Deno.remove(b.config).catch(() => {});
    }
    assert.match(b.log(), /QoS 1 message to s\/x reached no member of \$share\/g\/s\/#/);
  },
);

Deno.test(
  "cluster: a shared-group message a killed node had read and not passed on reaches a member when the node restarts at once under its id (a worker restarted), before any node found it dead (MQTT 5.0 §4.8.2)",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    // Long node timeouts: nobody finds B dead before it is back.
    const node = { prefix: PREFIX + "4", nodeTimeout: 120 };
    await using c = await Node.start(redis, { nodeId: "c", ...node });
    let b = await Node.start(redis, { nodeId: "b", ...node });
    try {
      await keptInStream(redis, `${PREFIX}4s:b`);
      await b.crash();
      await Deno.remove(b.config).catch(() => {});
      await using memberC = await Inbox.connect(c, "member-c");
      assert.deepEqual(await memberC.client.subscribe([[SHARE, 1]]), [1]);
      // B back under its id: it retires its previous run, and C passes on what that run held.
      b = await Node.start(redis, { nodeId: "b", ...node });
      await until(() => payloads(memberC, "s/x").includes("kept"), "C's member to get it");
      await memberC.client.publish("s/x", "next", { qos: 1 });
      await until(() => payloads(memberC, "s/x").includes("next"), "the next message");
      assert.deepEqual(payloads(memberC, "s/x"), ["kept", "next"]);
      assert.ok(memberC.client.connected);
    } finally {
      await b[Symbol.asyncDispose]();
    }
  },
);

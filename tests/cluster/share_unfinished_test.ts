// What becomes of the QoS 1 messages a node had read for its clean shared-group members and not
// seen acknowledged when it dies: the node reading its stream keeps such an entry pending in
// Redis (its group `r`) until the member's PUBACK, and the node that reaps it passes the entry's
// QoS 1 messages on to a member elsewhere (MQTT 5.0 on shared subscriptions: a message whose
// chosen member's session ends before it acknowledged it SHOULD go to another member). A QoS 2
// message whose delivery began goes to no other member [MQTT-4.8.2-5]. Real processes on a
// redis-server, the dead node killed with SIGKILL; the publishing node is the test, writing
// frames into the dead node's stream as a node does.
import assert from "node:assert/strict";
import { delay, waitFor } from "../_helpers/broker.ts";
import { type TestClient, text } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { encodeFrame, FrameBatch } from "../../src/cluster/bus_frame.ts";
import { type Inbox, until } from "./_nodes.ts";
import {
  bothInGroup,
  byteMember,
  chosen,
  gotAlone,
  inboxMember,
  lastRead,
  payloads,
  type ShareNodes,
  startShareNodes,
  unfinished,
  untilUnfinished,
} from "./_share.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/**
 * Redis, node B (taken for dead 1 s after it dies) with a clean member of the group that never
 * acknowledges anything by itself (a byte-level client), node C with a clean member, and the bus
 * of the publishing node P; disposing it stops them all.
 */
interface Cluster extends ShareNodes {
  memberB: TestClient;
  memberC: Inbox;
}

async function start(prefix: string, qosB: 1 | 2): Promise<Cluster> {
  await using stack = new AsyncDisposableStack();
  const nodes = stack.use(await startShareNodes(prefix, { bTimeout: 1 }));
  const memberB = stack.use(await byteMember(nodes.b, "member-b", qosB));
  const memberC = stack.use(await inboxMember(nodes.c, "member-c", 1));
  await bothInGroup(nodes.p);
  const rest = stack.move();
  return { ...nodes, memberB, memberC, [Symbol.asyncDispose]: () => rest.disposeAsync() };
}

Deno.test(
  "cluster: a QoS 1 message a dead node delivered to a clean group member that never acknowledged it goes to a member on another node; one acknowledged does not",
  opts,
  async () => {
    await using cluster = await start("suf1:", 1);
    const { r, b, memberB, memberC, stream } = cluster;
    // Chosen for B: its member acknowledges it [MQTT-4.3.2-1]; Redis is told.
    await r.xadd(stream, "*", "f", Buffer.from(chosen("acknowledged", 1, 1)));
    const first = await memberB.expect(PacketType.PUBLISH);
    assert.equal(text(first), "acknowledged");
    await memberB.send({ type: PacketType.PUBACK, packetId: first.packetId! });
    await untilUnfinished(r, stream, 0, "the entry acknowledged");
    // Chosen for B again: its member has it and never acknowledges it; B dies meanwhile.
    await r.xadd(stream, "*", "f", Buffer.from(chosen("never acknowledged", 2, 1)));
    const second = await memberB.expect(PacketType.PUBLISH);
    assert.equal(text(second), "never acknowledged");
    await untilUnfinished(r, stream, 1, "the entry held");
    await b.crash();
    // The member's session ended with B before it acknowledged: C reaps B and the message goes
    // to C's member; the acknowledged one does not go again.
    await gotAlone(
      memberC,
      "never acknowledged",
      "C's member to get the message B's member never acknowledged",
    );
  },
);

Deno.test(
  "cluster: of one stream entry a dead node read for a clean group member that acknowledged neither, the QoS 1 message goes to a member on another node, the QoS 2 one whose delivery began does not [MQTT-4.8.2-5]",
  opts,
  async () => {
    await using cluster = await start("suf2:", 2);
    const { r, b, memberB, memberC, stream } = cluster;
    // One entry, two messages (as a node batches what it forwards in one turn).
    const batch = new FrameBatch();
    batch.add(chosen("QoS 2", 1, 2));
    batch.add(chosen("QoS 1", 2, 1));
    await r.xadd(stream, "*", "f", Buffer.from(batch.finish()));
    // B's member has both and answers neither (no PUBREC, no PUBACK).
    const got = [
      await memberB.expect(PacketType.PUBLISH),
      await memberB.expect(PacketType.PUBLISH),
    ];
    assert.deepEqual(got.map((p) => [text(p), p.qos]), [["QoS 2", 2], ["QoS 1", 1]]);
    await untilUnfinished(r, stream, 1, "the entry held");
    await b.crash();
    // In the order of B's stream: had the QoS 2 message been passed on, it would be here first.
    await gotAlone(memberC, "QoS 1", "C's member to get the QoS 1 message");
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

Deno.test(
  "cluster: a node passing on a shared-group message it had no member for keeps its stream entry pending in Redis until the pass is made, so that a rescue after its death would pass it on",
  opts,
  async () => {
    await using nodes = await startShareNodes("suf3:");
    const { r, stream } = nodes;
    const pending = async () =>
      (await r.xpending(stream, "r", "-", "+", 10) as [string][]).map(([id]) => id);
    // Chosen for B by a node that lagged, when no node has a member of the group: B passes it
    // on once one has, meanwhile its entry stays pending; the entry after it is acknowledged.
    const kept = await r.xadd(stream, "*", "f", Buffer.from(chosen("kept", 1, 1)));
    const after = await r.xadd(stream, "*", "f", Buffer.from(nudge(2)));
    await waitFor(
      async () => await lastRead(r, stream) === after && (await pending()).join() === kept,
      30_000,
      "B to have read both, only the entry being passed on pending",
    );
    // A member on C: B makes the pass, and acknowledges the entry.
    await using memberC = await inboxMember(nodes.c, "member-c", 1);
    await until(() => payloads(memberC).includes("kept"), "C's member");
    await waitFor(async () => (await pending()).length === 0, 30_000, "the entry acknowledged");
    assert.deepEqual(payloads(memberC), ["kept"]);
    assert.ok(memberC.client.connected);
  },
);

Deno.test(
  "cluster: a QoS 1 message a clean group member never acknowledged is no longer held in Redis once the member's session ended with its connection",
  opts,
  async () => {
    await using cluster = await start("suf4:", 1);
    const { r, memberB, memberC, stream } = cluster;
    await r.xadd(stream, "*", "f", Buffer.from(chosen("never acknowledged", 1, 1)));
    assert.equal(text(await memberB.expect(PacketType.PUBLISH)), "never acknowledged");
    await untilUnfinished(r, stream, 1, "the entry held");
    // The member leaves without acknowledging it: its clean session ends (the message goes to
    // another member on B if any, shared_redelivery.ts); B's sweep lets the entry go, so that
    // Redis keeps no pending entry for a session that is gone.
    await memberB.disconnect();
    await untilUnfinished(r, stream, 0, "the entry let go");
    assert.ok(memberC.client.connected);
  },
);

Deno.test(
  "cluster: an entry left pending in a node's group though the node holds it for no delivery (its XACK failed, or Redis went back to older data) is acknowledged at a heartbeat",
  opts,
  async () => {
    await using nodes = await startShareNodes("suf5:");
    const { r, stream } = nodes;
    const id = await r.xadd(stream, "*", "f", Buffer.from(nudge(1)));
    await waitFor(
      async () => await lastRead(r, stream) === id && await unfinished(r, stream) === 0,
      30_000,
      "B to have read and acknowledged the entry",
    );
    // Pending again, as after an XACK Redis lost (a rollback to a snapshot taken between the
    // read and the XACK) or one that failed: B holds it for nothing.
    // The claim and the count in one transaction: B's heartbeat (every 0.2 s) may acknowledge
    // the entry at any time after the claim, so a count read apart from it could find 0 on a
    // loaded machine, and one taken before the claim would say nothing about it.
    const replies = await r.multi().call("XCLAIM", stream, "r", "b", "0", id!, "FORCE")
      .xpending(stream, "r").exec();
    assert.ok(replies !== null);
    for (const [error] of replies) assert.equal(error, null);
    assert.deepEqual((replies[0]![1] as [string][]).map(([claimed]) => claimed), [id]);
    assert.equal((replies[1]![1] as [number])[0], 1);
    await untilUnfinished(r, stream, 0, "the stale entry acknowledged");
  },
);

Deno.test(
  "cluster: a QoS 1 message a departing clean member handed to another clean member on its node stays held in Redis for that member, and goes to a member on another node if the node dies before that one acknowledged it",
  opts,
  async () => {
    await using cluster = await start("suf6:", 1);
    const { r, b, memberB, memberC, stream } = cluster;
    await r.xadd(stream, "*", "f", Buffer.from(chosen("handed", 1, 1)));
    assert.equal(text(await memberB.expect(PacketType.PUBLISH)), "handed");
    await untilUnfinished(r, stream, 1, "the entry held");
    // A second clean member on B, which acknowledges nothing either.
    await using otherB = await byteMember(b, "other-b", 1);
    // The first one leaves: its session hands the message to the other one (shared_redelivery.ts).
    await memberB.disconnect();
    assert.equal(text(await otherB.expect(PacketType.PUBLISH)), "handed");
    // B's sweep (every 500 ms) has run meanwhile: the entry is still held, for the other member.
    await delay(2000);
    assert.equal(await unfinished(r, stream), 1);
    await b.crash();
    await gotAlone(
      memberC,
      "handed",
      "C's member to get the message B's other member never acknowledged",
    );
  },
);

// What becomes of the QoS 2 messages a node had read for its clean shared-group members and never
// sent when it dies: the node takes each such message in Redis (`P passed:ID`) before it writes
// its first PUBLISH, and keeps its stream entry pending until then; the node that reaps it passes
// on the QoS 2 messages of pending entries never taken (MQTT 5.0 on shared subscriptions: a
// message whose chosen member's session ends SHOULD go to another member; never sent, it may at
// QoS 2), and none whose delivery began [MQTT-4.8.2-5]. Real processes on a redis-server, the dead
// node killed with SIGKILL; the publishing node is the test, writing frames into the dead node's
// stream as a node does.
import assert from "node:assert/strict";
import { delay, waitFor } from "../_helpers/broker.ts";
import { type TestClient, text } from "../_helpers/test_client.ts";
import { TestClient as Client } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { encodeFrame, FrameBatch } from "../../src/cluster/bus_frame.ts";
import { Inbox, until } from "./_nodes.ts";
import {
  bothInGroup,
  byteMember,
  chosen,
  gotAlone,
  inboxMember,
  payloads,
  type ShareNodes,
  startShareNodes,
  unfinished,
  untilUnfinished,
} from "./_share.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/** A second group, whose QoS 1 message keeps an entry pending and tells the rescue was made. */
const SHARE2 = "$share/h/s/#";

/**
 * Redis, node B (taken for dead 1 s after it dies) with a clean 5.0 member of the group that
 * takes one message in flight at a time (Receive Maximum 1) and acknowledges nothing by itself,
 * node C with a clean QoS 2 member, and the bus of the publishing node P; disposing it stops
 * them all.
 */
interface Cluster extends ShareNodes {
  memberB: TestClient;
  memberC: Inbox;
}

async function start(prefix: string): Promise<Cluster> {
  await using stack = new AsyncDisposableStack();
  const nodes = stack.use(await startShareNodes(prefix, { bTimeout: 1 }));
  const memberB = stack.use(
    await byteMember(nodes.b, "member-b", 2, {
      protocolVersion: 5,
      properties: { receiveMaximum: 1 },
    }),
  );
  const memberC = stack.use(await inboxMember(nodes.c, "member-c", 2));
  await bothInGroup(nodes.p);
  const rest = stack.move();
  return { ...nodes, memberB, memberC, [Symbol.asyncDispose]: () => rest.disposeAsync() };
}

Deno.test(
  "cluster: a QoS 2 message a dead node read for a clean group member and never sent goes to a member on another node once; the one it sent goes to no other member [MQTT-4.8.2-5]",
  opts,
  async () => {
    await using cluster = await start("sut1:");
    const { r, b, memberB, memberC, stream } = cluster;
    // One entry, two QoS 2 messages chosen for B: its member has the first in flight and never
    // answers it (no PUBREC); the second waits behind it in B's session, never sent.
    const batch = new FrameBatch();
    batch.add(chosen("sent", 1, 2));
    batch.add(chosen("never sent", 2, 2));
    await r.xadd(stream, "*", "f", Buffer.from(batch.finish()));
    const first = await memberB.expect(PacketType.PUBLISH);
    assert.deepEqual([text(first), first.qos], ["sent", 2]);
    // B keeps the entry pending for the message it never sent.
    await untilUnfinished(r, stream, 1, "the entry held for the message never sent");
    await b.crash();
    // C reaps B: the message B never sent goes to C's member, once; the one B sent does not
    // (in the order of B's stream, it would have come first).
    await gotAlone(memberC, "never sent", "C's member to get the message B never sent");
  },
);

/**
 * B's member of the group, whose window holds one QoS 2 message it never answers, leaves with a
 * message at `qos` queued behind it: no other member of the group is on B, which passes it on to
 * C's member; then B dies with the messages' stream entry pending (held by a QoS 1 message of a
 * second group that B's member of it never acknowledges), and C rescues it.
 */
async function passedThenRescued(prefix: string, qos: 1 | 2): Promise<void> {
  await using cluster = await start(prefix);
  const { r, b, c, p, memberB, memberC, stream } = cluster;
  // Members of a second group on B (it never acknowledges) and on C.
  await using otherB = await Client.connect(b.port, { clientId: "other-b" });
  assert.deepEqual((await otherB.subscribe({ [SHARE2]: 1 })).reasonCodes, [1]);
  await using otherC = await Inbox.connect(c, "other-c");
  assert.deepEqual(await otherC.client.subscribe([[SHARE2, 1]]), [1]);
  await until(
    () => [...p.chooseShares("s/x")?.keys() ?? []].length > 0,
    "P to see the groups",
  );
  // One entry: a QoS 2 message and one at `qos` for the group, and a QoS 1 message for the
  // second group that B's member of it never acknowledges: the entry stays pending in Redis.
  const batch = new FrameBatch();
  batch.add(chosen("sent", 1, 2));
  batch.add(chosen("passed on", 2, qos));
  batch.add(chosen("the second group's", 3, 1, [SHARE2]));
  await r.xadd(stream, "*", "f", Buffer.from(batch.finish()));
  assert.equal(text(await memberB.expect(PacketType.PUBLISH)), "sent");
  assert.equal(text(await otherB.expect(PacketType.PUBLISH)), "the second group's");
  // B's member leaves: its clean session ends, no other member of the group is on B, and the
  // message it never got goes to C's member (a pass).
  await memberB.disconnect();
  await until(() => payloads(memberC).includes("passed on"), "C's member to get the pass");
  await b.crash();
  // C reaps B and rescues the pending entry: the second group's message reaches C's member of
  // it; before it in B's stream, the message passed on already would have gone again.
  await until(
    () => otherC.on("s/x").some((m) => m.payload === "the second group's"),
    "the rescue of B's stream",
  );
  assert.deepEqual(payloads(memberC), ["passed on"]);
  assert.ok(memberC.client.connected);
}

Deno.test(
  "cluster: a QoS 2 message a departing clean member never got, passed on by its node to a member on another node, is not passed on again by the rescue of that node's stream after its death [MQTT-4.8.2-5]",
  opts,
  () => passedThenRescued("sut2:", 2),
);

Deno.test(
  "cluster: a QoS 1 message a departing clean member never got, passed on by its node to a member on another node, is not passed on again by the rescue of that node's stream after its death (no duplicate)",
  opts,
  () => passedThenRescued("sut5:", 1),
);

Deno.test(
  "cluster: a node paused past its timeout, whose QoS 2 message never sent was passed on by the rescue of its stream, does not send it to its own member once it runs again [MQTT-4.8.2-5]",
  opts,
  async () => {
    await using cluster = await start("sut3:");
    const { r, b, memberB, memberC, stream } = cluster;
    const batch = new FrameBatch();
    batch.add(chosen("sent", 1, 2));
    batch.add(chosen("never sent", 2, 2));
    await r.xadd(stream, "*", "f", Buffer.from(batch.finish()));
    const first = await memberB.expect(PacketType.PUBLISH);
    assert.equal(text(first), "sent");
    await untilUnfinished(r, stream, 1, "the entry held for the message never sent");
    b.process.kill("SIGSTOP");
    try {
      // C reaps B and passes the message B never sent on to its member.
      await gotAlone(memberC, "never sent", "C's member to get the message B never sent");
      // B's member refuses the first one (PUBREC 0x80, which ends its flow [MQTT-4.3.3-4]):
      // once B runs again its window has room for the second, which C's member has.
      await memberB.send({
        type: PacketType.PUBREC,
        packetId: first.packetId!,
        reasonCode: 0x80,
      });
    } finally {
      b.process.kill("SIGCONT");
    }
    // B finds it was reaped and closes its clients; before that, its member gets no copy of
    // the message C's member has.
    const seen = await memberB.expectClosed(30_000, { allowPackets: true });
    assert.deepEqual(
      seen.filter((p) => p.type === PacketType.PUBLISH).map((p) => text(p as never)),
      [],
    );
    assert.deepEqual(payloads(memberC), ["never sent"]);
    assert.ok(memberC.client.connected);
  },
);

Deno.test(
  "cluster: the QoS 2 messages of a dead node's pending entries are not passed on when that node did not take them before sending (a release before takes), only its QoS 1 ones [MQTT-4.8.2-5]",
  opts,
  async () => {
    await using cluster = await start("sut4:");
    const { r, b, memberB, memberC, prefix, stream } = cluster;
    const batch = new FrameBatch();
    batch.add(chosen("sent", 1, 2));
    batch.add(chosen("QoS 2 never sent", 2, 2));
    batch.add(chosen("QoS 1 never sent", 3, 1));
    await r.xadd(stream, "*", "f", Buffer.from(batch.finish()));
    assert.equal(text(await memberB.expect(PacketType.PUBLISH)), "sent");
    await untilUnfinished(r, stream, 1, "the entry held for the messages never sent");
    // As a node of a release that did not take: no `~` in its `P passed:ID`.
    await r.zrem(`${prefix}passed:b`, "~");
    await b.crash();
    // The QoS 1 message goes on; the QoS 2 one, before it in B's stream, does not: such a node
    // may have sent it.
    await gotAlone(memberC, "QoS 1 never sent", "C's member to get the QoS 1 message");
  },
);

Deno.test(
  "cluster: a QoS 2 message a departing clean member never got, handed to another clean member on its node, stays held in Redis for that member, and goes to a member on another node once if the node dies before sending it [MQTT-4.8.2-5]",
  opts,
  async () => {
    await using cluster = await start("sut6:");
    const { r, b, memberB, memberC, stream } = cluster;
    // A second clean member on B, which also takes one message in flight at a time.
    await using otherB = await byteMember(b, "other-b", 2, {
      protocolVersion: 5,
      properties: { receiveMaximum: 1 },
    });
    const members = [memberB, otherB];
    // Three entries: B's members get one each in turn (in flight, never answered); the third
    // waits behind the first one's.
    const got = new Map<string, TestClient>();
    for (const [i, body] of ["one", "two"].entries()) {
      await r.xadd(stream, "*", "f", Buffer.from(chosen(body, i + 1, 2)));
      let found: [string, TestClient] | undefined;
      for (let tries = 0; found === undefined; tries++) {
        assert.ok(tries < 300, `a member of B to get "${body}"`);
        for (const m of members.filter((m) => ![...got.values()].includes(m))) {
          const p = await m.poll(100);
          if (p !== undefined) {
            assert.equal(p.type, PacketType.PUBLISH);
            found = [text(p as never), m];
            break;
          }
        }
      }
      got.set(...found);
    }
    await r.xadd(stream, "*", "f", Buffer.from(chosen("three", 3, 2)));
    await untilUnfinished(r, stream, 1, "the third entry held for the message never sent");
    // The member with "three" queued leaves: its session hands it to the other one, behind that
    // one's message in flight (shared_redelivery.ts).
    const leaving = got.get("one")!;
    const staying = got.get("two")!;
    assert.notEqual(leaving, staying);
    await leaving.disconnect();
    // B's sweep (every 500 ms) has run meanwhile: the entry is still held, for the other member.
    await delay(2000);
    assert.equal(await unfinished(r, stream), 1);
    await b.crash();
    await gotAlone(memberC, "three", "C's member to get the message B never sent");
    // "one" and "two" were sent: neither goes to C's member (gotAlone asserts it got one only).
  },
);

Deno.test(
  "cluster: the keys a node took for QoS 2 deliveries leave Redis with the trim of their stream entries",
  opts,
  async () => {
    await using cluster = await start("sut7:");
    const { r, memberB, prefix, stream } = cluster;
    await r.xadd(stream, "*", "f", Buffer.from(chosen("taken", 1, 2)));
    const publish = await memberB.expect(PacketType.PUBLISH);
    assert.equal(text(publish), "taken");
    // Taken before it was written.
    const keys = await r.zrange(`${prefix}passed:b`, 0, -1);
    assert.equal(keys.filter((k) => k !== "~").length, 1);
    // Its delivery completes [MQTT-4.3.3-1]; B trims the entry (at a read, or a heartbeat)
    // and deletes its key with it: only `~` stays.
    await memberB.send({ type: PacketType.PUBREC, packetId: publish.packetId! });
    await memberB.expect(PacketType.PUBREL);
    await memberB.send({ type: PacketType.PUBCOMP, packetId: publish.packetId! });
    // B reads on (a node with a shared store trims up to the last entry it read, excluded).
    const next = await r.xadd(stream, "*", "f", Buffer.from(nudge(2)));
    await waitFor(
      async () => (await r.zrange(`${prefix}passed:b`, 0, -1)).join() === "~",
      30_000,
      "the key deleted with the entry's trim",
    );
    assert.deepEqual((await r.xrange(stream, "-", "+")).map(([id]) => id), [next]);
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

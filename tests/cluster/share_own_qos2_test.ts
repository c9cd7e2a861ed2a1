// A clean member that also subscribes to the topic itself, at the group's QoS 2, gets two copies
// of a shared QoS 2 message: its own subscription's and the group's, one message object. Only the
// group's copy is taken in Redis before it is written (`ClusterLink.#mayWrite`), told by the group
// its entry carries (`InflightEntry.share`). Before, the copies were told apart by their QoS
// alone: the own subscription's copy, first in the window, used the group's take; the group's
// copy, never sent when the member's session ended, was to go to a member on another node, and
// the pass found the group's key taken: the group never delivered the message (nor would a rescue
// of B's stream have passed it on). And before, a QoS 2 copy begun kept the group's copy of the
// same message from going to another member at all. Real processes on a redis-server; the
// publishing node is the test, writing frames into B's stream as a node does.
import assert from "node:assert/strict";
import { waitFor } from "../_helpers/broker.ts";
import { TestClient, text } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { Inbox, until } from "./_nodes.ts";
import {
  bothInGroup,
  chosen,
  payloads,
  SHARE,
  type ShareNodes,
  startShareNodes,
  untilUnfinished,
} from "./_share.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/** B's member `member-b` in the group and on the topic, both at QoS 2, with Receive Maximum 1. */
async function ownAndGroupMember(nodes: ShareNodes): Promise<TestClient> {
  // Receive Maximum 1: the own subscription's copy (plain subscribers first) in flight, the
  // group's waiting behind it.
  const member = await TestClient.connect(nodes.b.port, {
    clientId: "member-b",
    protocolVersion: 5,
    properties: { receiveMaximum: 1 },
  });
  try {
    assert.deepEqual((await member.subscribe({ "s/#": 2, [SHARE]: 2 })).reasonCodes, [2, 2]);
    await waitFor(
      async () =>
        (await nodes.r.smembers(`${nodes.prefix}interest:b`)).sort().join() === `${SHARE},s/#`,
      30_000,
      "B's interest",
    );
    return member;
  } catch (error) {
    await member[Symbol.asyncDispose]();
    throw error;
  }
}

/** Receives `n` QoS 2 PUBLISHes one at a time, completing each [MQTT-4.3.3-1]: their payloads. */
async function complete(member: TestClient, n: number): Promise<string[]> {
  const got: string[] = [];
  for (let i = 0; i < n; i++) {
    const publish = await member.expect(PacketType.PUBLISH, 30_000);
    assert.equal(publish.qos, 2);
    await member.send({ type: PacketType.PUBREC, packetId: publish.packetId! });
    await member.expect(PacketType.PUBREL);
    await member.send({ type: PacketType.PUBCOMP, packetId: publish.packetId! });
    got.push(text(publish));
  }
  return got;
}

const CASES = {
  "here once its session ends": "sownq2h:",
  "on another node once its session ends": "sownq2o:",
  "on another node when B dies": "sownq2d:",
} as const;

for (const [where, prefix] of Object.entries(CASES)) {
  const dies = where.endsWith("B dies");
  Deno.test(
    `cluster: a clean member's own subscription's QoS 2 copy, begun, does not keep the group's copy never sent from another member ${where} [MQTT-4.8.2-5]`,
    opts,
    async () => {
      // B's node timeout short when the test kills it.
      await using nodes = await startShareNodes(prefix, dies ? { bTimeout: 1 } : {});
      const { r, b, c, p, stream } = nodes;
      await using member = await ownAndGroupMember(nodes);
      // A member on C, so that P sees the group on both nodes; the message is chosen for B.
      await using memberC = await Inbox.connect(c, "member-c");
      assert.deepEqual(await memberC.client.subscribe([[SHARE, 2]]), [2]);
      await bothInGroup(p);
      await r.xadd(stream, "*", "f", Buffer.from(chosen("m1", 1, 2)));
      await r.xadd(stream, "*", "f", Buffer.from(chosen("m2", 2, 2)));
      // Both copies of m1 in turn, completed [MQTT-4.3.3-1]: the own subscription's, then the
      // group's. Then m2's own copy, out of the queue while the group's copy of m2 was recorded
      // for its take (written at once when routed, m1's own was not).
      assert.deepEqual(await complete(member, 2), ["m1", "m1"]);
      const own = await member.expect(PacketType.PUBLISH, 30_000);
      assert.deepEqual([text(own), own.qos], ["m2", 2]);
      // Another member of the group on B joins, or none: the first one's session ends (or B
      // dies), its own copy's delivery begun (no PUBREC), the group's never sent. (Before, the own
      // copy of m2 took the group's key as it was written, the copies told apart by QoS alone:
      // B's death then lost the group's copy, its entry let go of and its key taken.)
      await using staying = where.startsWith("here")
        ? await Inbox.connect(b, "staying-b")
        : undefined;
      if (staying !== undefined) {
        assert.deepEqual(await staying.client.subscribe([[SHARE, 2]]), [2]);
      }
      if (dies) await b.crash();
      else await member.close();
      const mate = staying ?? memberC;
      await until(() => payloads(mate).includes("m2"), `the group's member ${where} to get m2`);
      assert.deepEqual(payloads(mate), ["m2"]);
      assert.ok(mate.client.connected);
      // Its take or pass made, nothing of the entry is held any more.
      if (!dies) await untilUnfinished(r, stream, 0, "the entry acknowledged");
    },
  );
}

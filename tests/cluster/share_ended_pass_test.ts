// What becomes of the messages a clean shared-group member held when its session ends on a node
// with no other member of the group: they go to a member on another node (MQTT 5.0 on shared
// subscriptions: if the member's session ends before it acknowledged a QoS 1 message, the server
// SHOULD send it to another member), as one broker hands them to another local member
// (shared_redelivery.ts); a QoS 2 message whose delivery began goes to no other member
// [MQTT-4.8.2-5]. Real processes on a redis-server; the publishing node is the test's bus `p`,
// writing frames into B's stream as a node does.
import assert from "node:assert/strict";
import { waitFor } from "../_helpers/broker.ts";
import { text } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { until } from "./_nodes.ts";
import {
  bothInGroup,
  byteMember,
  chosen,
  gotAlone,
  inboxMember,
  lastRead,
  payloads,
  startShareNodes,
  untilUnfinished,
} from "./_share.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: the QoS 1 messages a clean group member did not acknowledge go to a member on another node when its session ends on a node with no other member; a QoS 2 one whose delivery began does not [MQTT-4.8.2-5]",
  opts,
  async () => {
    await using nodes = await startShareNodes("sep1:");
    const { r, stream } = nodes;
    // B's member: a clean session that never acknowledges anything by itself.
    await using memberB = await byteMember(nodes.b, "member-b", 2);
    await using memberC = await inboxMember(nodes.c, "member-c", 1);
    await bothInGroup(nodes.p);
    await r.xadd(stream, "*", "f", Buffer.from(chosen("QoS 2 begun", 1, 2)));
    await r.xadd(stream, "*", "f", Buffer.from(chosen("QoS 1 unacknowledged", 2, 1)));
    const got = [
      await memberB.expect(PacketType.PUBLISH),
      await memberB.expect(PacketType.PUBLISH),
    ];
    assert.deepEqual(got.map((m) => [text(m), m.qos]), [
      ["QoS 2 begun", 2],
      ["QoS 1 unacknowledged", 1],
    ]);
    await untilUnfinished(r, stream, 1, "the QoS 1 entry held");
    // The member leaves with neither answered: its clean session ends, B has no other member.
    await memberB.disconnect();
    // Passed on in the order B's session held them: the QoS 2 one would be here first.
    await gotAlone(
      memberC,
      "QoS 1 unacknowledged",
      "C's member to get the message B's member never acknowledged",
    );
    // Once passed, B lets its stream entry go.
    await untilUnfinished(r, stream, 0, "the entry acknowledged");
    assert.ok(memberC.client.connected);
  },
);

Deno.test(
  "cluster: a clean group member's unacknowledged QoS 1 message stays with the other members on its node when its session ends there",
  opts,
  async () => {
    await using nodes = await startShareNodes("sep2:");
    const { r, b, prefix } = nodes;
    await using memberB = await byteMember(b, "member-b", 1);
    await using memberC = await inboxMember(nodes.c, "member-c", 1);
    await bothInGroup(nodes.p);
    // A second member on B, connected after the message went to the first one.
    await r.xadd(`${prefix}s:b`, "*", "f", Buffer.from(chosen("unacknowledged", 1, 1)));
    assert.equal(text(await memberB.expect(PacketType.PUBLISH)), "unacknowledged");
    await using otherB = await inboxMember(b, "other-b", 1);
    await memberB.disconnect();
    await until(
      () => payloads(otherB).includes("unacknowledged"),
      "B's other member to get it",
    );
    // Not also on C (it went to B's member once): a message chosen for C after it, from p,
    // arrives there alone.
    await r.xadd(`${prefix}s:c`, "*", "f", Buffer.from(chosen("for C", 2, 1)));
    await gotAlone(memberC, "for C", "C's message");
    assert.ok(memberC.client.connected && otherB.client.connected);
  },
);

Deno.test(
  "cluster: a QoS 2 message a clean group member's session never sent (queued behind its receive maximum) goes to a member on another node with its unacknowledged QoS 1 one when the session ends on a node with no other member",
  opts,
  async () => {
    await using nodes = await startShareNodes("sep3:");
    const { r, stream } = nodes;
    // One message in flight at a time [MQTT-3.3.4-9].
    await using memberB = await byteMember(nodes.b, "member-b", 2, {
      protocolVersion: 5,
      properties: { receiveMaximum: 1 },
    });
    await using memberC = await inboxMember(nodes.c, "member-c", 2);
    await bothInGroup(nodes.p);
    await r.xadd(stream, "*", "f", Buffer.from(chosen("QoS 1 in flight", 1, 1)));
    await r.xadd(stream, "*", "f", Buffer.from(chosen("QoS 2 queued", 2, 2)));
    assert.equal(text(await memberB.expect(PacketType.PUBLISH)), "QoS 1 in flight");
    // B read both (its group's last id is the second entry): the second waits in the queue.
    const last = (await r.xrevrange(stream, "+", "-", "COUNT", 1))[0]![0];
    await waitFor(async () => await lastRead(r, stream) === last, 30_000, "B to have read both");
    await memberB.disconnect();
    await until(
      () => memberC.on("s/x").length === 2,
      "C's member to get both messages B's session held",
    );
    assert.deepEqual(memberC.on("s/x").map((m) => [m.payload, m.qos]), [
      ["QoS 1 in flight", 1],
      ["QoS 2 queued", 2],
    ]);
    assert.ok(memberC.client.connected);
  },
);

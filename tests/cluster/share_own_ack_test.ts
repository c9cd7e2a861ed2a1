// A clean member that also subscribes to the topic itself gets two copies of a shared QoS 1
// message, the group's and its own subscription's: one message object, told apart by nothing the
// PUBACK carries. The node holds the stream entry for the group's copy until that copy is
// acknowledged (`ClusterLink.#sharedHeld`), so that if the node dies first the copy goes to a
// member on another node (MQTT 5.0 on shared subscriptions: it SHOULD). Before, the PUBACK of
// either copy let go of the hold: the own subscription's copy acknowledged first, the entry was
// acknowledged in Redis while the group's copy was not, and the node's death lost it for the
// group. Real processes on a redis-server, B killed with SIGKILL; the publishing node is the
// test, writing frames into B's stream as a node does.
import assert from "node:assert/strict";
import { delay, waitFor } from "../_helpers/broker.ts";
import { type TestClient, text } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { until } from "./_nodes.ts";
import {
  bothInGroup,
  byteMember,
  chosen,
  inboxMember,
  payloads,
  startShareNodes,
  unfinished,
  untilUnfinished,
} from "./_share.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/** Both copies of `body` (QoS 1) that `member` gets, in the order they came. */
async function twoCopies(member: TestClient, body: string): Promise<number[]> {
  const ids: number[] = [];
  for (let i = 0; i < 2; i++) {
    const p = await member.expect(PacketType.PUBLISH);
    assert.deepEqual([text(p), p.qos], [body, 1]);
    ids.push(p.packetId!);
  }
  return ids;
}

Deno.test(
  "cluster: a clean member's PUBACK of its own subscription's copy of a shared QoS 1 message does not let go of the group's copy, which goes to another member when the node dies unacknowledged",
  opts,
  async () => {
    await using nodes = await startShareNodes("sown:", { bTimeout: 1 });
    const { r, b, c, p, stream } = nodes;
    // A member of the group that also subscribes to the topic itself. B routes a message to the
    // plain subscribers before a group's chosen member: its first copy is its own subscription's.
    await using member = await byteMember(b, "member-b", 1);
    assert.deepEqual((await member.subscribe({ "s/#": 1 })).reasonCodes, [1]);
    await waitFor(
      async () => (await r.smembers(`${nodes.prefix}interest:b`)).includes("s/#"),
      30_000,
      "B's interest in s/#",
    );
    await using memberC = await inboxMember(c, "member-c", 1);
    await bothInGroup(p);
    // Both copies acknowledged [MQTT-4.3.2-1]: the entry is let go of.
    await r.xadd(stream, "*", "f", Buffer.from(chosen("both acknowledged", 1, 1)));
    for (const packetId of await twoCopies(member, "both acknowledged")) {
      await member.send({ type: PacketType.PUBACK, packetId });
    }
    await untilUnfinished(r, stream, 0, "the entry acknowledged");
    // One copy acknowledged, the first (the own subscription's): the group's is not.
    await r.xadd(stream, "*", "f", Buffer.from(chosen("one acknowledged", 2, 1)));
    const [first] = await twoCopies(member, "one acknowledged");
    await member.send({ type: PacketType.PUBACK, packetId: first! });
    // B's acknowledgements (50 ms) and sweep (500 ms) have run meanwhile: still held.
    await delay(2000);
    assert.equal(await unfinished(r, stream), 1);
    await b.crash();
    await until(
      () => payloads(memberC).includes("one acknowledged"),
      "C's member to get the group's copy B's member never acknowledged",
    );
    assert.deepEqual(payloads(memberC), ["one acknowledged"]);
    assert.ok(memberC.client.connected);
  },
);

Deno.test(
  "cluster: a clean member that unsubscribes its own subscription between a shared QoS 1 message's delivery and its PUBACK keeps the group's copy held, which goes to another member when the node dies unacknowledged",
  opts,
  async () => {
    await using nodes = await startShareNodes("sunsub:", { bTimeout: 1 });
    const { r, b, c, p, stream } = nodes;
    await using member = await byteMember(b, "member-b", 1);
    assert.deepEqual((await member.subscribe({ "s/#": 1 })).reasonCodes, [1]);
    await waitFor(
      async () => (await r.smembers(`${nodes.prefix}interest:b`)).includes("s/#"),
      30_000,
      "B's interest in s/#",
    );
    await using memberC = await inboxMember(c, "member-c", 1);
    await bothInGroup(p);
    // The own subscription's copy first (see above), then the group's.
    await r.xadd(stream, "*", "f", Buffer.from(chosen("own dropped", 1, 1)));
    const [own] = await twoCopies(member, "own dropped");
    // The own subscription goes while both copies are pending [MQTT-3.10.4-3]: its copy stays
    // in flight and is acknowledged; the group's is not. (Before, the PUBACK let go of the
    // group's hold once the session subscribed to nothing outside groups.)
    await member.send({ type: PacketType.UNSUBSCRIBE, packetId: 7, topics: ["s/#"] });
    assert.equal((await member.expect(PacketType.UNSUBACK)).packetId, 7);
    await member.send({ type: PacketType.PUBACK, packetId: own! });
    // B's acknowledgements (50 ms) and sweep (500 ms) have run meanwhile: still held.
    await delay(2000);
    assert.equal(await unfinished(r, stream), 1);
    await b.crash();
    await until(
      () => payloads(memberC).includes("own dropped"),
      "C's member to get the group's copy B's member never acknowledged",
    );
    assert.deepEqual(payloads(memberC), ["own dropped"]);
    assert.ok(memberC.client.connected);
  },
);

Deno.test(
  "cluster: a clean member's PUBACK of the group's copy of a shared QoS 1 message lets go of its hold while its own subscription's copy is still unacknowledged [MQTT-4.3.2-1]",
  opts,
  async () => {
    await using nodes = await startShareNodes("sgrpack:");
    const { r, b, c, p, stream } = nodes;
    await using member = await byteMember(b, "member-b", 1);
    assert.deepEqual((await member.subscribe({ "s/#": 1 })).reasonCodes, [1]);
    await waitFor(
      async () => (await r.smembers(`${nodes.prefix}interest:b`)).includes("s/#"),
      30_000,
      "B's interest in s/#",
    );
    await using memberC = await inboxMember(c, "member-c", 1);
    await bothInGroup(p);
    await r.xadd(stream, "*", "f", Buffer.from(chosen("group acknowledged", 1, 1)));
    const [own, group] = await twoCopies(member, "group acknowledged");
    await member.send({ type: PacketType.PUBACK, packetId: group! });
    // The group's copy is done: the entry is acknowledged, the own copy still in flight. (Before,
    // the hold waited for the own copy's PUBACK too: the PUBACK told neither copy apart.)
    await untilUnfinished(r, stream, 0, "the entry acknowledged");
    await member.send({ type: PacketType.PUBACK, packetId: own! });
    await member.send({ type: PacketType.PINGREQ });
    await member.expect(PacketType.PINGRESP);
    assert.deepEqual(payloads(memberC), []);
  },
);

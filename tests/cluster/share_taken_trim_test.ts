// The keys a node took in Redis for its clean members' shared QoS 2 deliveries (`P passed:ID`,
// TAKE_SCRIPT) leave with the trim of their stream entries, by the incarnation that took them
// only: one reaped while paused, whose stream became its rescuer's dead stream, deletes none when
// it runs again (UNTAKE_SCRIPT is fenced), so that a rescue reading those entries finds the
// messages taken and sends none to another member [MQTT-4.8.2-5]. Real processes on a
// redis-server, the node paused with SIGSTOP.
import assert from "node:assert/strict";
import { delay, waitFor } from "../_helpers/broker.ts";
import { text } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { encodeFrame } from "../../src/cluster/bus_frame.ts";
import { acl } from "./_nodes.ts";
import {
  bothInGroup,
  byteMember,
  chosen,
  inboxMember,
  payloads,
  SHARE,
  startShareNodes,
} from "./_share.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: a node paused past its timeout and reaped deletes none of the keys it took for its stream's entries once it runs again: a rescue reading that stream finds its member's QoS 2 message taken [MQTT-4.8.2-5]",
  opts,
  async () => {
    await using nodes = await startShareNodes("stp2:", { bTimeout: 1 });
    const { r, b, prefix, redis, stream } = nodes;
    await using memberB = await byteMember(b, "member-b", 2, { protocolVersion: 5 });
    await using memberC = await inboxMember(nodes.c, "member-c", 2);
    await bothInGroup(nodes.p);
    // XACK refused: the entries B finished stay pending in Redis, held by nothing (as after an
    // XACK lost to an outage), so that the rescue of B's stream reads them.
    await acl(redis, "-xack");
    let key: string | undefined;
    for (let i = 1; key === undefined; i++) {
      assert.ok(i <= 10, "B paused after it read past the entry and before its trim");
      // The entry of a QoS 2 message for B's member, then one that moves B's reading past it (a
      // QoS 0 message for the member: written at once, not behind the take).
      const id = (await r.xadd(stream, "*", "f", Buffer.from(chosen(`m${i}`, 2 * i, 2))))!;
      await r.xadd(stream, "*", "f", Buffer.from(marker(`n${i}`, 2 * i + 1)));
      const got = [text(await memberB.expect(PacketType.PUBLISH))];
      got.push(text(await memberB.expect(PacketType.PUBLISH)));
      b.process.kill("SIGSTOP");
      assert.deepEqual(got.sort(), [`m${i}`, `n${i}`]);
      // Taken before it was written; B's trim of the entry not made yet.
      const taken = `${id} 0 ${SHARE}`;
      const kept = (await r.zscore(`${prefix}passed:b`, taken)) !== null &&
        (await r.xrange(stream, id, id)).length === 1;
      if (kept) key = taken;
      else b.process.kill("SIGCONT");
    }
    try {
      // C reaps B and rescues its stream: the message was taken, so it goes to no other member.
      await waitFor(async () => (await r.exists(`${prefix}dead:b`)) === 1, 30_000, "the reap");
      await delay(2000);
    } finally {
      b.process.kill("SIGCONT");
    }
    // B finds it was reaped and closes its member (after its PUBLISH, which it got).
    await memberB.expectClosed(30_000, { allowPackets: true });
    // It registers again as a new incarnation, which trims its new stream at its heartbeats.
    await waitFor(async () => (await r.exists(`${prefix}alive:b`)) === 1, 30_000, "B back");
    await delay(1000);
    // The key stays with the entry in the dead stream, which a rescue reads (one made as B ran
    // again, before its trim; or again later, B not back): it finds the message taken.
    assert.ok(await r.xlen(`${prefix}dead:b`) >= 1);
    assert.notEqual(await r.zscore(`${prefix}passed:b`, key), null);
    assert.deepEqual(payloads(memberC), []);
    assert.ok(memberC.client.connected);
    await acl(redis, "+xack");
  },
);

/** A QoS 0 message for the group, as P sends it to B. */
function marker(body: string, seq: number): Uint8Array {
  return encodeFrame({
    type: "message",
    origin: "p",
    publisher: "pub",
    seq,
    order: seq,
    shares: [SHARE],
    message: { topic: "s/x", payload: new TextEncoder().encode(body), qos: 0, retain: false },
  });
}

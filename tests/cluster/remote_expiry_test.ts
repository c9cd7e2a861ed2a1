// A message of another node's that expires while queued behind a subscriber's window leaves the
// flow unsent [MQTT-3.3.2-5]: its frame's deadline is the message's on the node that reads it
// (before, `toMessage` left it out, and a message of another node never expired there). A clean
// member's shared copy that expires so lets go of what the node held for it in Redis (its
// stream entry pending until the copy's PUBACK, or at QoS 2 its take), found by the sweep, or
// the entry would stay pending for the node's life and hold its stream's trim. Real processes on
// a redis-server; the publishing node is the test, writing frames into B's stream as a node
// does.
import assert from "node:assert/strict";
import { delay, waitFor } from "../_helpers/broker.ts";
import { TestClient, text } from "../_helpers/test_client.ts";
import { encodeFrame } from "../../src/cluster/bus_frame.ts";
import { PacketType } from "../../src/packet/constants.ts";
import {
  bothInGroup,
  byteMember,
  chosen,
  inboxMember,
  payloads,
  SHARE,
  startShareNodes,
  untilUnfinished,
} from "./_share.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/**
 * A message on `s/x` for `shares` (the group by default; none: for plain subscribers), expiring
 * at `expiresAt` (ms since the epoch).
 */
function expiring(
  body: string,
  seq: number,
  qos: 1 | 2,
  expiresAt: number,
  shares = [SHARE],
): Uint8Array {
  return encodeFrame({
    type: "message",
    origin: "p",
    publisher: "pub",
    seq,
    order: seq,
    shares,
    message: {
      topic: "s/x",
      payload: new TextEncoder().encode(body),
      qos,
      retain: false,
      expiresAt,
    },
  });
}

Deno.test(
  "cluster: a plain subscriber's QoS 1 copy of another node's message that expires queued behind its window is never sent [MQTT-3.3.2-5]",
  opts,
  async () => {
    await using nodes = await startShareNodes("sexpp:");
    const { r, b, stream } = nodes;
    await using member = await TestClient.connect(b.port, {
      clientId: "plain-b",
      protocolVersion: 5,
      properties: { receiveMaximum: 1 },
    });
    assert.deepEqual((await member.subscribe({ "s/#": 1 })).reasonCodes, [1]);
    await waitFor(
      async () => (await r.smembers(`${nodes.prefix}interest:b`)).includes("s/#"),
      30_000,
      "B's interest in s/#",
    );
    await r.xadd(stream, "*", "f", Buffer.from(expiring("first", 1, 1, Date.now() + 600_000, [])));
    const first = await member.expect(PacketType.PUBLISH, 30_000);
    assert.equal(text(first), "first");
    // What is left of its interval, no more [MQTT-3.3.2-6].
    assert.ok((first.properties?.messageExpiryInterval ?? 0) <= 600);
    await r.xadd(stream, "*", "f", Buffer.from(expiring("late", 2, 1, Date.now() + 1000, [])));
    // Past its expiry (a lower bound only) before the window frees.
    await delay(1500);
    await member.send({ type: PacketType.PUBACK, packetId: first.packetId! });
    await member.send({ type: PacketType.PINGREQ });
    assert.equal((await member.receive(30_000)).type, PacketType.PINGRESP);
    assert.equal(member.ended, false);
  },
);

for (const qos of [1, 2] as const) {
  Deno.test(
    `cluster: a clean member's shared QoS ${qos} copy that expires queued behind its window is never sent, and its stream entry is not held pending for it`,
    opts,
    async () => {
      await using nodes = await startShareNodes(`sexp${qos}:`);
      const { r, b, c, p, stream } = nodes;
      await using member = await byteMember(b, "member-b", qos, {
        protocolVersion: 5,
        properties: { receiveMaximum: 1 },
      });
      await using memberC = await inboxMember(c, "member-c", qos);
      await bothInGroup(p);
      await r.xadd(stream, "*", "f", Buffer.from(chosen("first", 1, qos)));
      const first = await member.expect(PacketType.PUBLISH, 30_000);
      assert.equal(text(first), "first");
      // Queued behind "first", never acknowledged yet; it expires a second from now.
      await r.xadd(stream, "*", "f", Buffer.from(expiring("late", 2, qos, Date.now() + 1000)));
      // Past its expiry (a lower bound only) before the window frees.
      await delay(1500);
      if (qos === 1) {
        await member.send({ type: PacketType.PUBACK, packetId: first.packetId! });
      } else {
        await member.send({ type: PacketType.PUBREC, packetId: first.packetId! });
        assert.equal((await member.expect(PacketType.PUBREL)).packetId, first.packetId);
        await member.send({ type: PacketType.PUBCOMP, packetId: first.packetId! });
      }
      // Nothing of either message is held: "first" finished, "late" dropped expired.
      await untilUnfinished(r, stream, 0, "both entries acknowledged");
      // "late" never sent [MQTT-3.3.2-5]: a PINGRESP is next, the connection still open.
      await member.send({ type: PacketType.PINGREQ });
      assert.equal((await member.receive(30_000)).type, PacketType.PINGRESP);
      assert.equal(member.ended, false);
      assert.deepEqual(payloads(memberC), []);
    },
  );
}

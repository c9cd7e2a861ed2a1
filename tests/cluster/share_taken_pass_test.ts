// A clean member's QoS 2 message that its node took in Redis for the delivery (`P passed:ID`,
// TAKE_SCRIPT) but never wrote, because the member left first: its node passes it on to a member
// on another node (MQTT 5.0 on shared subscriptions: a message whose chosen member's session ends
// before it was sent SHOULD go to another member), once; the node's own pass replaces its take.
// Real processes on a redis-server; B reaches Redis through a proxy that holds back the answers
// of its stream writer, where the take goes.
import assert from "node:assert/strict";
import { waitFor } from "../_helpers/broker.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { TAKE_SCRIPT } from "../../src/cluster/_bus_scripts.ts";
import { until } from "./_nodes.ts";
import {
  bothInGroup,
  byteMember,
  chosen,
  gotAlone,
  inboxMember,
  startShareNodes,
} from "./_share.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: a QoS 2 message taken for a clean group member that leaves before its PUBLISH was written goes to a member on another node once [MQTT-4.8.2-5]",
  opts,
  async () => {
    await using nodes = await startShareNodes("stp1:", { proxied: true });
    const { r, b, c, prefix, proxy, stream } = nodes;
    const memberB = await byteMember(b, "member-b", 2, { protocolVersion: 5 });
    await using memberC = await inboxMember(c, "member-c", 2);
    await bothInGroup(nodes.p);
    // The take script loaded (B's EVALSHA finds it), then the take's answer waits in the proxy: the message stays held in B's session, taken.
    await r.script("LOAD", TAKE_SCRIPT);
    const release = proxy!.delayReplies(":xadd");
    try {
      await r.xadd(stream, "*", "f", Buffer.from(chosen("taken, never sent", 1, 2)));
      await waitFor(
        async () => (await r.zrange(`${prefix}passed:b`, 0, -1)).some((k) => k !== "~"),
        30_000,
        "B to take the message",
      );
      // Nothing written to B's member, still connected: the PUBLISH waits for the take's answer.
      await memberB.send({ type: PacketType.PINGREQ });
      await memberB.expect(PacketType.PINGRESP);
      // It leaves: its clean session ends with the message never sent, no other member of the
      // group on B: B passes it on to C's member.
      await memberB[Symbol.asyncDispose]();
      await gotAlone(memberC, "taken, never sent", "C's member to get the message");
    } finally {
      release();
    }
    // The take's late answer sends nothing anywhere: C's member has it once.
    await r.xadd(stream, "*", "f", Buffer.from(chosen("next", 2, 2)));
    await until(() => memberC.on("s/x").length === 2, "C's member to get the next message");
    assert.deepEqual(memberC.on("s/x").map((m) => m.payload), ["taken, never sent", "next"]);
  },
);

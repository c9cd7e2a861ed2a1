// A take (TAKE_SCRIPT) of a clean member's shared QoS 2 message whose answer Redis's outage lost
// is asked again as soon as the node has Redis back, not at its next heartbeat: the member's
// PUBLISH waits for the take [MQTT-4.8.2-5], and a node's heartbeats are a second apart by
// default. Real processes on a redis-server; B reaches Redis through a proxy that holds back the
// answers of its stream writer, where the take goes, then cuts B off. B's heartbeats are an hour
// apart: the delivery can only come from the take asked again at the reconnection.
import assert from "node:assert/strict";
import { waitFor } from "../_helpers/broker.ts";
import { text } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { TAKE_SCRIPT } from "../../src/cluster/_bus_scripts.ts";
import { bringBack, cutOff } from "./_away.ts";
import { bothInGroup, byteMember, chosen, inboxMember, startShareNodes } from "./_share.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: a clean group member's QoS 2 message whose take Redis's outage left unanswered is taken and sent once Redis is back, with no heartbeat [MQTT-4.8.2-5]",
  opts,
  async () => {
    await using nodes = await startShareNodes("stb1:", {
      proxied: true,
      bHeartbeat: 3600,
      bTimeout: 7200,
    });
    const { r, b, prefix, proxy, stream } = nodes;
    await using memberB = await byteMember(b, "member-b", 2, { protocolVersion: 5 });
    await using _memberC = await inboxMember(nodes.c, "member-c", 2);
    await bothInGroup(nodes.p);
    // The take script loaded (B's EVALSHA finds it), then the take's answer waits in the proxy.
    await r.script("LOAD", TAKE_SCRIPT);
    const release = proxy!.delayReplies(":xadd");
    try {
      await r.xadd(stream, "*", "f", Buffer.from(chosen("taken after the outage", 1, 2)));
      await waitFor(
        async () => (await r.zrange(`${prefix}passed:b`, 0, -1)).some((k) => k !== "~"),
        30_000,
        "B to take the message",
      );
      // Nothing written to B's member, still connected: the PUBLISH waits for the take's answer.
      await memberB.send({ type: PacketType.PINGREQ });
      await memberB.expect(PacketType.PINGRESP);
      // Redis away: the answer is lost with the connection, the take waits.
      await cutOff(proxy!, b);
    } finally {
      release();
    }
    await bringBack(proxy!, b);
    // Asked again at the reconnection (answered taken: its own key), the message goes out.
    // (A guard, not a bound the test asserts.)
    const publish = await memberB.expect(PacketType.PUBLISH, 30_000);
    assert.deepEqual([text(publish), publish.qos], ["taken after the outage", 2]);
  },
);

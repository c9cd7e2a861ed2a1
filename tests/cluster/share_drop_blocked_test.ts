// A shared QoS 2 copy whose take is refused (its key in `P passed:ID` is a pass: another member
// has the message) leaves the member's window unwritten, and its slot goes to the next queued
// message. When the refusal is answered while the member's connection is blocked (its output over
// `max_outbound_bytes`), the copy is dropped only as the output drains (`BrokerCore.drained`):
// before, that left its slot empty until the client acknowledged something else, so a client
// waiting for its next message before acknowledging got none. Real processes on a redis-server;
// the publishing node is the test, writing frames into B's stream as a node does.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { waitFor } from "../_helpers/broker.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { TestClient, text } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { encodeFrame, FrameBatch } from "../../src/cluster/bus_frame.ts";
import { Node, until } from "./_nodes.ts";
import { chosen, SHARE } from "./_share.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/** A message of `p`'s publisher `pub` for no shared group. */
function plain(topic: string, payload: Uint8Array, seq: number, qos: 0 | 1): Uint8Array {
  return encodeFrame({
    type: "message",
    origin: "p",
    publisher: "pub",
    seq,
    order: seq,
    message: { topic, payload, qos, retain: false },
  });
}

Deno.test(
  "cluster: a shared QoS 2 copy whose take is refused while the member's output is blocked frees its slot for the next queued message once the output drains [MQTT-4.8.2-5]",
  opts,
  async () => {
    const prefix = "sdb1:";
    await using redis = await RedisServer.start();
    await using b = await Node.start(redis, {
      nodeId: "b",
      prefix,
      yaml: ["max_outbound_bytes: 1024"],
      // Its debug log says when the take's refusal reached it (`ClusterLink.#took`).
      args: ["-d"],
    });
    const r = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
    await r.connect();
    using _r = { [Symbol.dispose]: () => r.disconnect() };
    // Two messages in flight at most. The member's own subscription to `s/x` at QoS 1 gets a copy
    // of each message besides the group's at QoS 2; `q/#` is the filler that blocks its output.
    await using member = await TestClient.connect(b.port, {
      clientId: "member",
      protocolVersion: 5,
      properties: { receiveMaximum: 2 },
    });
    assert.deepEqual(
      (await member.subscribe({ "q/#": 0, "s/x": 1, [SHARE]: 2 })).reasonCodes,
      [0, 1, 2],
    );
    await waitFor(
      async () => (await r.smembers(`${prefix}interest:b`)).includes(SHARE),
      30_000,
      "B's interest in the group",
    );
    member.pauseReading();
    const id = `${Date.now()}-7`;
    const ms = id.split("-")[0]!;
    // The group's copy of the entry's second message was passed on already: B's take is refused.
    await r.zadd(`${prefix}passed:b`, ms, `${id} 1 ${SHARE}`);
    const batch = new FrameBatch();
    // More QoS 0 bytes than the sockets' buffers take while the member does not read: B's output
    // stays over the bound.
    batch.add(plain("q/x", new Uint8Array(16 * 1024 * 1024), 1, 0));
    // The own copy's PUBLISH is asked for and refused by the connection (the link blocks); the
    // group's copy asks for its take first and waits. Then a message queued behind the two.
    batch.add(chosen("both", 2, 2, [SHARE]));
    batch.add(plain("s/x", new TextEncoder().encode("after"), 3, 1));
    await r.xadd(`${prefix}s:b`, id, "f", Buffer.from(batch.finish()));
    // The take's refusal reached B while the link is blocked. (Was: a wait of 500 ms after the
    // take ran in Redis; on a loaded machine the refusal could come after the drain, where the
    // test passes without the fix.)
    await until(
      () => /a shared message for member went elsewhere/.test(b.log()),
      "B to have the take's refusal",
    );
    member.resumeReading();
    // The own copy at QoS 1, not acknowledged: the next message has the slot the group's copy
    // left.
    let first;
    do first = await member.expect(PacketType.PUBLISH, 30_000); while (first.topic === "q/x");
    assert.deepEqual([text(first), first.qos], ["both", 1]);
    const next = await member.expect(PacketType.PUBLISH, 30_000);
    assert.deepEqual([text(next), next.qos], ["after", 1]);
    // The group's copy never comes: nothing more, the connection still open.
    await member.send({ type: PacketType.PINGREQ });
    await member.expect(PacketType.PINGRESP);
  },
);

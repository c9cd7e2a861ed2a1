// Broker, area 68: small payloads kept by slow connected subscribers do not keep whole slabs
// alive. A QoS 1 payload in flight or queued behind a connected session's window is copied into a
// shared 1,000-byte slab (src/broker/_payload_slab.ts); a slab lives as long as any payload in it.
// The broker's sweep gives a payload of its own to each delivery that waited past it
// (`Session.sweepKept`), so memory held for N slow sessions is about their payloads' bytes, not
// a slab per payload. Measured in a broker of its own process (forced collections).

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { publishPacket, TestClient } from "../_helpers/test_client.ts";
import { BrokerProcess } from "../_helpers/memory_broker_process.ts";
import { AckingSubscriber } from "../_helpers/acking_subscriber.ts";

Deno.test({
  name:
    "68 queued slab: N slow subscribers each keeping a small payload in flight and one queued hold about their bytes once a sweep passed, not a slab each [MQTT-4.6.0-6]",
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    const N = 400;
    // A window of 1: what a slow subscriber does not acknowledge waits behind it.
    await using broker = await BrokerProcess.start({ max_inflight: 1 });
    await using fast = await TestClient.connect(broker.port, { clientId: "fast" });
    await fast.subscribe({ hot: 1 });
    await using pub = await TestClient.connect(broker.port, { clientId: "pub" });
    const slow: TestClient[] = [];
    // The fast one acknowledges all it gets: the hot payloads around the slow ones are let go.
    await using acker = new AckingSubscriber(fast);
    /** For each of `n` topics: two 16-byte messages, each among five 200-byte hot ones. */
    const publish = async (topic: (i: number) => string, n: number) => {
      for (let i = 0; i < n; i++) {
        const packets = [];
        for (let k = 0; k < 2; k++) {
          packets.push(publishPacket(topic(i), `slow-${k}-${String(i).padStart(9, "0")}`, {
            qos: 1,
            packetId: 1,
          }));
          for (let h = 0; h < 5; h++) {
            packets.push(
              publishPacket("hot", new Uint8Array(200).fill(h), { qos: 1, packetId: 2 }),
            );
          }
        }
        await pub.send(...packets);
        for (let j = 0; j < packets.length; j++) await pub.expect(PacketType.PUBACK);
      }
    };
    try {
      // Once through before the baseline (code compiled, buffers grown): hot messages only.
      await publish(() => "nobody", 50);
      for (let i = 0; i < N; i++) {
        const c = await TestClient.connect(broker.port, { clientId: `slow-${i}` });
        await c.subscribe({ [`slow/${i}`]: 1 });
        slow.push(c);
      }
      // All the hot messages acknowledged and the read buffers back to idle (the fast one's
      // window of 1 queues the hot ones behind it; acknowledgements read in bursts double a read
      // buffer): neither is what is measured.
      await acker.settle(50 * 10, pub);
      // A few measurements (60 ms or more each) first, so that a sweep (every 500 ms) has
      // trimmed the connections' buffers from their SUBACKs: they are not what is measured.
      for (let i = 0; i < 10; i++) await broker.measure();
      const baseline = await broker.measure();
      await publish((i) => `slow/${i}`, N);
      // Each slow subscriber got its first message and keeps it unacknowledged: the second waits.
      for (const c of slow) assert.equal((await c.expect(PacketType.PUBLISH)).packetId, 1);
      // The same settle step before measuring: no hot message still queued for the fast one.
      await acker.settle((50 + N) * 10, pub);
      // The sweep runs every 500 ms; a queued payload is copied out at the second one after it was
      // queued. Measured until the bound holds: a guard against a stall, not a speed.
      let held = Infinity;
      let heap = 0;
      for (let i = 0; i < 100 && held >= 200; i++) {
        const m = await broker.measure();
        held = (m.external - baseline.external) / N;
        heap = (m.heapUsed - baseline.heapUsed) / N;
        assert.equal(m.sessions, N + 2);
      }
      console.log(
        `per slow session: ${held.toFixed(0)} B of buffers, ${heap.toFixed(0)} B of heap`,
      );
      // Two 16-byte payloads each: 32 B of buffers, and never a 1,000-byte slab per payload
      // (~2,000 B each before the sweep copied them out).
      assert.ok(held < 200, `${held} bytes of buffers per slow session`);
      // Nothing dropped: each slow subscriber still gets its queued message once it acknowledges.
      for (const c of slow) await c.send({ type: PacketType.PUBACK, packetId: 1 });
      for (let i = 0; i < N; i++) {
        const p = await slow[i]!.expect(PacketType.PUBLISH);
        assert.equal(new TextDecoder().decode(p.payload), `slow-1-${String(i).padStart(9, "0")}`);
      }
      // Every hot message reached the fast one.
      await acker.waitFor((50 + N) * 10);
    } finally {
      for (const c of slow) await c.close();
    }
    assert.equal(acker.got, (50 + N) * 10);
  },
});

// Broker, area 84: small payloads of persistent sessions that go offline with messages in flight
// and queued hold about their bytes, with a store: no slab (src/broker/_payload_slab.ts) stays
// alive for them, neither in the sessions (their messages get buffers of their own when they go
// offline) nor in the store, whose records of them were pointed at the slab copies at the end of
// the routing (`copyOutRecords`): the memory store copies each record it keeps, the SQLite store
// keeps each in the log row it wrote (sync normal: no fsync per commit). Measured in a broker of
// its own process (forced collections).

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { publishPacket, TestClient } from "../_helpers/test_client.ts";
import { BrokerProcess } from "../_helpers/memory_broker_process.ts";
import { AckingSubscriber } from "../_helpers/acking_subscriber.ts";
import { tempDir } from "../_helpers/temp_dir.ts";

const N = 300;

for (const store of ["memory", "sqlite"] as const) {
  Deno.test({
    name:
      `84 stored slab: N persistent sessions gone offline with a small payload in flight and one queued hold about their bytes with the ${store} store, not a slab each [MQTT-3.1.2-5] [MQTT-4.4.0-1]`,
    sanitizeOps: true,
    sanitizeResources: true,
    fn: async () => {
      await using dir = await tempDir("amqtt-84-");
      const config: Record<string, unknown> = { max_inflight: 1 };
      if (store === "sqlite") config.persistence = { path: `${dir.path}/state.db`, sync: "normal" };
      await using broker = await BrokerProcess.start(config, { memoryStore: store === "memory" });
      await using fast = await TestClient.connect(broker.port, { clientId: "fast" });
      await fast.subscribe({ hot: 1 });
      await using pub = await TestClient.connect(broker.port, { clientId: "pub" });
      // The fast one acknowledges all it gets: the hot payloads around the slow ones are let go.
      await using acker = new AckingSubscriber(fast);
      const payload = (k: number, i: number) => `slow-${k}-${String(i).padStart(9, "0")}`;
      /** For each of `n` topics: two 16-byte messages, each among five 200-byte hot ones. */
      const publish = async (topic: (i: number) => string, n: number) => {
        for (let i = 0; i < n; i++) {
          const packets = [];
          for (let k = 0; k < 2; k++) {
            packets.push(publishPacket(topic(i), payload(k, i), { qos: 1, packetId: 1 }));
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
      // Once through before the baseline (code compiled, buffers grown): hot messages only.
      await publish(() => "nobody", 50);
      for (let i = 0; i < N; i++) {
        await using c = await TestClient.connect(broker.port, {
          clientId: `slow-${i}`,
          clean: false,
        });
        await c.subscribe({ [`slow/${i}`]: 1 });
      }
      // Each one's subscription and its session are stored: not what is measured.
      await acker.settle(50 * 10, pub);
      for (let i = 0; i < 10; i++) await broker.measure();
      const baseline = await broker.measure();
      // Connected again, each gets its first message, keeps it unacknowledged and goes away
      // (the second waits behind the window of 1).
      const slow: TestClient[] = [];
      for (let i = 0; i < N; i++) {
        slow.push(
          await TestClient.connect(broker.port, { clientId: `slow-${i}`, clean: false }),
        );
      }
      await publish((i) => `slow/${i}`, N);
      for (const c of slow) assert.equal((await c.expect(PacketType.PUBLISH)).packetId, 1);
      for (const c of slow) await c.close();
      await acker.settle((50 + N) * 10, pub);
      // A few measurements (60 ms or more each): the connections closed are let go.
      let m = await broker.measure();
      for (let i = 0; i < 5; i++) m = await broker.measure();
      // Kept offline: counted among the broker's sessions, and none of them still connected (the
      // state measured: not a connection the broker has yet to let go of).
      assert.equal(m.sessions, N + 2);
      assert.equal(m.connected, 2, "only the fast subscriber and the publisher are connected");
      const held = (m.external - baseline.external) / N;
      const heap = (m.heapUsed - baseline.heapUsed) / N;
      console.log(
        `per offline session: ${held.toFixed(0)} B of buffers, ${heap.toFixed(0)} B of heap`,
      );
      // Two 16-byte payloads each, in the session and in the store's records: about 100 B of
      // buffers, never a 1,000-byte slab per payload (~2,000 B each).
      assert.ok(held < 500, `${held} bytes of buffers per offline session`);
      // The heap: the messages, their entries and records (about 4.5 KB for the two): a loose
      // bound against one growing with the traffic around them.
      assert.ok(heap < 10_000, `${heap} bytes of heap per offline session`);
      // Nothing lost: each one back gets both, the first again with DUP [MQTT-4.4.0-1].
      for (let i = 0; i < N; i++) {
        await using c = await TestClient.connect(broker.port, {
          clientId: `slow-${i}`,
          clean: false,
        });
        const first = await c.expect(PacketType.PUBLISH);
        assert.equal(first.dup, true);
        assert.equal(new TextDecoder().decode(first.payload), payload(0, i));
        await c.send({ type: PacketType.PUBACK, packetId: first.packetId! });
        const second = await c.expect(PacketType.PUBLISH);
        assert.equal(new TextDecoder().decode(second.payload), payload(1, i));
        await c.send({ type: PacketType.PUBACK, packetId: second.packetId! });
      }
      // Every hot message reached the fast one.
      await acker.waitFor((50 + N) * 10);
      assert.equal(acker.got, (50 + N) * 10);
    },
  });
}

// Broker, area 90: a small message queued for an offline persistent session, with the SQLite store,
// holds about its own bytes once the store folded its log, not the log row of its turn with the
// large payloads written beside it (messages another subscriber acknowledged at once). The store
// keeps a committed message as a range of its log row until a fold gives one that stays a payload
// of its own (src/store/_row_message.ts `ownPayload`). Measured in a broker of its own process
// (forced collections).

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { publishPacket, TestClient } from "../_helpers/test_client.ts";
import { BrokerProcess } from "../_helpers/memory_broker_process.ts";
import { AckingSubscriber } from "../_helpers/acking_subscriber.ts";
import { tempDir } from "../_helpers/temp_dir.ts";

const N = 300;
const BIG = 8_000;

Deno.test({
  name:
    "90 sqlite row: N offline sessions each queued a 16-byte message written in a turn with an 8,000-byte one hold about their bytes after a fold, not the row [MQTT-3.1.2-5]",
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    await using dir = await tempDir("amqtt-90-");
    await using broker = await BrokerProcess.start({
      persistence: { path: `${dir.path}/state.db`, sync: "normal" },
    });
    await using fast = await TestClient.connect(broker.port, {
      clientId: "fast",
      clean: false,
    });
    await fast.subscribe({ hot: 1 });
    await using pub = await TestClient.connect(broker.port, { clientId: "pub" });
    // The fast one (persistent: its messages are stored) acknowledges all it gets: the large
    // payloads are let go at once.
    await using acker = new AckingSubscriber(fast);
    const payload = (i: number) => `slow-${String(i).padStart(11, "0")}`;
    /** `n` turns of the publisher, each a message on `topic(i)` and a large one on `hot`. */
    const publish = async (topic: (i: number) => string, n: number) => {
      for (let i = 0; i < n; i++) {
        await pub.send(
          publishPacket(topic(i), payload(i), { qos: 1, packetId: 1 }),
          publishPacket("hot", new Uint8Array(BIG).fill(i), { qos: 1, packetId: 2 }),
        );
        await pub.expect(PacketType.PUBACK);
        await pub.expect(PacketType.PUBACK);
      }
    };
    let sent = 0;
    {
      // Once through before the baseline (code compiled, buffers grown).
      await publish(() => "nobody", 50);
      sent += 50;
      for (let i = 0; i < N; i++) {
        await using c = await TestClient.connect(broker.port, {
          clientId: `slow-${i}`,
          clean: false,
        });
        await c.subscribe({ [`slow/${i}`]: 1 });
      }
      // All acknowledged by the fast one (a large message it has yet to acknowledge is held for
      // it) and the read buffers back to idle: neither is what is measured.
      await acker.settle(sent, pub);
      for (let i = 0; i < 10; i++) await broker.measure();
      const baseline = await broker.measure();
      // Each offline session gets one small message, in the same turn as a large one.
      await publish((i) => `slow/${i}`, N);
      // More large ones, until the log (4 MiB by default) is folded at least once.
      await publish(() => "nobody", 300);
      sent += N + 300;
      await acker.settle(sent, pub);
      let m = await broker.measure();
      for (let i = 0; i < 5; i++) m = await broker.measure();
      assert.equal(m.sessions, N + 2);
      const held = (m.external - baseline.external) / N;
      const heap = (m.heapUsed - baseline.heapUsed) / N;
      console.log(
        `per offline session: ${held.toFixed(0)} B of buffers, ${heap.toFixed(0)} B of heap`,
      );
      // A 16-byte payload in the session and in the store: about 100 B of buffers, never the
      // 8,000-byte row of its turn.
      assert.ok(held < 1_000, `${held} bytes of buffers per offline session`);
      assert.ok(heap < 10_000, `${heap} bytes of heap per offline session`);
      // Nothing lost: each one back gets its message [MQTT-3.1.2-5].
      for (let i = 0; i < N; i++) {
        await using c = await TestClient.connect(broker.port, {
          clientId: `slow-${i}`,
          clean: false,
        });
        const p = await c.expect(PacketType.PUBLISH);
        assert.equal(new TextDecoder().decode(p.payload), payload(i));
        await c.send({ type: PacketType.PUBACK, packetId: p.packetId! });
      }
      // Every large message reached the fast one.
      await acker.waitFor(sent);
    }
    assert.equal(acker.got, sent);
  },
});

/**
 * The memory tests' fast subscriber (`acking_subscriber.ts`): its wait ends on its guard, not
 * only when a minute passes without a message, so that a trickle of messages cannot keep a
 * test waiting a minute per message.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { AckingSubscriber } from "./acking_subscriber.ts";
import { delay, startBroker } from "./broker.ts";
import { publishPacket, TestClient } from "./test_client.ts";

Deno.test({
  name: "AckingSubscriber.waitFor ends at its guard in all while a trickle of messages goes on",
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    await using broker = await startBroker();
    await using sub = await TestClient.connect(broker.port, { clientId: "sub" });
    await sub.subscribe({ t: 1 });
    await using pub = await TestClient.connect(broker.port, { clientId: "pub" });
    await using acker = new AckingSubscriber(sub);
    // A message every 20 ms or more: one more well within each 50 idle turns (500 ms or more).
    const total = 200;
    let stop = false;
    const trickle = (async () => {
      for (let i = 0; i < total && !stop; i++) {
        await pub.send(publishPacket("t", `m${i}`, { qos: 1, packetId: 1 + (i % 100) }));
        await pub.expect(PacketType.PUBACK);
        await delay(20);
      }
    })();
    try {
      await acker.waitFor(total, { idleTurns: 50, turns: 100 });
      // 100 turns take 1 s or more, the trickle 4 s or more: with the idle guard alone the wait
      // went on until every message had come.
      assert.ok(acker.got < total, `the wait went on until ${acker.got} of ${total} messages`);
    } finally {
      stop = true;
      await trickle;
    }
    assert.equal(sub.socketEnded, false, "the subscriber is still connected");
  },
});

Deno.test({
  name: "AckingSubscriber.settle fails on a message more that comes during its round trips",
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    await using broker = await startBroker();
    await using sub = await TestClient.connect(broker.port, { clientId: "sub" });
    await sub.subscribe({ t: 1 });
    await using pub = await TestClient.connect(broker.port, { clientId: "pub" });
    await using other = await TestClient.connect(broker.port, { clientId: "other" });
    await using acker = new AckingSubscriber(sub);
    for (let i = 1; i <= 2; i++) {
      await pub.send(publishPacket("t", `m${i}`, { qos: 1, packetId: i }));
      await pub.expect(PacketType.PUBACK);
    }
    await acker.waitFor(2);
    assert.equal(acker.got, 2);
    // Two came, so the settle step's wait is over at once; a third is on its way meanwhile.
    const settled = acker.settle(2, other);
    await pub.send(publishPacket("t", "m3", { qos: 1, packetId: 3 }));
    await assert.rejects(settled, /Acknowledged 3 messages, expected 2/);
    await pub.expect(PacketType.PUBACK);
    assert.equal(sub.socketEnded, false, "the subscriber is still connected");
  },
});

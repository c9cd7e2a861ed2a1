/**
 * Broker, area 49: the store written again from memory after an outage. A real SQLite file at
 * its size limit fails the write of a persistent publisher's QoS 2 message: the publisher is
 * closed without PUBREC, but the message was routed in memory and its packet id is held. Sent
 * again (DUP) while the store fails, it gets no PUBREC (the message is not stored); once writes
 * work, the store is rewritten from memory and only then the PUBREC goes out. What changed while
 * writes failed (a subscription, a retained QoS 0 message too large for the full file) is in the
 * store too: after a restart on the same file the offline persistent subscriber gets the QoS 2
 * message exactly once, the subscription and the retained message are there, and the live QoS 2
 * subscriber got the message once.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import { publishPacket, TestClient, text } from "../_helpers/test_client.ts";
import {
  count,
  drainSession,
  FAILURE_LINE,
  fill,
  GUARD_MS,
  named,
  nameOf,
  next,
  offlineSubscribers,
  receiveQos2,
  RECOVERY_LINE,
  startOnSizedFile,
} from "../_helpers/store_full.ts";
import { tempDir } from "../cli/_helpers.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const KIB = 1024;

test("49 store rewrite: a QoS 2 message whose write failed is acknowledged only once the store is written again from memory, and reaches the offline persistent subscriber once after a restart [MQTT-4.3.3-2]; changes made while writes failed are stored", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/state.db`;
  {
    await using b = await startOnSizedFile(path, 1024 * KIB);
    const log = b.log;
    // "keeper" is offline across the restart; "ballast" holds the big messages that fill the
    // file and drains them later to make room.
    await offlineSubscribers(b.port, { keeper: { "keep/#": 2 }, ballast: { "ballast/#": 1 } });
    await using live = await TestClient.connect(b.port, { clientId: "live" });
    await live.subscribe({ "keep/#": 2 });
    // Connected before the outage, subscribes during it.
    await using newsub = await TestClient.connect(b.port, { clientId: "newsub", clean: false });
    await fill(b.port, "ballast/x", "b", 40);
    assert.equal(count(log, FAILURE_LINE), 0, "the ballast fits");

    // The QoS 2 message does not fit: its write fails, the outage starts, and the persistent
    // publisher is closed without PUBREC. The message was routed in memory all the same.
    const big = named("q2", 400 * KIB);
    {
      await using pub = await TestClient.connect(b.port, { clientId: "pub", clean: false });
      await pub.send(publishPacket("keep/q", big, { qos: 2, packetId: 5 }));
      assert.equal(await pub.poll(GUARD_MS), undefined, "no PUBREC for what was not stored");
      assert.ok(pub.socketEnded, "the publisher is closed");
    }
    assert.equal(count(log, FAILURE_LINE), 1, "the failure is logged");
    assert.equal(nameOf(await receiveQos2(live)), "q2", "the live subscriber gets it");

    // While writes fail: a retained QoS 0 message too large for the file, a subscription.
    await using p0 = await TestClient.connect(b.port, { clientId: "p0" });
    await p0.send(publishPacket("ret/big", named("ret", 400 * KIB), { retain: true }));
    await newsub.send({
      type: PacketType.SUBSCRIBE,
      packetId: 1,
      subscriptions: [{ topic: "new/#", qos: 1 }],
    });
    // Its SUBACK depends on a write that may or may not work meanwhile: either way, the
    // subscription is the broker's, in memory.
    await newsub.poll(GUARD_MS);

    // The publisher comes back and sends the message again: it holds the id, so no new work,
    // but the message is not stored: no PUBREC yet, and the connection stays open.
    const pub = await TestClient.open(b.port);
    try {
      const connack = await pub.handshake({ clientId: "pub", clean: false });
      assert.deepEqual([connack.reasonCode, connack.sessionPresent], [0, true]);
      await pub.send(publishPacket("keep/q", big, { qos: 2, packetId: 5, dup: true }));
      assert.equal(await pub.poll(1_500), undefined, "no PUBREC while the store fails");
      assert.equal(pub.socketEnded, false, "the publisher is still connected");
      assert.deepEqual(b.broker.notReady, ["the store cannot be written"]);

      // Room comes back: the ballast drains. The probe works, the store is written again from
      // memory, and then the PUBREC goes out.
      await drainSession(b.port, "ballast", 40);
      const rec = await next(pub, PacketType.PUBREC);
      assert.deepEqual([rec.packetId, rec.reasonCode ?? 0], [5, 0]);
      assert.equal(count(log, RECOVERY_LINE), 1, "the outage ended before the PUBREC");
      assert.equal(b.broker.ready, true);
      await pub.send({ type: PacketType.PUBREL, packetId: 5 });
      assert.equal((await next(pub, PacketType.PUBCOMP)).packetId, 5);
      await pub.disconnect();
    } finally {
      await pub.close();
    }
    // Negative check: the message sent again was not delivered again to the live subscriber.
    await p0.send(publishPacket("keep/mark", "mark"));
    const mark = await next(live, PacketType.PUBLISH);
    assert.equal(text(mark), "mark", "the marker is the next thing the live subscriber gets");
    assert.equal(live.socketEnded, false);
    await newsub.close();
    await waitFor(() => count(log, FAILURE_LINE) === 1, GUARD_MS, "nothing more failed");
  }

  // A restart on the same file: what memory held when writes worked again is there.
  await using b2 = await startBroker({}, { store: SqliteStore.open(path) });
  await using keeper = await TestClient.connect(b2.port, { clientId: "keeper", clean: false });
  const got = await receiveQos2(keeper);
  assert.equal(nameOf(got), "q2");
  assert.equal(got.payload.length, 400 * KIB);
  await using p1 = await TestClient.connect(b2.port, { clientId: "p1" });
  await p1.send(publishPacket("keep/end", "end"));
  assert.equal(text(await next(keeper, PacketType.PUBLISH)), "end", "q2 came exactly once");

  // The retained message set while writes failed.
  await using watcher = await TestClient.connect(b2.port, { clientId: "watcher" });
  await watcher.subscribe({ "ret/#": 0 });
  const retained = await next(watcher, PacketType.PUBLISH);
  assert.deepEqual([nameOf(retained), retained.retain], ["ret", true]);

  // The subscription made while writes failed.
  await using newsub = await TestClient.connect(b2.port, { clientId: "newsub", clean: false });
  await p1.send(publishPacket("new/x", "hello", { qos: 1, packetId: 1 }));
  await next(p1, PacketType.PUBACK);
  assert.equal(text(await next(newsub, PacketType.PUBLISH)), "hello");

  // The publisher's id 5 was released by its PUBREL: a new message with it is new.
  await using pub = await TestClient.connect(b2.port, { clientId: "pub", clean: false });
  await pub.send(publishPacket("keep/q", "fresh", { qos: 2, packetId: 5 }));
  assert.equal((await next(pub, PacketType.PUBREC)).packetId, 5);
  await pub.send({ type: PacketType.PUBREL, packetId: 5 });
  await next(pub, PacketType.PUBCOMP);
  assert.equal(text(await receiveQos2(keeper)), "fresh");
});

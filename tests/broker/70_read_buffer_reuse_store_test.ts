/**
 * Broker, area 70: the publishers' read buffers are read into again once their PUBLISHes are
 * routed while the broker has a store (`BrokerCore.releaseReceived`). The store's records share a
 * message's payload and are written later (the SQLite store on the broker's thread encodes them at
 * the end of the turn, batches nothing waits for are held up to 10 ms): each is pointed at the
 * message's copy before the buffer is read into again (`copyOutRecords`). Seeded random traffic
 * from two publishers to persistent sessions offline, with full windows and acknowledging; then
 * every message and retained message in the file is read back byte for byte, and the offline
 * session gets every message it is owed after a restart.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType, type PublishPacket } from "../../src/packet/mod.ts";
import type { QoS } from "../../src/packet/constants.ts";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import { subscribe5, TestClient } from "../_helpers/test_client.ts";
import { tempDir } from "../_helpers/temp_dir.ts";
import { check, publish, type Published } from "./_reuse_traffic.ts";

/** A connected persistent subscriber that reads everything; `ack` says whether it acknowledges. */
async function reader(
  client: TestClient,
  ack: boolean,
  published: Map<number, Published>,
  stop: () => boolean,
): Promise<number> {
  let seen = 0;
  while (!stop()) {
    const packet = await client.poll(50);
    if (packet === undefined) {
      assert.ok(!client.socketEnded, "a subscriber was closed");
      continue;
    }
    if (packet.type === PacketType.PUBREL && ack) {
      await client.send({ type: PacketType.PUBCOMP, packetId: packet.packetId });
    }
    if (packet.type !== PacketType.PUBLISH) continue;
    const p = packet as PublishPacket;
    const n = check(p.payload, `subscriber (${p.topic})`);
    assert.ok(published.has(n), `message ${n} was never published`);
    seen++;
    if (ack && p.qos > 0) {
      await client.send({
        type: p.qos === 1 ? PacketType.PUBACK : PacketType.PUBREC,
        packetId: p.packetId!,
      });
    }
  }
  return seen;
}

async function scenario(seed: number, sync: "normal" | "full"): Promise<void> {
  await using dir = await tempDir("amqtt-reuse-store-");
  const config = {
    persistence: { path: `${dir.path}/state.db`, sync },
    max_inflight: 4,
    max_queued_messages: 100_000,
  };
  const published = new Map<number, Published>();
  {
    await using b = await startBroker(config);
    // Offline all along: every QoS 1/2 message is queued for it, and stored.
    const off = await TestClient.connect(b.port, { clientId: "off", clean: false });
    await off.subscribe({ "t/#": 2 });
    await off.disconnect();
    await waitFor(() => !b.broker.clients().some((c) => c.clientId === "off" && c.connected));
    // Never acknowledging: a window of 4 (3.1.1) or 20 (5.0) in flight, the rest queued behind it.
    const full4 = await TestClient.connect(b.port, { clientId: "full4", clean: false });
    await full4.subscribe({ "t/#": 2 });
    const full5 = await TestClient.connect(b.port, {
      clientId: "full5",
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 600, receiveMaximum: 20 },
    });
    await subscribe5(full5, [{ topic: "t/#", qos: 1 }], { identifier: 7 });
    // Acknowledging everything: its deliveries are stored, then deleted.
    const acks = await TestClient.connect(b.port, { clientId: "acks", clean: false });
    await acks.subscribe({ "t/#": 2 });
    let publishing = true;
    // A reader's failure ends the test as its failure, not as an uncaught rejection.
    let failure: unknown;
    const readers = [
      reader(full4, false, published, () => !publishing || failure !== undefined),
      reader(full5, false, published, () => !publishing || failure !== undefined),
      reader(acks, true, published, () => !publishing || failure !== undefined),
    ].map((r) => r.catch((e) => (failure ??= e, -1)));
    const pubs = [
      await TestClient.connect(b.port, { clientId: "p4" }),
      await TestClient.connect(b.port, { clientId: "p5", protocolVersion: 5 }),
    ];
    try {
      await Promise.all(pubs.map((pub, k) => publish(pub, k, seed, 400, published)));
      publishing = false;
      const seen = await Promise.all(readers);
      if (failure !== undefined) throw failure;
      assert.ok(seen.every((n) => n > 0), `every subscriber got messages: ${seen}`);
    } finally {
      publishing = false;
      await Promise.all(readers);
      for (const c of [...pubs, full4, full5, acks]) await c.close();
    }
  }

  // The file holds every message still owed, byte for byte.
  const owedOff = [...published].filter(([_, m]) => m.qos > 0).map(([n]) => n).sort((a, b) =>
    a - b
  );
  {
    await using store = SqliteStore.open(`${dir.path}/state.db`);
    const state = await store.load(Date.now());
    const stored = new Map<number, number>();
    for (const [id, m] of state.messages) {
      const n = check(m.payload, `stored message ${id} (${m.topic})`);
      const p = published.get(n);
      assert.ok(p !== undefined, `stored message ${n} was never published`);
      assert.equal(m.topic, p.topic, `the topic of stored message ${n}`);
      stored.set(id, n);
    }
    const lastRetained = new Map<string, number>();
    for (const [n, m] of published) if (m.retain) lastRetained.set(m.topic, n);
    const retained = new Map(state.retained.map((m) => [m.topic, check(m.payload, "retained")]));
    assert.deepEqual(retained, lastRetained);
    const off = state.sessions.find((s) => s.session.clientId === "off");
    assert.ok(off !== undefined, "the offline session is stored");
    const queued = off.outbound.map((o) => stored.get(o.messageId!)!).sort((a, b) => a - b);
    assert.deepEqual(queued, owedOff, "every QoS 1/2 message is stored for the offline session");
  }

  // After a restart the offline session gets them, byte for byte [MQTT-3.1.2-5] [MQTT-4.4.0-1].
  await using b = await startBroker(config);
  await using off = await TestClient.open(b.port);
  const connack = await off.handshake({ clientId: "off", clean: false });
  assert.equal(connack.sessionPresent, true);
  const got: number[] = [];
  while (got.length < owedOff.length) {
    const packet = await off.receive();
    if (packet.type === PacketType.PUBREL) {
      await off.send({ type: PacketType.PUBCOMP, packetId: packet.packetId });
      continue;
    }
    assert.equal(packet.type, PacketType.PUBLISH);
    const p = packet as PublishPacket;
    const n = check(p.payload, `resent (${p.topic})`);
    const m = published.get(n)!;
    assert.equal(p.topic, m.topic);
    assert.equal(p.qos, m.qos as QoS);
    got.push(n);
    await off.send({
      type: p.qos === 1 ? PacketType.PUBACK : PacketType.PUBREC,
      packetId: p.packetId!,
    });
  }
  assert.deepEqual(got.sort((a, b) => a - b), owedOff);
}

Deno.test("70 read buffer reuse with a store (sync normal, SQLite on the broker's thread): stored and resent payloads stay byte for byte what was published (seed 1) [MQTT-3.1.2-5] [MQTT-4.4.0-1]", async () => {
  await scenario(1, "normal");
});

Deno.test("70 read buffer reuse with a store (sync full, SQLite on a worker): stored and resent payloads stay byte for byte what was published (seed 2) [MQTT-3.1.2-5] [MQTT-4.4.0-1]", async () => {
  await scenario(2, "full");
});

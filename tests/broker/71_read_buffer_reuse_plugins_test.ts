/**
 * Broker, area 71: the publishers' read buffers are read into again once their PUBLISHes are
 * routed while plugins see the messages (`BrokerCore.releaseReceived`): a receive authorization
 * (`authorizeReceive`) answered later holds its delivery in memory, whose payload is copied out if
 * it still waits once the message is routed; packet events hand plugins PUBLISHes received and
 * sent with payloads of their own. Seeded random traffic from two publishers; every delivery and
 * every payload a plugin kept is checked byte for byte.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Packet, PacketType, type PublishPacket } from "../../src/packet/mod.ts";
import type { BrokerPlugin } from "../../src/plugins/types.ts";
import { delay, startBroker, waitFor } from "../_helpers/broker.ts";
import { subscribe5, TestClient } from "../_helpers/test_client.ts";
import { rng } from "../_helpers/rng.ts";
import { check, publish, type Published, readDeliveries } from "./_reuse_traffic.ts";

interface Sub {
  client: TestClient;
  /** The messages it got, by number. */
  seen: Set<number>;
  /** The QoS it subscribed with. */
  qos: number;
}

async function scenario(seed: number, packetEvents: boolean): Promise<void> {
  const random = rng(seed * 13);
  const kept: { packet: Packet; sent: boolean }[] = [];
  let answeredLater = 0;
  const plugin: BrokerPlugin = {
    name: "late-receive",
    // Most answers come later (a lookup), in any order; some at once.
    authorizeReceive: () => {
      if (random() < 0.2) return true;
      answeredLater++;
      return delay(Math.floor(random() * 5)).then(() => true);
    },
    ...(packetEvents
      ? {
        onMqttPacketReceived: ({ packet }) => void kept.push({ packet, sent: false }),
        onMqttPacketSent: ({ packet }) => void kept.push({ packet, sent: true }),
      }
      : {}),
  };
  await using b = await startBroker({ max_inflight: 4 }, { plugins: [plugin], packetEvents });
  const subs: Sub[] = [];
  for (const qos of [0, 1, 2]) {
    const client = await TestClient.connect(b.port, { clientId: `s4q${qos}` });
    await client.subscribe({ "t/#": qos as 0 | 1 | 2 });
    subs.push({ client, seen: new Set(), qos });
  }
  // 5.0 with a Subscription Identifier: each delivery a copy of the message [MQTT-3.3.4-3].
  const s5 = await TestClient.connect(b.port, {
    clientId: "s5",
    protocolVersion: 5,
    properties: { receiveMaximum: 2 },
  });
  await subscribe5(s5, [{ topic: "t/#", qos: 2 }], { identifier: 4 });
  subs.push({ client: s5, seen: new Set(), qos: 2 });
  const published = new Map<number, Published>();
  let done = false;
  // A reader's failure ends the test as its failure, not as an uncaught rejection.
  let failure: unknown;
  const readers = subs.map((s) =>
    readDeliveries(s, () => done, {
      known: (n, p) => {
        const m = published.get(n);
        assert.ok(m !== undefined, `message ${n} was never published`);
        assert.equal(p.topic, m.topic);
      },
    }).catch((e) => void (failure ??= e))
  );
  const pubs = [
    await TestClient.connect(b.port, { clientId: "p4" }),
    await TestClient.connect(b.port, { clientId: "p5", protocolVersion: 5 }),
  ];
  try {
    await Promise.all(pubs.map((pub, k) => publish(pub, k, seed, 300, published)));
    // Every QoS 1/2 delivery arrives [MQTT-4.3.2-1] [MQTT-4.3.3-1].
    const owed = (s: Sub) =>
      [...published].filter(([_, m]) => Math.min(m.qos, s.qos) > 0).map(([n]) => n);
    await waitFor(
      () => failure !== undefined || subs.every((s) => owed(s).every((n) => s.seen.has(n))),
      60_000,
      "every QoS 1/2 delivery",
    );
    if (failure !== undefined) throw failure;
    assert.ok(answeredLater > 100, `answered later: ${answeredLater}`);
  } finally {
    done = true;
    await Promise.all(readers);
    for (const c of [...pubs, ...subs.map((s) => s.client)]) await c.close();
  }
  if (!packetEvents) return;
  // What the plugin kept from packet events, received and sent, is what was published.
  let received = 0, sent = 0;
  for (const { packet, sent: out } of kept) {
    if (packet.type !== PacketType.PUBLISH) continue;
    const p = packet as PublishPacket;
    if (p.topic.startsWith("$SYS")) continue;
    const n = check(p.payload, `packet event (${out ? "sent" : "received"}, ${p.topic})`);
    assert.ok(published.has(n));
    if (out) sent++;
    else received++;
  }
  assert.equal(received, published.size, "every PUBLISH received was an event");
  assert.ok(sent >= published.size, `PUBLISHes sent: ${sent}`);
}

Deno.test("71 read buffer reuse: deliveries waiting for a receive authorization keep their payloads (seed 1) [MQTT-4.6.0-6] [MQTT-4.3.2-1]", async () => {
  await scenario(1, false);
});

Deno.test("71 read buffer reuse: PUBLISHes kept by plugins from packet events, received and sent, keep their payloads (seed 2)", async () => {
  await scenario(2, true);
});

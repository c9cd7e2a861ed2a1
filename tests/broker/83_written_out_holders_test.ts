/**
 * Broker, area 83: a QoS 1/2 message whose deliveries were all written out during its routing,
 * to clean sessions that never send them again [MQTT-3.1.2-6], lets go of its payload instead of
 * copying it out of the publisher's read buffer (`BrokerMessage.writtenOut`). Whatever else keeps
 * the message, or bytes of it, past the routing keeps them intact while that buffer is read into
 * again by later PUBLISHes: a persistent session's queue while it is offline (3.1.1 and 5.0), the
 * retained store, a will and its Correlation Data, the packets a plugin keeps from packet events,
 * and the messages a plugin keeps. Seeded random traffic (sizes from empty to over a read, the
 * byte stream split at random offsets) from two publishers; every byte checked.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Packet, PacketType, type PublishPacket } from "../../src/packet/mod.ts";
import type { BrokerPlugin, MessageInfo } from "../../src/plugins/types.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import { subscribe5, TestClient } from "../_helpers/test_client.ts";
import { check, payloadOf, publish, type Published, readDeliveries } from "./_reuse_traffic.ts";

/** Message numbers of the wills: apart from the traffic's (publisher k's are k * 1,000,000 + i). */
const WILL = 900_000;

interface Sub {
  client: TestClient;
  seen: Set<number>;
  qos: number;
}

/** Asserts that message `n` was published, unless it is a will's. */
function known(published: Map<number, Published>): (n: number) => void {
  return (n) => {
    if (n < WILL || n >= 1_000_000) assert.ok(published.has(n), `message ${n} never published`);
  };
}

/** The QoS 1/2 messages a subscription at `qos` gets, to topics that start with `prefix`. */
function owed(published: Map<number, Published>, qos: number, prefix = "t/"): number[] {
  return [...published].filter(([_, m]) => Math.min(m.qos, qos) > 0 && m.topic.startsWith(prefix))
    .map(([n]) => n);
}

async function scenario(seed: number): Promise<void> {
  const packets: { packet: Packet; sent: boolean }[] = [];
  const messages: MessageInfo[] = [];
  const broadcast: MessageInfo[] = [];
  const plugin: BrokerPlugin = {
    name: "keeper",
    onMqttPacketReceived: ({ packet }) => void packets.push({ packet, sent: false }),
    onMqttPacketSent: ({ packet }) => void packets.push({ packet, sent: true }),
    onBrokerMessageReceived: ({ message }) => void messages.push(message),
    onBrokerMessageBroadcast: ({ message }) => void broadcast.push(message),
  };
  await using b = await startBroker({ max_queued_messages: 0 }, {
    plugins: [plugin],
    packetEvents: true,
  });
  // Persistent sessions, offline while the traffic flows: their deliveries are queued. Each takes
  // one of the topics, so that the messages to the others reach only clean sessions.
  {
    const off4 = await TestClient.connect(b.port, { clientId: "off4", clean: false });
    await off4.subscribe({ "t/x/#": 1 });
    await off4.disconnect();
    const off5 = await TestClient.connect(b.port, {
      clientId: "off5",
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 600 },
    });
    await subscribe5(off5, [{ topic: "t/1", qos: 2 }], {});
    await off5.disconnect();
  }
  // Clean subscribers that take everything: most messages reach only them, and let go.
  const subs: Sub[] = [];
  for (const qos of [1, 2]) {
    const client = await TestClient.connect(b.port, { clientId: `c4q${qos}` });
    await client.subscribe({ "t/#": qos as 1 | 2, "will/#": 1 });
    subs.push({ client, seen: new Set(), qos });
  }
  const c5 = await TestClient.connect(b.port, { clientId: "c5", protocolVersion: 5 });
  await subscribe5(c5, [{ topic: "t/#", qos: 1 }, { topic: "will/#", qos: 1 }], {});
  subs.push({ client: c5, seen: new Set(), qos: 1 });
  const published = new Map<number, Published>();
  let done = false;
  let failure: unknown;
  const readers = subs.map((s) =>
    readDeliveries(s, () => done, { known: known(published) })
      .catch((e) => void (failure ??= e))
  );
  // The publishers carry wills (a 5.0 one with Correlation Data), read from their first bytes.
  const wills = [payloadOf(WILL + seed, 100 + seed * 37), payloadOf(WILL + 10 + seed, 3000)];
  const correlation = payloadOf(WILL + 20 + seed, 40);
  const pubs = [
    await TestClient.connect(b.port, {
      clientId: "p4",
      will: { topic: "will/p4", payload: wills[0]!, qos: 1, retain: false },
    }),
    await TestClient.connect(b.port, {
      clientId: "p5",
      protocolVersion: 5,
      will: {
        topic: "will/p5",
        payload: wills[1]!,
        qos: 1,
        retain: false,
        properties: { correlationData: correlation },
      },
    }),
  ];
  try {
    await Promise.all(pubs.map((pub, k) => publish(pub, k, seed, 250, published)));
    await waitFor(
      () =>
        failure !== undefined ||
        subs.every((s) => owed(published, s.qos).every((n) => s.seen.has(n))),
      60_000,
      "every QoS 1/2 delivery to the clean subscribers",
    );
    if (failure !== undefined) throw failure;
    // The publishers go without DISCONNECT: their wills go out [MQTT-3.1.2-8].
    for (const pub of pubs) await pub.close();
    await waitFor(
      () => failure !== undefined || subs.every((s) => s.seen.has(WILL + seed)),
      30_000,
      "the wills",
    );
    if (failure !== undefined) throw failure;
    await waitFor(() => subs.every((s) => s.seen.has(WILL + 10 + seed)), 30_000, "p5's will");
  } finally {
    done = true;
    await Promise.all(readers);
    for (const c of [...pubs, ...subs.map((s) => s.client)]) await c.close();
  }

  // The offline sessions come back: every queued payload as published [MQTT-3.1.2-5].
  for (
    const [clientId, version, qos, prefix] of [
      ["off4", 4, 1, "t/x/"],
      ["off5", 5, 2, "t/1"],
    ] as const
  ) {
    const back = await TestClient.connect(b.port, {
      clientId,
      clean: false,
      protocolVersion: version,
      properties: version === 5 ? { sessionExpiryInterval: 600 } : undefined,
    });
    const sub: Sub = { client: back, seen: new Set(), qos };
    let stop = false;
    const reader = readDeliveries(sub, () => stop, { known: known(published) })
      .catch((e) => void (failure ??= e));
    const expected = owed(published, qos, prefix);
    try {
      await waitFor(
        () => failure !== undefined || expected.every((n) => sub.seen.has(n)),
        60_000,
        `${clientId}'s queued messages`,
      );
      if (failure !== undefined) throw failure;
      assert.ok(expected.length > 30, `queued for ${clientId}: ${expected.length}`);
      assert.equal(sub.seen.size, expected.length, `${clientId}: only its topic's messages`);
    } finally {
      stop = true;
      await reader;
      await back.close();
    }
  }

  // The retained store: one message per topic, the last published with RETAIN, intact.
  const lastRetained = new Map<string, number>();
  for (const [n, m] of [...published].sort(([a], [b]) => a - b)) {
    if (m.retain && n < 1_000_000) lastRetained.set(m.topic, n);
  }
  {
    const late = await TestClient.connect(b.port, { clientId: "late" });
    try {
      await late.subscribe({ "t/#": 0 });
      const got = new Map<string, number>();
      for (;;) {
        const p = await late.poll(300);
        if (p === undefined) break;
        if (p.type !== PacketType.PUBLISH) continue;
        const publish = p as PublishPacket;
        got.set(publish.topic, check(publish.payload, `retained (${publish.topic})`));
      }
      assert.equal(late.socketEnded, false);
      // Publisher 0's retained messages (each topic's last of them; publisher 1 may have
      // retained after it on the same topic).
      for (const [topic, n] of lastRetained) {
        const kept = got.get(topic);
        assert.ok(kept !== undefined, `nothing retained on ${topic}`);
        assert.ok(kept >= n, `${topic}: retained ${kept}, published ${n} after it`);
      }
    } finally {
      await late.close();
    }
  }

  // What the plugin kept: every PUBLISH received and sent, the CONNECTs' wills, the messages.
  let received = 0;
  const connects: Packet[] = [];
  for (const { packet, sent } of packets) {
    if (packet.type === PacketType.CONNECT) connects.push(packet);
    if (packet.type !== PacketType.PUBLISH || packet.topic.startsWith("$SYS")) continue;
    check(packet.payload, `packet event (${sent ? "sent" : "received"}, ${packet.topic})`);
    if (!sent) received++;
  }
  assert.equal(received, published.size, "every PUBLISH received was an event");
  const willsSeen = connects.flatMap((c) =>
    c.type === PacketType.CONNECT && c.will !== undefined ? [c.will] : []
  );
  assert.deepEqual(willsSeen.map((w) => [...w.payload]), wills.map((w) => [...w]));
  assert.deepEqual([...willsSeen[1]!.properties!.correlationData!], [...correlation]);
  for (const m of messages) check(m.payload, `message kept by a plugin (${m.topic})`);
  assert.ok(messages.length >= published.size, `messages kept: ${messages.length}`);
  for (const m of broadcast) check(m.payload, `message broadcast kept by a plugin (${m.topic})`);
  assert.ok(broadcast.length >= published.size, `broadcasts kept: ${broadcast.length}`);
}

for (const seed of [1, 2, 3]) {
  Deno.test(`83 written-out messages: queued, retained, will, packet events and plugins keep their payloads while clean sessions' deliveries let go (seed ${seed}) [MQTT-3.1.2-6] [MQTT-3.1.2-5] [MQTT-3.3.1-5] [MQTT-3.1.2-8]`, async () => {
    await scenario(seed);
  });
}

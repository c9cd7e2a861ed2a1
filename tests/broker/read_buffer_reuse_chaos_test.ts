/**
 * Broker: payloads kept past the routing of their PUBLISH (in flight, queued behind a window in
 * the payload slab, queued for an offline session, 5.0 copies with Subscription Identifiers or
 * Retain As Published, retained) stay byte for byte what was published while the publishers' read
 * buffers are read into again, under seeded random traffic and subscriber behaviour: sessions
 * going offline and coming back, sessions taken over by a new connection, a slow subscriber with
 * a window of 1, QoS 0 subscriptions to QoS 1/2 messages, a shared group whose members come and
 * go. Every payload says which message it is and what its bytes are; every QoS 1/2 delivery a
 * persistent session is owed arrives.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type Packet,
  PacketType,
  type PublishPacket,
  type Subscription,
} from "../../src/packet/mod.ts";
import type { ProtocolVersion, QoS } from "../../src/packet/constants.ts";
import { delay, startBroker } from "../_helpers/broker.ts";
import { subscribe5, TestClient } from "../_helpers/test_client.ts";
import { rng } from "../_helpers/rng.ts";
import { check, publish, type Published } from "./_reuse_traffic.ts";

/** How a subscriber behaves. */
interface SubscriberSpec {
  clientId: string;
  version: ProtocolVersion;
  filter: string;
  qos: QoS;
  /** A Subscription Identifier (5.0): every delivery is a copy carrying it. */
  identifier?: number;
  retainAsPublished?: boolean;
  /** Its window (5.0 Receive Maximum). */
  receiveMaximum?: number;
  /** A persistent session, owed every QoS 1/2 message. */
  persistent: boolean;
  /** Per PUBLISH received while the publishers run: chance to go offline, to be taken over. */
  offline: number;
  takeover: number;
  /** Per PUBLISH at QoS 1/2: chance to wait a few ms before acknowledging it. */
  slow: number;
  /**
   * Per PUBLISH at QoS 1/2 while the publishers run: chance to leave it unacknowledged, as a
   * client that crashes would: it is sent again once the session comes back. Default 0.
   */
  forget?: number;
}

class Subscriber {
  readonly spec: SubscriberSpec;
  readonly seen = new Set<number>();
  client!: TestClient;
  #random: () => number;
  /** Set once the publishers are done: no more going offline or taken over. */
  calm = false;
  offlines = 0;
  takeovers = 0;

  constructor(spec: SubscriberSpec, seed: number) {
    this.spec = spec;
    this.#random = rng(seed);
  }

  /** The protocol level of the current connection. */
  version: ProtocolVersion = 4;
  /** Topic aliases the broker set on the current connection. */
  #aliases = new Map<number, string>();
  /** Messages left unacknowledged on the current connection. */
  #forgotten = 0;

  async connect(first: boolean): Promise<TestClient> {
    const s = this.spec;
    // A 5.0 session comes back now and then at 3.1.1 (and back): its messages kept are encoded
    // afresh from their payloads, not from the encodings made when they were first sent; at 5.0
    // with topic aliases now and then, which are encoded per delivery too.
    this.version = s.version === 5 && !first && s.persistent && this.#random() < 0.3
      ? 4
      : s.version;
    this.#aliases = new Map();
    this.#forgotten = 0;
    const properties = this.version === 5
      ? {
        sessionExpiryInterval: s.persistent ? 600 : 0,
        ...(s.receiveMaximum !== undefined ? { receiveMaximum: s.receiveMaximum } : {}),
        ...(this.#random() < 0.4 ? { topicAliasMaximum: 2 } : {}),
      }
      : undefined;
    const client = await TestClient.connect(this.port, {
      clientId: s.clientId,
      protocolVersion: this.version,
      // A 3.1.1 session is kept only without Clean Session; a 5.0 one by its expiry interval.
      clean: this.version === 5 ? first || !s.persistent : !s.persistent,
      properties,
    });
    if (first || !s.persistent) {
      if (s.version === 5) {
        const sub: Subscription = {
          topic: s.filter,
          qos: s.qos,
          retainAsPublished: s.retainAsPublished,
        };
        await subscribe5(
          client,
          [sub],
          s.identifier !== undefined ? { identifier: s.identifier } : {},
        );
      } else await client.subscribe({ [s.filter]: s.qos });
    }
    return client;
  }

  port = 0;

  /** Connects and subscribes. */
  async start(): Promise<void> {
    this.client = await this.connect(true);
  }

  /** Reads and acknowledges until `done()`; meanwhile goes offline and is taken over at random. */
  async run(published: Map<number, Published>, done: () => boolean): Promise<void> {
    const s = this.spec;
    for (;;) {
      if (done()) return;
      const packet = await this.client.poll(100);
      if (packet === undefined) {
        if (this.#forgotten > 0 && !this.client.socketEnded) {
          // Its window is full of messages it did not acknowledge: it comes back for them.
          this.#forgotten = 0;
          this.offlines++;
          await this.client.close();
        }
        if (this.client.socketEnded) {
          // Taken over, or closed by us: carry on with a new connection.
          await this.client.close();
          this.client = await this.connect(false);
        }
        continue;
      }
      if (packet.type === PacketType.PUBREL) {
        await this.#send({ type: PacketType.PUBCOMP, packetId: packet.packetId });
        continue;
      }
      if (packet.type !== PacketType.PUBLISH) continue;
      const p = packet as PublishPacket;
      let topic = p.topic;
      const alias = p.properties?.topicAlias;
      if (alias !== undefined) {
        if (topic === "") topic = this.#aliases.get(alias) ?? "?";
        else this.#aliases.set(alias, topic);
      }
      const where = `${s.clientId} (${topic}, ${this.version === 5 ? "5.0" : "3.1.1"})`;
      const n = check(p.payload, where);
      const m = published.get(n);
      assert.ok(m !== undefined, `${where}: message ${n} was never published`);
      assert.equal(topic, m.topic, `${where}: the topic of message ${n}`);
      // Delivered at min(published, granted) [MQTT-3.8.4-6]; RETAIN as published only with
      // Retain As Published [MQTT-3.3.1-12] [MQTT-3.3.1-13].
      assert.equal(p.qos, Math.min(m.qos, s.qos), `${where}: the QoS of message ${n}`);
      assert.equal(p.retain, s.retainAsPublished === true && m.retain, `${where}: RETAIN of ${n}`);
      if (s.identifier !== undefined && this.version === 5) {
        assert.deepEqual(p.properties?.subscriptionIdentifier, [s.identifier], where);
      }
      this.seen.add(n);
      const forget = p.qos > 0 && !this.calm && this.#random() < (s.forget ?? 0);
      if (forget) this.#forgotten++;
      if (p.qos > 0 && !forget) {
        if (this.#random() < s.slow) await delay(1 + Math.floor(this.#random() * 4));
        await this.#send({
          type: p.qos === 1 ? PacketType.PUBACK : PacketType.PUBREC,
          packetId: p.packetId!,
        });
      }
      if (this.calm) continue;
      const r = this.#random();
      if (r < s.offline) {
        this.offlines++;
        await this.client.close();
        await delay(Math.floor(this.#random() * 20));
        this.client = await this.connect(false);
      } else if (r < s.offline + s.takeover) {
        // A new connection with the same client id takes the session over [MQTT-3.1.4-3].
        this.takeovers++;
        const old = this.client;
        this.client = await this.connect(false);
        await old.close();
      }
    }
  }

  async #send(packet: Packet): Promise<void> {
    try {
      await this.client.send(packet);
    } catch {
      // The connection was closed under us (taken over): the session resends.
    }
  }
}

/** Every kind of subscriber: windows small and large, 3.1.1 and 5.0, copies, QoS 0, shared. */
const MIXED: SubscriberSpec[] = [
  // 3.1.1, persistent, window of 8 (max_inflight), goes offline and is taken over.
  {
    clientId: "s311",
    version: 4,
    filter: "t/#",
    qos: 2,
    persistent: true,
    offline: 0.02,
    takeover: 0.02,
    slow: 0.05,
  },
  // 5.0 with an identifier and Retain As Published: each delivery a copy of the message.
  {
    clientId: "s5id",
    version: 5,
    filter: "t/#",
    qos: 2,
    identifier: 9,
    retainAsPublished: true,
    receiveMaximum: 2,
    persistent: true,
    offline: 0.02,
    takeover: 0.02,
    slow: 0.05,
  },
  // 5.0 at QoS 1 with an identifier, no window trouble.
  {
    clientId: "s5q1",
    version: 5,
    filter: "t/+",
    qos: 1,
    identifier: 3,
    persistent: true,
    offline: 0.01,
    takeover: 0,
    slow: 0,
  },
  // One that leaves many messages unacknowledged in its window of 20 and comes back often,
  // now and then at 3.1.1: its resends are encoded from the payloads its copies kept.
  {
    clientId: "lazy",
    version: 5,
    filter: "t/#",
    qos: 1,
    identifier: 11,
    receiveMaximum: 20,
    persistent: true,
    offline: 0.04,
    takeover: 0.03,
    slow: 0,
    forget: 0.7,
  },
  // The slow one: a window of 1, acknowledging late, never away.
  {
    clientId: "slow",
    version: 5,
    filter: "t/#",
    qos: 2,
    receiveMaximum: 1,
    persistent: true,
    offline: 0,
    takeover: 0,
    slow: 0.5,
  },
  // QoS 0 subscriptions to QoS 1/2 messages: delivered only at QoS 0, at 3.1.1 and as 5.0
  // copies with an identifier.
  {
    clientId: "q0",
    version: 4,
    filter: "t/#",
    qos: 0,
    persistent: false,
    offline: 0,
    takeover: 0,
    slow: 0,
  },
  {
    clientId: "q0id",
    version: 5,
    filter: "t/#",
    qos: 0,
    identifier: 5,
    retainAsPublished: true,
    persistent: false,
    offline: 0,
    takeover: 0,
    slow: 0,
  },
  // A shared group whose members come and go (clean sessions: their messages pass to the
  // other member).
  {
    clientId: "g1",
    version: 5,
    filter: "$share/g/t/#",
    qos: 1,
    receiveMaximum: 2,
    persistent: false,
    offline: 0.03,
    takeover: 0.02,
    slow: 0.1,
  },
  {
    clientId: "g2",
    version: 4,
    filter: "$share/g/t/#",
    qos: 2,
    persistent: false,
    offline: 0.03,
    takeover: 0,
    slow: 0.1,
  },
];

/**
 * Only subscribers whose deliveries are 5.0 copies (Subscription Identifiers, Retain As
 * Published), none queueing: the copies in flight share the slab copy made from the message once
 * routed, and one of them leaves many unacknowledged and comes back at 3.1.1 for them.
 */
const COPIES: SubscriberSpec[] = MIXED.filter((s) => ["s5q1", "lazy", "q0id"].includes(s.clientId))
  .concat({
    clientId: "rap",
    version: 5,
    filter: "t/#",
    qos: 2,
    retainAsPublished: true,
    persistent: true,
    offline: 0.02,
    takeover: 0.02,
    slow: 0,
    forget: 0.5,
  });

/** The seeded scenario: publishes `count` messages from each publisher and checks every subscriber. */
async function scenario(
  seed: number,
  count: number,
  specs: SubscriberSpec[],
  maxInflight: number,
): Promise<void> {
  await using b = await startBroker({ max_inflight: maxInflight, max_queued_messages: 100_000 });
  const subscribers = specs.map((spec, i) => {
    const s = new Subscriber(spec, seed * 100 + i);
    s.port = b.port;
    return s;
  });
  const published = new Map<number, Published>();
  /** The messages each persistent subscriber is owed (QoS 1/2 deliveries), known once done. */
  let publishing = true;
  const owed = (s: Subscriber) =>
    [...published].filter(([_, m]) =>
      Math.min(m.qos, s.spec.qos) > 0 && (s.spec.filter === "t/#" || !m.topic.includes("/x/"))
    ).map(([n]) => n);
  const doneOf = (s: Subscriber) => () => {
    if (publishing) return false;
    if (!s.spec.persistent) return s.calm;
    const o = owed(s);
    return o.every((n) => s.seen.has(n));
  };
  for (const s of subscribers) await s.start();
  const runs = subscribers.map((s) => s.run(published, doneOf(s)));

  const pubs = [
    await TestClient.connect(b.port, { clientId: "p4" }),
    await TestClient.connect(b.port, { clientId: "p5", protocolVersion: 5 }),
  ];
  try {
    await Promise.all(pubs.map((pub, k) => publish(pub, k, seed, count, published)));
    publishing = false;
    for (const s of subscribers) s.calm = true;
    // Every persistent session gets what it is owed, however it was treated; a guard against a
    // hang, with what is missing.
    const guard = setTimeout(() => {
      for (const s of subscribers) {
        if (!s.spec.persistent) continue;
        const missing = owed(s).filter((n) => !s.seen.has(n));
        if (missing.length > 0) console.error(`${s.spec.clientId} misses ${missing.slice(0, 20)}`);
      }
    }, 60_000);
    try {
      await Promise.all(runs);
    } finally {
      clearTimeout(guard);
    }
    for (const s of subscribers) {
      if (s.spec.persistent) {
        const missing = owed(s).filter((n) => !s.seen.has(n));
        assert.deepEqual(missing, [], `${s.spec.clientId} missed messages`);
      } else assert.ok(s.seen.size > 0, `${s.spec.clientId} got nothing`);
    }
    // The chaos happened.
    const offlines = subscribers.reduce((a, s) => a + s.offlines, 0);
    const takeovers = subscribers.reduce((a, s) => a + s.takeovers, 0);
    assert.ok(offlines > 0 && takeovers > 0, `offline ${offlines} times, taken over ${takeovers}`);
    assert.equal(b.broker.stats.droppedBy.queueFull, 0);

    // The retained store kept the last retained message of each topic, byte for byte.
    const lastRetained = new Map<string, number>();
    for (const [n, m] of published) if (m.retain) lastRetained.set(m.topic, n);
    await using late = await TestClient.connect(b.port, { clientId: "late" });
    await late.subscribe({ "t/#": 0 });
    const retained = new Map<string, number>();
    while (retained.size < lastRetained.size) {
      const p = await late.expect(PacketType.PUBLISH);
      assert.equal(p.retain, true);
      retained.set(p.topic, check(p.payload, "retained"));
    }
    assert.deepEqual(retained, lastRetained);
  } finally {
    for (const s of subscribers) await s.client?.close();
    for (const pub of pubs) await pub.close();
  }
}

for (const seed of [1, 2]) {
  Deno.test(`read buffer reuse: payloads stay intact under random traffic, sessions offline and taken over, a slow window of 1 (seed ${seed}) [MQTT-4.4.0-1] [MQTT-3.3.4-3] [MQTT-3.1.4-3]`, async () => {
    await scenario(seed, 600, MIXED, 8);
  });
}

Deno.test("read buffer reuse: 5.0 copies in flight keep their payloads, resent at 3.1.1 after the session comes back (seed 3) [MQTT-3.3.4-3] [MQTT-3.3.1-13] [MQTT-4.4.0-1]", async () => {
  await scenario(3, 600, COPIES, 20);
});

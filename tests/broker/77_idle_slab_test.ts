/**
 * Broker, area 77: idle connections read into slots of shared 8 KiB slabs
 * (`src/transport/socket.ts`), so the worst bug they could have is one client's bytes showing up
 * in another client's packet. 200 publishers connect and go idle (each one's pending read is then
 * in a slot), then each publishes, over three rounds, messages whose topic and payload name it,
 * every packet split at random byte boundaries over several writes and interleaved with the other
 * publishers' pieces (a PUBLISH whose first part lands in a slot, reads that fill a slot exactly,
 * packets of one read and packets larger than a slot), some at level 5 with a Correlation Data and
 * a User Property that name the publisher too; ten more connections write half a PUBLISH and close
 * mid-packet. A subscriber checks every message, topic and payload, byte for byte. A slow level 5
 * subscriber keeps its QoS 1 messages in flight unacknowledged while the publishers' slots are
 * read into again, then reconnects: what is sent again [MQTT-4.4.0-1] must be what was published,
 * properties included. Run with several seeds.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, type Packet, PacketType, type PublishPacket } from "../../src/packet/mod.ts";
import type { QoS } from "../../src/packet/constants.ts";
import { delay, startBroker, waitFor } from "../_helpers/broker.ts";
import { TestClient } from "../_helpers/test_client.ts";
import { rng } from "../_helpers/rng.ts";

const PUBLISHERS = 200;
const ROUNDS = 3;
const DEAD = 10;
const TEXT = new TextEncoder();
const UTF8 = new TextDecoder();

/** A message as published, under its key `id|rN`. */
interface Sent {
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  correlation?: Uint8Array;
}

/** The payload of publisher `id`'s round `r`: its key, then its id repeated, `length` bytes. */
function payloadOf(id: string, r: number, length: number): Uint8Array {
  const head = `${id}|r${r}|`;
  let text = head;
  while (text.length < length) text += `${id};`;
  return TEXT.encode(text.slice(0, Math.max(length, head.length)));
}

/** The message key a payload starts with (`id|rN`). */
function keyOf(payload: Uint8Array): string {
  const text = UTF8.decode(payload.subarray(0, 40));
  const at = text.indexOf("|", text.indexOf("|") + 1);
  return at < 0 ? text : text.slice(0, at);
}

/** Asserts that a PUBLISH received is exactly the one published under its payload's key. */
function checkPublish(sent: Map<string, Sent>, p: PublishPacket, who: string): string {
  const key = keyOf(p.payload);
  const expected = sent.get(key);
  assert.ok(expected !== undefined, `${who}: a payload of no publisher: ${JSON.stringify(key)}`);
  assert.equal(p.topic, expected.topic, `${who}: the topic of ${key}`);
  assert.deepEqual(p.payload, expected.payload, `${who}: the payload of ${key}`);
  if (p.properties !== undefined) {
    assert.deepEqual(p.properties.correlationData, expected.correlation, `${who}: ${key}'s data`);
    const id = key.slice(0, key.indexOf("|"));
    assert.deepEqual(p.properties.userProperties, [["from", id]], `${who}: ${key}'s property`);
  }
  return key;
}

/** Cut points of `n` bytes: whole sometimes, else one to four random cuts. */
function pieces(bytes: Uint8Array, random: () => number): Uint8Array[] {
  if (random() < 0.2) return [bytes];
  const cuts = new Set<number>();
  const k = 1 + Math.floor(random() * 4);
  for (let i = 0; i < k; i++) cuts.add(1 + Math.floor(random() * (bytes.length - 1)));
  const at = [0, ...[...cuts].sort((a, b) => a - b), bytes.length];
  return at.slice(1).map((end, i) => bytes.subarray(at[i], end));
}

/** A PUBLISH of publisher `id` for round `r`, encoded, sometimes exactly one slot (256 bytes). */
function message(
  id: string,
  version: 4 | 5,
  r: number,
  packetId: number,
  random: () => number,
): { sent: Sent; bytes: Uint8Array } {
  const qos = (random() < 0.5 ? 1 : 0) as QoS;
  const topic = `slab/${id}/r${r}`;
  const kind = random();
  let length = kind < 0.25
    ? 256
    : kind < 0.55
    ? 10 + Math.floor(random() * 60)
    : kind < 0.8
    ? 180 + Math.floor(random() * 120)
    : 300 + Math.floor(random() * 500);
  const correlation = version === 5 ? TEXT.encode(`corr:${id}|r${r}`) : undefined;
  const build = () => {
    const packet: PublishPacket = {
      type: PacketType.PUBLISH,
      topic,
      payload: payloadOf(id, r, length),
      qos,
      retain: false,
      dup: false,
      packetId: qos > 0 ? packetId : undefined,
    };
    if (version === 5) {
      packet.properties = { correlationData: correlation, userProperties: [["from", id]] };
    }
    return packet;
  };
  if (kind < 0.25) {
    // Exactly a slot: the read fills it (and the read size doubles).
    for (let i = 0; i < 3; i++) length += 256 - encodePacket(build(), version).length;
  }
  const packet = build();
  const bytes = encodePacket(packet, version);
  if (kind < 0.25) assert.equal(bytes.length, 256);
  return { sent: { topic, payload: packet.payload, qos, correlation }, bytes };
}

/** Every packet that arrives at `client` until `options.until()`, checked as it comes. */
async function collect(
  client: TestClient,
  sent: Map<string, Sent>,
  who: string,
  got: Map<string, number>,
  options: { ack: boolean; until: () => boolean },
): Promise<void> {
  // A failure guard, generous for two shared cores: a message lost fails rather than hangs.
  const giveUp = Date.now() + 120_000;
  while (!options.until()) {
    assert.ok(Date.now() < giveUp, `${who}: ${got.size} of ${sent.size} messages after 120 s`);
    const packet: Packet | undefined = await client.poll(50);
    if (packet === undefined) {
      assert.ok(!client.socketEnded, `${who} was closed`);
      continue;
    }
    if (packet.type !== PacketType.PUBLISH) continue;
    const key = checkPublish(sent, packet, who);
    got.set(key, (got.get(key) ?? 0) + 1);
    if (options.ack && packet.qos === 1) {
      await client.send({ type: PacketType.PUBACK, packetId: packet.packetId! });
    }
  }
}

for (const seed of [1, 2, 3]) {
  Deno.test({
    name:
      `77 idle slab: 200 idle publishers' messages split at random boundaries reach subscribers byte for byte, in flight copies too [MQTT-4.4.0-1] (seed ${seed})`,
    sanitizeOps: true,
    sanitizeResources: true,
    fn: async () => {
      const random = rng(seed);
      await using b = await startBroker({ max_queued_messages: 0, flow_control_high_water: 0 });
      const sent = new Map<string, Sent>();
      const fastGot = new Map<string, number>();
      const slowGot = new Map<string, number>();
      const clients: TestClient[] = [];
      try {
        const fast = await TestClient.connect(b.port, { clientId: "fast" });
        clients.push(fast);
        await fast.subscribe({ "slab/#": 1 });
        const slowConnect = {
          clientId: "slow",
          clean: false,
          protocolVersion: 5 as const,
          properties: { sessionExpiryInterval: 300 },
        };
        let slow = await TestClient.connect(b.port, slowConnect);
        clients.push(slow);
        await slow.send({
          type: PacketType.SUBSCRIBE,
          packetId: 1,
          subscriptions: [{ topic: "slab/#", qos: 1 }],
        });
        await slow.expect(PacketType.SUBACK);

        const pubs: { id: string; version: 4 | 5; client: TestClient }[] = [];
        for (let i = 0; i < PUBLISHERS; i += 20) {
          pubs.push(
            ...await Promise.all(Array.from({ length: 20 }, async (_, j) => {
              const id = `p${i + j}`;
              const version = (i + j) % 3 === 0 ? 5 as const : 4 as const;
              const client = await TestClient.connect(b.port, {
                clientId: id,
                protocolVersion: version,
              });
              clients.push(client);
              return { id, version, client };
            })),
          );
        }
        // The dead: their CONNECTs done, they will send half a PUBLISH and close.
        const dead: TestClient[] = [];
        for (let i = 0; i < DEAD; i++) {
          const client = await TestClient.connect(b.port, { clientId: `dead${i}` });
          clients.push(client);
          dead.push(client);
        }
        // Idle: every publisher's next read is pending in a slot.
        await delay(50);

        // The slow subscriber keeps what it gets unacknowledged (in the broker's in-flight window)
        // while the publishers' slots are read into again, round after round.
        let slowDone = false, publishing = true;
        const slowFirst = collect(slow, sent, "slow", slowGot, {
          ack: false,
          until: () => slowDone,
        });
        const fastAll = collect(fast, sent, "fast", fastGot, {
          ack: true,
          until: () => fastGot.size === sent.size && publishing === false,
        });
        // Their failures are thrown where they are awaited, after the publishing.
        slowFirst.catch(() => {});
        fastAll.catch(() => {});

        for (let r = 0; r < ROUNDS; r++) {
          const queues = pubs.map(({ id, version, client }) => {
            const { sent: s, bytes } = message(id, version, r, r + 1, random);
            sent.set(`${id}|r${r}`, s);
            return { client, parts: pieces(bytes, random) };
          });
          if (r === 1) {
            for (const [i, client] of dead.entries()) {
              const { bytes } = message(`dead${i}`, 4, 0, 1, random);
              queues.push({ client, parts: [bytes.subarray(0, 2 + (i * 7) % (bytes.length - 2))] });
            }
          }
          // One piece of every publisher per step, in a random order; the broker reads between
          // steps, so a packet's pieces are usually reads of their own.
          for (let step = 0; queues.some((q) => q.parts.length > step); step++) {
            const order = queues.filter((q) => q.parts.length > step);
            for (let i = order.length - 1; i > 0; i--) {
              const j = Math.floor(random() * (i + 1));
              [order[i], order[j]] = [order[j], order[i]];
            }
            for (const q of order) await q.client.sendBytes(q.parts[step]);
            await delay(random() < 0.5 ? 0 : 2);
          }
          if (r === 1) { for (const client of dead) await client.close(); }
        }
        publishing = false;
        await fastAll;
        assert.equal(fastGot.size, PUBLISHERS * ROUNDS);
        for (const key of fastGot.keys()) assert.ok(!key.startsWith("dead"), key);

        // The slow subscriber goes and comes back: the broker sends again what it kept in flight
        // and what it queued behind [MQTT-4.4.0-1], from the copies it made.
        const qos1 = [...sent].filter(([, s]) => s.qos === 1).map(([key]) => key);
        slowDone = true;
        await slowFirst;
        assert.ok(slowGot.size > 0 && qos1.length > 0);
        await slow.close();
        slow = await TestClient.connect(b.port, slowConnect);
        clients.push(slow);
        await collect(slow, sent, "slow again", slowGot, {
          ack: true,
          until: () => qos1.every((key) => slowGot.has(key)),
        });
        // Nothing of the dead's half packets, and the publishers are still connected.
        for (const key of slowGot.keys()) assert.ok(!key.startsWith("dead"), key);
        await waitFor(() => b.broker.clients().length === 2 + PUBLISHERS, 10_000, "the dead gone");
        assert.ok(pubs.every((p) => !p.client.socketEnded));
      } finally {
        await Promise.all(clients.map((c) => c.close()));
      }
    },
  });
}

Deno.test({
  name:
    "77 idle slab: a packet event's PUBLISH holds bytes of its own, Correlation Data included, none of another client's behind them",
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    // A plugin that keeps what it is given (a packet logger, an audit trail): it must not keep a
    // read buffer alive, nor find another client's bytes behind a view (`view.buffer`).
    const kept: PublishPacket[] = [];
    await using b = await startBroker({}, {
      packetEvents: true,
      plugins: [{
        name: "keeper",
        onMqttPacketReceived: ({ packet }) => {
          if (packet.type === PacketType.PUBLISH) kept.push(packet);
        },
      }],
    });
    const clients: TestClient[] = [];
    try {
      for (let i = 0; i < 8; i++) {
        clients.push(await TestClient.connect(b.port, { clientId: `e${i}`, protocolVersion: 5 }));
      }
      // Idle, then each sends one PUBLISH with a Correlation Data naming it (its read is a slot).
      await delay(20);
      for (const [i, c] of clients.entries()) {
        await c.send({
          type: PacketType.PUBLISH,
          topic: `e/${i}`,
          payload: TEXT.encode(`payload-of-e${i}`),
          qos: 0,
          retain: false,
          dup: false,
          properties: { correlationData: TEXT.encode(`corr-of-e${i}`) },
        });
      }
      await waitFor(() => kept.length === clients.length, 10_000, "every packet event");
      for (const p of kept) {
        const i = Number(p.topic.slice(2));
        assert.equal(UTF8.decode(p.payload), `payload-of-e${i}`);
        assert.equal(UTF8.decode(p.properties!.correlationData!), `corr-of-e${i}`);
        for (const view of [p.payload, p.properties!.correlationData!]) {
          assert.equal(view.buffer.byteLength, view.length, `e${i}: a view into a larger buffer`);
        }
      }
      assert.ok(clients.every((c) => !c.socketEnded));
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  },
});

/**
 * Seeded publisher traffic for the read buffer reuse tests: payloads that say which message they
 * are and what their bytes are ({@linkcode payloadOf}, {@linkcode check}), published at random
 * QoS, lengths, topics and RETAIN in batches written in pieces ({@linkcode publish}), so that
 * each piece is usually a read of its own and the publisher's read buffer is read into again.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, PacketType, type PublishPacket } from "../../src/packet/mod.ts";
import type { QoS } from "../../src/packet/constants.ts";
import { delay } from "../_helpers/broker.ts";
import { publishPacket, type TestClient } from "../_helpers/test_client.ts";
import { rng } from "../_helpers/rng.ts";

/** The payload of message `n`: `n:length:` then bytes made from n and j; at least 1 byte. */
export function payloadOf(n: number, length: number): Uint8Array {
  const head = new TextEncoder().encode(`${n}:${length}:`);
  const out = new Uint8Array(head.length + length);
  out.set(head);
  for (let j = 0; j < length; j++) out[head.length + j] = (n * 31 + j * 7 + (j >> 8)) & 0xff;
  return out;
}

/** Checks a payload against what its head says; returns the message's number. */
export function check(payload: Uint8Array, where: string): number {
  const text = new TextDecoder().decode(payload.subarray(0, 20));
  const m = /^(\d+):(\d+):/.exec(text);
  assert.ok(m !== null, `${where}: a payload without its head: ${JSON.stringify(text)}`);
  const n = Number(m[1]);
  const expected = payloadOf(n, Number(m[2]));
  if (payload.length !== expected.length || payload.some((b, i) => b !== expected[i])) {
    const at = expected.findIndex((b, i) => b !== payload[i]);
    assert.fail(
      `${where}: the payload of message ${n} changed (${payload.length} bytes for ${expected.length}, first difference at ${at}: ${[
        ...payload.subarray(at, at + 16),
      ]} for ${[...expected.subarray(at, at + 16)]})`,
    );
  }
  return n;
}

export interface Published {
  qos: QoS;
  retain: boolean;
  topic: string;
}

/**
 * Publishes `count` messages from `pub` (publisher `k`): random QoS, lengths (empty to over a
 * read), topics and RETAIN, in batches written in pieces of random sizes, each piece usually a
 * read of its own; QoS 2 flows completed, and sometimes every acknowledgement awaited.
 */
export async function publish(
  pub: TestClient,
  k: number,
  seed: number,
  count: number,
  published: Map<number, Published>,
): Promise<void> {
  const random = rng(seed * 7 + k);
  // Apart, so that the rest of the traffic is the same with or without them: at 5.0, PUBLISHes
  // with properties now and then, whose read is not reused, and an expiry interval, which each
  // delivery encodes [MQTT-3.3.2-6].
  const withProperties = rng(seed * 11 + k);
  const version = k === 0 ? 4 : 5;
  let outstanding = 0;
  let waiter: (() => void) | undefined;
  // One writer at a time: the PUBRELs of the reader must not land inside a batch being written.
  let writing = Promise.resolve();
  const write = (bytes: Uint8Array) => writing = writing.then(() => pub.sendBytes(bytes));
  let reading = true;
  const reader = (async () => {
    while (reading || outstanding > 0) {
      const packet = await pub.poll(100);
      if (packet === undefined) {
        assert.ok(!pub.socketEnded, `publisher ${k} closed`);
        continue;
      }
      if (packet.type === PacketType.PUBREC) {
        await write(encodePacket({ type: PacketType.PUBREL, packetId: packet.packetId }, version));
        continue;
      }
      if (packet.type === PacketType.PUBACK || packet.type === PacketType.PUBCOMP) {
        outstanding--;
        if (outstanding === 0) waiter?.();
      }
    }
  })();
  let id = 0;
  for (let i = 0; i < count;) {
    const batch: Uint8Array[] = [];
    const size = 1 + Math.floor(random() * 6);
    for (let j = 0; j < size && i < count; j++, i++) {
      const n = k * 1_000_000 + i;
      const r = random();
      // Mostly within a slab's share (256), some over it, a few over a read's worth.
      const length = r < 0.6
        ? Math.floor(random() * 250)
        : r < 0.95
        ? 250 + Math.floor(random() * 800)
        : 20_000 + Math.floor(random() * 60_000);
      const qos = Math.floor(random() * 3) as QoS;
      const retain = random() < 0.05;
      const topic = `t/${random() < 0.2 ? "x/" : ""}${Math.floor(random() * 3)}`;
      published.set(n, { qos, retain, topic });
      if (qos > 0) outstanding++;
      id = id % 60_000 + 1;
      const packet = {
        ...publishPacket(topic, "", { qos, retain, packetId: id }),
        payload: payloadOf(n, length),
        ...(version === 5 && withProperties() < 0.15
          ? {
            properties: withProperties() < 0.5
              ? { userProperties: [["n", String(n)]] as [string, string][] }
              : { messageExpiryInterval: 3600 },
          }
          : {}),
      };
      batch.push(encodePacket(packet, version));
    }
    const bytes = new Uint8Array(batch.reduce((a, x) => a + x.length, 0));
    let at = 0;
    for (const x of batch) {
      bytes.set(x, at);
      at += x.length;
    }
    // The whole batch in one turn of the writer, its pieces apart.
    await (writing = writing.then(async () => {
      for (let from = 0; from < bytes.length;) {
        const n = random() < 0.5 ? bytes.length : 1 + Math.floor(random() * 2000);
        await pub.sendBytes(bytes.subarray(from, from + n));
        from += n;
        if (random() < 0.3) await delay(1);
      }
    }));
    if (random() < 0.3 || outstanding > 200) {
      if (outstanding > 0) await new Promise<void>((resolve) => (waiter = resolve));
      waiter = undefined;
    }
  }
  if (outstanding > 0) await new Promise<void>((resolve) => (waiter = resolve));
  reading = false;
  await reader;
}

/** What {@linkcode readDeliveries} does beyond checking each payload. */
export interface ReadDeliveriesOptions {
  /** Whether to acknowledge (PUBACK, PUBREC, PUBCOMP). @default {true} */
  ack?: boolean;
  /** PUBLISHes on a topic this says to skip are not checked (probes). */
  skip?: (topic: string) => boolean;
  /** Asserts what is known of message `n` delivered as `p` (published, on its topic, …). */
  known: (n: number, p: PublishPacket) => void;
}

/**
 * A subscriber's reading loop of the read buffer reuse tests: until `stop()`, reads each packet
 * (asserting the connection still open while nothing comes), checks every PUBLISH's payload
 * byte for byte ({@linkcode check}), asserts `options.known`, adds its number to `seen`, and
 * acknowledges QoS 1/2 flows unless told not to.
 */
export async function readDeliveries(
  sub: { client: TestClient; seen: Set<number> },
  stop: () => boolean,
  options: ReadDeliveriesOptions,
): Promise<void> {
  const { client, seen } = sub;
  const ack = options.ack ?? true;
  while (!stop()) {
    const packet = await client.poll(50);
    if (packet === undefined) {
      assert.ok(!client.socketEnded, "a subscriber was closed");
      continue;
    }
    if (packet.type === PacketType.PUBREL) {
      if (ack) await client.send({ type: PacketType.PUBCOMP, packetId: packet.packetId });
      continue;
    }
    if (packet.type !== PacketType.PUBLISH) continue;
    const p = packet as PublishPacket;
    if (options.skip?.(p.topic)) continue;
    const n = check(p.payload, `delivery (${p.topic})`);
    options.known(n, p);
    seen.add(n);
    if (ack && p.qos > 0) {
      await client.send({
        type: p.qos === 1 ? PacketType.PUBACK : PacketType.PUBREC,
        packetId: p.packetId!,
      });
    }
  }
}

/**
 * The messages and checks of the asynchronous-route payload tests (broker test 96 and the cluster's
 * `async_route_payload_test.ts`): publishers' pipelined messages with random payloads, each named
 * by a header in its payload, and a reader that checks every delivery byte for byte.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Packet, PacketType, type PublishPacket } from "../../src/packet/mod.ts";
import type { QoS } from "../../src/packet/constants.ts";
import { publishPacket, type TestClient } from "../_helpers/test_client.ts";

/** A generous bound per packet on a loaded machine: a stuck broker still fails the test. */
export const RECEIVE_MS = 60_000;
const POLL_MS = 200;
/** Messages per publisher (then a `done/` marker). */
export const PER = 40;

/** A message a publisher sends, with what the plugin answers for it. */
export interface Sent {
  key: string;
  packet: PublishPacket;
  allowed: boolean;
  /** Sent by a 5.0 publisher: its Correlation Data goes to 5.0 subscribers [MQTT-3.3.2-16]. */
  correlation: Uint8Array | undefined;
}

/** Each publisher's messages: header `pid.seq;` then random bytes, some 20 KB (several reads). */
export function messages(pid: string, v: 4 | 5, random: () => number): Sent[] {
  const out: Sent[] = [];
  for (let seq = 0; seq < PER; seq++) {
    const key = `${pid}.${seq}`;
    const header = new TextEncoder().encode(`${key};`);
    const size = seq % 9 === 0 ? 20_000 : 1 + Math.floor(random() * 1500);
    const payload = new Uint8Array(header.length + size);
    payload.set(header);
    for (let i = header.length; i < payload.length; i++) payload[i] = Math.floor(random() * 256);
    const retain = seq % 5 === 4;
    // Refused by the plugin: the topic has an `x` level (never a retained one here).
    const allowed = retain || seq % 7 !== 3;
    const topic = retain ? `t/${pid}/r` : allowed ? `t/${pid}/${seq}` : `t/${pid}/x/${seq}`;
    const qos = (seq % 3) as QoS;
    const packet = publishPacket(topic, payload, { qos, retain, packetId: seq + 1 });
    let correlation: Uint8Array | undefined;
    if (v === 5) {
      correlation = new Uint8Array(16).map(() => Math.floor(random() * 256));
      packet.properties = { correlationData: correlation, userProperties: [["k", key]] };
    }
    out.push({ key, packet, allowed, correlation });
  }
  return out;
}

/** The message a payload's header names; fails on bytes that are not any message's. */
function identify(sent: Map<string, Sent>, p: PublishPacket): Sent {
  const end = p.payload.indexOf(0x3b);
  const key = end < 0 ? "" : new TextDecoder().decode(p.payload.subarray(0, end));
  const m = sent.get(key);
  assert.ok(
    m !== undefined,
    `a payload of no message sent (${p.payload.length} bytes on ${p.topic})`,
  );
  return m;
}

/** Asserts a delivery's bytes are the message's, byte for byte. */
function checkDelivery(
  m: Sent,
  p: PublishPacket,
  who: string,
  v: 4 | 5,
  identifier: number | undefined,
): void {
  assert.ok(m.allowed, `${who} got ${m.key}, which the plugin refused`);
  assert.equal(p.topic, m.packet.topic, `${who}: topic of ${m.key}`);
  const want = m.packet.payload;
  assert.equal(p.payload.length, want.length, `${who}: length of ${m.key}`);
  for (let i = 0; i < want.length; i++) {
    if (p.payload[i] !== want[i]) assert.fail(`${who}: byte ${i} of ${m.key} differs`);
  }
  if (v === 5) {
    assert.deepEqual(
      p.properties?.correlationData,
      m.correlation,
      `${who}: correlation of ${m.key}`,
    );
    if (m.correlation !== undefined) {
      assert.deepEqual(p.properties?.userProperties, [["k", m.key]], `${who}: user property`);
    }
    assert.deepEqual(
      p.properties?.subscriptionIdentifier,
      identifier === undefined ? undefined : [identifier],
      `${who}: Subscription Identifier of ${m.key} [MQTT-3.3.4-3]`,
    );
  }
}

/**
 * Reads `c`'s packets, acknowledging QoS 1/2 deliveries (unless `ack` is false), until `done`
 * holds; every PUBLISH is checked against what was sent. Returns the keys seen, in order.
 */
export async function collect(
  c: TestClient,
  sent: Map<string, Sent>,
  options: {
    who: string;
    v: 4 | 5;
    identifier?: number;
    seen: Set<string>;
    done: () => boolean;
    retained?: boolean;
    /** Topics starting with this are not the test's (a cluster's route probes): skipped. */
    skip?: string;
  },
): Promise<string[]> {
  const order: string[] = [];
  // Polled in steps: a shared group's members stop together once the group has every message.
  let waited = 0;
  while (!options.done()) {
    const packet: Packet | undefined = await c.poll(POLL_MS);
    if (packet === undefined) {
      waited += POLL_MS;
      if (waited >= RECEIVE_MS) assert.fail(`${options.who}: no packet within ${RECEIVE_MS} ms`);
      continue;
    }
    waited = 0;
    if (packet.type === PacketType.PUBREL) {
      await c.send({ type: PacketType.PUBCOMP, packetId: packet.packetId });
      continue;
    }
    assert.equal(packet.type, PacketType.PUBLISH, `${options.who}: packet type ${packet.type}`);
    const p = packet as PublishPacket;
    if (options.skip !== undefined && p.topic.startsWith(options.skip)) continue;
    const m = identify(sent, p);
    checkDelivery(m, p, options.who, options.v, options.identifier);
    // Live deliveries carry RETAIN 0 [MQTT-3.3.1-9] (no Retain As Published here).
    if (options.retained !== true) assert.equal(p.retain, false, `${options.who}: RETAIN`);
    options.seen.add(m.key);
    order.push(m.key);
    if (p.qos === 1) await c.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    else if (p.qos === 2) await c.send({ type: PacketType.PUBREC, packetId: p.packetId! });
  }
  return order;
}

/** Sends all of a publisher's PUBLISHes at once, answers PUBRECs, waits for the last ack. */
export async function publishAll(pub: TestClient, list: Sent[], pid: string): Promise<void> {
  const done = publishPacket(`done/${pid}`, "done", { qos: 1, packetId: PER + 1 });
  await pub.send(...list.map((m) => m.packet), done);
  let acked = 0;
  const expected = list.filter((m) => m.packet.qos > 0).length + 1;
  while (acked < expected) {
    const packet = await pub.receive(RECEIVE_MS);
    if (packet.type === PacketType.PUBREC) {
      await pub.send({ type: PacketType.PUBREL, packetId: packet.packetId });
    } else if (packet.type === PacketType.PUBACK || packet.type === PacketType.PUBCOMP) acked++;
    else assert.fail(`${pid}: unexpected packet type ${packet.type}`);
  }
}

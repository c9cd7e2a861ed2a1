/**
 * Helpers of the tests that fill a store file to its size limit (areas 46, 49, 51 and 55): a
 * broker on a SQLite file of a given size, payloads that carry their name, persistent
 * subscribers that hold a queue offline, a queue filled and drained, log lines counted, the next
 * packet of a type.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Packet, PacketType, type QoS } from "../../src/packet/mod.ts";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { type MemoryLogger, startBroker, type TestBroker } from "./broker.ts";
import { type PacketOf, publishPacket, TestClient } from "./test_client.ts";

/** A failure guard only: replies come at once, however busy the machine. */
export const GUARD_MS = 120_000;
/** The start of the line an outage logs. */
export const FAILURE_LINE = "Cannot write to the store";
/** The start of the line the end of an outage logs. */
export const RECOVERY_LINE = "Writes to the store";

/**
 * A payload of `bytes` bytes that starts with its name.
 *
 * @example
 * ```ts
 * import { named } from "./store_full.ts";
 * named("a", 16).length; // 16
 * ```
 */
export function named(name: string, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes).fill(0x2e);
  out.set(new TextEncoder().encode(`${name}:`));
  return out;
}

/** The name a {@linkcode named} payload starts with. */
export function nameOf(p: PacketOf<typeof PacketType.PUBLISH>): string {
  return new TextDecoder().decode(p.payload.subarray(0, 40)).split(":")[0];
}

/** How many log lines contain `needle`. */
export function count(log: MemoryLogger, needle: string): number {
  return log.lines.filter((l) => l.message.includes(needle)).length;
}

/** The next packet of a type, answering nothing on the way. */
export async function next<T extends number>(c: TestClient, type: T): Promise<PacketOf<T>> {
  const p: Packet | undefined = await c.poll(GUARD_MS);
  assert.ok(p !== undefined, `a ${type} packet, connection open: ${!c.socketEnded}`);
  assert.equal(p.type, type, `packet type, got ${JSON.stringify(p.type)}`);
  return p as PacketOf<T>;
}

/**
 * Starts a broker whose store is the SQLite file `path`, at most `maxBytes` large; its log is
 * the broker's `log`.
 *
 * @param path the store file
 * @param maxBytes the file's size limit
 * @returns the started broker
 */
export function startOnSizedFile(path: string, maxBytes: number): Promise<TestBroker> {
  return startBroker({}, { store: SqliteStore.open(path, { maxBytes }) });
}

/**
 * Connects each client id with a persistent session, subscribes to its filters and disconnects:
 * the broker queues (and stores) what matches for it while it is away.
 *
 * @param port the broker's port
 * @param subscriptions client id -> filter -> QoS
 */
export async function offlineSubscribers(
  port: number,
  subscriptions: Record<string, Record<string, QoS>>,
): Promise<void> {
  for (const [clientId, filters] of Object.entries(subscriptions)) {
    const c = await TestClient.connect(port, { clientId, clean: false });
    await c.subscribe(filters);
    await c.disconnect();
  }
}

/**
 * Publishes `n` QoS 1 messages of 16 KiB named `<prefix><i>` (from 1) on `topic`, each
 * acknowledged with success before the next, from a client of its own.
 *
 * @param port the broker's port
 * @param topic where to publish
 * @param prefix the start of each message's name
 * @param n how many
 */
export async function fill(port: number, topic: string, prefix: string, n: number): Promise<void> {
  await using c = await TestClient.connect(port, { clientId: `fill-${prefix}` });
  for (let i = 1; i <= n; i++) {
    await c.send(publishPacket(topic, named(`${prefix}${i}`, 16 * 1024), { qos: 1, packetId: i }));
    const ack = await next(c, PacketType.PUBACK);
    assert.deepEqual([ack.packetId, ack.reasonCode ?? 0], [i, 0]);
  }
}

/**
 * Reads `n` QoS 1 PUBLISHes and acknowledges each.
 *
 * @param c the subscriber
 * @param n how many
 * @returns their names ({@linkcode nameOf})
 */
export async function drain(c: TestClient, n: number): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < n; i++) {
    const p = await next(c, PacketType.PUBLISH);
    assert.equal(p.qos, 1);
    names.push(nameOf(p));
    await c.send({ type: PacketType.PUBACK, packetId: p.packetId! });
  }
  return names;
}

/**
 * Connects `clientId` to its persistent session, takes `n` queued QoS 1 messages
 * ({@linkcode drain}) and disconnects: the room they took in the store is free again.
 *
 * @param port the broker's port
 * @param clientId the persistent session's client id
 * @param n how many messages
 * @returns their names
 */
export async function drainSession(port: number, clientId: string, n: number): Promise<string[]> {
  await using c = await TestClient.connect(port, { clientId, clean: false });
  const names = await drain(c, n);
  await c.disconnect();
  return names;
}

/**
 * Receives one QoS 2 PUBLISH and completes its flow as the subscriber [MQTT-4.3.3].
 *
 * @param c the subscriber
 * @returns the PUBLISH
 */
export async function receiveQos2(c: TestClient): Promise<PacketOf<typeof PacketType.PUBLISH>> {
  const p = await next(c, PacketType.PUBLISH);
  assert.equal(p.qos, 2);
  await c.send({ type: PacketType.PUBREC, packetId: p.packetId! });
  assert.equal((await next(c, PacketType.PUBREL)).packetId, p.packetId);
  await c.send({ type: PacketType.PUBCOMP, packetId: p.packetId! });
  return p;
}

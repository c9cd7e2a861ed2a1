/**
 * What the cluster tests check at their end: every QoS 1 message a publisher had acknowledged
 * reached the subscriber [MQTT-4.3.2-1], and (where no shared group decides) the first arrivals
 * came in the order published [MQTT-4.6.0-6]; and a subscriber's reader that records what arrives.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { type TestClient, text } from "../_helpers/test_client.ts";

/** A received message as the tests record it: `topic payload`. */
export function arrival(m: { topic: string; payload: Uint8Array }): string {
  return `${m.topic} ${new TextDecoder().decode(m.payload)}`;
}

/**
 * Asserts that every message publisher `name` had acknowledged (payloads `0` to `acked[name] - 1`
 * on `base/name`) is among `seen`, and with `ordered`, that their first arrivals are in order.
 *
 * @param seen the arrivals, as {@linkcode arrival} writes them
 * @param base the topics' first level
 * @param acked per publisher, the PUBACKs it received
 * @param ordered whether the first arrivals must be in the order published
 */
export function assertArrivals(
  seen: readonly string[],
  base: string,
  acked: Record<string, number>,
  ordered: boolean,
): void {
  for (const [name, count] of Object.entries(acked)) {
    const topic = `${base}/${name} `;
    const payloads = seen.filter((m) => m.startsWith(topic)).map((m) => m.slice(topic.length));
    assertDelivered(payloads, count, { ordered, what: `messages acknowledged on ${name}` });
  }
}

/** Options of {@linkcode assertDelivered}. */
export interface AssertDeliveredOptions {
  /** Whether the first arrivals must be in the order published; default false. */
  ordered?: boolean;
  /** The messages, as the failure names them; default "messages acknowledged". */
  what?: string;
}

/**
 * Asserts that every message a `Publisher` had acknowledged (payloads `0` to
 * `acked - 1`) is among `payloads`, and with `ordered`, that their first arrivals are in order.
 *
 * @param payloads what arrived, in order (again where delivered again)
 * @param acked how many messages the publisher had acknowledged
 * @param options ordered, and what to call the messages
 */
export function assertDelivered(
  payloads: Iterable<string | number>,
  acked: number,
  options: AssertDeliveredOptions = {},
): void {
  const first = [...new Set([...payloads].map(Number))];
  const got = new Set(first);
  const missing = Array.from({ length: acked }, (_, i) => i).filter((i) => !got.has(i));
  const what = options.what ?? "messages acknowledged";
  assert.deepEqual(missing, [], `${what} and never delivered`);
  if (options.ordered) {
    assert.deepEqual(first, [...first].sort((p, q) => p - q), "first arrivals in order");
  }
}

/**
 * Reads what the broker sends a subscriber, acknowledging each QoS 1 message at once, until the
 * connection ends or `stop` says so; returns the DISCONNECT's reason code, if one came.
 *
 * @param client the subscriber, on a connection of its own
 * @param seen where each PUBLISH's payload is pushed, as text
 * @param stop checked before each read (of at most 200 ms)
 * @returns the reason code of the DISCONNECT that ended the connection, if any
 */
export async function drain(
  client: TestClient,
  seen: string[],
  stop: () => boolean = () => false,
): Promise<number | undefined> {
  while (!stop()) {
    const packet = await client.poll(200);
    if (packet === undefined) {
      if (client.ended) return undefined;
      continue;
    }
    if (packet.type === PacketType.DISCONNECT) return packet.reasonCode;
    if (packet.type !== PacketType.PUBLISH) continue;
    seen.push(text(packet));
    if (packet.qos === 1) {
      await client.send({ type: PacketType.PUBACK, packetId: packet.packetId! });
    }
  }
  return undefined;
}

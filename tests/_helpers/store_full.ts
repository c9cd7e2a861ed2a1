/**
 * Helpers of the tests that fill a store file to its size limit (areas 46 and 49): payloads that
 * carry their name, log lines counted, the next packet of a type.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Packet, PacketType } from "../../src/packet/mod.ts";
import type { MemoryLogger } from "./broker.ts";
import type { PacketOf, TestClient } from "./test_client.ts";

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

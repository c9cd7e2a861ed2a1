/**
 * Sans-IO state of incoming QoS 2 messages: the packet ids received but not yet released.
 *
 * @module
 */

/**
 * Remembers QoS 2 packet ids from PUBLISH until PUBREL, so a resent PUBLISH (DUP) is acknowledged
 * again but not delivered twice [MQTT-4.3.3-2].
 *
 * @example
 * ```ts
 * import { InboundQos2 } from "./inbound.ts";
 * import assert from "node:assert/strict";
 *
 * const inbound = new InboundQos2();
 * assert.equal(inbound.receive(7), true); // first time: deliver it
 * assert.equal(inbound.receive(7), false); // duplicate: PUBREC again, do not deliver
 * assert.equal(inbound.release(7), true); // PUBREL: forget it, answer PUBCOMP
 * ```
 */
export class InboundQos2 {
  // Made at the first QoS 2 PUBLISH: most sessions never receive one.
  #pending: Set<number> | undefined;

  /** Ids awaiting PUBREL. */
  get size(): number {
    return this.#pending?.size ?? 0;
  }

  /**
   * Records a QoS 2 PUBLISH.
   *
   * @param packetId its packet id
   * @returns `true` when the message is new and must be delivered, `false` for a duplicate
   */
  receive(packetId: number): boolean {
    const pending = this.#pending ??= new Set();
    if (pending.has(packetId)) return false;
    pending.add(packetId);
    return true;
  }

  /**
   * Records a PUBREL. A PUBCOMP is sent either way: an unknown id means the PUBCOMP
   * was lost and the peer retries.
   *
   * @param packetId its packet id
   * @returns whether the id was pending
   */
  release(packetId: number): boolean {
    return this.#pending?.delete(packetId) ?? false;
  }

  /**
   * Whether an id awaits PUBREL.
   *
   * @param packetId the packet id
   * @returns true when a PUBLISH with it was received and not yet released
   */
  has(packetId: number): boolean {
    return this.#pending?.has(packetId) ?? false;
  }

  /** Ids awaiting PUBREL, for persistence. */
  ids(): number[] {
    return this.#pending === undefined ? [] : [...this.#pending];
  }

  /** Forgets every id (the session is discarded). */
  clear(): void {
    this.#pending = undefined;
  }
}

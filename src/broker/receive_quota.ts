/**
 * The broker's MQTT 5.0 Receive Maximum (§3.3.4, §4.9): how many QoS 1 and QoS 2 PUBLISH packets a
 * client may have sent on one connection that the broker has not finished acknowledging. Sans-IO
 * state, one per connection: the core admits each QoS 1/2 PUBLISH and settles it when it sends
 * the PUBACK, the PUBCOMP, or a PUBREC with a reason code of 0x80 or more.
 *
 * @module
 */

/** What {@linkcode ReceiveQuota.admit} found. */
export type QuotaAdmission =
  /** Counted: handle the PUBLISH. */
  | "new"
  /** Its packet id is already counted (a resend of a PUBLISH being handled): not counted again. */
  | "duplicate"
  /**
   * One more than the broker's Receive Maximum: close the connection with DISCONNECT 0x93
   * (Receive Maximum exceeded), MQTT 5.0 §3.3.4.
   */
  | "exceeded";

/**
 * The unacknowledged QoS 1/2 PUBLISH packets of one connection, against the Receive Maximum the
 * broker announced in CONNACK.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ReceiveQuota } from "./receive_quota.ts";
 *
 * const quota = new ReceiveQuota(2);
 * assert.equal(quota.admit(1), "new");
 * assert.equal(quota.admit(2), "new");
 * assert.equal(quota.admit(2), "duplicate"); // a QoS 2 resend with the same id
 * assert.equal(quota.admit(3), "exceeded"); // DISCONNECT 0x93
 * quota.settle(1); // PUBACK sent
 * assert.equal(quota.admit(3), "new");
 * ```
 */
export class ReceiveQuota {
  readonly #max: number;
  // The ids counted: a short list while there are few (the usual window of a publisher, and no
  // allocation per PUBLISH: a Set's add then delete of a new id each time costs far more), a Set
  // past SMALL (a client holding many QoS 2 flows open), back to the list once it is empty.
  readonly #few: number[] = [];
  #many: Set<number> | undefined = undefined;

  /**
   * @param max the Receive Maximum the broker sent in CONNACK, 1-65535
   * @throws {RangeError} when out of range (0 is a Protocol Error, MQTT 5.0 §3.2.2.3.3)
   */
  constructor(max: number) {
    if (!Number.isInteger(max) || max < 1 || max > 65535) {
      throw new RangeError(`Cannot create ReceiveQuota: Receive Maximum ${max} is not 1-65535`);
    }
    this.#max = max;
  }

  /** The Receive Maximum. */
  get maximum(): number {
    return this.#max;
  }

  /** PUBLISH packets counted and not settled. */
  get count(): number {
    return this.#many?.size ?? this.#few.length;
  }

  /**
   * Counts a QoS 1 or QoS 2 PUBLISH received on this connection.
   *
   * @param packetId its packet id
   * @returns "new", "duplicate" or "exceeded" (then nothing is counted)
   */
  admit(packetId: number): QuotaAdmission {
    const many = this.#many;
    if (many !== undefined) {
      if (many.has(packetId)) return "duplicate";
      if (many.size >= this.#max) return "exceeded";
      many.add(packetId);
      return "new";
    }
    const few = this.#few;
    const n = few.length;
    for (let i = 0; i < n; i++) if (few[i] === packetId) return "duplicate";
    if (n >= this.#max) return "exceeded";
    if (n < SMALL) {
      few.push(packetId);
    } else {
      this.#many = new Set(few).add(packetId);
      few.length = 0;
    }
    return "new";
  }

  /**
   * Stops counting a PUBLISH: the broker sent its PUBACK, its PUBCOMP, or a PUBREC with a reason
   * code of 0x80 or more. An id not counted (a QoS 2 flow of an earlier connection) is ignored.
   *
   * @param packetId the packet id
   * @returns whether it was counted
   */
  settle(packetId: number): boolean {
    const many = this.#many;
    if (many !== undefined) {
      const counted = many.delete(packetId);
      if (many.size === 0) this.#many = undefined;
      return counted;
    }
    const few = this.#few;
    const last = few.length - 1;
    for (let i = last; i >= 0; i--) {
      if (few[i] !== packetId) continue;
      few[i] = few[last]!;
      few.pop();
      return true;
    }
    return false;
  }
}

/** Most ids kept in the list before a Set takes over. */
const SMALL = 32;

/**
 * The in-flight entries of an outbound flow by packet id, in insertion order (send order, which
 * is resend order after a reconnect [MQTT-4.6.0-1]): the part of a `Map` the flow uses, with its
 * most common state kept apart. One entry in flight (a subscriber that acknowledges each message
 * before the next one comes, as at 5k msg/s) is held in a field, so a message's `set` and `delete`
 * make no garbage: V8 makes a `Map` a new hash table when its last entry is deleted, about 150 B
 * of heap per QoS 1 message. A `Map` is made once two entries are in flight, and dropped when it
 * empties.
 *
 * @module
 */

/** What the table holds: anything with a packet id. */
export interface Keyed {
  /** The key. */
  readonly packetId: number;
}

const NOTHING: readonly never[] = [];

/**
 * In-flight entries by packet id, in insertion order.
 *
 * @example
 * ```ts
 * import { InflightTable } from "./_inflight_table.ts";
 * import assert from "node:assert/strict";
 *
 * const table = new InflightTable<{ packetId: number }>();
 * table.set({ packetId: 7 });
 * table.set({ packetId: 3 });
 * assert.deepEqual([...table.values()].map((e) => e.packetId), [7, 3]);
 * assert.equal(table.delete(7), true);
 * assert.equal(table.size, 1);
 * ```
 */
export class InflightTable<E extends Keyed> {
  // At most one of the two holds entries: `#one` while one entry is in flight and no map is made.
  #one: E | undefined;
  #map: Map<number, E> | undefined;

  /** Entries held. */
  get size(): number {
    return this.#one !== undefined ? 1 : this.#map?.size ?? 0;
  }

  /**
   * The entry with a packet id.
   *
   * @param packetId the id
   * @returns the entry, or `undefined`
   */
  get(packetId: number): E | undefined {
    const one = this.#one;
    if (one !== undefined) return one.packetId === packetId ? one : undefined;
    return this.#map?.get(packetId);
  }

  /**
   * Whether an entry has the packet id.
   *
   * @param packetId the id
   * @returns true when one has
   */
  has(packetId: number): boolean {
    return this.get(packetId) !== undefined;
  }

  /**
   * Adds an entry under its packet id at the end, or replaces the entry with that id in its place.
   *
   * @param entry the entry
   */
  set(entry: E): void {
    const one = this.#one;
    if (one !== undefined) {
      if (one.packetId === entry.packetId) {
        this.#one = entry;
        return;
      }
      this.#map = new Map<number, E>().set(one.packetId, one).set(entry.packetId, entry);
      this.#one = undefined;
      return;
    }
    const map = this.#map;
    if (map === undefined) this.#one = entry;
    else map.set(entry.packetId, entry);
  }

  /**
   * Removes the entry with a packet id.
   *
   * @param packetId the id
   * @returns whether an entry was removed
   */
  delete(packetId: number): boolean {
    const one = this.#one;
    if (one !== undefined) {
      if (one.packetId !== packetId) return false;
      this.#one = undefined;
      return true;
    }
    const map = this.#map;
    if (map === undefined) return false;
    if (!map.delete(packetId)) return false;
    // Emptied: one entry at a time goes back to the field. (Deleted first, so that an iterator
    // over the map in progress does not yield it.)
    if (map.size === 0) this.#map = undefined;
    return true;
  }

  /** Removes every entry. */
  clear(): void {
    this.#one = undefined;
    this.#map = undefined;
  }

  /**
   * The entries in insertion order. Deleting while iterating is allowed; an entry added meanwhile
   * may not be visited.
   *
   * @returns an iterator over them
   */
  values(): IterableIterator<E> {
    const one = this.#one;
    if (one !== undefined) return [one].values();
    return this.#map?.values() ?? NOTHING.values();
  }
}

/**
 * A set of objects that each know their place in it: an array with swap-remove, for the sets
 * every connection enters and leaves (the core's links, the broker's connections).
 *
 * Why not a `Set`: V8's hash tables are rebuilt as they grow and shrink, and each table left
 * behind points to its successor and keeps its entries. Once such a set has reached the old
 * generation, every young-generation GC treats those old tables as live: the objects of every
 * connection that came and went since the last full GC survive each minor GC and are copied and
 * promoted with all they reference. Under bursts of short connections GC took 17% of the
 * broker's busy time (scavenges of 20-40 ms), 8% without such sets (3-6 ms). An array's slot is
 * cleared when its member leaves, so a connection that has gone is referenced by nothing.
 *
 * @module
 */

/** What a member carries: its index in the one set that holds it, -1 outside. */
export interface Slotted {
  slot: number;
}

/** A set of {@linkcode Slotted} objects; each may belong to one such set at a time. */
export class SlotSet<T extends Slotted> implements Iterable<T> {
  #items: T[] = [];

  /** How many members. */
  get size(): number {
    return this.#items.length;
  }

  /**
   * Adds a member (no-op if it is in already).
   *
   * @param item the object; its `slot` must be -1 unless it is in this set
   */
  add(item: T): void {
    if (this.has(item)) return;
    item.slot = this.#items.length;
    this.#items.push(item);
  }

  /**
   * Removes a member: the last one takes its place.
   *
   * @param item the object
   * @returns whether it was in the set
   */
  delete(item: T): boolean {
    if (!this.has(item)) return false;
    const items = this.#items;
    const last = items.pop()!;
    if (last !== item) {
      items[item.slot] = last;
      last.slot = item.slot;
    }
    item.slot = -1;
    return true;
  }

  /**
   * Whether `item` is a member.
   *
   * @param item the object
   * @returns true when it is in this set
   */
  has(item: T): boolean {
    const slot = item.slot;
    return slot >= 0 && this.#items[slot] === item;
  }

  /**
   * The member in a slot: slots go from 0 to `size - 1`; removing a member moves the last one
   * into its slot.
   *
   * @param slot the slot
   * @returns the member, or `undefined` outside
   */
  at(slot: number): T | undefined {
    return this.#items[slot];
  }

  /**
   * The members as they are now (a copy: members may come and go while it is walked).
   *
   * @returns an iterator over a snapshot
   */
  [Symbol.iterator](): Iterator<T> {
    return this.#items.slice()[Symbol.iterator]();
  }
}

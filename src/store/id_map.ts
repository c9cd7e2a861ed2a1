/**
 * A map from non-negative integer ids (message ids, delivery numbers, packet ids) to values, for
 * the collections of the store model and the journal whose entries come and go all the time.
 *
 * @module
 */

const EMPTY = -1;
const DELETED = -2;
const MIN_SLOTS = 8;
/** A table emptied with more slots than this is replaced by a small one. */
const KEEP_SLOTS = 1024;

/**
 * A `Map<number, V>` for ids: open addressing with linear probing in two arrays. A JS `Map`
 * whose entries all go (a commit's deliveries acknowledged before the next ones come) shrinks its
 * table, and grows it again with the next entries: several tables per commit, most of the garbage
 * a store made per message. This table only grows, and is reused in place when it empties.
 * Iteration is in slot order, not insertion order.
 *
 * @typeParam V the values
 *
 * @example
 * ```ts
 * import { IdMap } from "./id_map.ts";
 * import assert from "node:assert/strict";
 *
 * const m = new IdMap<string>();
 * m.set(7, "a").set(9, "b");
 * assert.equal(m.get(7), "a");
 * assert.equal(m.delete(7), true);
 * assert.equal(m.has(7), false);
 * assert.deepEqual([...m], [[9, "b"]]);
 * assert.equal(m.size, 1);
 * ```
 */
export class IdMap<V> {
  #keys: number[] = [];
  #values: (V | undefined)[] = [];
  #mask = 0;
  #size = 0;
  /** Slots in use: entries and deleted marks. */
  #used = 0;

  constructor() {
    this.#init(MIN_SLOTS);
  }

  /** Entries. */
  get size(): number {
    return this.#size;
  }

  /**
   * @param key an id
   * @returns its value, or `undefined`
   */
  get(key: number): V | undefined {
    const i = this.#find(key);
    return i < 0 ? undefined : this.#values[i];
  }

  /**
   * @param key an id
   * @returns whether it has an entry
   */
  has(key: number): boolean {
    return this.#find(key) >= 0;
  }

  /**
   * Sets the value of an id.
   *
   * @param key a non-negative safe integer
   * @param value its value
   * @returns this map
   */
  set(key: number, value: V): this {
    const keys = this.#keys, mask = this.#mask;
    let i = key & mask;
    let free = -1;
    for (;;) {
      const k = keys[i]!;
      if (k === key) {
        this.#values[i] = value;
        return this;
      }
      if (k === EMPTY) break;
      if (k === DELETED && free < 0) free = i;
      i = (i + 1) & mask;
    }
    if (free >= 0) i = free;
    else if ((this.#used + 1) * 4 > keys.length * 3) {
      this.#rehash(this.#size + 1);
      return this.set(key, value);
    } else this.#used++;
    keys[i] = key;
    this.#values[i] = value;
    this.#size++;
    return this;
  }

  /**
   * Deletes the entry of an id.
   *
   * @param key an id
   * @returns whether there was one
   */
  delete(key: number): boolean {
    const i = this.#find(key);
    if (i < 0) return false;
    this.#keys[i] = DELETED;
    this.#values[i] = undefined;
    if (--this.#size === 0) this.clear();
    return true;
  }

  /** Deletes every entry. */
  clear(): void {
    if (this.#keys.length > KEEP_SLOTS) this.#init(MIN_SLOTS);
    else if (this.#used > 0) {
      this.#keys.fill(EMPTY);
      this.#values.fill(undefined);
      this.#used = this.#size = 0;
    }
  }

  /** @returns each id with its value */
  *entries(): IterableIterator<[number, V]> {
    const keys = this.#keys, values = this.#values;
    for (let i = 0; i < keys.length; i++) if (keys[i]! >= 0) yield [keys[i]!, values[i]!];
  }

  /** @returns each id */
  *keys(): IterableIterator<number> {
    const keys = this.#keys;
    for (let i = 0; i < keys.length; i++) if (keys[i]! >= 0) yield keys[i]!;
  }

  /** @returns each value */
  *values(): IterableIterator<V> {
    const keys = this.#keys, values = this.#values;
    for (let i = 0; i < keys.length; i++) if (keys[i]! >= 0) yield values[i]!;
  }

  /** Same as {@linkcode entries}. */
  [Symbol.iterator](): IterableIterator<[number, V]> {
    return this.entries();
  }

  #find(key: number): number {
    const keys = this.#keys, mask = this.#mask;
    let i = key & mask;
    for (;;) {
      const k = keys[i]!;
      if (k === key) return i;
      if (k === EMPTY) return -1;
      i = (i + 1) & mask;
    }
  }

  #init(slots: number): void {
    this.#keys = new Array<number>(slots).fill(EMPTY);
    this.#values = new Array<V | undefined>(slots).fill(undefined);
    this.#mask = slots - 1;
    this.#used = this.#size = 0;
  }

  /** Into a table where `entries` take at most a quarter of the slots. */
  #rehash(entries: number): void {
    const keys = this.#keys, values = this.#values;
    let slots = MIN_SLOTS;
    while (slots < entries * 4) slots *= 2;
    this.#init(slots);
    for (let i = 0; i < keys.length; i++) {
      if (keys[i]! >= 0) this.set(keys[i]!, values[i]!);
    }
  }
}

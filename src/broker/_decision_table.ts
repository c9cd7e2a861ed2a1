/**
 * The core's decisions waiting for an answer, by id: a `Map` with its newest entry kept aside.
 *
 * Why: most decisions (a login checked by anonymous access or a password file) are answered
 * before the next one is asked, so a plain `Map` went from empty to one entry and back once per
 * login, and V8 makes a new hash table when a `Map`'s last entry is deleted (it shrinks the
 * table once fewer than half its buckets are used): a table allocated per connection. The entry
 * kept aside never enters the `Map`; it moves there only when another decision is asked while
 * it still waits (a slow plugin, logins waiting for their source's budget).
 *
 * @module
 */

/** Pending decisions by id (ids are positive integers). */
export class DecisionTable<T> {
  /** The id of the entry kept aside; 0 when there is none. */
  #id = 0;
  #value: T | undefined;
  #map = new Map<number, T>();

  /**
   * Adds or replaces the entry of `id`.
   *
   * @param id the decision's id, > 0
   * @param value what waits for the answer
   */
  set(id: number, value: T): void {
    if (id === this.#id) {
      this.#value = value;
      return;
    }
    if (this.#map.has(id)) {
      this.#map.set(id, value);
      return;
    }
    if (this.#id !== 0) this.#map.set(this.#id, this.#value!);
    this.#id = id;
    this.#value = value;
  }

  /**
   * The entry of `id`.
   *
   * @param id the decision's id
   * @returns the entry, or `undefined` when there is none
   */
  get(id: number): T | undefined {
    return id === this.#id && id !== 0 ? this.#value : this.#map.get(id);
  }

  /**
   * Whether `id` has an entry.
   *
   * @param id the decision's id
   * @returns whether it waits
   */
  has(id: number): boolean {
    return (id === this.#id && id !== 0) || this.#map.has(id);
  }

  /**
   * Removes the entry of `id`.
   *
   * @param id the decision's id
   * @returns whether there was one
   */
  delete(id: number): boolean {
    if (id === this.#id && id !== 0) {
      this.#id = 0;
      this.#value = undefined;
      return true;
    }
    return this.#map.delete(id);
  }

  /** How many entries. */
  get size(): number {
    return this.#map.size + (this.#id !== 0 ? 1 : 0);
  }
}

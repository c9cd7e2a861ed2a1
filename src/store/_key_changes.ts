/**
 * What changed in a keyed collection since it was last written out: the net change per key, so
 * that a row put and deleted between two writes costs the write nothing.
 *
 * @module
 */

import { IdMap } from "./id_map.ts";

/** The key was not in the written copy and is now: insert it. */
export const NEW = 1;
/** The key was in the written copy and its value changed: replace it. */
export const CHANGED = 2;
/** The key was in the written copy and is gone: delete it. */
export const GONE = 3;

/** The net change of one key. */
export type KeyChange = typeof NEW | typeof CHANGED | typeof GONE;

/** What {@linkcode KeyChanges} keeps its changes in: a `Map`, or an `IdMap` for ids. */
type Table<K> = Pick<Map<K, KeyChange>, "get" | "has" | "delete" | "clear" | "size"> & {
  set(key: K, value: KeyChange): unknown;
  entries(): IterableIterator<[K, KeyChange]>;
};

/**
 * Net changes per key. A key not listed is the same as in the written copy.
 *
 * @example
 * ```ts
 * import { CHANGED, GONE, KeyChanges } from "./_key_changes.ts";
 * import assert from "node:assert/strict";
 *
 * const changes = new KeyChanges<number>();
 * changes.put(1, false); // inserted ...
 * changes.gone(1); // ... and deleted before the write: nothing to do
 * changes.put(2, true); // replaced
 * changes.gone(3); // deleted
 * assert.deepEqual([...changes.entries()], [[2, CHANGED], [3, GONE]]);
 * ```
 */
export class KeyChanges<K> {
  readonly #map: Table<K>;

  /**
   * @param table where the changes are kept: an `IdMap` for keys that are ids (messages,
   *   deliveries: most come and go within one commit, which a `Map` pays for with new tables)
   */
  constructor(table: Table<K> = new Map<K, KeyChange>()) {
    this.#map = table;
  }

  /** Keys with a change. */
  get size(): number {
    return this.#map.size;
  }

  /**
   * A key was set.
   *
   * @param key the key
   * @param existed whether it held a value before this put
   */
  put(key: K, existed: boolean): void {
    const state = this.#map.get(key);
    if (state === undefined) this.#map.set(key, existed ? CHANGED : NEW);
    else if (state === GONE) this.#map.set(key, CHANGED);
  }

  /**
   * The value of a key that exists was modified in place.
   *
   * @param key the key
   */
  update(key: K): void {
    if (!this.#map.has(key)) this.#map.set(key, CHANGED);
  }

  /**
   * A key that existed was deleted.
   *
   * @param key the key
   */
  gone(key: K): void {
    if (this.#map.get(key) === NEW) this.#map.delete(key);
    else this.#map.set(key, GONE);
  }

  /** @returns each changed key with its change */
  entries(): IterableIterator<[K, KeyChange]> {
    return this.#map.entries();
  }

  /** Forgets every change (they were written). */
  clear(): void {
    this.#map.clear();
  }
}

/** {@linkcode KeyChanges} per client id, for the rows of each session. */
export class ClientKeyChanges<K> {
  readonly #clients = new Map<string, KeyChanges<K>>();
  readonly #table: () => Table<K>;

  /** @param table makes the table of each client's changes */
  constructor(table: () => Table<K> = () => new Map<K, KeyChange>()) {
    this.#table = table;
  }

  /** The last client asked for: a stream of deliveries names the same one again and again. */
  #lastId: string | undefined;
  #last: KeyChanges<K> | undefined;

  /**
   * The changes of one client's rows.
   *
   * @param clientId the client id
   * @returns its changes, created when needed
   */
  of(clientId: string): KeyChanges<K> {
    if (clientId === this.#lastId) return this.#last!;
    let changes = this.#clients.get(clientId);
    if (changes === undefined) {
      changes = new KeyChanges<K>(this.#table());
      this.#clients.set(clientId, changes);
    }
    this.#lastId = clientId;
    this.#last = changes;
    return changes;
  }

  /** @returns each client id with the changes of its rows */
  entries(): IterableIterator<[string, KeyChanges<K>]> {
    return this.#clients.entries();
  }

  /** Forgets every change. */
  clear(): void {
    this.#clients.clear();
    this.#lastId = this.#last = undefined;
  }
}

/** Every change to a store's state since it was last folded into the tables. */
export class StateChanges {
  /** `clear` was applied: every table but the counters starts empty. */
  cleared = false;
  readonly sessions = new KeyChanges<string>();
  readonly subscriptions = new ClientKeyChanges<string>();
  readonly outbound = new ClientKeyChanges<number>(() => new IdMap<KeyChange>());
  readonly inbound = new ClientKeyChanges<number>(() => new IdMap<KeyChange>());
  readonly messages = new KeyChanges<number>(new IdMap<KeyChange>());
  readonly retained = new KeyChanges<string>();
  readonly counters = new Set<string>();

  /** Forgets every change, e.g. after a fold. */
  reset(): void {
    this.cleared = false;
    this.sessions.clear();
    this.subscriptions.clear();
    this.outbound.clear();
    this.inbound.clear();
    this.messages.clear();
    this.retained.clear();
    this.counters.clear();
  }
}

/**
 * Sessions by client id: a map whose operations do not make V8 look each client id up in its
 * string table.
 *
 * Why not a `Map<string, Session>`: a string-keyed `Map` operation with a string V8 has not
 * internalized (a client id the decoder has just made) goes through V8's string table, a probe of
 * a table that holds every internalized string of the process (`set` inserts the key): 490–690 ns
 * of CPU per `set` in a small program, where a set with a string already used takes 50–130 ns, and
 * in the broker the first `get` or `set` of each login's client id held 1.5–2 % of the busy
 * samples in bursts of 64 logins, whichever map it was (bench/RESULTS.md, branch `connrate5`).
 * Here sessions are kept by a 30-bit hash of the client id (a number key: no string table), and
 * the rare session whose id's hash another id already holds goes to a second map keyed by the id
 * itself.
 *
 * @module
 */

/** What the table keeps: an object that knows its client id. */
export interface Keyed {
  readonly clientId: string;
}

/**
 * A client id's 32-bit FNV-1a hash over its UTF-16 code units.
 *
 * @param id the client id
 * @returns the hash's upper 30 bits: a small integer for V8 (a Smi, with pointer compression too),
 *   so that a key is no heap number
 */
export function hashOf(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return h >>> 2;
}

/**
 * Sessions by client id with the `Map` interface the core and its readers use. Iteration gives
 * the sessions in the order they came in, but for those whose hash another took (they come after
 * the others).
 */
export class SessionTable<T extends Keyed> implements ReadonlyMap<string, T> {
  /** The session of each hash: the first session with that hash to come in. */
  readonly #byHash = new Map<number, T>();
  /** Sessions whose hash was taken when they came in, by client id. */
  readonly #others = new Map<string, T>();

  /** How many sessions. */
  get size(): number {
    return this.#byHash.size + this.#others.size;
  }

  /**
   * The session of `clientId`.
   *
   * @param clientId the client id
   * @returns the session, or `undefined`
   */
  get(clientId: string): T | undefined {
    const first = this.#byHash.get(hashOf(clientId));
    if (first !== undefined && first.clientId === clientId) return first;
    return this.#others.size === 0 ? undefined : this.#others.get(clientId);
  }

  /**
   * Whether `clientId` has a session.
   *
   * @param clientId the client id
   * @returns true when it has
   */
  has(clientId: string): boolean {
    return this.get(clientId) !== undefined;
  }

  /**
   * Sets the session of `clientId`, replacing the one it had.
   *
   * @param clientId the client id: the session's own
   * @param session the session
   * @returns this table
   * @throws {RangeError} when the session's client id is another
   */
  set(clientId: string, session: T): this {
    if (session.clientId !== clientId) {
      throw new RangeError(`Cannot keep the session of ${session.clientId} as ${clientId}'s`);
    }
    const hash = hashOf(clientId);
    const first = this.#byHash.get(hash);
    if (first === undefined) {
      // A session of this id among the others stays there (one place per id).
      if (this.#others.size > 0 && this.#others.has(clientId)) this.#others.set(clientId, session);
      else this.#byHash.set(hash, session);
    } else if (first.clientId === clientId) this.#byHash.set(hash, session);
    else this.#others.set(clientId, session);
    return this;
  }

  /**
   * Removes the session of `clientId`.
   *
   * @param clientId the client id
   * @returns whether it had one
   */
  delete(clientId: string): boolean {
    const hash = hashOf(clientId);
    const first = this.#byHash.get(hash);
    if (first !== undefined && first.clientId === clientId) return this.#byHash.delete(hash);
    return this.#others.size > 0 && this.#others.delete(clientId);
  }

  /** Removes every session. */
  clear(): void {
    this.#byHash.clear();
    this.#others.clear();
  }

  /**
   * The sessions.
   *
   * @returns an iterator over them
   */
  *values(): MapIterator<T> {
    yield* this.#byHash.values();
    yield* this.#others.values();
  }

  /**
   * The client ids.
   *
   * @returns an iterator over them
   */
  *keys(): MapIterator<string> {
    for (const session of this.values()) yield session.clientId;
  }

  /**
   * The client ids with their sessions.
   *
   * @returns an iterator over the pairs
   */
  *entries(): MapIterator<[string, T]> {
    for (const session of this.values()) yield [session.clientId, session];
  }

  /**
   * Same as {@linkcode SessionTable.entries}.
   *
   * @returns an iterator over the pairs
   */
  [Symbol.iterator](): MapIterator<[string, T]> {
    return this.entries();
  }

  /**
   * Calls `fn` for each session, as `Map.prototype.forEach` does.
   *
   * @param fn called with the session, its client id and this table
   * @param thisArg `this` for `fn`
   */
  forEach(
    fn: (session: T, clientId: string, table: ReadonlyMap<string, T>) => void,
    thisArg?: unknown,
  ): void {
    for (const session of this.values()) fn.call(thisArg, session, session.clientId, this);
  }
}

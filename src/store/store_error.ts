/**
 * The one error class a store throws or rejects with.
 *
 * @module
 */

/**
 * What went wrong: `corrupt` (not a database or damaged, e.g. truncated), `not-a-store` (a
 * database of another program), `newer-schema` (written by a newer version), `locked` (another
 * process uses it), `io` (it cannot be read or created), `write` (a commit failed, e.g. disk
 * full; earlier commits are intact), `fenced` (a cluster node's commit was refused, nothing of
 * it applied: the node was taken for dead and its sessions moved to other nodes; no outage),
 * `taken` (a cluster node's commit was applied but for the sessions another node writes now: what
 * it carried for them is stored nowhere; no outage) or `lost` (what earlier commits wrote is gone, e.g. a Redis restarted without its data: the state
 * is to be written again from memory).
 */
export type StoreErrorKind =
  | "corrupt"
  | "not-a-store"
  | "newer-schema"
  | "locked"
  | "io"
  | "write"
  | "fenced"
  | "taken"
  | "lost";

/** Options of {@linkcode StoreError}. */
export interface StoreErrorOptions {
  /** What went wrong. */
  kind: StoreErrorKind;
  /** The store file, when the store has one. */
  path?: string;
  /** The underlying error. */
  cause?: unknown;
  /** Kind `taken`: the client ids of the sessions whose part of the commit was refused. */
  sessions?: readonly string[];
}

/**
 * A store cannot be opened, or a commit failed. The message is one line naming the file and
 * what is wrong, fit to print at start-up, for example
 * `Cannot open store "state.db": the file is not a SQLite database (corrupt or not a store file)`.
 *
 * @example
 * ```ts
 * import { StoreError } from "./store_error.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new StoreError('Cannot open store "x.db": it is locked by another process', {
 *   kind: "locked",
 *   path: "x.db",
 * });
 * assert.equal(error.kind, "locked");
 * assert.equal(error.name, "StoreError");
 * ```
 */
export class StoreError extends Error {
  /** What went wrong. */
  readonly kind: StoreErrorKind;
  /** The store file, when the store has one. */
  readonly path: string | undefined;
  /** Kind `taken`: the client ids of the sessions whose part of the commit was refused. */
  readonly sessions: readonly string[] | undefined;

  /**
   * Creates a store error.
   *
   * @param message one line: what failed and why
   * @param options kind, file, cause and (kind `taken`) sessions
   */
  constructor(message: string, options: StoreErrorOptions) {
    super(message, { cause: options.cause });
    this.name = "StoreError";
    this.kind = options.kind;
    this.path = options.path;
    this.sessions = options.sessions;
  }
}

/**
 * The SQLite store on a worker thread: the same file format and guarantees as
 * {@linkcode SqliteStore}, with the SQL work, fsyncs and checkpoints off the broker's thread.
 *
 * @module
 */

import type { BrokerStore } from "./broker_store.ts";
import type { MessageRecord } from "./message_record.ts";
import type { StoreMutation } from "./mutation.ts";
import type { SqliteStoreOptions } from "./sqlite_store.ts";
import type { StoredState } from "./stored_state.ts";
import { StoreError } from "./store_error.ts";
import { GroupCommitStore } from "./_group_commit.ts";
import type { WorkerError, WorkerRequest, WorkerResponse } from "./_sqlite_worker.ts";

type Request = WorkerRequest extends infer R ? R extends { id: number } ? Omit<R, "id"> : never
  : never;

function errorFrom(error: WorkerError): Error {
  if (error.kind !== undefined) {
    return new StoreError(error.message, { kind: error.kind, path: error.path });
  }
  if (error.name === "TypeError") return new TypeError(error.message);
  if (error.name === "RangeError") return new RangeError(error.message);
  return new Error(error.message);
}

/** Its own bytes: posting a view would copy the whole buffer it looks into (a read buffer). */
function ownBytes(message: MessageRecord): MessageRecord {
  const payload = message.payload;
  if (payload.byteOffset === 0 && payload.byteLength === payload.buffer.byteLength) return message;
  return { ...message, payload: payload.slice() };
}

function portable(m: StoreMutation): StoreMutation {
  switch (m.type) {
    case "putMessage":
    case "putRetained":
      return { ...m, message: ownBytes(m.message) };
    case "putSession":
      if (m.session.will === undefined) return m;
      return {
        ...m,
        session: {
          ...m.session,
          will: { ...m.session.will, message: ownBytes(m.session.will.message) },
        },
      };
    default:
      return m;
  }
}

/**
 * A {@linkcode BrokerStore} in one SQLite file, written by a worker thread. `apply` checks a batch
 * and queues it on the broker's thread; the batches of one event-loop turn go to the worker as one
 * message and are written there in one transaction (with those of other turns that arrive while
 * the worker is busy). Only the copy of the mutations costs the broker's thread; SQL, fsyncs and
 * WAL checkpoints run on the worker.
 *
 * @example
 * ```ts
 * import { SqliteWorkerStore } from "./sqlite_worker_store.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * {
 *   await using store = await SqliteWorkerStore.open(`${dir}/state.db`);
 *   store.apply([{ type: "setCounter", name: "clients/maximum", value: 7 }]);
 *   await store.commit();
 *   assert.equal((await store.load(Date.now())).counters.get("clients/maximum"), 7);
 * }
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class SqliteWorkerStore extends GroupCommitStore<readonly StoreMutation[]>
  implements BrokerStore {
  /** The file path. */
  readonly location: string;
  #worker: Worker;
  #nextId = 1;
  #waiting = new Map<number, PromiseWithResolvers<unknown>>();
  #failure: StoreError | undefined;

  private constructor(path: string, worker: Worker) {
    super(JSON.stringify(path));
    this.location = path;
    this.#worker = worker;
    worker.onmessage = (event: MessageEvent<WorkerResponse>) => {
      const response = event.data;
      const waiting = this.#waiting.get(response.id);
      if (waiting === undefined) return;
      this.#waiting.delete(response.id);
      if (response.ok) waiting.resolve(response.value);
      else waiting.reject(errorFrom(response.error));
    };
    worker.onerror = (event: ErrorEvent) => {
      // Handled here: an unhandled worker error would end the whole process.
      event.preventDefault();
      this.#fail(event.message);
    };
  }

  /**
   * Opens (or creates) a store file on a new worker thread.
   *
   * @param path the file; its directory must exist
   * @param options sync mode and size limit, as for `SqliteStore.open` (but `now`: the worker's
   *   store keeps its default clock)
   * @returns the open store
   * @throws {StoreError} (as a rejection) For every reason `SqliteStore.open` throws one.
   */
  static async open(path: string, options: SqliteStoreOptions = {}): Promise<SqliteWorkerStore> {
    const worker = new Worker(new URL("./_sqlite_worker.ts", import.meta.url), {
      type: "module",
    });
    const store = new SqliteWorkerStore(path, worker);
    try {
      // A function cannot cross to the worker: the worker's store keeps its own clock.
      await store.#request({ op: "open", path, options: { ...options, now: undefined } });
    } catch (error) {
      worker.terminate();
      throw error;
    }
    return store;
  }

  /**
   * Flushes what is pending, then reads the state from the worker.
   *
   * @param now wall-clock time, ms since the epoch
   * @returns the state after load-time expiry
   * @throws {StoreError} (as a rejection) If the file cannot be read or written.
   */
  load(now: number): Promise<StoredState> {
    this.assertOpen();
    this.flush();
    return this.#request({ op: "load", now }) as Promise<StoredState>;
  }

  /**
   * See `SqliteStore.rewrite`: done by the worker, after what was applied earlier.
   *
   * @param batch a `clear` and the whole state
   * @returns a promise settled when the new state is committed
   */
  rewrite(batch: readonly StoreMutation[]): Promise<void> {
    this.assertOpen();
    this.flush();
    return this.#request({ op: "rewrite", batch: batch.map(portable) }) as Promise<void>;
  }

  /**
   * A copy the worker can take: the copy of the mutations is all `apply` costs the broker's
   * thread.
   */
  protected prepare(batch: readonly StoreMutation[]): readonly StoreMutation[] {
    return batch.map(portable);
  }

  /** The batches of a turn go to the worker as one message, for one transaction. */
  protected writeBatches(batches: (readonly StoreMutation[])[]): Promise<unknown> {
    return this.#request({ op: "write", batches });
  }

  /** Closes the file and stops the worker, after the last write. */
  protected async shutdown(written: Promise<void> | undefined): Promise<void> {
    try {
      const closed = this.#request({ op: "close" });
      closed.catch(() => {}); // Awaited below, after the pending commit's outcome.
      if (written !== undefined) await written;
      await closed;
    } finally {
      this.#worker.terminate();
      this.#fail("the store is closed");
    }
  }

  #request(request: Request): Promise<unknown> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    const waiting = Promise.withResolvers<unknown>();
    this.#waiting.set(id, waiting);
    this.#worker.postMessage({ ...request, id } as WorkerRequest);
    return waiting.promise;
  }

  /** The worker is gone: everything waiting, and everything after, fails. */
  #fail(reason: string): void {
    this.#failure ??= new StoreError(
      `Cannot use store ${JSON.stringify(this.location)}: the store worker stopped: ${reason}`,
      { kind: "io", path: this.location },
    );
    for (const waiting of this.#waiting.values()) waiting.reject(this.#failure);
    this.#waiting.clear();
  }
}

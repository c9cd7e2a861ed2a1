/**
 * Worker side of {@linkcode SqliteWorkerStore}: hosts a `SqliteStore` off the broker's thread and
 * answers its requests in order. Internal to src/store.
 *
 * @module
 */

import type { StoreMutation } from "./mutation.ts";
import { SqliteStore, type SqliteStoreOptions } from "./sqlite_store.ts";
import { StoreError, type StoreErrorKind } from "./store_error.ts";

/** A request from the broker's thread; answered with the same `id`. */
export type WorkerRequest =
  | { id: number; op: "open"; path: string; options: SqliteStoreOptions }
  | { id: number; op: "write"; batches: (readonly StoreMutation[])[] }
  | { id: number; op: "rewrite"; batch: readonly StoreMutation[] }
  | { id: number; op: "load"; now: number }
  | { id: number; op: "close" };

/** An error as it crosses the thread boundary. */
export interface WorkerError {
  name: string;
  message: string;
  kind?: StoreErrorKind;
  path?: string;
}

/** The answer to one request. */
export type WorkerResponse =
  | { id: number; ok: true; value?: unknown }
  | { id: number; ok: false; error: WorkerError };

// `self` is the worker's global scope here; this module is only ever loaded as a worker.
const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<WorkerRequest>) => void) | null;
  postMessage(message: WorkerResponse): void;
};

let store: SqliteStore | undefined;

function opened(): SqliteStore {
  if (store === undefined) throw new TypeError("Cannot use the store worker: no store is open");
  return store;
}

async function handle(request: WorkerRequest): Promise<unknown> {
  switch (request.op) {
    case "open":
      store = SqliteStore.open(request.path, request.options);
      return undefined;
    case "write": {
      const target = opened();
      // Requests arriving in one turn of this thread share one transaction, as in SqliteStore.
      for (const batch of request.batches) target.apply(batch);
      await target.commit();
      return undefined;
    }
    case "rewrite":
      return await opened().rewrite(request.batch);
    case "load":
      return await opened().load(request.now);
    case "close":
      await store?.close();
      return undefined;
  }
}

scope.onmessage = (event) => {
  const request = event.data;
  handle(request).then(
    (value) => scope.postMessage({ id: request.id, ok: true, value }),
    (error: unknown) => {
      const e = error instanceof Error ? error : new Error(String(error));
      const out: WorkerError = { name: e.name, message: e.message };
      if (e instanceof StoreError) {
        out.kind = e.kind;
        if (e.path !== undefined) out.path = e.path;
      }
      scope.postMessage({ id: request.id, ok: false, error: out });
    },
  );
};

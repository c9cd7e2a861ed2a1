/**
 * The store the configuration names: the SQLite file of the `persistence` section (or of aMQTT's
 * `SessionDBPlugin`).
 *
 * @module
 */

import type { PersistenceConfig } from "../config/persistence_config.ts";
import type { BrokerStore } from "../store/broker_store.ts";
import { SqliteStore } from "../store/sqlite_store.ts";
import { SqliteWorkerStore } from "../store/sqlite_worker_store.ts";

/**
 * Opens the configured store file. With `sync: full` SQLite runs on a worker thread, so that the
 * fsync of each commit never stalls the broker's connections (a compiled binary must
 * `--include src/store/_sqlite_worker.ts`). With `sync: normal` a commit writes the WAL without
 * waiting for the disk, and SQLite runs on the broker's thread: handing each batch to a worker
 * cost more CPU than the SQL itself (measured: 64 µs per QoS 1 message to a persistent session
 * on a worker, 38 µs on the broker's thread, 16 µs in memory).
 *
 * @param persistence the resolved `persistence` settings
 * @returns the opened store, not loaded yet
 * @throws {StoreError} when the file is corrupt, truncated, of another program, of a newer
 *   version, locked by another process, or cannot be created; the file is left untouched
 */
export async function openStore(persistence: PersistenceConfig): Promise<BrokerStore> {
  if (persistence.sync === "full") {
    return await SqliteWorkerStore.open(persistence.path, { sync: "full" });
  }
  return SqliteStore.open(persistence.path, { sync: persistence.sync });
}

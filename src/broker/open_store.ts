/**
 * The store the configuration names: the SQLite file of the `persistence` section (or of aMQTT's
 * `SessionDBPlugin`), written on a worker thread.
 *
 * @module
 */

import type { PersistenceConfig } from "../config/persistence_config.ts";
import type { BrokerStore } from "../store/broker_store.ts";
import { SqliteWorkerStore } from "../store/sqlite_worker_store.ts";

/**
 * Opens the configured store file. SQL, fsyncs and checkpoints run on a worker thread, so a slow
 * disk does not stall the broker's connections (a compiled binary must
 * `--include src/store/_sqlite_worker.ts`).
 *
 * @param persistence the resolved `persistence` settings
 * @returns the opened store, not loaded yet
 * @throws {StoreError} when the file is corrupt, truncated, of another program, of a newer
 *   version, locked by another process, or cannot be created; the file is left untouched
 */
export function openStore(persistence: PersistenceConfig): Promise<BrokerStore> {
  return SqliteWorkerStore.open(persistence.path, { sync: persistence.sync });
}

/**
 * Broker state stores: the {@linkcode BrokerStore} contract, its mutations and records, the
 * in-memory store and the SQLite store. The broker writes to one when persistence is on.
 *
 * @example
 * ```ts
 * import { MemoryStore } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * await using store = new MemoryStore();
 * store.apply([{ type: "putRetained", message: {
 *   topic: "a/b", payload: new TextEncoder().encode("on"), qos: 0, retain: true,
 * } }]);
 * await store.commit();
 * assert.equal((await store.load(Date.now())).retained[0]?.topic, "a/b");
 * ```
 *
 * @module
 */

export type { BrokerStore } from "./broker_store.ts";
export { type JsonProperties, propertiesFromJson, propertiesToJson } from "./json_properties.ts";
export { MemoryStore } from "./memory_store.ts";
export { copyMessage, messageExpired, type MessageRecord } from "./message_record.ts";
export { type StoreMutation, validateBatch } from "./mutation.ts";
export {
  copySession,
  sessionDeadline,
  type SessionRecord,
  type SubscriptionRecord,
  type WillRecord,
} from "./session_record.ts";
export { SqliteStore, type SqliteStoreOptions, type SyncMode } from "./sqlite_store.ts";
export { SqliteWorkerStore } from "./sqlite_worker_store.ts";
export { StoreError, type StoreErrorKind, type StoreErrorOptions } from "./store_error.ts";
export type { DueWill, OutboundRecord, StoredSession, StoredState } from "./stored_state.ts";
export type { ProtocolVersion, QoS } from "../packet/constants.ts";
export type { Properties, UserProperty } from "../packet/types.ts";

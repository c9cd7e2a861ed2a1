/**
 * The SQLite store's schema and its migrations. `PRAGMA user_version` holds the schema version;
 * migration `i` takes a file from version `i` to `i + 1`, inside the opening transaction.
 *
 * @module
 */

import type { DatabaseSync } from "node:sqlite";

/** `PRAGMA application_id` of a store file: "amqt". */
export const APPLICATION_ID = 0x616d7174;

/** Outbound entry states as stored. */
export const OUTBOUND_STATE = { queued: 0, publish: 1, pubrel: 2 } as const;

const V1 = `
CREATE TABLE sessions (
  client_id TEXT PRIMARY KEY,
  protocol_version INTEGER NOT NULL,
  clean INTEGER NOT NULL,
  expiry_interval INTEGER,
  offline_since INTEGER,
  username TEXT,
  will_topic TEXT,
  will_payload BLOB,
  will_qos INTEGER,
  will_retain INTEGER,
  will_properties TEXT,
  will_origin TEXT,
  will_expires_at INTEGER,
  will_delay INTEGER
) WITHOUT ROWID;
CREATE TABLE subscriptions (
  client_id TEXT NOT NULL,
  filter TEXT NOT NULL,
  qos INTEGER NOT NULL,
  no_local INTEGER NOT NULL,
  retain_as_published INTEGER NOT NULL,
  retain_handling INTEGER NOT NULL,
  identifier INTEGER,
  PRIMARY KEY (client_id, filter)
) WITHOUT ROWID;
CREATE TABLE messages (
  id INTEGER PRIMARY KEY,
  topic TEXT NOT NULL,
  payload BLOB NOT NULL,
  qos INTEGER NOT NULL,
  retain INTEGER NOT NULL,
  properties TEXT,
  origin TEXT,
  expires_at INTEGER
);
CREATE TABLE outbound (
  client_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  message_id INTEGER,
  qos INTEGER NOT NULL,
  state INTEGER NOT NULL,
  packet_id INTEGER,
  PRIMARY KEY (client_id, seq)
) WITHOUT ROWID;
CREATE INDEX outbound_message ON outbound (message_id) WHERE message_id IS NOT NULL;
-- A message goes with its last reference, inside SQLite: no round trip per acknowledgement.
CREATE TRIGGER outbound_release_on_delete AFTER DELETE ON outbound
WHEN OLD.message_id IS NOT NULL BEGIN
  DELETE FROM messages WHERE id = OLD.message_id
    AND NOT EXISTS (SELECT 1 FROM outbound WHERE message_id = OLD.message_id);
END;
CREATE TRIGGER outbound_release_on_update AFTER UPDATE OF message_id ON outbound
WHEN OLD.message_id IS NOT NULL AND NEW.message_id IS NOT OLD.message_id BEGIN
  DELETE FROM messages WHERE id = OLD.message_id
    AND NOT EXISTS (SELECT 1 FROM outbound WHERE message_id = OLD.message_id);
END;
CREATE TABLE inbound (
  client_id TEXT NOT NULL,
  packet_id INTEGER NOT NULL,
  PRIMARY KEY (client_id, packet_id)
) WITHOUT ROWID;
CREATE TABLE retained (
  topic TEXT PRIMARY KEY,
  payload BLOB NOT NULL,
  qos INTEGER NOT NULL,
  properties TEXT,
  origin TEXT,
  expires_at INTEGER
) WITHOUT ROWID;
CREATE TABLE counters (
  name TEXT PRIMARY KEY,
  value NUMERIC NOT NULL
) WITHOUT ROWID;
`;

// A delivery's own RETAIN flag and MQTT 5.0 Subscription Identifiers, so that a message resent
// after a restart carries what its first attempt carried.
const V2 = `
ALTER TABLE messages ADD COLUMN retain_out INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN subscription_ids TEXT;
`;

// The log: each commit is one row holding that turn's mutations (`_log_codec.ts`); the tables
// above are the state at the last fold (`_sqlite_fold.ts`), which also deletes the rows folded.
// Messages are deleted by the fold when their last reference has gone, not by triggers.
const V3 = `
CREATE TABLE log (
  id INTEGER PRIMARY KEY,
  body BLOB NOT NULL
);
DROP TRIGGER outbound_release_on_delete;
DROP TRIGGER outbound_release_on_update;
DROP INDEX outbound_message;
`;

// The stage of a fold in pieces (`_sqlite_staged_fold.ts`): row 0 is its mark, the others the
// table writes still to apply.
const V4 = `
CREATE TABLE fold_stage (
  seq INTEGER PRIMARY KEY,
  body BLOB NOT NULL
);
`;

/** Tables a store file at {@linkcode SCHEMA_VERSION} must have. */
export const SCHEMA_OBJECTS: readonly string[] = [
  "sessions",
  "subscriptions",
  "messages",
  "outbound",
  "inbound",
  "retained",
  "counters",
  "log",
  "fold_stage",
];

/** Migration `i` upgrades a file at schema version `i`; version 0 is a new, empty file. */
export const MIGRATIONS: readonly ((db: DatabaseSync) => void)[] = [
  (db) => db.exec(V1),
  (db) => db.exec(V2),
  (db) => db.exec(V3),
  (db) => db.exec(V4),
];

/** The schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

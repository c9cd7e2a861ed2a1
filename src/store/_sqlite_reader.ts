/**
 * Reads a whole SQLite store into plain records, for load at start-up.
 *
 * @module
 */

import type { DatabaseSync } from "node:sqlite";
import type { ProtocolVersion, QoS } from "../packet/constants.ts";
import type { JsonProperties } from "./json_properties.ts";
import type { MessageRecord } from "./message_record.ts";
import type { StoredSession } from "./stored_state.ts";
import type { RawState } from "./_load_expiry.ts";
import type { OUTBOUND_STATE } from "./_sqlite_schema.ts";

type Row = Record<string, unknown>;

const STATES = ["queued", "publish", "pubrel"] as const;

function optional<T>(value: unknown): T | undefined {
  return value === null ? undefined : value as T;
}

function messageFrom(row: Row, prefix = ""): MessageRecord {
  const message: MessageRecord = {
    topic: row[`${prefix}topic`] as string,
    payload: row[`${prefix}payload`] as Uint8Array,
    qos: row[`${prefix}qos`] as QoS,
    // The retained table has no retain column: every message in it is retained.
    retain: `${prefix}retain` in row ? row[`${prefix}retain`] === 1 : true,
  };
  const properties = row[`${prefix}properties`];
  if (typeof properties === "string") message.properties = JSON.parse(properties) as JsonProperties;
  const origin = row[`${prefix}origin`];
  if (typeof origin === "string") message.origin = origin;
  const expiresAt = row[`${prefix}expires_at`];
  if (expiresAt !== null) message.expiresAt = expiresAt as number;
  // Only the messages table has the delivery's own columns.
  if (row.retain_out === 1) message.retainOut = true;
  const ids = row.subscription_ids;
  if (typeof ids === "string") message.subscriptionIdentifiers = JSON.parse(ids) as number[];
  return message;
}

/**
 * Reads every table.
 *
 * @param db an open store database at the current schema version
 * @returns everything held, before expiry
 */
export function readRawState(db: DatabaseSync): RawState {
  const sessions = new Map<string, StoredSession>();
  for (const row of db.prepare("SELECT * FROM sessions").all() as Row[]) {
    const clientId = row.client_id as string;
    const stored: StoredSession = {
      session: {
        clientId,
        protocolVersion: row.protocol_version as ProtocolVersion,
        clean: row.clean === 1,
        expiryInterval: optional<number>(row.expiry_interval),
        offlineSince: optional<number>(row.offline_since),
      },
      subscriptions: [],
      outbound: [],
      inbound: [],
    };
    if (row.username !== null) stored.session.username = row.username as string;
    if (row.will_topic !== null) {
      stored.session.will = {
        message: messageFrom(row, "will_"),
        delayInterval: row.will_delay as number,
      };
    }
    sessions.set(clientId, stored);
  }
  for (const row of db.prepare("SELECT * FROM subscriptions").all() as Row[]) {
    const sub: StoredSession["subscriptions"][number] = {
      filter: row.filter as string,
      qos: row.qos as QoS,
      noLocal: row.no_local === 1,
      retainAsPublished: row.retain_as_published === 1,
      retainHandling: row.retain_handling as 0 | 1 | 2,
    };
    if (row.identifier !== null) sub.identifier = row.identifier as number;
    sessions.get(row.client_id as string)?.subscriptions.push(sub);
  }
  for (const row of db.prepare("SELECT * FROM outbound").all() as Row[]) {
    sessions.get(row.client_id as string)?.outbound.push({
      seq: row.seq as number,
      qos: row.qos as QoS,
      state: STATES[row.state as (typeof OUTBOUND_STATE)[keyof typeof OUTBOUND_STATE]],
      packetId: optional<number>(row.packet_id),
      messageId: optional<number>(row.message_id),
    });
  }
  for (const row of db.prepare("SELECT * FROM inbound").all() as Row[]) {
    sessions.get(row.client_id as string)?.inbound.push(row.packet_id as number);
  }
  const messages = new Map<number, MessageRecord>();
  for (const row of db.prepare("SELECT * FROM messages").all() as Row[]) {
    messages.set(row.id as number, messageFrom(row));
  }
  const retained: MessageRecord[] = [];
  for (const row of db.prepare("SELECT * FROM retained").all() as Row[]) {
    retained.push(messageFrom(row));
  }
  const counters = new Map<string, number>();
  for (const row of db.prepare("SELECT name, value FROM counters").all() as Row[]) {
    counters.set(row.name as string, row.value as number);
  }
  return { sessions: [...sessions.values()], messages, retained, counters };
}

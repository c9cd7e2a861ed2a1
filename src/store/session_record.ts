/**
 * What a store keeps of one client session: its settings and will, and its subscriptions.
 *
 * @module
 */

import type { ProtocolVersion, QoS } from "../packet/constants.ts";
import { copyMessage, type MessageRecord } from "./message_record.ts";

/** A will message and its delay. */
export interface WillRecord {
  /** The will message (its `origin` is normally the session's client id). */
  message: MessageRecord;
  /** Seconds after the connection ends before the will is published (MQTT 5.0; 0 = at once). */
  delayInterval: number;
}

/** One client session's settings. Subscriptions and queues are stored beside it. */
export interface SessionRecord {
  /** The client identifier (the key). */
  clientId: string;
  /** Protocol level of the CONNECT that created or last resumed it: 3, 4 or 5. */
  protocolVersion: ProtocolVersion;
  /** The clean-session (3.1.1) or clean-start (5.0) flag of that CONNECT. */
  clean: boolean;
  /**
   * Seconds the session outlives its connection; `undefined` = never expires (MQTT 3.1.1
   * persistent sessions without a broker limit, or 5.0's 0xFFFFFFFF). 0 = it ends with its
   * connection, so it never survives a restart [MQTT-3.1.2-23].
   */
  expiryInterval: number | undefined;
  /**
   * Wall-clock time (ms since the epoch) the session went offline; `undefined` while connected.
   * A session stored as connected counts as offline from the moment it is loaded after a restart.
   */
  offlineSince: number | undefined;
  /** The user name it authenticated with, if any. */
  username?: string;
  /** The will of its connection, until published or discarded. */
  will?: WillRecord;
}

/** One subscription of a session, with its options as granted. */
export interface SubscriptionRecord {
  /** The topic filter (the key within the session), shared-subscription prefix included. */
  filter: string;
  /** The granted maximum QoS. */
  qos: QoS;
  /** MQTT 5.0 No Local. */
  noLocal: boolean;
  /** MQTT 5.0 Retain As Published. */
  retainAsPublished: boolean;
  /** MQTT 5.0 Retain Handling: 0, 1 or 2. */
  retainHandling: 0 | 1 | 2;
  /** MQTT 5.0 Subscription Identifier, 1..268435455, if the SUBSCRIBE carried one. */
  identifier?: number;
}

/**
 * The wall-clock time a session expires, or `Infinity` when it does not.
 *
 * A session with expiry interval 0 ends with its connection, so after a restart it is gone
 * (`-Infinity`); one stored as connected has lost its connection in the restart and starts its
 * expiry when loaded [MQTT-3.1.2-23].
 *
 * @param session the session record
 * @param now wall-clock time of the load, ms since the epoch
 * @returns its deadline in ms since the epoch
 *
 * @example
 * ```ts
 * import { sessionDeadline } from "./session_record.ts";
 * import assert from "node:assert/strict";
 *
 * const s = { clientId: "c", protocolVersion: 5 as const, clean: false, expiryInterval: 60, offlineSince: 1000 };
 * assert.equal(sessionDeadline(s, 5000), 61_000);
 * assert.equal(sessionDeadline({ ...s, offlineSince: undefined }, 5000), 65_000);
 * ```
 */
export function sessionDeadline(session: SessionRecord, now: number): number {
  if (session.expiryInterval === undefined) return Infinity;
  if (session.expiryInterval === 0) return -Infinity;
  return (session.offlineSince ?? now) + session.expiryInterval * 1000;
}

/**
 * A session record whose will carries its message in another form, such as encoded bytes or text.
 *
 * @typeParam M the form of the will's message
 */
export type SessionShape<M> = Omit<SessionRecord, "will"> & {
  will?: { message: M; delayInterval: number };
};

/**
 * Rebuilds a session record field by field, with its will's message mapped: the one place that
 * lists what a session record holds, for copying and for encoding and decoding it.
 *
 * @param session the record, or an encoded form of it
 * @param message maps the will's message
 * @returns a new record with only the fields a session record has
 *
 * @example
 * ```ts
 * import { mapSession } from "./session_record.ts";
 * import assert from "node:assert/strict";
 *
 * const s = { clientId: "c", protocolVersion: 5 as const, clean: false, expiryInterval: 60,
 *   offlineSince: undefined, will: { message: "m", delayInterval: 5 } };
 * assert.equal(mapSession(s, (m) => m.length).will?.message, 1);
 * ```
 */
export function mapSession<A, B>(
  session: SessionShape<A>,
  message: (m: A) => B,
): SessionShape<B> {
  const out: SessionShape<B> = {
    clientId: session.clientId,
    protocolVersion: session.protocolVersion,
    clean: session.clean,
    expiryInterval: session.expiryInterval,
    offlineSince: session.offlineSince,
  };
  if (session.username !== undefined) out.username = session.username;
  if (session.will !== undefined) {
    out.will = {
      message: message(session.will.message),
      delayInterval: session.will.delayInterval,
    };
  }
  return out;
}

/**
 * A deep copy of a session record.
 *
 * @param session the record
 * @returns a copy that shares nothing with `session`
 */
export function copySession(session: SessionRecord): SessionRecord {
  return mapSession(session, copyMessage);
}

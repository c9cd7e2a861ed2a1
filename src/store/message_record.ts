/**
 * The serialisable message record: one application message as the broker stores it, separate from
 * any encoding of it.
 *
 * @module
 */

import type { QoS } from "../packet/constants.ts";
import type { JsonProperties } from "./json_properties.ts";

/**
 * An application message as stored: what was published, by whom, and until when it may be
 * delivered. Plain data (no class, no cached encodings), so that every store can write it.
 *
 * A PUBLISH routed to many sessions is one record, stored once and referenced by each session's
 * outbound entries (see {@linkcode StoreMutation}).
 */
export interface MessageRecord {
  /** The topic name. */
  topic: string;
  /** The payload. Stores keep their own copy once committed; do not modify it before then. */
  payload: Uint8Array;
  /** The QoS it was published with. */
  qos: QoS;
  /** Whether it was published with RETAIN. */
  retain: boolean;
  /** MQTT 5.0 message properties, JSON-safe; absent when there are none. */
  properties?: JsonProperties;
  /** The client id of the publisher; absent when the host program published it. */
  origin?: string;
  /**
   * Wall-clock deadline (ms since the epoch) from the Message Expiry Interval; absent when the
   * message does not expire. After it the message is not delivered any more [MQTT-3.3.2-5].
   */
  expiresAt?: number;
  /**
   * The RETAIN flag of the PUBLISH that delivers this record, when it is 1: a retained message
   * sent for a new subscription [MQTT-3.3.1-8], or an MQTT 5.0 delivery under Retain As Published
   * [MQTT-3.3.1-12]. Absent for a live forward, which carries 0 [MQTT-3.3.1-9]. A delivery resent
   * after a restart carries the flag of its first attempt.
   */
  retainOut?: boolean;
  /**
   * The MQTT 5.0 Subscription Identifiers the PUBLISH that delivers this record carries
   * [MQTT-3.3.4-3]; absent when there are none.
   */
  subscriptionIdentifiers?: number[];
}

/**
 * Whether a message is past its expiry deadline at `now`.
 *
 * @param message the record
 * @param now wall-clock time, ms since the epoch
 * @returns true when it must not be delivered any more [MQTT-3.3.2-5]
 *
 * @example
 * ```ts
 * import { messageExpired } from "./message_record.ts";
 * import assert from "node:assert/strict";
 *
 * const m = { topic: "t", payload: new Uint8Array(), qos: 1 as const, retain: false, expiresAt: 1000 };
 * assert.equal(messageExpired(m, 999), false);
 * assert.equal(messageExpired(m, 1000), true);
 * ```
 */
export function messageExpired(message: MessageRecord, now: number): boolean {
  return message.expiresAt !== undefined && message.expiresAt <= now;
}

/**
 * A deep copy of a record, with its own payload bytes.
 *
 * @param message the record
 * @returns a copy that shares nothing with `message`
 */
export function copyMessage(message: MessageRecord): MessageRecord {
  const out: MessageRecord = {
    topic: message.topic,
    payload: message.payload.slice(),
    qos: message.qos,
    retain: message.retain,
  };
  // Through JSON, as every store that writes text keeps them.
  if (message.properties !== undefined) {
    out.properties = JSON.parse(JSON.stringify(message.properties));
  }
  if (message.origin !== undefined) out.origin = message.origin;
  if (message.expiresAt !== undefined) out.expiresAt = message.expiresAt;
  if (message.retainOut) out.retainOut = true;
  if (message.subscriptionIdentifiers !== undefined) {
    out.subscriptionIdentifiers = [...message.subscriptionIdentifiers];
  }
  return out;
}

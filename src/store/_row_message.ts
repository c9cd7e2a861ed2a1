/**
 * A message record the SQLite store keeps in its live state after a commit: the fields of the
 * record put, and its payload as a place in the log row that holds it (never the caller's bytes,
 * often a view into a 64 KiB read buffer that must not stay pinned), until a fold gives a message
 * that stays bytes of its own ({@linkcode ownPayload}).
 *
 * @module
 */

import type { QoS } from "../packet/constants.ts";
import type { JsonProperties } from "./json_properties.ts";
import type { MessageRecord } from "./message_record.ts";

/**
 * A {@linkcode MessageRecord} whose payload is a range of a log row, made into a view only when
 * read (by a fold, or at load through {@linkcode plainMessage}). Most messages are deleted before
 * either: a view per message cost more heap than the record holding it.
 *
 * @example
 * ```ts
 * import { plainMessage, RowMessage } from "./_row_message.ts";
 * import assert from "node:assert/strict";
 *
 * const row = new Uint8Array([9, 1, 2, 3, 9]);
 * const m = new RowMessage({ topic: "t", payload: row.subarray(1, 4), qos: 1, retain: false }, row, 1);
 * assert.deepEqual(plainMessage(m), { topic: "t", payload: new Uint8Array([1, 2, 3]), qos: 1, retain: false });
 * ```
 */
export class RowMessage implements MessageRecord {
  readonly topic: string;
  readonly qos: QoS;
  readonly retain: boolean;
  readonly properties: JsonProperties | undefined;
  readonly origin: string | undefined;
  readonly expiresAt: number | undefined;
  readonly retainOut: boolean | undefined;
  readonly subscriptionIdentifiers: number[] | undefined;
  readonly #row: Uint8Array;
  readonly #at: number;
  readonly #length: number;

  /**
   * @param message the record put (its payload only gives the length)
   * @param row the log row written for it
   * @param at where the payload starts in the row
   */
  constructor(message: MessageRecord, row: Uint8Array, at: number) {
    this.topic = message.topic;
    this.qos = message.qos;
    this.retain = message.retain;
    this.properties = message.properties;
    this.origin = message.origin;
    this.expiresAt = message.expiresAt;
    this.retainOut = message.retainOut ? true : undefined;
    const ids = message.subscriptionIdentifiers;
    this.subscriptionIdentifiers = ids === undefined ? undefined : [...ids];
    this.#row = row;
    this.#at = at;
    this.#length = message.payload.length;
  }

  /** The payload: a view into the log row. */
  get payload(): Uint8Array {
    return this.#row.subarray(this.#at, this.#at + this.#length);
  }
}

/**
 * A plain record of a message (a {@linkcode RowMessage}'s fields, only those set), as a store
 * returns what it holds at load.
 *
 * @param message a record
 * @returns a plain record with the same content (the record itself when it is one)
 */
export function plainMessage(message: MessageRecord): MessageRecord {
  if (!(message instanceof RowMessage)) return message;
  const out: MessageRecord = {
    topic: message.topic,
    payload: message.payload,
    qos: message.qos,
    retain: message.retain,
  };
  if (message.properties !== undefined) out.properties = message.properties;
  if (message.origin !== undefined) out.origin = message.origin;
  if (message.expiresAt !== undefined) out.expiresAt = message.expiresAt;
  if (message.retainOut) out.retainOut = true;
  if (message.subscriptionIdentifiers !== undefined) {
    out.subscriptionIdentifiers = message.subscriptionIdentifiers;
  }
  return out;
}

/**
 * Bytes a record's payload may keep alive beyond its own (other payloads of its log row) and still
 * stay where it is: below this a copy would save less than it costs.
 */
const SHARED_SLACK = 256;

/**
 * A record whose payload does not keep much more than itself alive: the record itself when its
 * payload's buffer is at most twice its length and `SHARED_SLACK` bytes more, else a plain record
 * with a copy of the payload. The SQLite store calls it at a fold for each message that stays
 * past it: a small message that waits (an offline session's queue) then no longer keeps the log
 * row of its turn, with the other payloads of that turn, or a whole log file read at start-up.
 *
 * @param message a record
 * @returns the record, or a plain one with a payload of its own
 *
 * @example
 * ```ts
 * import { ownPayload, RowMessage } from "./_row_message.ts";
 * import assert from "node:assert/strict";
 *
 * const row = new Uint8Array(8000);
 * row.set([1, 2, 3], 10);
 * const m = new RowMessage({ topic: "t", payload: row.subarray(10, 13), qos: 1, retain: false }, row, 10);
 * const own = ownPayload(m);
 * assert.deepEqual(own.payload, new Uint8Array([1, 2, 3]));
 * assert.equal(own.payload.buffer.byteLength, 3);
 * ```
 */
export function ownPayload(message: MessageRecord): MessageRecord {
  const payload = message.payload;
  if (payload.buffer.byteLength <= 2 * payload.byteLength + SHARED_SLACK) return message;
  return { ...plainMessage(message), payload: payload.slice() };
}

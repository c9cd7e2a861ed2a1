/**
 * What a store returns at start-up: everything the broker needs to rebuild its state.
 *
 * @module
 */

import type { QoS } from "../packet/constants.ts";
import type { MessageRecord } from "./message_record.ts";
import type { SessionRecord, SubscriptionRecord, WillRecord } from "./session_record.ts";

/** One outbound entry of a session, as stored. */
export interface OutboundRecord {
  /** Delivery order within the session (the caller's sequence number). */
  seq: number;
  /** The delivery QoS. */
  qos: QoS;
  /**
   * `queued`: not sent yet. `publish`: PUBLISH sent with {@linkcode packetId}, awaiting PUBACK or
   * PUBREC; resent with DUP after a reconnect [MQTT-4.4.0-1]. `pubrel`: PUBREL sent, awaiting
   * PUBCOMP; PUBREL is resent after a reconnect.
   */
  state: "queued" | "publish" | "pubrel";
  /** The packet id, for `publish` and `pubrel`. */
  packetId: number | undefined;
  /** The message id in {@linkcode StoredState.messages}; `undefined` in state `pubrel`. */
  messageId: number | undefined;
}

/** One session with everything stored beside it. */
export interface StoredSession {
  /** Its settings and will. */
  session: SessionRecord;
  /** Its subscriptions, ordered by filter. */
  subscriptions: SubscriptionRecord[];
  /** Its outbound entries in delivery order (ascending `seq`). */
  outbound: OutboundRecord[];
  /** Incoming QoS 2 packet ids awaiting PUBREL, ascending. */
  inbound: number[];
}

/** A will that became due while the broker was down: its session expired. */
export interface DueWill {
  /** The client id of the expired session. */
  clientId: string;
  /** The will to publish now [MQTT-3.1.3-9]. */
  will: WillRecord;
}

/** Everything a store holds, after load-time expiry. */
export interface StoredState {
  /** Sessions not expired, ordered by client id. */
  sessions: StoredSession[];
  /** Messages referenced by outbound entries, by id; each stored once. */
  messages: Map<number, MessageRecord>;
  /** A message id above every stored one: where the caller's id counter continues. */
  nextMessageId: number;
  /** Retained messages not expired, ordered by topic. */
  retained: MessageRecord[];
  /** Counters that survive restarts. */
  counters: Map<string, number>;
  /**
   * Wills of sessions that expired while the broker was down, in order of expiry; the sessions
   * themselves are deleted.
   */
  dueWills: DueWill[];
}

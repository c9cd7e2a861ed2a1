/**
 * Rebuilding the broker's state from what a store loaded at start-up: persistent sessions with
 * their subscriptions, outbound window and queue, inbound QoS 2 ids, will and expiry; retained
 * messages; counters; and the wills of sessions that expired while the broker was down.
 * `BrokerCore.restore` registers what this builds.
 *
 * @module
 */

import type { QoS } from "../packet/constants.ts";
import { propertiesFromJson } from "../store/json_properties.ts";
import type { MessageRecord } from "../store/message_record.ts";
import { sessionDeadline } from "../store/session_record.ts";
import type { StoredSession, StoredState } from "../store/stored_state.ts";
import { exceedsTopicLength, MAX_TOPIC_LENGTH } from "../topic/topic_length.ts";
import type { Journal } from "./journal.ts";
import { BrokerMessage } from "./message.ts";
import { PACKET_IDS_COUNTER } from "./packet_id_mark.ts";
import { Session, type SessionOptions } from "./session.ts";

/** A session rebuilt from the store, with its deadlines. */
export interface RestoredSession {
  /** The session, offline. */
  session: Session;
  /** When it expires (wall clock, ms), if it does. */
  expiresAt: number | undefined;
  /** When its will is due (wall clock, ms), if it has one. */
  willAt: number | undefined;
}

/** Everything rebuilt from a store. */
export interface RestoredState {
  /** Persistent sessions, all offline. */
  sessions: RestoredSession[];
  /** Retained messages, as kept in the retained store (delivered with RETAIN = 1). */
  retained: BrokerMessage[];
  /** Wills of sessions that expired while the broker was down: publish them. */
  dueWills: BrokerMessage[];
  /** The most clients connected at once, as stored. */
  clientsMaximum: number;
  /**
   * What was left out, one line each for the log: topics and filters over `MAX_TOPIC_LENGTH`
   * (stored by an older release), which no map of the broker may hold (topic_length.ts).
   */
  skipped: string[];
}

/** The counter that keeps `$SYS/broker/clients/maximum` across restarts. */
export const CLIENTS_MAXIMUM = "clients/maximum";

/**
 * A message rebuilt from its record.
 *
 * @param record the stored record
 * @param retainOut whether deliveries carry RETAIN = 1; by default what the record says
 * @returns the message
 */
export function messageFromRecord(
  record: MessageRecord,
  retainOut = record.retainOut ?? false,
): BrokerMessage {
  const message = new BrokerMessage(record.topic, record.payload, {
    qos: record.qos,
    retain: record.retain,
    retainOut,
    senderId: record.origin,
    properties: record.properties === undefined ? undefined : propertiesFromJson(record.properties),
    expiresAt: record.expiresAt,
  });
  const ids = record.subscriptionIdentifiers;
  if (ids !== undefined && ids.length > 0) message.subscriptionIdentifiers = ids;
  return message;
}

/**
 * Rebuilds the state a store loaded.
 *
 * @param state what `BrokerStore.load` returned
 * @param now wall-clock time, ms
 * @param journal the core's journal: restored sessions keep journaling, message ids continue
 * @param options the bounds of new sessions
 * @returns the sessions, retained messages, due wills and counters
 */
export function restoreState(
  state: StoredState,
  now: number,
  journal: Journal,
  options: SessionOptions,
): RestoredState {
  journal.continueIds(state.nextMessageId);
  const packetIds = state.counters.get(PACKET_IDS_COUNTER);
  if (packetIds !== undefined) journal.packetIds.start(packetIds);
  const skipped: string[] = [];
  // Whether a stored topic or filter is taken; one past the limit is left out, and said.
  const fits = (topic: string, what: string): boolean => {
    if (!exceedsTopicLength(topic)) return true;
    skipped.push(`${what}: topic over ${MAX_TOPIC_LENGTH} characters ("${topic.slice(0, 64)}…")`);
    return false;
  };
  // A message routed to many sessions was stored once: it is one object again. One left out
  // here is left out of every queue that holds it.
  const messages = new Map<number, BrokerMessage>();
  for (const [id, record] of state.messages) {
    if (fits(record.topic, `message ${id}`)) messages.set(id, messageFromRecord(record));
  }
  const sessions = state.sessions.map((stored) =>
    restoreSession(stored, now, journal, options, messages, fits)
  );
  return {
    sessions,
    retained: state.retained.filter((r) => fits(r.topic, "a retained message")).map((r) =>
      messageFromRecord({ ...r, retain: true }, true)
    ),
    dueWills: state.dueWills.filter((d) => fits(d.will.message.topic, `the will of ${d.clientId}`))
      .map((d) => messageFromRecord(d.will.message)),
    clientsMaximum: state.counters.get(CLIENTS_MAXIMUM) ?? 0,
    skipped,
  };
}

function restoreSession(
  stored: StoredSession,
  now: number,
  journal: Journal,
  options: SessionOptions,
  messages: Map<number, BrokerMessage>,
  fits: (topic: string, what: string) => boolean,
): RestoredSession {
  const record = stored.session;
  const sessionJournal = journal.session(record.clientId);
  const session = new Session(record.clientId, options, sessionJournal);
  session.expiryInterval = record.expiryInterval;
  // The client as it last logged in, for receive authorization while it is away; its address is
  // unknown until it connects again.
  session.client = {
    clientId: record.clientId,
    username: record.username,
    remoteAddress: "",
    transport: "tcp",
    protocolVersion: record.protocolVersion,
    anonymous: record.username === undefined || record.username === "",
  };
  for (const sub of stored.subscriptions) {
    const { filter, ...options } = sub;
    if (!fits(filter, `a subscription of ${record.clientId}`)) continue;
    session.addSubscription({ ...options, topic: filter });
  }
  for (const packetId of stored.inbound) session.inbound.receive(packetId);
  const inflight: {
    packetId: number;
    message: BrokerMessage;
    qos: 1 | 2;
    state: "publish" | "pubrel";
  }[] = [];
  const queued: { message: BrokerMessage; qos: 1 | 2; sent: boolean }[] = [];
  // A session stored as connected was online when the broker died. Its QoS 1 deliveries do not
  // wait for the store (holding them for each commit halved throughput), so one taken from the
  // queue may have gone out while its "sent" mark was still uncommitted: each QoS 1 entry
  // stored as queued may be a re-delivery, and goes out with DUP 1 [MQTT-3.3.1-1]. It costs
  // nothing while running, and DUP 1 only says that it *might* be a re-delivery. Its original
  // packet id is unknown [MQTT-4.4.0-1], but a QoS 1 receiver keeps no state per id: a new id
  // makes it a duplicate, which QoS 1 allows [MQTT-4.3.2]. A QoS 2 PUBLISH goes out only once
  // its mark is committed, so a queued QoS 2 entry was never sent.
  const maybeSent = record.offlineSince === undefined;
  for (const entry of stored.outbound) {
    if (entry.qos === 0) continue;
    const qos = entry.qos as 1 | 2;
    if (entry.state === "pubrel") {
      // PUBREC came: only PUBREL is resent, the message itself is gone.
      const message = placeholder(qos);
      inflight.push({ packetId: entry.packetId!, message, qos, state: "pubrel" });
      sessionJournal.adopt(entry.seq, message, entry.packetId, false);
      continue;
    }
    const message = messages.get(entry.messageId!);
    if (message === undefined) continue;
    journal.adopt(message, entry.messageId!);
    if (entry.state === "publish") {
      inflight.push({ packetId: entry.packetId!, message, qos, state: "publish" });
      sessionJournal.adopt(entry.seq, message, entry.packetId, true);
    } else {
      queued.push({ message, qos, sent: maybeSent && qos === 1 });
      sessionJournal.adopt(entry.seq, message, undefined, true);
    }
  }
  session.outbound.restore(inflight, queued);
  const offlineSince = record.offlineSince ?? now;
  sessionJournal.adoptOffline(offlineSince);
  const deadline = sessionDeadline(record, now);
  let willAt: number | undefined;
  const will = record.will;
  if (will !== undefined && fits(will.message.topic, `the will of ${record.clientId}`)) {
    session.will = {
      topic: will.message.topic,
      payload: will.message.payload,
      qos: will.message.qos,
      retain: will.message.retain,
    };
    session.willDelay = will.delayInterval;
    // The connection ended with the broker: the will is due after its delay from then (at once
    // without one) [MQTT-3.1.2-8].
    willAt = offlineSince + will.delayInterval * 1000;
  }
  return { session, expiresAt: Number.isFinite(deadline) ? deadline : undefined, willAt };
}

/**
 * What stands for a QoS 2 message after PUBREC: nothing of it is sent again.
 *
 * @param qos the delivery's QoS
 * @returns an empty message
 */
export function placeholder(qos: QoS): BrokerMessage {
  return new BrokerMessage("", new Uint8Array(0), { qos, retain: false });
}

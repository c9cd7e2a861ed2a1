/**
 * The load-time rules every store applies, written once: order what was read, drop sessions and
 * messages past their wall-clock deadlines, and say which deletions to write back.
 *
 * @module
 */

import { messageExpired, type MessageRecord } from "./message_record.ts";
import type { StoreMutation } from "./mutation.ts";
import { sessionDeadline } from "./session_record.ts";
import type { DueWill, StoredSession, StoredState } from "./stored_state.ts";

/** Everything a store read, in any order, before expiry. */
export interface RawState {
  sessions: StoredSession[];
  messages: Map<number, MessageRecord>;
  retained: MessageRecord[];
  counters: Map<string, number>;
}

/** Compares strings by UTF-16 code units, the same in every store. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Applies load-time expiry to what a store read.
 *
 * @param raw what the store holds
 * @param now wall-clock time of the load
 * @returns the state to hand to the broker, and the deletions to write back so the file matches
 */
export function expireAtLoad(
  raw: RawState,
  now: number,
): { state: StoredState; mutations: StoreMutation[] } {
  const mutations: StoreMutation[] = [];
  const sessions: StoredSession[] = [];
  const due: (DueWill & { at: number })[] = [];
  const referenced = new Map<number, MessageRecord>();
  let nextMessageId = 1;
  for (const id of raw.messages.keys()) nextMessageId = Math.max(nextMessageId, id + 1);

  const sorted = [...raw.sessions].sort((a, b) =>
    compareText(a.session.clientId, b.session.clientId)
  );
  for (const stored of sorted) {
    const { session } = stored;
    const deadline = sessionDeadline(session, now);
    if (deadline <= now) {
      mutations.push({ type: "deleteSession", clientId: session.clientId });
      // The session ended while the broker was down: its will is due [MQTT-3.1.3-9], unless the
      // will message itself has expired.
      if (session.will !== undefined && !messageExpired(session.will.message, now)) {
        due.push({ clientId: session.clientId, will: session.will, at: deadline });
      }
      continue;
    }
    const outbound = [];
    for (const entry of [...stored.outbound].sort((a, b) => a.seq - b.seq)) {
      const message = entry.messageId === undefined ? undefined : raw.messages.get(entry.messageId);
      if (entry.state !== "pubrel") {
        // A queued copy of an expired message is deleted [MQTT-3.3.2-5]; one whose onward
        // delivery has started (in flight) must be completed.
        const gone = message === undefined ||
          (entry.state === "queued" && messageExpired(message, now));
        if (gone) {
          mutations.push({ type: "deleteOutbound", clientId: session.clientId, seq: entry.seq });
          continue;
        }
        referenced.set(entry.messageId!, message);
      }
      outbound.push({ ...entry });
    }
    sessions.push({
      session,
      subscriptions: [...stored.subscriptions].sort((a, b) => compareText(a.filter, b.filter)),
      outbound,
      inbound: [...stored.inbound].sort((a, b) => a - b),
    });
  }

  const retained: MessageRecord[] = [];
  for (const message of [...raw.retained].sort((a, b) => compareText(a.topic, b.topic))) {
    if (messageExpired(message, now)) {
      mutations.push({ type: "deleteRetained", topic: message.topic });
    } else {
      retained.push(message);
    }
  }

  due.sort((a, b) => a.at - b.at || compareText(a.clientId, b.clientId));
  return {
    state: {
      sessions,
      messages: referenced,
      nextMessageId,
      retained,
      counters: raw.counters,
      dueWills: due.map(({ clientId, will }) => ({ clientId, will })),
    },
    mutations,
  };
}

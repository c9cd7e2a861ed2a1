/**
 * Writing the store afresh from the broker's memory after a store outage.
 *
 * While writes fail, the broker goes on in memory: a QoS 2 message whose write failed stays
 * routed and its packet id held (releasing the id would deliver the message twice to live QoS 2
 * subscribers), subscriptions and sessions change, QoS 0 messages are queued and retained. The
 * store is behind memory then, and the memory is the truth. So once writes work again, the
 * whole durable state is journaled again behind a `clear`, in one batch (the writer applies it
 * atomically): sessions with their will, subscriptions, inbound QoS 2 ids, outbound deliveries in
 * order (in flight with their packet ids and QoS 2 state, queued), retained messages, and the
 * counters. It goes through the same journal calls as the live changes, so the records and the
 * journal's own view of what is stored (message ids, delivery numbers) are made by one code.
 *
 * @module
 */

import type { BrokerMessage } from "./message.ts";
import type { Journal } from "./journal.ts";
import { CLIENTS_MAXIMUM, placeholder } from "./restore.ts";
import type { Session } from "./session.ts";

/** What the rewrite reads: the core's state. */
export interface RewriteSource {
  /** Every session; those without a journal (clean ones) are not stored. */
  sessions: Iterable<Session>;
  /** The retained messages by topic (`$SYS` ones are skipped by the journal). */
  retained: Iterable<[string, BrokerMessage]>;
  /** The most clients connected at once. */
  clientsMaximum: number;
}

/**
 * Journals a `clear` and then the whole durable state held in memory.
 *
 * @param journal the core's journal
 * @param source the core's state
 *
 * @example
 * ```ts
 * import { rewriteStore } from "./store_rewrite.ts";
 * import { Journal } from "./journal.ts";
 * import { BrokerMessage } from "./message.ts";
 * import type { StoreMutation } from "../store/mutation.ts";
 * import assert from "node:assert/strict";
 *
 * const out: StoreMutation[] = [];
 * const retained = new BrokerMessage("a/b", new Uint8Array([1]), { qos: 0, retain: true });
 * rewriteStore(new Journal((m) => out.push(m)), {
 *   sessions: [],
 *   retained: [["a/b", retained]],
 *   clientsMaximum: 3,
 * });
 * assert.deepEqual(out.map((m) => m.type), ["clear", "setCounter", "putRetained"]);
 * ```
 */
export function rewriteStore(journal: Journal, source: RewriteSource): void {
  journal.clear();
  journal.restart();
  journal.counter(CLIENTS_MAXIMUM, source.clientsMaximum);
  journal.packetIds.rewrite();
  for (const [, message] of source.retained) journal.retained(message);
  for (const session of source.sessions) rewriteSession(session);
}

/**
 * Journals the deletion of one persistent session's rows and then the session whole, as the
 * rewrite after an outage does for each: what the store holds of it is replaced by what memory
 * holds (a cluster node's session that started clean while Redis was away, whose rewrite left the
 * rows of the node that had it: `ClusterSessions.reclaimClean`). Nothing for a session without a
 * journal (not stored).
 *
 * @param session the session
 */
export function replaceSession(session: Session): void {
  if (session.journal === undefined) return;
  session.journal.deleted();
  rewriteSession(session);
}

function rewriteSession(session: Session): void {
  const journal = session.journal;
  if (journal === undefined) return;
  journal.restart();
  journal.put(session, journal.offlineSince);
  for (const sub of session.subscriptions.values()) journal.subscribed(sub.topic, sub);
  for (const packetId of session.inbound.ids()) journal.received(packetId);
  const outbound = session.outbound;
  // In flight, in send order: with its packet id once its PUBLISH went out, then its QoS 2 stage.
  for (const entry of outbound.inflight()) {
    if (entry.state === "pubrel") {
      // Past PUBREC nothing of the message is sent again: no payload to store (as at restore).
      journal.offered(placeholder(entry.qos), entry.qos, entry.packetId, true, false, false);
      journal.pubrel(entry.packetId);
      continue;
    }
    journal.offered(entry.message, entry.qos, entry.packetId, entry.sent, false, false);
  }
  // Queued behind the window, in order (`pending` lists the ones in flight first).
  let skip = outbound.inflightCount;
  for (const { message, qos } of outbound.pending()) {
    if (skip > 0) {
      skip--;
      continue;
    }
    journal.offered(message, qos, undefined, false, false, true);
  }
}

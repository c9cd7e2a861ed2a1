/**
 * A rewrite of the whole state (a `clear` and everything again, as the broker journals it after a
 * store outage: `src/broker/store_rewrite.ts`) turned into what it changes in a store's current
 * state. Messages keep their ids across a rewrite (a message id names one message for good), so a
 * message the store holds already is not written again, nor is a retained message equal to the
 * one held: the rewrite costs room for what changed, not for a second copy of the whole state,
 * and a store that holds more than half its room can still be written again. Internal to
 * src/store.
 *
 * @module
 */

import type { MessageRecord } from "./message_record.ts";
import type { StoreMutation } from "./mutation.ts";
import type { StoreModel } from "./_store_model.ts";

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Whether a retained message put equals the one held (then it is not written again). */
function sameRetained(a: MessageRecord, b: MessageRecord): boolean {
  return a.topic === b.topic && a.qos === b.qos && a.origin === b.origin &&
    a.expiresAt === b.expiresAt &&
    JSON.stringify(a.properties ?? null) === JSON.stringify(b.properties ?? null) &&
    sameBytes(a.payload, b.payload);
}

/**
 * The mutations that take `model` to the state `rewrite` describes, as one batch: no `clear`,
 * puts of what is new or changed, then deletions of what the new state no longer holds. Old
 * outbound entries are deleted after every new one is queued, so that a message both reference
 * stays. A session whose new deliveries reuse numbers of its stored ones (deleted and made again
 * while writes failed: its new journal numbers them from 1 again) is deleted first instead, and
 * the messages its stored deliveries reference are written again: a new delivery would be taken
 * for the stored one of its number, and deleted with it.
 *
 * @param model the store's current state
 * @param rewrite a `clear` followed by the whole state
 * @returns the batch to apply instead
 *
 * @example
 * ```ts
 * import { rewriteDiff } from "./_rewrite_diff.ts";
 * import { StoreModel } from "./_store_model.ts";
 * import assert from "node:assert/strict";
 *
 * const model = new StoreModel({});
 * const message = { topic: "t", payload: new Uint8Array([1]), qos: 1, retain: false } as const;
 * const session = {
 *   clientId: "c",
 *   protocolVersion: 4,
 *   clean: false,
 *   expiryInterval: undefined,
 *   offlineSince: 0,
 * } as const;
 * model.applyBatch([
 *   { type: "putSession", session },
 *   { type: "putMessage", id: 7, message },
 *   { type: "queueOutbound", clientId: "c", seq: 1, messageId: 7, qos: 1 },
 * ]);
 * const diff = rewriteDiff(model, [
 *   { type: "clear" },
 *   { type: "putSession", session },
 *   { type: "putMessage", id: 7, message },
 *   { type: "queueOutbound", clientId: "c", seq: 2, messageId: 7, qos: 1 },
 * ]);
 * // Message 7 is held already: only the session and the entries are written.
 * assert.deepEqual(diff.map((m) => m.type), ["putSession", "queueOutbound", "deleteOutbound"]);
 * ```
 */
export function rewriteDiff(
  model: StoreModel,
  rewrite: readonly StoreMutation[],
): StoreMutation[] {
  const out: StoreMutation[] = [];
  // Sessions made again, deleted first; the messages their stored deliveries hold may go with them.
  const renewed = new Set<string>();
  const released = new Set<number>();
  for (const m of rewrite) {
    if (m.type !== "queueOutbound" || renewed.has(m.clientId)) continue;
    const held = model.sessions.get(m.clientId);
    if (held === undefined || !held.outbound.has(m.seq)) continue;
    renewed.add(m.clientId);
    out.push({ type: "deleteSession", clientId: m.clientId });
    for (const entry of held.outbound.values()) {
      if (entry.messageId !== undefined) released.add(entry.messageId);
    }
  }
  const sessions = new Set<string>();
  const subscriptions = new Map<string, Set<string>>();
  const inbound = new Map<string, Set<number>>();
  const retained = new Set<string>();
  for (const m of rewrite) {
    switch (m.type) {
      case "clear":
        continue;
      case "putSession":
        sessions.add(m.session.clientId);
        break;
      case "putSubscription": {
        let filters = subscriptions.get(m.clientId);
        if (filters === undefined) subscriptions.set(m.clientId, filters = new Set());
        filters.add(m.subscription.filter);
        break;
      }
      case "putInbound": {
        let ids = inbound.get(m.clientId);
        if (ids === undefined) inbound.set(m.clientId, ids = new Set());
        ids.add(m.packetId);
        break;
      }
      case "putMessage":
        // The same id is the same message: the one held stays.
        if (model.messages.has(m.id) && !released.has(m.id)) continue;
        break;
      case "putRetained": {
        retained.add(m.message.topic);
        const held = model.retained.get(m.message.topic);
        if (held !== undefined && sameRetained(held, m.message)) continue;
        break;
      }
    }
    out.push(m);
  }
  // What the new state no longer holds, after everything new references its messages.
  for (const [clientId, held] of model.sessions) {
    if (renewed.has(clientId)) continue;
    if (!sessions.has(clientId)) {
      out.push({ type: "deleteSession", clientId });
      continue;
    }
    for (const seq of held.outbound.keys()) out.push({ type: "deleteOutbound", clientId, seq });
    const filters = subscriptions.get(clientId);
    for (const filter of held.subscriptions.keys()) {
      if (filters?.has(filter) !== true) out.push({ type: "deleteSubscription", clientId, filter });
    }
    const ids = inbound.get(clientId);
    for (const packetId of held.inbound) {
      if (ids?.has(packetId) !== true) out.push({ type: "deleteInbound", clientId, packetId });
    }
  }
  for (const topic of model.retained.keys()) {
    if (!retained.has(topic)) out.push({ type: "deleteRetained", topic });
  }
  return out;
}

/**
 * States for the `SqliteStore.rewrite` tests and their kill -9 child: a whole state as the broker
 * journals it for a rewrite, and what a loaded state holds, in a form to compare; a persistent
 * session's mutations, and one session as the `RedisStore.rewrite` tests write it.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { StoreMutation } from "../../src/store/mutation.ts";
import type { StoredState } from "../../src/store/stored_state.ts";

/** A payload of `bytes` bytes that starts with its message id. */
function payload(id: number, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes).fill(0x2e);
  out.set(new TextEncoder().encode(`${id}:`));
  return out;
}

/**
 * The mutations of a persistent session `clientId` (MQTT 3.1.1, offline since `offlineSince`), and of its
 * subscription to `filter` at QoS 1 when one is given.
 */
export function persistentSession(
  clientId: string,
  filter?: string,
  offlineSince = 1,
): StoreMutation[] {
  const out: StoreMutation[] = [{
    type: "putSession",
    session: {
      clientId,
      protocolVersion: 4,
      clean: false,
      expiryInterval: undefined,
      offlineSince,
    },
  }];
  if (filter !== undefined) {
    out.push({
      type: "putSubscription",
      clientId,
      subscription: { filter, qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 },
    });
  }
  return out;
}

/** A persistent session subscribed to `filter`, with one queued message under `id`. */
export function queuedSession(clientId: string, filter: string, id: number): StoreMutation[] {
  const payload = new TextEncoder().encode(`for ${clientId}`);
  return [
    ...persistentSession(clientId, filter),
    { type: "putMessage", id, message: { topic: `${clientId}/t`, payload, qos: 1, retain: false } },
    { type: "queueOutbound", clientId, seq: 1, messageId: id, qos: 1 },
  ];
}

/** Message ids `from..to`, each with `bytes` of payload. */
export function range(from: number, to: number, bytes: number): [number, number][] {
  const out: [number, number][] = [];
  for (let id = from; id <= to; id++) out.push([id, bytes]);
  return out;
}

/** The ids `from..to`. */
export function ids(from: number, to: number): number[] {
  return range(from, to, 0).map(([id]) => id);
}

/**
 * A whole state as the broker journals it for a rewrite: a `clear`, session `s` subscribed to
 * `f/<tag>` with a queued delivery of each message (delivery numbers from `seq`), and a retained
 * message on `r/<tag>`.
 */
export function state(
  messages: [id: number, bytes: number][],
  seq: number,
  tag: string,
): StoreMutation[] {
  const out: StoreMutation[] = [
    { type: "clear" },
    ...persistentSession("s", `f/${tag}`, 0),
  ];
  for (const [id, bytes] of messages) {
    out.push(
      {
        type: "putMessage",
        id,
        message: { topic: `t/${id}`, payload: payload(id, bytes), qos: 1, retain: false },
      },
      { type: "queueOutbound", clientId: "s", seq: seq++, messageId: id, qos: 1 },
    );
  }
  out.push({
    type: "putRetained",
    message: { topic: `r/${tag}`, payload: payload(0, 100), qos: 0, retain: true },
  });
  return out;
}

/** What a loaded state holds: message ids queued in order, filters, retained topics. */
export function summary(
  loaded: StoredState,
): { queued: number[]; filters: string[]; retained: string[] } {
  assert.equal(loaded.sessions.length, 1);
  const s = loaded.sessions[0]!;
  for (const e of s.outbound) {
    const m = loaded.messages.get(e.messageId!);
    assert.ok(m !== undefined, `message ${e.messageId} is there`);
    const head = new TextDecoder().decode(m.payload.subarray(0, 8)).split(":")[0];
    assert.equal(head, String(e.messageId), "each message's own bytes");
  }
  return {
    queued: s.outbound.map((e) => e.messageId!),
    filters: s.subscriptions.map((sub) => sub.filter),
    retained: loaded.retained.map((m) => m.topic),
  };
}

/**
 * Generation `g` of the kill -9 children: five messages of generation `g - 1` kept, ten new ones
 * of `bytes` each, delivery numbers from `g * 100`.
 */
export function generation(g: number, bytes = 8192): StoreMutation[] {
  const kept = g > 1 ? range((g - 1) * 100 + 6, (g - 1) * 100 + 10, bytes) : [];
  return state([...kept, ...range(g * 100 + 1, g * 100 + 10, bytes)], g * 100, `g${g}`);
}

/** The summary of a store holding generation `g`. */
export function generationSummary(
  g: number,
): { queued: number[]; filters: string[]; retained: string[] } {
  const kept = g > 1 ? ids((g - 1) * 100 + 6, (g - 1) * 100 + 10) : [];
  return {
    queued: [...kept, ...ids(g * 100 + 1, g * 100 + 10)],
    filters: [`f/g${g}`],
    retained: [`r/g${g}`],
  };
}

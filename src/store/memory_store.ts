/**
 * The in-memory store: the default when persistence is off. State lasts as long as the process.
 *
 * @module
 */

import type { BrokerStore } from "./broker_store.ts";
import { copyMessage, type MessageRecord } from "./message_record.ts";
import { type StoreMutation, validateBatch } from "./mutation.ts";
import { copySession, type SessionRecord, type SubscriptionRecord } from "./session_record.ts";
import type { OutboundRecord, StoredState } from "./stored_state.ts";
import { expireAtLoad } from "./_load_expiry.ts";

interface MemorySession {
  session: SessionRecord;
  subscriptions: Map<string, SubscriptionRecord>;
  outbound: Map<number, OutboundRecord>;
  inbound: Set<number>;
}

interface MemoryMessage {
  record: MessageRecord;
  refs: number;
}

/**
 * A {@linkcode BrokerStore} in memory. Batches are applied when `apply` is called, so `commit`
 * resolves at once; records are copied in and out, so callers may reuse their buffers.
 *
 * @example
 * ```ts
 * import { MemoryStore } from "./memory_store.ts";
 * import assert from "node:assert/strict";
 *
 * await using store = new MemoryStore();
 * store.apply([{ type: "setCounter", name: "clients/maximum", value: 3 }]);
 * await store.commit();
 * const state = await store.load(Date.now());
 * assert.equal(state.counters.get("clients/maximum"), 3);
 * ```
 */
export class MemoryStore implements BrokerStore {
  /** Always `memory`. */
  readonly location = "memory";
  #sessions = new Map<string, MemorySession>();
  #messages = new Map<number, MemoryMessage>();
  #retained = new Map<string, MessageRecord>();
  #counters = new Map<string, number>();
  #closed = false;

  /**
   * Applies the deletions of load-time expiry and returns copies of everything held.
   *
   * @param now wall-clock time, ms since the epoch
   * @returns the state after expiry
   */
  load(now: number): Promise<StoredState> {
    this.#open();
    const messages = new Map<number, MessageRecord>();
    for (const [id, m] of this.#messages) messages.set(id, copyMessage(m.record));
    const { state, mutations } = expireAtLoad({
      sessions: [...this.#sessions.values()].map((s) => ({
        session: copySession(s.session),
        subscriptions: [...s.subscriptions.values()].map((sub) => ({ ...sub })),
        outbound: [...s.outbound.values()].map((e) => ({ ...e })),
        inbound: [...s.inbound],
      })),
      messages,
      retained: [...this.#retained.values()].map(copyMessage),
      counters: new Map(this.#counters),
    }, now);
    this.#applyAll(mutations);
    return Promise.resolve(state);
  }

  /**
   * Applies a batch at once.
   *
   * @param batch the mutations
   * @throws {TypeError} If a mutation is malformed or the store is closed.
   * @throws {RangeError} If a value is out of range.
   */
  apply(batch: readonly StoreMutation[]): void {
    this.#open();
    validateBatch(batch);
    this.#applyAll(batch);
  }

  /**
   * Resolves at once: applied batches are already in place.
   *
   * @returns a resolved promise
   */
  commit(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Drops everything held.
   *
   * @returns a resolved promise
   */
  close(): Promise<void> {
    this.#closed = true;
    this.#sessions.clear();
    this.#messages.clear();
    this.#retained.clear();
    return Promise.resolve();
  }

  /** Same as {@linkcode close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #open(): void {
    if (this.#closed) throw new TypeError("Cannot use the memory store: it is closed");
  }

  #applyAll(batch: readonly StoreMutation[]): void {
    // Messages put in this batch: deleted at the end if nothing references them.
    const candidates = new Set<number>();
    for (const m of batch) this.#applyOne(m, candidates);
    for (const id of candidates) {
      if (this.#messages.get(id)?.refs === 0) this.#messages.delete(id);
    }
  }

  #release(messageId: number | undefined): void {
    if (messageId === undefined) return;
    const message = this.#messages.get(messageId);
    if (message !== undefined && --message.refs === 0) this.#messages.delete(messageId);
  }

  #applyOne(m: StoreMutation, candidates: Set<number>): void {
    switch (m.type) {
      case "putSession": {
        const existing = this.#sessions.get(m.session.clientId);
        if (existing !== undefined) existing.session = copySession(m.session);
        else {
          this.#sessions.set(m.session.clientId, {
            session: copySession(m.session),
            subscriptions: new Map(),
            outbound: new Map(),
            inbound: new Set(),
          });
        }
        return;
      }
      case "deleteSession": {
        const session = this.#sessions.get(m.clientId);
        if (session === undefined) return;
        for (const entry of session.outbound.values()) this.#release(entry.messageId);
        this.#sessions.delete(m.clientId);
        return;
      }
      case "putSubscription":
        this.#sessions.get(m.clientId)?.subscriptions.set(m.subscription.filter, {
          ...m.subscription,
        });
        return;
      case "deleteSubscription":
        this.#sessions.get(m.clientId)?.subscriptions.delete(m.filter);
        return;
      case "putMessage": {
        const existing = this.#messages.get(m.id);
        if (existing !== undefined) existing.record = copyMessage(m.message);
        else this.#messages.set(m.id, { record: copyMessage(m.message), refs: 0 });
        candidates.add(m.id);
        return;
      }
      case "queueOutbound": {
        const session = this.#sessions.get(m.clientId);
        const message = this.#messages.get(m.messageId);
        if (session === undefined || message === undefined || session.outbound.has(m.seq)) return;
        message.refs++;
        session.outbound.set(m.seq, {
          seq: m.seq,
          qos: m.qos,
          state: m.packetId === undefined ? "queued" : "publish",
          packetId: m.packetId,
          messageId: m.messageId,
        });
        return;
      }
      case "sendOutbound": {
        const entry = this.#sessions.get(m.clientId)?.outbound.get(m.seq);
        if (entry === undefined || entry.state === "pubrel" || entry.qos === 0) return;
        entry.state = "publish";
        entry.packetId = m.packetId;
        return;
      }
      case "pubrelOutbound": {
        const entry = this.#sessions.get(m.clientId)?.outbound.get(m.seq);
        if (entry === undefined || entry.state !== "publish" || entry.qos !== 2) return;
        entry.state = "pubrel";
        this.#release(entry.messageId);
        entry.messageId = undefined;
        return;
      }
      case "deleteOutbound": {
        const session = this.#sessions.get(m.clientId);
        const entry = session?.outbound.get(m.seq);
        if (session === undefined || entry === undefined) return;
        this.#release(entry.messageId);
        session.outbound.delete(m.seq);
        return;
      }
      case "putInbound":
        this.#sessions.get(m.clientId)?.inbound.add(m.packetId);
        return;
      case "deleteInbound":
        this.#sessions.get(m.clientId)?.inbound.delete(m.packetId);
        return;
      case "putRetained":
        this.#retained.set(m.message.topic, copyMessage(m.message));
        return;
      case "deleteRetained":
        this.#retained.delete(m.topic);
        return;
      case "setCounter":
        this.#counters.set(m.name, m.value);
        return;
      case "clear":
        this.#sessions.clear();
        this.#messages.clear();
        this.#retained.clear();
        candidates.clear();
        return;
    }
  }
}

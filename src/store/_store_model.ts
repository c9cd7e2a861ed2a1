/**
 * The store contract's state and rules, written once: what each mutation does to sessions,
 * outbound entries, shared messages and their references. The memory store is this model; the
 * SQLite store keeps it too, as the live state its log rows replay into and its tables are
 * folded from.
 *
 * @module
 */

import type { MessageRecord } from "./message_record.ts";
import type { StoreMutation } from "./mutation.ts";
import {
  copySession,
  mapSession,
  type SessionRecord,
  type SubscriptionRecord,
} from "./session_record.ts";
import type { OutboundRecord } from "./stored_state.ts";
import type { RawState } from "./_load_expiry.ts";
import type { StateChanges } from "./_key_changes.ts";
import { IdMap } from "./id_map.ts";

/** One session with its rows. */
export interface ModelSession {
  session: SessionRecord;
  subscriptions: Map<string, SubscriptionRecord>;
  outbound: IdMap<OutboundRecord>;
  inbound: Set<number>;
}

/** A stored message and how many outbound entries reference it. */
export interface ModelMessage {
  record: MessageRecord;
  refs: number;
}

/** Options of {@linkcode StoreModel}. */
export interface StoreModelOptions {
  /**
   * What the model keeps of each message record put (messages, retained messages, wills), called
   * in the order of the mutations: a copy, when the caller may reuse its buffers.
   *
   * @default {the record itself}
   */
  own?: (message: MessageRecord) => MessageRecord;
  /** Where every net change is recorded, when someone writes them out. */
  changes?: StateChanges;
}

/**
 * Broker state as the store contract defines it. Mutations naming something not held are
 * ignored; a message goes with its last reference, and one put but referenced by no entry at the
 * end of its batch is not kept.
 *
 * @example
 * ```ts
 * import { StoreModel } from "./_store_model.ts";
 * import assert from "node:assert/strict";
 *
 * const model = new StoreModel({});
 * model.applyBatch([
 *   { type: "putMessage", id: 1, message: { topic: "t", payload: new Uint8Array(), qos: 1, retain: false } },
 * ]);
 * assert.equal(model.messages.size, 0); // no entry took it
 * ```
 */
export class StoreModel {
  readonly sessions = new Map<string, ModelSession>();
  readonly messages = new IdMap<ModelMessage>();
  readonly retained = new Map<string, MessageRecord>();
  readonly counters = new Map<string, number>();
  readonly #changes: StateChanges | undefined;
  readonly #message: ((m: MessageRecord) => MessageRecord) | undefined;
  /** Messages put in the current batch: deleted at its end if nothing references them. */
  readonly #candidates: number[] = [];

  /** @param options what is kept of records, and change tracking */
  constructor(options: StoreModelOptions) {
    this.#changes = options.changes;
    this.#message = options.own;
  }

  #own(message: MessageRecord): MessageRecord {
    return this.#message === undefined ? message : this.#message(message);
  }

  #session(session: SessionRecord): SessionRecord {
    const own = this.#message;
    if (own === undefined) return session;
    return session.will === undefined ? { ...session } : mapSession(session, own);
  }

  /**
   * Applies one batch.
   *
   * @param batch the mutations, valid
   */
  applyBatch(batch: readonly StoreMutation[]): void {
    const candidates = this.#candidates;
    for (let i = 0; i < batch.length; i++) this.#applyOne(batch[i]!, candidates);
    if (candidates.length === 0) return;
    for (const id of candidates) {
      const message = this.messages.get(id);
      if (message !== undefined && message.refs === 0) {
        this.messages.delete(id);
        this.#changes?.messages.gone(id);
      }
    }
    candidates.length = 0;
  }

  /**
   * Takes what a store's tables hold, as the starting state (no change recorded). Messages no
   * entry references are left out.
   *
   * @param raw the tables' contents
   */
  adopt(raw: RawState): void {
    for (const [id, record] of raw.messages) this.messages.set(id, { record, refs: 0 });
    for (const stored of raw.sessions) {
      const outbound = new IdMap<OutboundRecord>();
      for (const entry of stored.outbound) {
        if (entry.messageId !== undefined) {
          const message = this.messages.get(entry.messageId);
          if (message === undefined) continue;
          message.refs++;
        }
        outbound.set(entry.seq, entry);
      }
      this.sessions.set(stored.session.clientId, {
        session: stored.session,
        subscriptions: new Map(stored.subscriptions.map((sub) => [sub.filter, sub])),
        outbound,
        inbound: new Set(stored.inbound),
      });
    }
    for (const [id, message] of this.messages) {
      if (message.refs === 0) {
        this.messages.delete(id);
        this.#changes?.messages.gone(id);
      }
    }
    for (const message of raw.retained) this.retained.set(message.topic, message);
    for (const [name, value] of raw.counters) this.counters.set(name, value);
  }

  /**
   * Everything held, as a store reads it at load: fresh containers and session records.
   *
   * @param copy what to return of each message record (default: the record itself)
   * @returns the state before expiry
   */
  raw(copy: (m: MessageRecord) => MessageRecord = (m) => m): RawState {
    const messages = new Map<number, MessageRecord>();
    // In id order, as they were stored (the tables hold no order, only ids).
    for (const id of [...this.messages.keys()].sort((a, b) => a - b)) {
      messages.set(id, copy(this.messages.get(id)!.record));
    }
    return {
      sessions: [...this.sessions.values()].map((s) => ({
        session: copySession(s.session),
        subscriptions: [...s.subscriptions.values()].map((sub) => ({ ...sub })),
        outbound: [...s.outbound.values()].sort((a, b) => a.seq - b.seq).map((e) => ({ ...e })),
        inbound: [...s.inbound],
      })),
      messages,
      retained: [...this.retained.values()].map(copy),
      counters: new Map(this.counters),
    };
  }

  /** Drops everything held. */
  drop(): void {
    this.sessions.clear();
    this.messages.clear();
    this.retained.clear();
    this.counters.clear();
  }

  #release(messageId: number | undefined): void {
    if (messageId === undefined) return;
    const message = this.messages.get(messageId);
    if (message !== undefined && --message.refs === 0) {
      this.messages.delete(messageId);
      this.#changes?.messages.gone(messageId);
    }
  }

  #applyOne(m: StoreMutation, candidates: number[]): void {
    const changes = this.#changes;
    switch (m.type) {
      case "putSession": {
        const clientId = m.session.clientId;
        const existing = this.sessions.get(clientId);
        changes?.sessions.put(clientId, existing !== undefined);
        if (existing !== undefined) existing.session = this.#session(m.session);
        else {
          this.sessions.set(clientId, {
            session: this.#session(m.session),
            subscriptions: new Map(),
            outbound: new IdMap(),
            inbound: new Set(),
          });
        }
        return;
      }
      case "deleteSession": {
        const session = this.sessions.get(m.clientId);
        if (session === undefined) return;
        for (const entry of session.outbound.values()) this.#release(entry.messageId);
        this.sessions.delete(m.clientId);
        if (changes !== undefined) {
          changes.sessions.gone(m.clientId);
          const subs = changes.subscriptions.of(m.clientId);
          for (const filter of session.subscriptions.keys()) subs.gone(filter);
          const outbound = changes.outbound.of(m.clientId);
          for (const seq of session.outbound.keys()) outbound.gone(seq);
          const inbound = changes.inbound.of(m.clientId);
          for (const packetId of session.inbound) inbound.gone(packetId);
        }
        return;
      }
      case "putSubscription": {
        const subs = this.sessions.get(m.clientId)?.subscriptions;
        if (subs === undefined) return;
        const filter = m.subscription.filter;
        changes?.subscriptions.of(m.clientId).put(filter, subs.has(filter));
        subs.set(filter, { ...m.subscription });
        return;
      }
      case "deleteSubscription": {
        const subs = this.sessions.get(m.clientId)?.subscriptions;
        if (subs === undefined || !subs.delete(m.filter)) return;
        changes?.subscriptions.of(m.clientId).gone(m.filter);
        return;
      }
      case "putMessage": {
        const existing = this.messages.get(m.id);
        changes?.messages.put(m.id, existing !== undefined);
        const record = this.#own(m.message);
        if (existing !== undefined) existing.record = record;
        else this.messages.set(m.id, { record, refs: 0 });
        candidates.push(m.id);
        return;
      }
      case "queueOutbound": {
        const session = this.sessions.get(m.clientId);
        const message = this.messages.get(m.messageId);
        if (session === undefined || message === undefined || session.outbound.has(m.seq)) return;
        message.refs++;
        session.outbound.set(m.seq, {
          seq: m.seq,
          qos: m.qos,
          state: m.packetId === undefined ? "queued" : "publish",
          packetId: m.packetId,
          messageId: m.messageId,
        });
        changes?.outbound.of(m.clientId).put(m.seq, false);
        return;
      }
      case "sendOutbound": {
        const entry = this.sessions.get(m.clientId)?.outbound.get(m.seq);
        if (entry === undefined || entry.state === "pubrel" || entry.qos === 0) return;
        entry.state = "publish";
        entry.packetId = m.packetId;
        changes?.outbound.of(m.clientId).update(m.seq);
        return;
      }
      case "pubrelOutbound": {
        const entry = this.sessions.get(m.clientId)?.outbound.get(m.seq);
        if (entry === undefined || entry.state !== "publish" || entry.qos !== 2) return;
        entry.state = "pubrel";
        this.#release(entry.messageId);
        entry.messageId = undefined;
        changes?.outbound.of(m.clientId).update(m.seq);
        return;
      }
      case "deleteOutbound": {
        const session = this.sessions.get(m.clientId);
        const entry = session?.outbound.get(m.seq);
        if (session === undefined || entry === undefined) return;
        this.#release(entry.messageId);
        session.outbound.delete(m.seq);
        changes?.outbound.of(m.clientId).gone(m.seq);
        return;
      }
      case "putInbound": {
        const inbound = this.sessions.get(m.clientId)?.inbound;
        if (inbound === undefined || inbound.has(m.packetId)) return;
        inbound.add(m.packetId);
        changes?.inbound.of(m.clientId).put(m.packetId, false);
        return;
      }
      case "deleteInbound": {
        const inbound = this.sessions.get(m.clientId)?.inbound;
        if (inbound === undefined || !inbound.delete(m.packetId)) return;
        changes?.inbound.of(m.clientId).gone(m.packetId);
        return;
      }
      case "putRetained": {
        const topic = m.message.topic;
        changes?.retained.put(topic, this.retained.has(topic));
        this.retained.set(topic, this.#own(m.message));
        return;
      }
      case "deleteRetained":
        if (this.retained.delete(m.topic)) changes?.retained.gone(m.topic);
        return;
      case "setCounter":
        this.counters.set(m.name, m.value);
        changes?.counters.add(m.name);
        return;
      case "clear": {
        this.sessions.clear();
        this.messages.clear();
        this.retained.clear();
        candidates.length = 0;
        if (changes !== undefined) {
          // Written as "empty every table but the counters": earlier changes do not matter.
          const counters = [...changes.counters];
          changes.reset();
          changes.cleared = true;
          for (const name of counters) changes.counters.add(name);
        }
        return;
      }
    }
  }
}

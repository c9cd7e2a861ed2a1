/**
 * Sans-IO state of outgoing QoS 1 and QoS 2 messages for one session: packet id allocation, the
 * in-flight window, the queue behind it, and what to resend after a reconnect.
 *
 * No timers, no sockets: callers offer messages and feed acknowledgements in, and get back what to
 * send. The broker keeps one per session (it survives reconnects of a persistent session); the client
 * keeps one per client.
 *
 * @module
 */

import { InflightTable } from "./_inflight_table.ts";

/** One message in the in-flight window. */
export interface InflightEntry<M> {
  /** The packet id it was sent with; kept across resends [MQTT-4.4.0-1]. */
  packetId: number;
  /** The caller's message object. */
  message: M;
  /** The QoS it is delivered at. */
  qos: 1 | 2;
  /**
   * `"publish"`: PUBLISH sent, awaiting PUBACK (QoS 1) or PUBREC (QoS 2).
   * `"pubrel"`: PUBREL sent, awaiting PUBCOMP.
   */
  state: "publish" | "pubrel";
  /** Set once the PUBLISH has been sent at least once: a resend carries DUP = 1 [MQTT-3.3.1-1]. */
  sent: boolean;
  /**
   * The shared group (`$share/{group}/{filter}`) this copy is a delivery for, when it is one: a
   * session with several copies of one message (its own subscription's and a group's) tells
   * their acknowledgements apart by packet id.
   */
  share?: string | undefined;
}

/** Options of {@linkcode OutboundFlow}. */
export interface OutboundFlowOptions {
  /** Messages in flight at once (awaiting acknowledgement). Default 20. */
  maxInflight?: number;
  /** Messages waiting behind the window; past it the oldest is dropped. Default 1000. 0 = none. */
  maxQueued?: number;
  /**
   * The first packet id to hand out; later ones follow it in turn, also after
   * {@linkcode OutboundFlow.restore}. A broker restarting on a store starts each session's ids
   * past those of its previous run, so that a receiver's state for an old id is not taken for a
   * new message. Default 1, and a restored flow then goes on after its last entry in flight.
   */
  firstPacketId?: number;
}

/** What an acknowledgement did. */
export type AckResult =
  /** The flow is complete; the window has room for {@linkcode OutboundFlow.next}. */
  | "complete"
  /** PUBREC accepted: send PUBREL with this packet id. */
  | "pubrel"
  /**
   * A message is in flight with that id, but the acknowledgement does not fit its QoS or state
   * (PUBREC or PUBCOMP for QoS 1, PUBACK for QoS 2, PUBCOMP before PUBREC): the peer broke the
   * protocol and the connection must be closed [MQTT-4.8.0-1]. The flow is left as it was.
   */
  | "wrong_kind"
  /** No message is in flight with that id (a duplicate or a stray ack): ignore it. */
  | "unknown";

/** The in-flight table of every flow that never had a message: empty, never written to. */
// deno-lint-ignore no-explicit-any
const NO_ENTRIES: InflightTable<InflightEntry<any>> = new InflightTable();

interface Queued<M> {
  message: M;
  qos: 1 | 2;
  /** Restored from a store as possibly sent before: its first PUBLISH carries DUP. */
  sent?: boolean;
  /** The shared group it is a delivery for (see {@linkcode InflightEntry.share}). */
  share?: string;
}

/**
 * The outgoing QoS 1/2 window of one session.
 *
 * @example
 * ```ts
 * import { OutboundFlow } from "./outbound.ts";
 * import assert from "node:assert/strict";
 *
 * const flow = new OutboundFlow<string>({ maxInflight: 1 });
 * const first = flow.offer("a", 1);
 * assert.equal(first?.packetId, 1);
 * assert.equal(flow.offer("b", 1), undefined); // queued behind the window
 * assert.equal(flow.acknowledge(1, "puback"), "complete");
 * assert.equal(flow.next()?.message, "b");
 * ```
 */
export class OutboundFlow<M> {
  #maxInflight: number;
  #maxQueued: number;
  // Insertion order is send order, which is resend order after a reconnect [MQTT-4.6.0-1]. An
  // idle session shares one empty table (written to never) until its first message: memory per
  // idle connection counts at 10k connections.
  #inflight: InflightTable<InflightEntry<M>> = NO_ENTRIES;
  #queue: Queued<M>[] = [];
  #queueHead = 0;
  #nextId = 1;
  #dropped = 0;
  #stale = 0;
  #reserved: Set<number> | undefined;
  #startGiven: boolean;
  /** Messages ever put in the queue: the queue's last one is number `#queuedTotal - 1`. */
  #queuedTotal = 0;
  /** {@linkcode aged}: `#queuedTotal` at its previous call, and up to which number it visited. */
  #agedMark = 0;
  #agedTo = 0;
  /** Whether an entry came into the window since {@linkcode aged} last visited it. */
  #windowNew = false;

  /**
   * Creates an empty flow.
   *
   * @param options window and queue bounds
   * @throws {RangeError} when a bound is negative, the window is 0 or above 65535, or the first
   *   packet id is not 1-65535
   */
  constructor(options: OutboundFlowOptions = {}) {
    this.#maxInflight = options.maxInflight ?? 20;
    this.#maxQueued = options.maxQueued ?? 1000;
    if (!(this.#maxInflight >= 1 && this.#maxInflight <= 65535)) {
      throw new RangeError(`Cannot create flow: maxInflight ${this.#maxInflight} is not 1-65535`);
    }
    if (!(this.#maxQueued >= 0)) {
      throw new RangeError(`Cannot create flow: maxQueued ${this.#maxQueued} is negative`);
    }
    const first = options.firstPacketId ?? 1;
    if (!(Number.isInteger(first) && first >= 1 && first <= 65535)) {
      throw new RangeError(`Cannot create flow: firstPacketId ${first} is not 1-65535`);
    }
    this.#nextId = first;
    this.#startGiven = options.firstPacketId !== undefined;
  }

  /** Messages in flight. */
  get inflightCount(): number {
    return this.#inflight.size;
  }

  /** Messages queued behind the window. */
  get queuedCount(): number {
    return this.#queue.length - this.#queueHead;
  }

  /** Messages dropped because the queue was full (oldest first), since creation. */
  get dropped(): number {
    return this.#dropped;
  }

  /**
   * Messages discarded because the caller's `stale` test said so (MQTT 5.0 message expiry) before
   * they were ever sent, since creation.
   */
  get staleDropped(): number {
    return this.#stale;
  }

  /** The window size; {@linkcode setMaxInflight} changes it (MQTT 5 receive maximum). */
  get maxInflight(): number {
    return this.#maxInflight;
  }

  /**
   * Changes the window size, for example to the peer's MQTT 5 Receive Maximum. Messages already in
   * flight stay; no new ones go out until the window has room.
   *
   * @param max the new window, 1-65535
   * @throws {RangeError} when out of range
   */
  setMaxInflight(max: number): void {
    if (!(max >= 1 && max <= 65535)) {
      throw new RangeError(`Cannot set maxInflight: ${max} is not 1-65535`);
    }
    this.#maxInflight = max;
  }

  /**
   * Offers a message for delivery at QoS 1 or 2.
   *
   * @param message the caller's message object (kept as is)
   * @param qos the delivery QoS
   * @param share the shared group this copy is a delivery for, if it is one: kept on its entry
   *   ({@linkcode InflightEntry.share})
   * @returns the in-flight entry to send now (a PUBLISH with its `packetId`), or `undefined` when
   *   the window is full and the message was queued (or, with `maxQueued` 0, dropped)
   */
  offer(message: M, qos: 1 | 2, share?: string): InflightEntry<M> | undefined {
    if (this.#inflight.size < this.#maxInflight && this.queuedCount === 0) {
      return this.#admit(message, qos, false, share);
    }
    if (this.#maxQueued === 0) {
      this.#dropped++;
      return undefined;
    }
    if (this.queuedCount >= this.#maxQueued) {
      // Bounded memory: the oldest waiting message makes room for the newest, and is counted. Its
      // slot is cleared, or the array would hold it until the next compaction.
      this.#queue[this.#queueHead] = undefined as unknown as Queued<M>;
      this.#queueHead++;
      this.#dropped++;
    }
    this.#queue.push(share === undefined ? { message, qos } : { message, qos, share });
    this.#queuedTotal++;
    this.#compact();
    return undefined;
  }

  /**
   * Takes the next queued message into the window, if there is room.
   *
   * @param stale when given, queued messages it returns true for (given each with `now`) are
   *   discarded on the way (their delivery never started: MQTT 5.0 message expiry
   *   [MQTT-3.3.2-5]) and counted in {@linkcode staleDropped}. One function made once rather than
   *   a closure over the clock per call: it is called for every message that leaves the queue.
   * @param now passed on to `stale`
   * @returns the entry to send now, or `undefined` when the window is full or nothing is queued
   */
  next(stale?: (message: M, now: number) => boolean, now = 0): InflightEntry<M> | undefined {
    if (this.#inflight.size >= this.#maxInflight) return undefined;
    while (this.queuedCount > 0) {
      const item = this.#queue[this.#queueHead]!;
      this.#queue[this.#queueHead] = undefined as unknown as Queued<M>;
      this.#queueHead++;
      if (stale !== undefined && stale(item.message, now)) {
        this.#stale++;
        continue;
      }
      this.#compact();
      return this.#admit(item.message, item.qos, item.sent, item.share);
    }
    this.#compact();
    return undefined;
  }

  /**
   * Discards the in-flight entries that were never sent and that `stale` returns true for (MQTT
   * 5.0 message expiry [MQTT-3.3.2-5]: an offline session's window fills with messages that may
   * expire before it is back). Entries already sent stay: their delivery has started.
   *
   * @param stale the test, given each message with `now`
   * @param now passed on to `stale`
   * @returns how many were discarded (also counted in {@linkcode staleDropped})
   */
  discardUnsent(stale: (message: M, now: number) => boolean, now = 0): number {
    let n = 0;
    // Deletes only the entry just visited, as the table allows while iterating.
    for (const entry of this.#inflight.values()) {
      if (!entry.sent && entry.state === "publish" && stale(entry.message, now)) {
        this.#inflight.delete(entry.packetId);
        n++;
      }
    }
    this.#stale += n;
    return n;
  }

  /**
   * Ends the flow of a PUBLISH in flight that will not be sent, as if the peer had acknowledged
   * it: its slot in the window is free for the next message. (A broker does not send a PUBLISH
   * larger than the client's Maximum Packet Size and behaves as if it had completed sending it
   * [MQTT-3.1.2-25].)
   *
   * @param packetId the packet id of the entry
   * @returns true when an entry awaiting its PUBLISH's acknowledgement was removed
   */
  complete(packetId: number): boolean {
    const entry = this.#inflight.get(packetId);
    if (entry === undefined || entry.state !== "publish") return false;
    this.#inflight.delete(packetId);
    return true;
  }

  /**
   * Feeds an acknowledgement from the peer.
   *
   * @param packetId the acknowledged packet id
   * @param kind which acknowledgement arrived
   * @param failed MQTT 5: the PUBREC carried a reason code of 0x80 or more, which ends the flow
   * @returns what it did: `"wrong_kind"` for an acknowledgement that does not fit the message in
   *   flight with that id, `"unknown"` for an id not in flight
   */
  acknowledge(
    packetId: number,
    kind: "puback" | "pubrec" | "pubcomp",
    failed = false,
  ): AckResult {
    const entry = this.#inflight.get(packetId);
    if (entry === undefined) return "unknown";
    if (kind === "puback") {
      if (entry.qos !== 1) return "wrong_kind";
      this.#inflight.delete(packetId);
      return "complete";
    }
    if (entry.qos !== 2) return "wrong_kind";
    if (kind === "pubrec") {
      if (failed && entry.state === "publish") {
        this.#inflight.delete(packetId);
        return "complete";
      }
      // A repeated PUBREC (our PUBREL was lost with a connection) is answered with PUBREL again.
      entry.state = "pubrel";
      return "pubrel";
    }
    if (entry.state !== "pubrel") return "wrong_kind";
    this.#inflight.delete(packetId);
    return "complete";
  }

  /**
   * The entry in flight with a packet id.
   *
   * @param packetId the packet id
   * @returns the entry, or `undefined` when none is in flight with that id
   */
  get(packetId: number): InflightEntry<M> | undefined {
    return this.#inflight.get(packetId);
  }

  /**
   * Whether an entry is still in flight (not completed or cleared since it was handed out).
   *
   * @param entry an entry from {@linkcode offer}, {@linkcode next} or {@linkcode inflight}
   * @returns true while it awaits an acknowledgement
   */
  holds(entry: InflightEntry<M>): boolean {
    return this.#inflight.get(entry.packetId) === entry;
  }

  /**
   * Everything to resend after a reconnect, in the original order: PUBLISH (with DUP) for entries
   * in state `"publish"`, PUBREL for entries in state `"pubrel"` [MQTT-4.4.0-1].
   *
   * @returns the in-flight entries in send order
   */
  inflight(): IterableIterator<InflightEntry<M>> {
    return this.#inflight.values();
  }

  /**
   * Every message still pending, without taking any: those in flight in send order, then those
   * queued. `started` says whether its delivery has begun (a PUBLISH sent, or PUBREL stage);
   * `share` is the shared group the copy is a delivery for, if any ({@linkcode offer}).
   *
   * @returns the pending messages with their QoS
   */
  *pending(): IterableIterator<
    { message: M; qos: 1 | 2; started: boolean; share: string | undefined }
  > {
    for (const e of this.#inflight.values()) {
      yield {
        message: e.message,
        qos: e.qos,
        started: e.sent || e.state === "pubrel",
        share: e.share,
      };
    }
    for (let i = this.#queueHead; i < this.#queue.length; i++) {
      const q = this.#queue[i]!;
      yield { message: q.message, qos: q.qos, started: q.sent === true, share: q.share };
    }
  }

  /**
   * Visits what has been waiting a while, for a caller that calls it at a steady pace (a broker's
   * sweep): every message in flight when one came into the window since the previous call (none
   * when the window has not changed: what is in it was visited), and each queued message that
   * was already queued at the previous call and not visited since. A window that does not move
   * and a queued message are visited once, so that a slow or stalled peer costs the calls, over
   * time, about one visit per message it was given.
   *
   * At most `max` visits to queued messages: the window is visited whole (it is bounded by the
   * window size), then the queue until `max` visits in all are made; the queued messages left
   * are visited first at the next call, so that a caller bounds its work per call.
   *
   * @param visit called with each message, in flight ones first, then queued ones oldest first
   * @param max the most visits to make, the window's aside (default: no bound)
   * @returns the visits made (`max` or more when the call stopped short)
   */
  aged(visit: (message: M) => void, max = Infinity): number {
    let visits = 0;
    if (this.#windowNew) {
      this.#windowNew = false;
      for (const e of this.#inflight.values()) visit(e.message);
      visits = this.#inflight.size;
    }
    // The queue holds numbers `#queuedTotal - length` to `#queuedTotal - 1` in its slots 0 to
    // length - 1 (slots before the head are taken or dropped).
    const length = this.#queue.length;
    const from = Math.max(this.#queueHead, length - (this.#queuedTotal - this.#agedTo));
    const to = length - (this.#queuedTotal - this.#agedMark);
    let i = from;
    for (; i < to && visits < max; i++, visits++) visit(this.#queue[i]!.message);
    if (i < to) {
      // Stopped short: the next call goes on from here, the mark unchanged.
      this.#agedTo = this.#queuedTotal - length + i;
      return visits;
    }
    this.#agedTo = this.#agedMark;
    this.#agedMark = this.#queuedTotal;
    return visits;
  }

  /**
   * Removes and returns every queued and in-flight message, for a session that is discarded.
   *
   * @returns the messages that were pending
   */
  clear(): M[] {
    // Every session ends here: one that holds nothing allocates nothing.
    if (this.#inflight.size === 0 && this.#queueHead === this.#queue.length) {
      if (this.#queue.length > 0) this.#queue = [];
      this.#queueHead = 0;
      return [];
    }
    const out: M[] = [];
    for (const e of this.#inflight.values()) out.push(e.message);
    for (let i = this.#queueHead; i < this.#queue.length; i++) out.push(this.#queue[i]!.message);
    this.#inflight.clear();
    this.#queue = [];
    this.#queueHead = 0;
    return out;
  }

  /**
   * Puts back a flow kept in a store (after a restart): in-flight entries with their packet ids
   * and states, each counted as sent before (a resend carries DUP [MQTT-3.3.1-1]), then the
   * queue, both in delivery order. Call it on an empty flow. New ids go on from `firstPacketId`
   * when one was given, else after the last entry in flight, passing over those in flight.
   *
   * @param inflight the entries in flight, in send order
   * @param queued the messages queued behind the window, oldest first; `sent` marks one that may
   *   have been sent before (its first PUBLISH from here carries DUP)
   */
  restore(
    inflight: readonly Omit<InflightEntry<M>, "sent">[],
    queued: readonly { message: M; qos: 1 | 2; sent?: boolean }[],
  ): void {
    for (const e of inflight) {
      this.#windowNew = true;
      this.#entries().set({ ...e, sent: true });
      if (!this.#startGiven) this.#nextId = e.packetId === 65535 ? 1 : e.packetId + 1;
    }
    for (const q of queued) {
      this.#queuedTotal++;
      this.#queue.push(
        q.sent ? { message: q.message, qos: q.qos, sent: true } : {
          message: q.message,
          qos: q.qos,
        },
      );
    }
  }

  /**
   * Takes a packet id for a packet that is not a PUBLISH (SUBSCRIBE, UNSUBSCRIBE), so ids never
   * collide with messages in flight [MQTT-2.3.1-2].
   *
   * @returns a packet id not in use; give it back with {@linkcode releaseId}
   */
  reserveId(): number {
    const id = this.#allocateId();
    (this.#reserved ??= new Set()).add(id);
    return id;
  }

  /**
   * Gives back an id from {@linkcode reserveId}.
   *
   * @param packetId the id
   * @returns whether it was reserved
   */
  releaseId(packetId: number): boolean {
    return this.#reserved?.delete(packetId) ?? false;
  }

  #admit(message: M, qos: 1 | 2, sent = false, share?: string): InflightEntry<M> {
    const packetId = this.#allocateId();
    // `share` always set, undefined or not: one shape for every entry.
    const entry: InflightEntry<M> = { packetId, message, qos, state: "publish", sent, share };
    this.#entries().set(entry);
    this.#windowNew = true;
    return entry;
  }

  /** The in-flight table to write to: the session's own from its first message on. */
  #entries(): InflightTable<InflightEntry<M>> {
    if (this.#inflight === NO_ENTRIES) this.#inflight = new InflightTable();
    return this.#inflight;
  }

  #allocateId(): number {
    // The window plus reserved ids stay far below 65535 in practice; ids cycle so a late ack of an old
    // flow is unlikely to hit a new one.
    let id = this.#nextId;
    while (this.#inflight.has(id) || this.#reserved?.has(id) === true) {
      id = id === 65535 ? 1 : id + 1;
    }
    this.#nextId = id === 65535 ? 1 : id + 1;
    return id;
  }

  #compact(): void {
    if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#queueHead);
      this.#queueHead = 0;
    }
  }
}

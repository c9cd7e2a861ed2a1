/**
 * A client session as the broker keeps it: subscriptions, the outgoing QoS 1/2 window and queue,
 * the incoming QoS 2 ids, and the will. It outlives connections when clean session is 0.
 *
 * @module
 */

import type { QoS } from "../packet/constants.ts";
import type { Subscription, Will } from "../packet/types.ts";
import { InboundQos2 } from "../session/inbound.ts";
import { OutboundFlow } from "../session/outbound.ts";
import type { InflightEntry } from "../session/outbound.ts";
import type { BrokerMessage } from "./message.ts";
import type { ActionQueue } from "./actions.ts";
import type { LinkState } from "./link.ts";
import type { ClientInfo } from "./policy.ts";
import type { Expiry } from "./expiry_queue.ts";
import { countDrop, type DropCounts } from "./drop_counters.ts";
import { isExpired } from "./message_expiry.ts";
import { overMaximumPacketSize } from "./deliver5.ts";
import type { SessionJournal } from "./journal.ts";

/** Counters the session updates, shared with the broker for `$SYS`. */
export interface DeliveryCounters {
  /** PUBLISH packets sent to clients (counted by the shell as it writes them). */
  publishSent: number;
  /** Messages dropped, all reasons: QoS 0 past a connection's outbound bound, queues past theirs… */
  dropped: number;
  /** Messages dropped, per reason. */
  droppedBy: DropCounts;
}

/** A delivery waiting on its receive authorization. */
export interface ReceiveWait {
  /** The message. */
  readonly message: BrokerMessage;
  /** The delivery QoS. */
  readonly qos: QoS;
  /** The plugins' answer, once given. */
  allowed: boolean | undefined;
  /** The shared subscription (`$share/…`) it is for, if any (see `Session.deliver`). */
  readonly share?: string;
  /** The core's number of its receive authorization (pending until it is delivered or dropped). */
  readonly ask: number;
}

/** Unwritten bytes on a connection past which {@linkcode Session.room} has none for QoS 0. */
export const BACKLOG_BYTES = 1024 * 1024;

/**
 * Options of {@linkcode Session}: the broker's bounds and outlets, the same for all its sessions.
 * A session keeps a reference to the object rather than copies of its fields (memory per idle
 * connection counts): pass one object for every session, and do not change it.
 */
export interface SessionOptions {
  /** Outgoing QoS 1/2 messages in flight at once (until the session's own window is set). */
  maxInflight: number;
  /** Messages queued behind the window before the oldest is dropped. */
  maxQueued: number;
  /**
   * The broker's memory budget: while it is exceeded, no new message is queued; told of each
   * delivery kept in memory.
   */
  budget?: { readonly exceeded: boolean; noteHeld(): void };
  /** Where the session's PUBLISH and PUBREL actions go: the core's queue. */
  out: ActionQueue;
  /** Flow control: told when a delivery leaves the queue at its high water (publish_flow.ts). */
  flow?: { readonly highWater: number; filled(session: Session): void };
  /** Told of each drop past `maxQueued`, for the per-session warning (`queue_drop_log.ts`). */
  drops?: { queueFull(session: Session, n: number): void };
}

/** A subscription as a session keeps it (5.0: with its Subscription Identifier). */
export type SessionSubscription = Subscription & { identifier?: number };

/** The subscriptions of every session that has none; never written. */
const NO_SUBSCRIPTIONS: Map<string, SessionSubscription> = new Map();

/** What a session that never took part in a shared group leaves: one empty array for all. */
const NO_ORPHANS: readonly { message: BrokerMessage; share: string }[] = [];

/** One client's session. */
export class Session {
  /** The client identifier. */
  readonly clientId: string;
  /**
   * The clean-session flag of the last CONNECT: the session ends with its connection. False until
   * the core sets it.
   */
  clean = false;
  /** The client as authenticated at its last CONNECT (for authorization of deliveries). */
  client: ClientInfo | undefined;
  /** The user name of the last CONNECT (or the certificate's CN): the client's. */
  get username(): string | undefined {
    return this.client?.username;
  }
  /** The connection it is attached to, or undefined while offline. */
  link: LinkState | undefined;
  /** The will of the current connection, until published or discarded by DISCONNECT. */
  will: Will | undefined;
  /**
   * Seconds between losing the connection and publishing the will; 0 publishes it at once. Set
   * at each CONNECT (always 0 under MQTT 3.1 and 3.1.1; an MQTT 5.0 will's Will Delay Interval).
   */
  get willDelay(): number {
    return this.#rare?.willDelay ?? 0;
  }
  set willDelay(seconds: number) {
    if (seconds !== 0) this.#rareState().willDelay = seconds;
    else if (this.#rare !== undefined) {
      this.#rare.willDelay = 0;
      this.#tidy();
    }
  }
  /** Its entry in the core's will heap while its will waits for its delay. */
  get willDue(): Expiry<Session> | undefined {
    return this.#rare?.willDue;
  }
  set willDue(due: Expiry<Session> | undefined) {
    if (due !== undefined) this.#rareState().willDue = due;
    else if (this.#rare !== undefined) {
      this.#rare.willDue = undefined;
      this.#tidy();
    }
  }
  /**
   * What few sessions use (a will's delay, an offline deadline, receive authorizations pending,
   * shared groups, held-back PUBLISHes): one object made on need and dropped once all of it is
   * back to its default, instead of seven fields in every session (memory per idle connection).
   */
  #rare: SessionRare | undefined;

  #rareState(): SessionRare {
    return this.#rare ??= new SessionRare();
  }

  /** Drops the rare state once nothing in it is in use. */
  #tidy(): void {
    const r = this.#rare;
    if (
      r !== undefined && r.willDelay === 0 && r.willDue === undefined &&
      r.expiresAt === undefined && r.expiry === undefined && r.receiving === undefined &&
      !r.shared && r.held === undefined
    ) this.#rare = undefined;
  }
  // One shared empty map until the first subscription: memory per idle connection counts.
  #subscriptions: Map<string, SessionSubscription> = NO_SUBSCRIPTIONS;
  /**
   * Filter -> subscription, as granted. Read-only: changed through {@linkcode addSubscription},
   * {@linkcode deleteSubscription} and {@linkcode clearSubscriptions}.
   */
  get subscriptions(): ReadonlyMap<string, SessionSubscription> {
    return this.#subscriptions;
  }

  /**
   * Adds or replaces the subscription to `sub.topic`.
   *
   * @param sub the subscription as granted
   */
  addSubscription(sub: SessionSubscription): void {
    if (this.#subscriptions === NO_SUBSCRIPTIONS) this.#subscriptions = new Map();
    this.#subscriptions.set(sub.topic, sub);
  }

  /**
   * Removes the subscription to `filter`.
   *
   * @param filter the topic filter
   * @returns whether there was one
   */
  deleteSubscription(filter: string): boolean {
    return this.#subscriptions !== NO_SUBSCRIPTIONS && this.#subscriptions.delete(filter);
  }

  /** Removes every subscription. */
  clearSubscriptions(): void {
    this.#subscriptions = NO_SUBSCRIPTIONS;
  }
  // Made on first use, as the inbound QoS 2 ids are: a session that never sends or receives
  // QoS 1/2 (most idle connections) holds neither.
  #outbound: OutboundFlow<BrokerMessage> | undefined;
  #inbound: InboundQos2 | undefined;
  /** The window's size while there is no flow; undefined: the broker's (`#o.maxInflight`). */
  #maxInflight: number | undefined;
  /** Outgoing QoS 1/2 messages: the in-flight window and the queue behind it. */
  get outbound(): OutboundFlow<BrokerMessage> {
    return this.#outbound ??= new OutboundFlow({
      maxInflight: this.#maxInflight ?? this.#o.maxInflight,
      maxQueued: this.#o.maxQueued,
      firstPacketId: this.journal?.firstPacketId,
    });
  }
  /** QoS 1/2 messages in flight to the client; reading it makes no flow. */
  get inflightCount(): number {
    return this.#outbound?.inflightCount ?? 0;
  }
  /** QoS 1/2 messages queued behind the in-flight window; reading it makes no flow. */
  get queuedCount(): number {
    return this.#outbound?.queuedCount ?? 0;
  }
  /** Incoming QoS 2 ids awaiting PUBREL; reading it makes no set. */
  get inboundCount(): number {
    return this.#inbound?.size ?? 0;
  }
  /** The in-flight window's size (the client's Receive Maximum under 5.0), flow made or not. */
  get maxInflight(): number {
    return this.#outbound?.maxInflight ?? this.#maxInflight ?? this.#o.maxInflight;
  }
  /**
   * Changes the in-flight window's size, without making the flow when there is none yet.
   *
   * @param max the new window, 1-65535
   */
  setMaxInflight(max: number): void {
    if (this.#outbound === undefined) this.#maxInflight = max;
    else this.#outbound.setMaxInflight(max);
  }
  /** Forgets every outgoing delivery and incoming QoS 2 id, as a discarded session does. */
  clearDeliveries(): void {
    this.#outbound?.clear();
    this.#inbound?.clear();
  }
  /** Incoming QoS 2 packet ids awaiting PUBREL. */
  get inbound(): InboundQos2 {
    return this.#inbound ??= new InboundQos2();
  }
  /**
   * Seconds this session is kept once offline; undefined keeps it until the broker is told
   * otherwise. Set at each CONNECT (the broker's `session_expiry_interval` today; the client's
   * Session Expiry Interval under MQTT 5.0).
   */
  expiryInterval: number | undefined;
  /** When an offline persistent session may be discarded (ms since epoch), if it expires. */
  get expiresAt(): number | undefined {
    return this.#rare?.expiresAt;
  }
  set expiresAt(at: number | undefined) {
    if (at !== undefined) this.#rareState().expiresAt = at;
    else if (this.#rare !== undefined) {
      this.#rare.expiresAt = undefined;
      this.#tidy();
    }
  }
  /** Its entry in the core's expiry heap while offline with a deadline. */
  get expiry(): Expiry<Session> | undefined {
    return this.#rare?.expiry;
  }
  set expiry(entry: Expiry<Session> | undefined) {
    if (entry !== undefined) this.#rareState().expiry = entry;
    else if (this.#rare !== undefined) {
      this.#rare.expiry = undefined;
      this.#tidy();
    }
  }
  /**
   * Deliveries waiting on a receive authorization that has not answered yet, in the order they
   * were routed, each with its answer once known: later deliveries wait behind the first
   * unanswered one, so that the session gets messages in order [MQTT-4.6.0-6].
   */
  get receiving(): ReceiveWait[] | undefined {
    return this.#rare?.receiving;
  }
  set receiving(waits: ReceiveWait[] | undefined) {
    if (waits !== undefined) this.#rareState().receiving = waits;
    else if (this.#rare !== undefined) {
      this.#rare.receiving = undefined;
      this.#tidy();
    }
  }
  /**
   * Its journal, for a persistent session of a broker with a store; set later for a cluster
   * node's provisional session once it is stored (`BrokerCore.storeSession`).
   */
  journal: SessionJournal | undefined;
  /** The broker's bounds and outlets, one object shared by its sessions. */
  #o: SessionOptions;

  /**
   * Creates an empty session.
   *
   * @param clientId the client identifier
   * @param options the broker's window bounds and outlets: one object for all its sessions
   * @param journal where its state changes are journaled: a persistent session of a broker with
   *   a store
   */
  constructor(clientId: string, options: SessionOptions, journal?: SessionJournal) {
    this.clientId = clientId;
    this.#o = options;
    this.journal = journal;
  }

  /**
   * Delivers a message at `qos`: a PUBLISH action now when connected and the window has room,
   * queued for QoS 1/2 otherwise. QoS 0 is not queued for an offline session.
   *
   * @param message the message
   * @param qos the delivery QoS, already min(published, granted) [MQTT-3.8.4-6]
   * @param counters counters to update
   * @param share the whole filter of the shared group the delivery is for, if it is: a message
   *   this session has not started to deliver when it ends goes to another member
   *   ({@linkcode takeSharedOrphans})
   */
  deliver(message: BrokerMessage, qos: QoS, counters: DeliveryCounters, share?: string): void {
    const link = this.link;
    if (qos === 0) {
      if (link !== undefined) this.#o.out.publish(link, message, 0, 0, false);
      return;
    }
    const outbound = this.outbound;
    if (
      (link === undefined || outbound.queuedCount > 0 ||
        outbound.inflightCount >= outbound.maxInflight) && this.#o.budget?.exceeded
    ) {
      // Over the memory budget a message that would wait in memory is dropped; one that goes
      // straight out still does.
      counters.dropped++;
      return;
    }
    if (share !== undefined) {
      // Its copy carries the group (`offer`): for takeSharedOrphans, which looks only once one came.
      this.#rareState().shared = true;
      // A cluster node keeps what it routed for a clean member until acknowledged, or at QoS 2
      // taken (SharedWatch).
      if (this.clean) this.#o.out.sharedWatch?.held(this, message, qos, share);
    }
    const before = outbound.dropped;
    const entry = outbound.offer(message, qos, share);
    const dropped = outbound.dropped - before;
    if (dropped > 0) {
      countDrop(counters, "queueFull", dropped);
      this.#o.drops?.queueFull(this, dropped);
    }
    // Queued this far behind the window: the publisher waits rather than the queue drop.
    const flow = this.#o.flow;
    if (flow !== undefined && outbound.queuedCount >= flow.highWater) flow.filled(this);
    const queues = this.#o.maxQueued > 0;
    const sent = entry !== undefined && link !== undefined && this.#send(link, entry);
    this.journal?.offered(message, qos, entry?.packetId, sent, dropped > 0 && queues, queues);
    if (sent) {
      // In flight: copied out of the read buffer once routed (see keptInFlight), if anything
      // reads it again (see #readsAgain); else its PUBLISH, written out, was its last use.
      if (this.#readsAgain(share)) message.keptInFlight();
    } else if (entry === undefined && !queues) {
      // Without a queue (`maxQueued` 0: a core made so; the configuration's 0 is unbounded) a
      // message the window has no room for was dropped (counted above): nothing keeps it, so
      // nothing to copy out or to count as held.
    } else if (link === undefined) {
      // Kept for an offline session, maybe for long: a payload of its own, pinning no read
      // buffer and no slab.
      message.detach();
      this.#o.budget?.noteHeld();
    } else if (entry === undefined) {
      // Queued behind the window of a connected session: it waits for acknowledgements, as a
      // message in flight does, and its payload goes to a slab the same way (a view, no native
      // allocation; `detach` gives it a buffer of its own if the session goes offline).
      message.copyOut();
      this.#o.budget?.noteHeld();
    }
  }

  /**
   * Whether a delivery written out now may be read again before it is acknowledged: resent on a
   * later connection (a session that outlives its connection [MQTT-4.4.0-1], or one with a
   * journal, which stores it), or handed to another member of a shared group or watched by a
   * cluster node (`share`). A clean session never resends [MQTT-3.1.2-6] (it never becomes
   * persistent: a 5.0 DISCONNECT may not set an expiry after a CONNECT's 0 [MQTT-3.14.2-2]), and
   * its acknowledgement reads only the entry's message identity: its in-flight entry keeps a
   * message whose payload, unless something else keeps it, is let go of once routed
   * (`BrokerMessage.writtenOut`; a 5.0 delivery's copy likewise, `copiesWrittenOut`).
   */
  #readsAgain(share: string | undefined): boolean {
    return !this.clean || share !== undefined || this.journal !== undefined;
  }

  /**
   * Takes the messages of shared groups this session holds and has not started to deliver, for
   * another member of each group, as its session ends (MQTT 5.0 §4.8.2): QoS 1 messages, sent or
   * not, and QoS 2 messages never sent. A QoS 2 message whose delivery began goes to no other
   * member [MQTT-4.8.2-5].
   *
   * @returns each message with the group's whole filter, once per group it came through
   */
  takeSharedOrphans(): readonly { message: BrokerMessage; share: string }[] {
    const rare = this.#rare;
    if (rare?.shared !== true) return NO_ORPHANS;
    rare.shared = false;
    this.#tidy();
    // Each copy pending knows the group it is a delivery for (`InflightEntry.share`): a group's
    // copy acknowledged is no longer pending, whatever copies of its own subscription's remain.
    // (Was: a record of the groups per message, kept past their copies' flows, so a message
    // whose group copy was acknowledged, or at QoS 2 completed, went to a second member of the
    // group as long as its own subscription's copy was pending.)
    // A QoS 2 copy whose delivery began stays [MQTT-4.8.2-5]: that copy only. Another copy of
    // the same message never sent, its own subscription's or another group's, does not make the
    // group's begun. (Was: one begun kept every group's copy of the message from going on, and
    // the group never delivered it.)
    const out: { message: BrokerMessage; share: string }[] = [];
    for (const p of this.outbound.pending()) {
      if (p.share !== undefined && !(p.qos === 2 && p.started)) {
        out.push({ message: p.message, share: p.share });
      }
    }
    return out;
  }

  /**
   * How many more messages at `qos` the session can take now without dropping any (for a
   * sender that can wait, such as retained messages for a new subscription): for QoS 0, none
   * while its connection has more than {@linkcode BACKLOG_BYTES} unwritten; for QoS 1/2, the
   * room left in the in-flight window and the queue behind it. None while offline.
   *
   * @param qos the delivery QoS
   * @returns a count, 0 when the sender should wait
   */
  room(qos: QoS): number {
    const link = this.link;
    if (link === undefined) return 0;
    if (qos === 0) return link.pendingBytes > BACKLOG_BYTES ? 0 : Number.MAX_SAFE_INTEGER;
    const o = this.outbound;
    return Math.max(0, o.maxInflight - o.inflightCount) +
      Math.max(0, this.#o.maxQueued - o.queuedCount);
  }

  /**
   * The core's sweep, for a connected session: each message it has kept queued since the sweep
   * before, and each in flight (when the window changed since the previous sweep; see
   * `OutboundFlow.aged`), gets a payload of its own if it shares memory
   * ({@linkcode BrokerMessage.keptLong}). A payload copied to a slab when it was queued would
   * otherwise keep the whole slab alive for as long as a slow subscriber leaves it waiting, though
   * the payloads around it were acknowledged long ago: up to a slab per queued payload, times
   * `max_queued_messages` per session. One copy per message that waits past a sweep or two.
   * At most `max` queued messages are visited (the window whole): the rest first at the next call.
   *
   * @param max the most visits to make, the window's aside (see `OutboundFlow.aged`)
   * @returns the visits made: `max` or more when some are left for the next call
   */
  sweepKept(max: number): number {
    const o = this.#outbound;
    if (o === undefined || (o.queuedCount === 0 && o.inflightCount === 0)) return 0;
    return o.aged(keptLong, max);
  }

  /**
   * Sends what fits in the window from the queue.
   *
   * @param counters counters to update
   * @param now the clock (ms), to discard queued messages whose MQTT 5.0 Message Expiry Interval
   *   has passed before they went out [MQTT-3.3.2-5]; without it nothing is checked
   */
  pump(counters: DeliveryCounters, now?: number): void {
    const link = this.link;
    const outbound = this.#outbound;
    if (link === undefined || outbound === undefined) return;
    const stale = now === undefined ? undefined : isStale;
    const before = outbound.staleDropped;
    for (
      let entry = outbound.next(stale, now);
      entry !== undefined;
      entry = outbound.next(stale, now)
    ) {
      this.journal?.admitted(entry.packetId);
      if (!this.#tooLarge(link, entry, counters, now)) this.#send(link, entry);
    }
    countExpired(counters, outbound.staleDropped - before);
  }

  /**
   * After a reconnect: resends every unacknowledged PUBLISH (DUP set when sent before) and PUBREL
   * in the original order with the original ids [MQTT-4.4.0-1], then fills the window.
   *
   * @param counters counters to update
   * @param now the clock (ms): with it, messages never sent whose Message Expiry Interval passed
   *   while the client was away are discarded first [MQTT-3.3.2-5]; a message already sent is
   *   resent whatever its expiry, its delivery has started
   */
  resume(counters: DeliveryCounters, now?: number): void {
    const link = this.link;
    if (link === undefined) return;
    if (this.#rare?.held !== undefined) {
      this.#rare.held = undefined;
      this.#tidy();
    }
    // Nothing was ever delivered at QoS 1/2 to it: nothing to resend.
    if (this.#outbound === undefined) return;
    if (now !== undefined) countExpired(counters, this.outbound.discardUnsent(isStale, now));
    for (const entry of this.outbound.inflight()) {
      if (entry.state === "pubrel") {
        this.#o.out.pubrel(link, entry.packetId);
      } else if (!this.#tooLarge(link, entry, counters, now)) {
        this.#send(link, entry);
      }
    }
    this.pump(counters, now);
  }

  /**
   * The shell held back the PUBLISH with `packetId` for back-pressure: it was not sent, so it
   * keeps its DUP flag as it was and waits for {@linkcode sendHeld}.
   *
   * @param packetId its packet id
   * @param dup the DUP flag it was to be sent with (whether it had been sent before)
   */
  unsent(packetId: number, dup: boolean): void {
    const entry = this.outbound.get(packetId);
    if (entry === undefined || entry.state !== "publish") return;
    entry.sent = dup;
    (this.#rareState().held ??= new Set()).add(entry);
    entry.message.detach();
  }

  /**
   * Sends the PUBLISHes of the window held back for back-pressure (never sent yet), in window
   * order, once the shell reports that its output drained.
   */
  sendHeld(): void {
    const link = this.link;
    if (link === undefined) return;
    const rare = this.#rare;
    const held = rare?.held;
    if (held === undefined) return;
    rare!.held = undefined;
    this.#tidy();
    // If the link blocks again, #send puts the rest back into the held set, in order.
    for (const entry of this.outbound.inflight()) {
      if (held.has(entry) && entry.state === "publish") this.#send(link, entry);
    }
  }

  /**
   * Drops a PUBLISH of the window that is over the Maximum Packet Size of the connection it would
   * go out on (a resend after the client reconnected with a smaller one, a message queued while it
   * was offline): never sent [MQTT-3.1.2-24], counted, and its flow ended as if sent and
   * acknowledged, so that its slot goes to the next message [MQTT-3.1.2-25].
   */
  #tooLarge(
    link: LinkState,
    entry: InflightEntry<BrokerMessage>,
    counters: DeliveryCounters,
    now: number | undefined,
  ): boolean {
    if (now === undefined || !overMaximumPacketSize(link, entry.message, entry.qos, now)) {
      return false;
    }
    this.outbound.complete(entry.packetId);
    this.journal?.acked(entry.packetId);
    countDrop(counters, "tooLarge");
    return true;
  }

  /** Queues the PUBLISH of `entry`; false when the link holds it back (see sendHeld). */
  #send(link: LinkState, entry: InflightEntry<BrokerMessage>): boolean {
    // A cluster node writes a clean member's first PUBLISH of a shared message published at
    // QoS 2 once Redis has it taken for this delivery [MQTT-4.8.2-5] (SharedWatch.mayWrite,
    // which asks for the take: those of the entries held behind one go in the same call). The
    // watch first: without a cluster the message is not read here. Only a group's copy: the
    // session's own subscription's copy of the same message is written at once.
    const watch = this.#o.out.sharedWatch;
    const share = entry.share;
    const may = watch === undefined || link.blocked || link.closing || entry.sent ||
        share === undefined || entry.message.qos !== 2 || !this.clean
      ? undefined
      : watch.mayWrite(this, entry.message, share);
    if (may === "drop") {
      // Another member of the group has it (a rescue of the node's stream passed it on): never
      // sent here, its slot goes to the next message, and the later ones do not wait for it.
      // A stored session's entry goes too (a 5.0 session resumed with a Session Expiry Interval
      // of 0 is clean here and still journaled): not kept until the session ends.
      this.outbound.complete(entry.packetId);
      this.journal?.acked(entry.packetId);
      return false;
    }
    if (link.blocked || link.closing || may === "wait" || this.#rare?.held !== undefined) {
      // The shell (or the shared watch) held one back: later ones wait behind it so that they go
      // out in order [MQTT-4.6.0-6]. It may wait long: do not pin the read buffer its payload is
      // a view into.
      (this.#rareState().held ??= new Set()).add(entry);
      entry.message.detach();
      return false;
    }
    // Only a PUBLISH that went out makes the next attempt a re-delivery with DUP 1
    // [MQTT-3.3.1-1]: the shell reports one it held back (see unsent).
    this.#o.out.publish(link, entry.message, entry.qos, entry.packetId, entry.sent);
    // Stored as sent only from its first PUBLISH on: a resend after a restart carries DUP. (Also
    // for an entry restored as possibly sent: its first PUBLISH since the restart is stored.)
    this.journal?.sent(entry.packetId);
    entry.sent = true;
    return true;
  }
}

function keptLong(message: BrokerMessage): void {
  message.keptLong();
}

/**
 * Whether a message is past its expiry at `now`: one function for every call, not a closure over
 * the clock per `pump` (a call per message that leaves the queue; the closure and its calls were
 * 1.3 % of a QoS 1 message's CPU, bench/RESULTS.md).
 */
function isStale(message: BrokerMessage, now: number): boolean {
  return isExpired(message.expiresAt, now);
}

function countExpired(counters: DeliveryCounters, n: number): void {
  if (n > 0) countDrop(counters, "expired", n);
}

/** The state few sessions use, made on need (see `Session`'s rare fields). */
class SessionRare {
  willDelay = 0;
  willDue: Expiry<Session> | undefined = undefined;
  expiresAt: number | undefined = undefined;
  expiry: Expiry<Session> | undefined = undefined;
  receiving: ReceiveWait[] | undefined = undefined;
  /**
   * Whether this session got a QoS 1/2 message as a member of a shared group (its copy carries the
   * group, `InflightEntry.share`): a session that never did ends without a walk over its flow.
   */
  shared = false;
  /**
   * Window entries the connection held back for back-pressure, or that wait for the shared
   * watch (`SharedWatch.mayWrite`), sent by sendHeld in window order.
   */
  held: Set<InflightEntry<BrokerMessage>> | undefined = undefined;
}

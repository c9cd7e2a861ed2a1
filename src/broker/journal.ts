/**
 * What the broker core tells its store: each state change of a persistent session or of the
 * retained messages, as a {@linkcode StoreMutation}. This file builds the records, numbers each
 * session's deliveries (`seq`) and gives each message routed to persistent sessions one id, so
 * that it is stored once however many sessions it goes to. It does no I/O: the mutations go to
 * the core's `#journal`, and from there to the shell that writes them (`store_writer.ts`).
 *
 * @module
 */

import type { ProtocolVersion, QoS } from "../packet/constants.ts";
import type { Will } from "../packet/types.ts";
import type { StoreMutation } from "../store/mutation.ts";
import type { MessageRecord } from "../store/message_record.ts";
import type { SessionRecord, SubscriptionRecord } from "../store/session_record.ts";
import { propertiesToJson } from "../store/json_properties.ts";
import type { BrokerMessage } from "./message.ts";
import { PACKET_IDS_COUNTER, PacketIdMark } from "./packet_id_mark.ts";
import { IdMap } from "../store/id_map.ts";

/** One stored delivery of a session. */
interface StoredDelivery {
  seq: number;
  message: BrokerMessage;
  /** Whether it still holds a reference on its message (not after PUBREC). */
  holds: boolean;
  /** Whether its PUBLISH went out (it is stored with its packet id from then on). */
  sent: boolean;
}

/** What a session record is built from: the fields of `Session` the store keeps. */
export interface JournaledSession {
  readonly clientId: string;
  readonly clean: boolean;
  readonly expiryInterval: number | undefined;
  readonly username: string | undefined;
  readonly will: Will | undefined;
  readonly willDelay: number;
  readonly client: { readonly protocolVersion: ProtocolVersion } | undefined;
}

/** `$SYS` retained messages are published afresh by the broker at each start: not stored. */
const SYS_PREFIX = "$SYS/";

/**
 * The broker-wide half of the journal: message ids and retained messages. One per core; each
 * persistent session gets a {@linkcode SessionJournal} from {@linkcode session}.
 */
export class Journal {
  readonly #emit: (mutation: StoreMutation) => void;
  /** Messages' store ids and references count only from this generation on (see `restart`). */
  #generation = 0;
  /** Messages stored before this generation get a new id at their next hold (`renumber`). */
  #renumbered = 0;
  #nextId = 1;
  /** Where persistent sessions' packet ids start, past those of the previous run. */
  readonly packetIds: PacketIdMark;

  /**
   * @param emit where every mutation goes (the core's `#journal`)
   */
  constructor(emit: (mutation: StoreMutation) => void) {
    this.#emit = emit;
    this.packetIds = new PacketIdMark((next) => this.counter(PACKET_IDS_COUNTER, next));
  }

  /**
   * Where message ids continue after a restart.
   *
   * @param next an id above every stored one
   */
  continueIds(next: number): void {
    if (next > this.#nextId) this.#nextId = next;
  }

  /**
   * Gives every message a new id, from `next` on, as it is next held: after the store lost its
   * data, ids from before may be another node's (`RedisStore.renewIds`). Like {@linkcode restart},
   * forgets which messages are stored.
   *
   * @param next the first id of a block no other writer uses
   */
  renumber(next: number): void {
    this.#nextId = next;
    this.#renumbered = ++this.#generation;
  }

  /**
   * A session's journal, for a persistent session.
   *
   * @param clientId the session's client id
   * @returns its journal
   */
  session(clientId: string): SessionJournal {
    return new SessionJournal(clientId, this);
  }

  /**
   * Records the retained message of a topic (set or replaced).
   *
   * @param message the retained copy
   */
  retained(message: BrokerMessage): void {
    if (message.topic.startsWith(SYS_PREFIX)) return;
    this.#emit({ type: "putRetained", message: { ...message.toRecord(), retain: true } });
  }

  /**
   * Records that a topic's retained message was cleared.
   *
   * @param topic the topic
   */
  unretained(topic: string): void {
    if (topic.startsWith(SYS_PREFIX)) return;
    this.#emit({ type: "deleteRetained", topic });
  }

  /**
   * Records a counter that must survive restarts.
   *
   * @param name its name
   * @param value its value
   */
  counter(name: string, value: number): void {
    this.#emit({ type: "setCounter", name, value });
  }

  /** Everything is deleted but the counters (`clear_on_shutdown`). */
  clear(): void {
    this.#emit({ type: "clear" });
  }

  /**
   * Forgets which messages are stored, after a `clear` that the whole state is journaled again
   * behind (`store_rewrite.ts`): the next hold of each message stores it again, under a new id.
   */
  restart(): void {
    this.#generation++;
  }

  /**
   * Takes a reference on a message for a stored delivery, storing it first when nothing stored
   * references it yet.
   *
   * @returns its id
   */
  hold(message: BrokerMessage): number {
    if (message.storeGeneration !== this.#generation) this.#renew(message);
    if (message.storeId === 0) message.storeId = this.#nextId++;
    if (message.storeRefs++ === 0) {
      this.#emit({ type: "putMessage", id: message.storeId, message: messageRecord(message) });
    }
    return message.storeId;
  }

  /** Gives back a reference from {@linkcode hold} (the store drops the message with its last). */
  release(message: BrokerMessage): void {
    // A reference from before a rewrite went with the store's rows.
    if (message.storeGeneration !== this.#generation) return;
    if (message.storeRefs > 0) message.storeRefs--;
  }

  /**
   * A message loaded from the store, with the references its loaded deliveries hold.
   *
   * @param message the message rebuilt from its record
   * @param id its store id
   */
  adopt(message: BrokerMessage, id: number): void {
    if (message.storeGeneration !== this.#generation) this.#renew(message);
    if (message.storeId === 0) message.storeId = id;
    message.storeRefs++;
  }

  /**
   * A message last stored before a rewrite: not stored in this generation. It keeps its id (an id
   * names one message for good), so a store holding it already need not write it again, unless
   * the ids were renumbered since.
   */
  #renew(message: BrokerMessage): void {
    if (message.storeGeneration < this.#renumbered) message.storeId = 0;
    message.storeGeneration = this.#generation;
    message.storeRefs = 0;
  }

  /** @internal */
  emit(mutation: StoreMutation): void {
    this.#emit(mutation);
  }
}

/**
 * The journal of one persistent session: its settings, subscriptions, inbound QoS 2 ids and
 * outbound deliveries. It mirrors the session's `OutboundFlow` (a window keyed by packet id, a
 * FIFO queue behind it) to know which stored delivery each change concerns. A delivery is stored
 * with its packet id once its PUBLISH has gone out, so that only a real resend carries DUP after
 * a restart; one in the window but never sent (offline, held back) is stored as queued.
 */
export class SessionJournal {
  /** The client id. */
  readonly clientId: string;
  readonly #journal: Journal;
  #nextSeq = 1;
  #queue: StoredDelivery[] = [];
  #head = 0;
  /**
   * By packet id. An `IdMap`: a window emptied by acknowledgements and filled again would make a
   * `Map` shrink and regrow its table at every turn.
   */
  #window = new IdMap<StoredDelivery>();
  #offlineSince: number | undefined;

  /**
   * @param clientId the session's client id
   * @param journal the broker's journal
   */
  constructor(clientId: string, journal: Journal) {
    this.clientId = clientId;
    this.#journal = journal;
  }

  /** When the session went offline as last journaled (wall clock), `undefined` while connected. */
  get offlineSince(): number | undefined {
    return this.#offlineSince;
  }

  /**
   * Forgets the stored deliveries without journaling anything, after a `clear` that the whole
   * state is journaled again behind (`store_rewrite.ts`); delivery numbers go on.
   */
  restart(): void {
    this.#window.clear();
    this.#queue = [];
    this.#head = 0;
  }

  /** Where the session's packet ids start in this run (see `packet_id_mark.ts`). */
  get firstPacketId(): number | undefined {
    return this.#journal.packetIds.first;
  }

  /**
   * Records the session's settings and will.
   *
   * @param session the session
   * @param offlineSince when it went offline (wall clock), `undefined` while connected
   */
  put(session: JournaledSession, offlineSince: number | undefined): void {
    this.#offlineSince = offlineSince;
    this.#journal.emit({ type: "putSession", session: sessionRecord(session, offlineSince) });
  }

  /**
   * Records the session again after its will was published or dropped while it was offline.
   *
   * @param session the session
   */
  willGone(session: JournaledSession): void {
    this.put(session, this.#offlineSince);
  }

  /** The session ended (cleaned, expired, discarded): its rows go with it. */
  deleted(): void {
    for (const d of this.#window.values()) if (d.holds) this.#journal.release(d.message);
    for (let i = this.#head; i < this.#queue.length; i++) {
      this.#journal.release(this.#queue[i]!.message);
    }
    this.#window.clear();
    this.#queue = [];
    this.#head = 0;
    this.#journal.emit({ type: "deleteSession", clientId: this.clientId });
  }

  /**
   * Records a granted subscription, with its MQTT 5.0 options (3.1.1: none, the defaults).
   *
   * @param filter the topic filter
   * @param options the granted QoS and the options
   */
  subscribed(
    filter: string,
    options: {
      qos: QoS;
      noLocal?: boolean;
      retainAsPublished?: boolean;
      retainHandling?: 0 | 1 | 2;
      identifier?: number;
    },
  ): void {
    const subscription: SubscriptionRecord = {
      filter,
      qos: options.qos,
      noLocal: options.noLocal ?? false,
      retainAsPublished: options.retainAsPublished ?? false,
      retainHandling: options.retainHandling ?? 0,
    };
    if (options.identifier !== undefined) subscription.identifier = options.identifier;
    this.#journal.emit({ type: "putSubscription", clientId: this.clientId, subscription });
  }

  /**
   * Records an UNSUBSCRIBE of one filter.
   *
   * @param filter the topic filter
   */
  unsubscribed(filter: string): void {
    this.#journal.emit({ type: "deleteSubscription", clientId: this.clientId, filter });
  }

  /**
   * Records an incoming QoS 2 packet id awaiting PUBREL.
   *
   * @param packetId the id
   */
  received(packetId: number): void {
    this.#journal.emit({ type: "putInbound", clientId: this.clientId, packetId });
  }

  /**
   * Records the PUBREL of an incoming QoS 2 packet id.
   *
   * @param packetId the id
   */
  released(packetId: number): void {
    this.#journal.emit({ type: "deleteInbound", clientId: this.clientId, packetId });
  }

  /**
   * Records what `OutboundFlow.offer` did with a QoS 1/2 delivery.
   *
   * @param message the message
   * @param qos the delivery QoS
   * @param packetId the packet id when it went into the window at once
   * @param sent whether its PUBLISH went out at once
   * @param droppedOldest whether the oldest queued delivery made room for it
   * @param queued whether it was queued (not dropped itself) when not in the window
   */
  offered(
    message: BrokerMessage,
    qos: QoS,
    packetId: number | undefined,
    sent: boolean,
    droppedOldest: boolean,
    queued: boolean,
  ): void {
    if (droppedOldest) this.#dropOldest();
    if (packetId === undefined && !queued) return;
    const delivery: StoredDelivery = { seq: this.#nextSeq++, message, holds: true, sent };
    const messageId = this.#journal.hold(message);
    if (packetId === undefined) this.#queue.push(delivery);
    else this.#window.set(packetId, delivery);
    if (sent) this.#journal.packetIds.used(packetId!);
    this.#journal.emit({
      type: "queueOutbound",
      clientId: this.clientId,
      seq: delivery.seq,
      messageId,
      qos,
      packetId: sent ? packetId : undefined,
    });
  }

  /**
   * Records that the oldest queued delivery went into the window with `packetId` (not sent yet).
   *
   * @param packetId its packet id
   */
  admitted(packetId: number): void {
    const delivery = this.#shift();
    if (delivery !== undefined) this.#window.set(packetId, delivery);
  }

  /**
   * Records the first PUBLISH of a delivery in the window.
   *
   * @param packetId its packet id
   */
  sent(packetId: number): void {
    const delivery = this.#window.get(packetId);
    if (delivery === undefined || delivery.sent) return;
    delivery.sent = true;
    this.#journal.packetIds.used(packetId);
    this.#journal.emit({
      type: "sendOutbound",
      clientId: this.clientId,
      seq: delivery.seq,
      packetId,
    });
  }

  /**
   * Records PUBREC for a QoS 2 delivery (PUBREL sent): its message is no longer needed.
   *
   * @param packetId its packet id
   */
  pubrel(packetId: number): void {
    const delivery = this.#window.get(packetId);
    if (delivery === undefined) return;
    if (delivery.holds) {
      delivery.holds = false;
      this.#journal.release(delivery.message);
    }
    this.#journal.emit({ type: "pubrelOutbound", clientId: this.clientId, seq: delivery.seq });
  }

  /**
   * Records PUBACK or PUBCOMP: the delivery is done and deleted.
   *
   * @param packetId its packet id
   */
  acked(packetId: number): void {
    const delivery = this.#window.get(packetId);
    if (delivery === undefined) return;
    this.#window.delete(packetId);
    if (delivery.holds) this.#journal.release(delivery.message);
    this.#journal.emit({ type: "deleteOutbound", clientId: this.clientId, seq: delivery.seq });
  }

  /**
   * A delivery loaded from the store, in delivery order.
   *
   * @param seq its sequence number
   * @param message its message (a placeholder once PUBREL was sent)
   * @param packetId its packet id when in flight
   * @param holds whether it references its message (not in state `pubrel`)
   */
  adopt(seq: number, message: BrokerMessage, packetId: number | undefined, holds: boolean): void {
    const delivery = { seq, message, holds, sent: packetId !== undefined };
    if (packetId === undefined) this.#queue.push(delivery);
    else this.#window.set(packetId, delivery);
    if (seq >= this.#nextSeq) this.#nextSeq = seq + 1;
  }

  /**
   * Remembers when a loaded session went offline.
   *
   * @param offlineSince wall clock, ms
   */
  adoptOffline(offlineSince: number): void {
    this.#offlineSince = offlineSince;
  }

  #dropOldest(): void {
    const delivery = this.#shift();
    if (delivery === undefined) return;
    this.#journal.release(delivery.message);
    this.#journal.emit({ type: "deleteOutbound", clientId: this.clientId, seq: delivery.seq });
  }

  #shift(): StoredDelivery | undefined {
    if (this.#head >= this.#queue.length) return undefined;
    const delivery = this.#queue[this.#head]!;
    this.#queue[this.#head++] = undefined as unknown as StoredDelivery;
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    return delivery;
  }
}

/**
 * A delivered message's record: its data (the payload not copied), with what its deliveries carry
 * beyond it, RETAIN and Subscription Identifiers, so that a resend after a restart carries them
 * too.
 */
function messageRecord(message: BrokerMessage): MessageRecord {
  const record = message.toRecord();
  if (message.retainOut) record.retainOut = true;
  const ids = message.subscriptionIdentifiers;
  if (ids !== undefined) record.subscriptionIdentifiers = [...ids];
  return record;
}

/**
 * The record of a session's settings and will.
 *
 * @param session the session
 * @param offlineSince when it went offline, `undefined` while connected
 * @returns the record
 */
export function sessionRecord(
  session: JournaledSession,
  offlineSince: number | undefined,
): SessionRecord {
  const record: SessionRecord = {
    clientId: session.clientId,
    protocolVersion: session.client?.protocolVersion ?? 4,
    clean: session.clean,
    expiryInterval: session.expiryInterval,
    offlineSince,
  };
  if (session.username !== undefined) record.username = session.username;
  const will = session.will;
  if (will !== undefined) {
    const message: MessageRecord = {
      topic: will.topic,
      payload: will.payload,
      qos: will.qos,
      retain: will.retain,
      origin: session.clientId,
    };
    const properties = propertiesToJson(will.properties);
    if (properties !== undefined) message.properties = properties;
    record.will = { message, delayInterval: session.willDelay };
  }
  return record;
}

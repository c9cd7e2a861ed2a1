/**
 * An application message inside the broker: its data (what {@linkcode BrokerMessage.toRecord}
 * turns into a serialisable `MessageRecord`), plus its encodings, cached apart in a
 * {@linkcode PublishEncoding} so that a PUBLISH fanned out to many subscribers is encoded once
 * per delivery QoS, not once per subscriber.
 *
 * @module
 */

import type { ProtocolVersion, QoS } from "../packet/constants.ts";
import type { Properties } from "../packet/types.ts";
import type { MessageRecord } from "../store/message_record.ts";
import { propertiesToJson } from "../store/json_properties.ts";
import { type EncodedPublish, type Publish5Fields, PublishEncoding } from "./publish_encoding.ts";
import { remainingExpiryInterval } from "./message_expiry.ts";
import { publishFrame } from "../packet/publish_frame.ts";
import { publishPacketIdOffset } from "../packet/mod.ts";
import { slabCopy } from "./_payload_slab.ts";

/**
 * Records made by {@linkcode BrokerMessage.toRecord} that may be kept past the routing of the
 * PUBLISH being routed (by a store writer, a cluster node's session moving here) while their
 * payload may still be a view into its read buffer, each after its message, flat: before that
 * buffer is read into again, `BrokerCore.releaseReceived` copies each message out and points its
 * record at the copy ({@linkcode copyOutRecords}). A module-level list rather than a field of the
 * core: a store of a new object into the core per message would cost a write barrier.
 */
const viewRecords: (BrokerMessage | MessageRecord)[] = [];

/**
 * Forgets the records noted so far (see {@linkcode copyOutRecords}): called as a PUBLISH is about
 * to be routed. Those of an earlier one whose buffer was not read into again stay valid views.
 */
export function forgetRecords(): void {
  // A record in `longRecords` is in `viewRecords` too: one test for both, per routed message.
  if (viewRecords.length !== 0) {
    viewRecords.length = 0;
    longRecords.clear();
  }
  if (viewCopyCount !== 0) forgetCopies();
}

/**
 * The copies made by {@linkcode BrokerMessage.forwarded} of a QoS 1/2 message whose payload is a
 * view into the read buffer of the PUBLISH being routed (one per 5.0 delivery with Subscription
 * Identifiers or Retain As Published), until it is released ({@linkcode copiesWrittenOut}).
 * Module-level and reused, like {@linkcode viewRecords}, and never shortened (`length = 0` would
 * free its backing store, allocated again by the next message's copy): no allocation per message.
 */
const viewCopies: (BrokerMessage | undefined)[] = [];
/** How many of {@linkcode viewCopies} are this routing's. */
let viewCopyCount = 0;

function forgetCopies(): void {
  for (let i = 0; i < viewCopyCount; i++) viewCopies[i] = undefined;
  viewCopyCount = 0;
}

/**
 * Once a PUBLISH is routed, before its read buffer is read into again, last (after every copy
 * out): the copies of {@linkcode viewCopies} that still view the buffer were kept by nothing that
 * reads them again. A session that keeps one in flight to send it again had it copied out with
 * its message ({@linkcode BrokerMessage.keptInFlight}); one queued, held back or kept for an
 * offline session, waiting for a receive authorization or recorded got bytes of its own. The
 * others' PUBLISH was written out, to a clean session: they let go of their payload as their
 * message does ({@linkcode BrokerMessage.writtenOut}), rather than keep a view into a buffer
 * read into again.
 *
 * @returns how many copies let go
 */
export function copiesWrittenOut(): number {
  let n = 0;
  for (let i = 0; i < viewCopyCount; i++) if (viewCopies[i]!.writtenOutCopy()) n++;
  forgetCopies();
  return n;
}

/**
 * Once a PUBLISH is routed, before its read buffer is read into again: every record made from a
 * message whose payload was a view into it gets the message's payload copied out
 * ({@linkcode BrokerMessage.copyOut}, or the copy it already has).
 *
 * @returns how many records were pointed at a copy
 */
export function copyOutRecords(): number {
  const n = viewRecords.length;
  if (n === 0) return 0;
  for (let i = 0; i < n; i += 2) {
    const message = viewRecords[i] as BrokerMessage;
    const record = viewRecords[i + 1] as MessageRecord;
    if (longRecords.has(record)) {
      // Kept long (a session moving here waits for its claim, a group for its node): a copy of
      // its own, not the message's slab copy, which it would keep alive with whatever else is in
      // the slab; nor the message's buffer of its own, should it get one later.
      record.payload = record.payload.slice();
      continue;
    }
    message.copyOut();
    record.payload = message.payload;
  }
  viewRecords.length = 0;
  if (longRecords.size !== 0) longRecords.clear();
  return n / 2;
}

/**
 * The records of {@linkcode viewRecords} made by `toRecord("long")`: they get a payload of their
 * own at release. Rare (a cluster node's session moving here): a set apart rather than a flag in
 * every record.
 */
const longRecords = new Set<MessageRecord>();

/** `BrokerMessage.#flags`: {@linkcode BrokerMessage.detach} gave it a payload of its own. */
const DETACHED = 1;
/** {@linkcode BrokerMessage.copyOut} (or the message it was copied from) copied it to a slab. */
const COPIED_OUT = 2;
/** A connected session keeps it or a copy in flight ({@linkcode BrokerMessage.keptInFlight}). */
const IN_FLIGHT = 4;
/** A delivery was written without an encoding kept ({@linkcode BrokerMessage.writeOnce}). */
const WRITTEN_ONCE = 8;
/**
 * The payload was given as a view into bytes shared with others (a cluster node's read from
 * Redis): {@linkcode BrokerMessage.keptLong} gives it a buffer of its own.
 */
const VIEW = 16;
/**
 * Routed without a copy ({@linkcode BrokerMessage.writtenOut}): every delivery was written out and
 * none is read again, so its payload was let go of rather than copied.
 */
const RELEASED = 32;
/** The payload of a message let go of by {@linkcode BrokerMessage.writtenOut}. */
const NO_BYTES = new Uint8Array(0);

/**
 * A message as routed by the broker. Its content is immutable once created; only the journal's
 * `store*` fields change.
 */
export class BrokerMessage {
  /** The topic name. */
  readonly topic: string;
  /** The payload; a view into a read buffer until {@linkcode detach} copies it. */
  payload: Uint8Array;
  /** The QoS it was published with. */
  readonly qos: QoS;
  /** Whether it was published with RETAIN. */
  readonly retain: boolean;
  /**
   * Whether deliveries carry RETAIN = 1: true only for a retained message sent because of a new
   * subscription [MQTT-3.3.1-8]; live forwards carry 0 [MQTT-3.3.1-9].
   */
  readonly retainOut: boolean;
  /** The publishing client's id, or undefined when the host program published it. */
  readonly senderId: string | undefined;
  /** MQTT 5 properties to forward, if any (replaced, not changed, by {@linkcode detach}). */
  properties: Properties | undefined;
  /**
   * When the message expires (ms since the epoch), from its Message Expiry Interval and the time
   * it was received (see `message_expiry.ts`); undefined when it does not expire.
   */
  readonly expiresAt: number | undefined;
  /**
   * The Subscription Identifiers a copy made by {@linkcode forwarded} carries to its subscriber
   * [MQTT-3.3.4-3]; undefined on the message as published.
   */
  subscriptionIdentifiers: readonly number[] | undefined = undefined;
  /**
   * The store's id of this message (0 while not stored) and how many stored deliveries hold it:
   * the journal's (`journal.ts`), kept here rather than in a map beside it.
   */
  storeId = 0;
  /** See {@linkcode storeId}. */
  storeRefs = 0;
  /** The journal's generation these two belong to (a rewrite after a store outage starts a new one). */
  storeGeneration = 0;
  #encoding: PublishEncoding | undefined;
  /**
   * DETACHED, COPIED_OUT, IN_FLIGHT, WRITTEN_ONCE, VIEW, RELEASED: one field for them (heap per
   * message).
   */
  #flags = 0;
  /**
   * The protocol level (4 for 3.1 and 3.1.1, 5) of the PUBLISH whose bytes the payload is a view
   * into, 0 when none: its frame may go out as it is (see {@linkcode encoded}).
   */
  #receivedAt: 0 | 4 | 5;
  /** The received frame once looked for: its bytes, or null when it cannot be forwarded. */
  #frame: Uint8Array | null | undefined;
  /** The received level-5 frame as an {@linkcode EncodedPublish}, once asked for. */
  #frame5: EncodedPublish | undefined;
  /**
   * On a copy for one delivery ({@linkcode forwarded}): the message it was made from while that
   * one's payload was a view into a read buffer; their payload is copied out together. Let go
   * once this copy has a payload of its own (detached or copied out): a copy kept long must not
   * keep that message, nor its read buffer.
   */
  #source: BrokerMessage | undefined;
  /** The copies made from this one that sessions keep in flight (see {@linkcode keptInFlight}). */
  #keptCopies: BrokerMessage[] | undefined;

  /**
   * Wraps a message for routing.
   *
   * @param topic the topic name
   * @param payload the payload bytes (kept, not copied)
   * @param options flags and origin
   */
  constructor(
    topic: string,
    payload: Uint8Array,
    options: {
      qos: QoS;
      retain: boolean;
      retainOut?: boolean;
      senderId?: string;
      properties?: Properties;
      expiresAt?: number;
      /**
       * The protocol level of the PUBLISH the payload is a view into, when it is one (4 for 3.1
       * and 3.1.1): deliveries of the same shape copy its bytes instead of an encoding.
       */
      receivedAt?: 4 | 5;
      /**
       * Whether the payload is a view into bytes shared with other payloads (e.g. one read from
       * Redis holding many messages), not a PUBLISH's read buffer: a delivery of it that waits
       * past a sweep gets a buffer of its own ({@linkcode keptLong}).
       */
      view?: boolean;
    },
  ) {
    this.topic = topic;
    this.payload = payload;
    this.qos = options.qos;
    this.retain = options.retain;
    this.retainOut = options.retainOut ?? false;
    this.senderId = options.senderId;
    this.properties = options.properties;
    this.expiresAt = options.expiresAt;
    this.#receivedAt = options.receivedAt ?? 0;
    if (options.view === true) this.#flags = VIEW;
  }

  /**
   * Copies the payload out of the read buffer it is a view into, so that keeping this message
   * (queued for an offline session) does not keep a whole 64 KiB read buffer alive (or an idle
   * read's 8 KiB slab). The Correlation Data too ({@linkcode ownProperties}). Idempotent.
   */
  detach(): void {
    if ((this.#flags & (DETACHED | RELEASED)) !== 0) return;
    this.#flags |= DETACHED;
    this.#receivedAt = 0;
    this.#frame = this.#frame5 = undefined;
    this.#source = undefined;
    this.payload = this.payload.slice();
    this.properties = ownProperties(this.properties);
  }

  /**
   * Copies the payload out of the read buffer it is a view into, for a message kept a short while
   * (in flight to a connected subscriber) while that buffer is read into again: into a slab shared
   * with other such payloads (`_payload_slab.ts`), which costs no allocation of its own.
   * {@linkcode detach} (or {@linkcode keptLong}) still gives it a buffer of its own if it is to
   * wait long. The copies made from it that sessions keep in flight ({@linkcode forwarded},
   * {@linkcode keptInFlight}) share the bytes copied (or the buffer of its own it already has).
   * Idempotent.
   */
  copyOut(): void {
    if ((this.#flags & (DETACHED | COPIED_OUT | RELEASED)) === 0) {
      this.#toSlab(slabCopy(this.payload));
    }
    const copies = this.#keptCopies;
    if (copies === undefined) return;
    this.#keptCopies = undefined;
    const payload = this.payload;
    for (let i = 0; i < copies.length; i++) {
      const copy = copies[i]!;
      copy.#source = undefined;
      if ((copy.#flags & (DETACHED | COPIED_OUT)) === 0) copy.#toSlab(payload);
    }
  }

  /**
   * Gives the payload a buffer of its own ({@linkcode detach}) if it shares memory with other
   * payloads: a slab ({@linkcode copyOut}), or the read buffer it was received in (one not read
   * into again: a store or a plugin kept it from reuse). For a message kept long: a session's
   * delivery still waiting at the broker's sweep, so that its few bytes do not keep a whole slab
   * or buffer alive. Idempotent.
   */
  keptLong(): void {
    const flags = this.#flags;
    if ((flags & (DETACHED | RELEASED)) !== 0) return;
    const source = this.#source;
    if (source !== undefined && (source.#flags & RELEASED) !== 0) {
      // A copy for a delivery written out and never read again, as its message was.
      this.#letGo();
      return;
    }
    if (
      (flags & (COPIED_OUT | VIEW)) !== 0 || this.#receivedAt !== 0 || this.#source !== undefined
    ) {
      this.detach();
    }
  }

  /**
   * Once routed, before its read buffer is read into again (`BrokerCore.releaseReceived`): a
   * message nothing copied out, detached or noted as kept in flight lets go of its payload instead
   * of copying it. Its deliveries went out during the routing, and those still in flight are held
   * by sessions that never send them again (a clean session's, see `Session.deliver`): what
   * reads it later reads only its identity and QoS. The payload becomes empty, so that a reader
   * this rule missed gets no bytes rather than those of whatever the buffer holds next.
   *
   * @returns whether it let go (false: it has bytes of its own, or is to get them)
   */
  writtenOut(): boolean {
    if ((this.#flags & (DETACHED | COPIED_OUT | IN_FLIGHT | VIEW)) !== 0) return false;
    this.#letGo();
    return true;
  }

  /**
   * For {@linkcode copiesWrittenOut}: a copy made by {@linkcode forwarded} that still views the
   * read buffer of the message it was made from lets go of it.
   *
   * @returns whether it let go
   */
  writtenOutCopy(): boolean {
    if (this.#source === undefined || (this.#flags & (DETACHED | COPIED_OUT)) !== 0) return false;
    this.#letGo();
    return true;
  }

  /**
   * Lets go of every view into the read buffer, and of every cached encoding made from one: the
   * payload, the received frame, the encodings (whose packet id offsets would no longer agree
   * with the empty payload: a connection would write the id into the old payload's bytes), and
   * the properties (a 5.0 Correlation Data is a view into the read buffer too). What is left is
   * the message's identity: a reader the rule missed gets a PUBLISH without bytes, never bytes of
   * another client's.
   */
  #letGo(): void {
    this.#flags |= RELEASED;
    this.#receivedAt = 0;
    this.#frame = this.#frame5 = undefined;
    this.#encoding = undefined;
    this.#source = undefined;
    this.payload = NO_BYTES;
    this.properties = undefined;
  }

  /** The payload out of the read buffer: `payload` has the same bytes, in memory of its own. */
  #toSlab(payload: Uint8Array): void {
    this.#flags |= COPIED_OUT;
    this.#receivedAt = 0;
    this.#frame = this.#frame5 = undefined;
    this.#source = undefined;
    this.payload = payload;
  }

  /**
   * Notes that a connected session keeps this message in its window until it is acknowledged:
   * its payload, if still a view into the read buffer of the PUBLISH being routed, must be copied
   * out before that buffer is read into again. The message as published is copied out once routed
   * (`BrokerCore.releaseReceived`, only when {@linkcode inFlight}: a QoS 1/2 message delivered
   * only at QoS 0 needs no copy); a copy for one 5.0 delivery ({@linkcode forwarded}) is noted on
   * the message it was made from, and copied out with it.
   */
  keptInFlight(): void {
    if ((this.#flags & (DETACHED | COPIED_OUT)) !== 0) return;
    const source = this.#source;
    if (source === undefined) this.#flags |= IN_FLIGHT;
    else {
      (source.#keptCopies ??= []).push(this);
      source.#flags |= IN_FLIGHT;
    }
  }

  /** Whether {@linkcode keptInFlight} was called on it or on a copy made from it. */
  get inFlight(): boolean {
    return (this.#flags & IN_FLIGHT) !== 0;
  }

  /**
   * The copy kept in the retained store: its own payload bytes (and Correlation Data), delivered
   * with RETAIN = 1.
   *
   * @returns a message with the same topic and a copy of the payload
   */
  asRetained(): BrokerMessage {
    return new BrokerMessage(this.topic, this.payload.slice(), {
      qos: this.qos,
      retain: true,
      retainOut: true,
      senderId: this.senderId,
      properties: ownProperties(this.properties),
      // A retained message keeps its deadline: it is not sent once expired [MQTT-3.3.2-5].
      expiresAt: this.expiresAt,
    });
  }

  /**
   * A copy for one MQTT 5.0 delivery whose PUBLISH differs from the message's in more than the
   * flags a connection patches: its RETAIN (Retain As Published [MQTT-3.3.1-13]) and Subscription
   * Identifiers [MQTT-3.3.4-3]. It shares the message's encodings, whose cache keys include the
   * identifiers, so copies of the same shape are still encoded once.
   *
   * @param retainOut the RETAIN flag of the outgoing PUBLISH
   * @param subscriptionIdentifiers the identifiers of the matching subscriptions
   * @returns the copy
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { BrokerMessage } from "./message.ts";
   *
   * const m = new BrokerMessage("t", new Uint8Array([1]), { qos: 0, retain: true });
   * const copy = m.forwarded(true, [7]);
   * assert.equal(copy.retainOut, true);
   * assert.deepEqual(copy.subscriptionIdentifiers, [7]);
   * ```
   */
  forwarded(retainOut: boolean, subscriptionIdentifiers: readonly number[]): BrokerMessage {
    const copy = new BrokerMessage(this.topic, this.payload, {
      qos: this.qos,
      retain: this.retain,
      retainOut,
      senderId: this.senderId,
      properties: this.properties,
      expiresAt: this.expiresAt,
    });
    // The copy shares the payload: detach() on this one does not reach it. One delivered at QoS 0
    // is written out during the routing and kept nowhere; one kept in flight is copied out with
    // this one (keptInFlight), one kept longer gets a payload of its own (copyOut, detach).
    if (this.#receivedAt !== 0) {
      copy.#source = this;
      // A QoS 0 message's copies are delivered at QoS 0: written out, kept nowhere.
      if (this.qos !== 0) viewCopies[viewCopyCount++] = copy;
    } else if ((this.#flags & (COPIED_OUT | VIEW)) !== 0 && (this.#flags & DETACHED) === 0) {
      // A payload already in a slab (copied out while queued for an earlier session) or a view
      // into shared bytes: the copy's is too, and a delivery of it waiting long lets go of them.
      copy.#flags |= VIEW;
    }
    copy.#encoding = this.#encoding ??= new PublishEncoding();
    copy.#receivedAt = this.#receivedAt;
    if (subscriptionIdentifiers.length > 0) copy.subscriptionIdentifiers = subscriptionIdentifiers;
    return copy;
  }

  /**
   * The message's data as a serialisable record (for a store, another cluster node): topic,
   * payload, QoS, RETAIN, JSON-safe properties, origin and expiry deadline. The payload is not
   * copied: while it is a view into the read buffer of the PUBLISH being routed, a record that
   * may be kept is noted, and gets a copy before that buffer is read into again
   * ({@linkcode copyOutRecords}).
   *
   * @param kept false for a record encoded before the routing ends, never kept; `"long"` for one
   *   that may be kept long (seconds and more: a cluster node's session moving here), which gets
   *   a payload of its own at release rather than a view into the message's slab copy
   * @returns the record
   */
  toRecord(kept: boolean | "long" = true): MessageRecord {
    const record: MessageRecord = {
      topic: this.topic,
      payload: this.payload,
      qos: this.qos,
      retain: this.retain,
    };
    const properties = propertiesToJson(this.properties);
    if (properties !== undefined) record.properties = properties;
    if (this.senderId !== undefined) record.origin = this.senderId;
    if (this.expiresAt !== undefined) record.expiresAt = this.expiresAt;
    if (kept !== false && this.#receivedAt !== 0) {
      viewRecords.push(this, record);
      if (kept === "long") longRecords.add(record);
    } else if (kept === "long" && (this.#flags & (COPIED_OUT | VIEW)) !== 0) {
      // Already in a slab, or a view into bytes read from Redis: a payload of its own at once.
      record.payload = this.payload.slice();
    }
    return record;
  }

  /**
   * The encoded PUBLISH for a delivery at `qos` to a level 3 or 4 client: the PUBLISH as received
   * when it came at level 3 or 4 with this QoS (its bytes forwarded, no encoding), else an
   * encoding cached per QoS. RETAIN, DUP and the packet id (at {@linkcode packetIdOffset}) may be
   * anything: the connection writes them per delivery ({@linkcode retainOut}).
   *
   * @param version the receiver's protocol level (3 or 4; level 5 encodes per subscriber)
   * @param qos the delivery QoS
   * @returns the shared bytes; callers copy them, never modify them
   */
  encoded(version: ProtocolVersion, qos: QoS): Uint8Array {
    const frame = this.#receivedAt === 4 && qos === this.qos ? this.#received(4) : undefined;
    if (frame !== undefined) return frame;
    return (this.#encoding ??= new PublishEncoding()).get(this.topic, this.payload, version, qos);
  }

  /**
   * Whether a connection should write this delivery straight into its output buffer rather than
   * copy shared bytes: true for the first delivery of a message whose received PUBLISH is not of
   * the delivery's shape (another QoS or protocol level, or properties), so that a message
   * delivered once is never encoded apart; false when the received bytes serve, and for every
   * later delivery (then {@linkcode encoded} or {@linkcode encoded5} encode it once for all).
   * At level 5 only for a delivery with nothing of its own (no identifiers, expiry or alias), of a
   * message without properties.
   *
   * @param level the receiver's protocol level: 4 (3.1 and 3.1.1) or 5
   * @param qos the delivery QoS
   * @returns true the first time, when the received bytes do not serve
   */
  writeOnce(level: 4 | 5, qos: QoS): boolean {
    // A straight write has no properties: a level-5 PUBLISH with some is encoded.
    if ((this.#flags & WRITTEN_ONCE) !== 0 || (level === 5 && this.properties !== undefined)) {
      return false;
    }
    if (this.#receivedAt === level && qos === this.qos && this.#received(level) !== undefined) {
      return false;
    }
    this.#flags |= WRITTEN_ONCE;
    return true;
  }

  /**
   * The PUBLISH as received, when it is exactly what an encoding at `level` would be (up to the
   * flags and packet id a connection patches); see `publishFrame`.
   */
  #received(level: 4 | 5): Uint8Array | undefined {
    let frame = this.#frame;
    if (frame === undefined) frame = this.#frame = publishFrame(this, level) ?? null;
    return frame ?? undefined;
  }

  /**
   * Whether a delivery of this message to a 5.0 client may carry nothing of its own beyond what
   * the connection adds (a topic alias, a Maximum Packet Size to check): no Subscription
   * Identifiers [MQTT-3.3.4-3] and no Message Expiry Interval to rewrite [MQTT-3.3.2-6]. Then it
   * shares {@linkcode shared}`(5, qos)` with every other such delivery.
   */
  get plainAt5(): boolean {
    return this.subscriptionIdentifiers === undefined && this.expiresAt === undefined;
  }

  /**
   * The bytes every delivery at `qos` shares with the others of its protocol level when it has
   * nothing of its own (at level 5: {@linkcode plainAt5}, no topic alias): {@linkcode encoded}
   * for levels 3 and 4, {@linkcode plain5} for level 5. RETAIN, DUP and the packet id (at
   * {@linkcode sharedIdOffset}) may be anything: the connection writes them per delivery.
   *
   * @param level 4 (3.1 and 3.1.1) or 5
   * @param qos the delivery QoS
   * @returns the shared bytes; callers copy them, never modify them
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { BrokerMessage } from "./message.ts";
   *
   * const m = new BrokerMessage("t", new Uint8Array([1]), { qos: 0, retain: false });
   * assert.deepEqual(m.shared(4, 0), new Uint8Array([0x30, 4, 0, 1, 0x74, 1]));
   * assert.deepEqual(m.shared(5, 0), new Uint8Array([0x30, 5, 0, 1, 0x74, 0, 1]));
   * ```
   */
  shared(level: 4 | 5, qos: QoS): Uint8Array {
    return level === 4 ? this.encoded(4, qos) : this.plain5(qos);
  }

  /**
   * Offset of the packet id in {@linkcode shared} bytes for QoS > 0.
   *
   * @param level the level they were asked for
   * @param bytes what {@linkcode shared} returned
   * @returns the offset
   */
  sharedIdOffset(level: 4 | 5, bytes: Uint8Array): number {
    // Right before the payload, or at level 5 before the property list (one byte when empty).
    if (level === 4) return this.packetIdOffset(bytes);
    return this.properties === undefined
      ? bytes.length - this.payload.length - 3
      : publishPacketIdOffset(bytes);
  }

  /**
   * The encoded PUBLISH for a delivery at `qos` to a level-5 client that adds nothing of its own
   * (no Subscription Identifiers, no Topic Alias), of a message that does not expire (no Message
   * Expiry Interval to rewrite [MQTT-3.3.2-6]): the PUBLISH as received when it came at level 5
   * with this QoS and no properties (its bytes forwarded, no encoding, no object per message),
   * else the level-5 encoding of that shape, cached. The same bytes as
   * `encoded5(qos, {}, now).bytes`; the packet id (QoS 1 and 2) is at `publishPacketIdOffset`.
   * RETAIN, DUP and the packet id may be anything, as for {@linkcode encoded}.
   *
   * @param qos the delivery QoS
   * @returns the shared bytes; callers copy them, never modify them
   * @throws {RangeError} for a message that expires: its deliveries go through
   *   {@linkcode encoded5}
   */
  plain5(qos: QoS): Uint8Array {
    if (this.expiresAt !== undefined) {
      throw new RangeError("Cannot give a plain 5.0 PUBLISH: the message expires");
    }
    const frame = this.#receivedAt === 5 && qos === this.qos ? this.#received(5) : undefined;
    if (frame !== undefined) return frame;
    return (this.#encoding ??= new PublishEncoding()).get5(
      this.topic,
      this.payload,
      qos,
      this.properties,
    ).bytes;
  }

  /**
   * The encoded PUBLISH for one delivery to a level-5 client, cached per delivery shape: the
   * received properties forwarded untouched, the Message Expiry Interval left at `now`
   * [MQTT-3.3.2-6], and this delivery's Subscription Identifiers and Topic Alias. RETAIN and DUP
   * are clear and the packet id is a placeholder, as for {@linkcode encoded}.
   *
   * @param qos the delivery QoS
   * @param fields the delivery's Subscription Identifiers and Topic Alias
   * @param now the clock (ms), for the expiry interval left
   * @returns the shared bytes and the offset of their packet id
   */
  encoded5(
    qos: QoS,
    fields: Omit<Publish5Fields, "messageExpiryInterval">,
    now: number,
  ): EncodedPublish {
    if (
      this.#receivedAt === 5 && qos === this.qos && this.expiresAt === undefined &&
      fields.topicAlias === undefined && fields.omitTopic !== true &&
      (fields.subscriptionIdentifiers === undefined || fields.subscriptionIdentifiers.length === 0)
    ) {
      // Nothing of this delivery's own: the PUBLISH as received, if it had no properties.
      let encoded = this.#frame5;
      if (encoded === undefined) {
        const frame = this.#received(5);
        if (frame !== undefined) {
          encoded = this.#frame5 = {
            bytes: frame,
            packetIdOffset: qos > 0 ? frame.length - this.payload.length - 3 : 0,
          };
        }
      }
      if (encoded !== undefined) return encoded;
    }
    const left = remainingExpiryInterval(this.expiresAt, now);
    return (this.#encoding ??= new PublishEncoding()).get5(
      this.topic,
      this.payload,
      qos,
      this.properties,
      left === undefined ? fields : { ...fields, messageExpiryInterval: left },
    );
  }

  /**
   * Offset of the packet id in {@linkcode encoded} bytes for QoS > 0: right before the payload,
   * whether the bytes are an encoding or the PUBLISH as received.
   *
   * @param bytes what {@linkcode encoded} returned
   * @returns the offset
   */
  packetIdOffset(bytes: Uint8Array): number {
    return bytes.length - this.payload.length - 2;
  }
}

/**
 * `properties` with binary properties of their own (Correlation Data, Authentication Data: the
 * MQTT 5.0 properties of type Binary Data) when they are views into a larger buffer (the read
 * buffer they were decoded from): a new object, as the one given may be shared (a message's
 * copies, a host's frozen object). Else `properties` itself. The one rule for the binary
 * properties the broker keeps or hands to listeners.
 *
 * @param properties a packet's properties
 * @returns them, with binary properties of their own
 */
export function ownProperties(properties: Properties | undefined): Properties | undefined {
  if (properties === undefined) return undefined;
  const correlation = properties.correlationData;
  const authentication = properties.authenticationData;
  if (!isView(correlation) && !isView(authentication)) return properties;
  const copy = { ...properties };
  if (isView(correlation)) copy.correlationData = correlation.slice();
  if (isView(authentication)) copy.authenticationData = authentication.slice();
  return copy;
}

function isView(bytes: Uint8Array | undefined): bytes is Uint8Array {
  return bytes !== undefined && bytes.length !== bytes.buffer.byteLength;
}

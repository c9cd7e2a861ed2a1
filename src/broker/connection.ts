/**
 * The I/O shell of one client connection: its packet channel reads bytes into the decoder and
 * batches everything written into one write per turn of the event loop; this shell hands packets
 * to the core, runs the core's actions for it (see `action_runner.ts`) and the plugins' decisions.
 *
 * @module
 */

import { ConnackReturnCode, PacketType, ReasonCode } from "../packet/constants.ts";
import type { ProtocolVersion, QoS } from "../packet/constants.ts";
import type { Packet } from "../packet/types.ts";
import { type DecodeOptions, MqttPacketError, PacketDecoder } from "../packet/mod.ts";
import type { ByteConnection } from "../transport/types.ts";
import {
  type ChannelSink,
  PacketChannel,
  type PacketChannelOptions,
} from "../transport/packet_channel.ts";
import { errorText } from "./_error_text.ts";
import { sharedBytes } from "./_shared_packets.ts";
import type { BrokerCore } from "./core.ts";
import type { BrokerMessage } from "./message.ts";
import { DUP_FLAG, RETAIN_FLAG } from "./publish_encoding.ts";
import { publishSize, writePublish } from "../packet/publish_writer.ts";
import type { Logger, PolicyHost } from "./policy.ts";
import { type DecisionRequest, isThenable, settleDecision, startDecision } from "./decision.ts";
import type { ActionRunner, ActionTarget } from "./action_runner.ts";
import type { Link } from "./link.ts";
import type { Link5 } from "./link5.ts";
import { BACKLOG_BYTES } from "./session.ts";
import type { CommitGate } from "./store_writer.ts";
import type { ForwardGate } from "../cluster/forward_acks.ts";
import type { ReceiveGate } from "./receive_gate.ts";
import { countDrop } from "./drop_counters.ts";
import { serverDisconnect } from "./server_disconnect.ts";
import { isTakenRefusal, needsStore, storeRefusal, TAKEN_REFUSAL_TEXT } from "./store_refusal.ts";
import { type HeldAck, withoutAcks } from "./outage_acks.ts";
import { HeldPubrecs } from "./held_pubrecs.ts";
import { redirect } from "./server_reference.ts";

/** Called for every packet in or out, when packet events are on (debugging). */
export type PacketObserver = (clientId: string | undefined, packet: Packet, sent: boolean) => void;

/** Limits of one connection. */
export interface ConnectionLimits {
  /** Largest packet accepted from the client, in bytes; a larger one closes the connection. */
  maxPacketSize: number;
  /**
   * Bytes waiting to be written (packets of every kind) past which QoS 0 deliveries are dropped
   * and no more packets are read from the client until half of them have drained.
   */
  maxOutboundBytes: number;
  /** Seconds a write may stay pending before the connection is closed as stuck. */
  drainTimeout: number;
  /** `server_reference`: a shutdown sends 5.0 clients there (DISCONNECT 0x9C). */
  serverReference?: string;
}

const NO_FIELDS = {};
/** No acknowledgements held: one empty array shared by every connection until it holds one. */
const NO_ACKS: number[] = [];
/** The first byte of a PUBLISH with every flag clear (type 3 in the high nibble). */
const PUBLISH_BYTE = PacketType.PUBLISH << 4;
/** Bytes read ahead into the decoder while a plugin decision is pending. */
const READ_AHEAD = 64 * 1024;
/** Output a connection taken over may still flush; past it, it is aborted. */
const TAKEOVER_FLUSH_BYTES = 64 * 1024;

// The bits of `BrokerConnection`'s flags.
/** A CONNECT was decoded (an unsupported protocol level before it gets CONNACK 1). */
const SAW_CONNECT = 1;
/**
 * Packets handled since the previous write changed durable state in a way their replies depend
 * on (everything but a subscriber's PUBACK).
 */
const JOURNALED = 2;
/** At 5.0: something other than new QoS 1/2 work was journaled since the previous write. */
const JOURNALED_OTHER = 4;
/** Output since the previous write holds a QoS 2 delivery. */
const QOS2_OUT = 8;
/** Packets handled since the previous write forwarded a QoS 1/2 message. */
const FORWARDED = 16;
/** A QoS 1/2 PUBLISH was held back for back-pressure (see sendPublish). */
const HELD = 32;
/** The connection has ended and been detached. */
const FINISHED = 64;
/** Where the protocol level (3, 4 or 5) is kept in the flags: `(flags >> VERSION_SHIFT) & 7`. */
const VERSION_SHIFT = 7;
const VERSION_BITS = 7 << VERSION_SHIFT;

/**
 * What a connection needs only while it waits for a plugin, after a failed store write, or at
 * shutdown: made on first need (an idle connection keeps none: memory per idle connection).
 */
class ConnectionWaits {
  /**
   * A QoS 2 PUBLISH sent again for an id whose write failed: its PUBREC waits until the store
   * is written again from memory (`StoreWriter.stored`).
   */
  unstored: Promise<void> | undefined = undefined;
  /** PUBRECs held meanwhile; the rest of the output goes on (`held_pubrecs.ts`). */
  pubrecs: HeldPubrecs | undefined = undefined;
  /** The plugin decision the core waits for, until its answer has been given back to the core. */
  decision: Promise<void> | undefined = undefined;
  /** `done`'s promise, made when asked for (at shutdown). */
  done: PromiseWithResolvers<void> | undefined = undefined;
}

/**
 * The clock for the packets of the chunk being handled, read once per chunk (`begin`). One for
 * every connection, not a field: a field holding `Date.now()` is a 16-byte number box per
 * connection. Packets are handled after their own connection's `begin`, so what they see is at
 * least as recent as that connection's own reading would be.
 */
let chunkNow = 0;

/** The options of a listener's connections' channels and decoders (see {@linkcode sharedOf}). */
interface SharedOptions {
  channel: PacketChannelOptions;
  decoder: DecodeOptions;
}

/** What each listener's connections share (see {@linkcode sharedOf}). */
const sharedOptionsOf = new WeakMap<BrokerConnectionOptions, SharedOptions>();

/**
 * The options of a connection's channel and decoder: one object each for all connections of a
 * listener, which each channel keeps a reference to (memory per idle connection), and which a
 * decoder reads once (an object made per connection was garbage per login: bench/RESULTS.md,
 * branch `revconn4`).
 */
function sharedOf(options: BrokerConnectionOptions): SharedOptions {
  let made = sharedOptionsOf.get(options);
  if (made === undefined) {
    made = {
      channel: {
        // Every reply (PUBACK, PUBREC, SUBACK, PINGRESP…) costs output: a client that sends
        // without reading would grow it without bound. Past the bound the channel decodes
        // nothing more from it until its output drains; if it never does, the drain timeout
        // closes it.
        maxOutboundBytes: options.limits.maxOutboundBytes,
        readAhead: READ_AHEAD,
        counters: options.core.stats,
      },
      decoder: { maxPacketSize: options.limits.maxPacketSize, side: "server" },
    };
    sharedOptionsOf.set(options, made);
  }
  return made;
}

/**
 * What every connection of a listener shares: the broker makes one per listener (and again when
 * its store or cluster changes), and each connection keeps a reference to it, not copies of its
 * fields (memory per idle connection).
 */
export interface BrokerConnectionOptions {
  /** The broker core the connections attach to. */
  core: BrokerCore;
  /** Runs the core's actions. */
  runner: ActionRunner;
  /** The connection's limits. */
  limits: ConnectionLimits;
  /** Where log lines go. */
  logger: Logger;
  /** The plugins that answer the core's decisions. */
  policy: PolicyHost;
  /** Called for every packet in or out, when packet events are on. */
  observer?: PacketObserver;
  /** Whether a TLS client certificate's CN is the username. */
  certCnAsUsername?: boolean;
  /** The name of the listener that accepted the connection. */
  listener?: string;
  /**
   * Whether the connections' transports are the broker's own (its tcp, TLS and WebSocket
   * listeners), which never change, transfer or keep the bytes they write: they are then handed
   * the CONNACK and PINGRESP every connection shares (`_shared_packets.ts`). A host's transport (an
   * `external` listener) gets bytes of its own: one that masked or transferred what it writes
   * would change the CONNACK of every other connection of the process.
   *
   * @default {false}
   */
  ownTransports?: boolean;
  /** The store's commits, when the broker has a store: output waits for them. */
  store?: CommitGate;
  /** On a cluster node: the forwards of QoS 1/2 messages to other nodes, replies wait for them. */
  forwards?: ForwardGate;
  /** With a store: a PUBACK/PUBREC waits for the receive authorizations its message asked. */
  receives?: ReceiveGate;
  /**
   * Called once the connection has ended and been detached (then `done` resolves), with the
   * connection: one function can serve every connection.
   */
  onEnded?: (connection: BrokerConnection) => void;
}

/** One client connection; it is also its channel's sink (no closures per connection). */
export class BrokerConnection implements ActionTarget, ChannelSink<Packet> {
  /** The core's state of this connection (session, client), written by the core only. */
  readonly link: Link;
  /** Its index in the broker's set of connections (see `_slot_set.ts`), -1 outside it. */
  slot = -1;
  #channel: PacketChannel<Packet>;
  /** The listener's options, shared by its connections (core, runner, limits, logger, gates…). */
  #o: BrokerConnectionOptions;
  /**
   * Seven booleans and the protocol level in one field (8 bytes, not 64: memory per idle
   * connection): SAW_CONNECT, JOURNALED, JOURNALED_OTHER, QOS2_OUT, FORWARDED, HELD, FINISHED and
   * VERSION_BITS (see there); the level is 4 until a CONNECT arrives.
   */
  #flags = 4 << VERSION_SHIFT;
  // The pending bytes last reported to the core.
  #reported = 0;
  /** The gate's mark at the previous write. */
  #mark = 0;
  /**
   * The gate's mark before the first of those changes: a failed write counts against this
   * client only when it covered something journaled after it. (Its mark at the previous write
   * may be from before a failure it had no part in, when it was idle meanwhile.)
   */
  #journaledFrom = 0;
  /** The rarely used state (see {@linkcode ConnectionWaits}): `undefined` until needed. */
  #w: ConnectionWaits | undefined;
  /**
   * At 5.0: the QoS 1/2 PUBLISHes (new work) journaled since the previous write, as
   * `qos * 65536 + packetId`, whose acknowledgements a failed commit takes back
   * (`outage_acks.ts`); whether anything else was journaled is JOURNALED_OTHER (then a failed
   * commit closes the connection, as at 3.1.1).
   */
  #heldAcks: number[] = NO_ACKS;
  /**
   * The packet ids of the QoS 2 PUBLISHes (new work, any level) journaled since the previous
   * write: a commit refused for sessions another cluster node writes (`taken`) releases them,
   * so that the message sent again is routed again rather than taken for a duplicate.
   */
  #fresh2: number[] = NO_ACKS;
  /**
   * The receive authorizations QoS 1/2 PUBLISHes handled since the previous write asked for:
   * those numbered after `#receivesAfter` up to `#receivesUntil` (0: none), and the store's mark
   * before the first of those PUBLISHes.
   */
  #receivesUntil = 0;
  #receivesAfter = 0;
  #receivesFrom = 0;
  /** The forwards' mark at the previous write. */
  #forwardMark = 0;

  /**
   * Starts serving `conn`.
   *
   * @param conn the transport connection
   * @param options the core, limits, logger, and the plugins that answer the core's decisions
   */
  constructor(conn: ByteConnection, options: BrokerConnectionOptions) {
    this.#o = options;
    this.#mark = options.store?.emitted ?? 0;
    this.#forwardMark = options.forwards?.emitted ?? 0;
    const core = options.core;
    const shared = sharedOf(options);
    this.#channel = new PacketChannel(conn, new PacketDecoder(shared.decoder), shared.channel);
    this.link = core.attach({
      handle: this,
      info: conn.info,
      certCnAsUsername: options.certCnAsUsername,
    }, Date.now());
    this.#o.runner.run();
    this.#channel.start(this);
  }

  /** The protocol level packets are encoded at: the CONNECT's (4 until one arrives). */
  get protocolVersion(): ProtocolVersion {
    return ((this.#flags & VERSION_BITS) >> VERSION_SHIFT) as ProtocolVersion;
  }

  #setVersion(version: ProtocolVersion): void {
    this.#flags = (this.#flags & ~VERSION_BITS) | (version << VERSION_SHIFT);
  }

  /** The rarely used state, made now if there is none. */
  get #waits(): ConnectionWaits {
    return this.#w ??= new ConnectionWaits();
  }

  /**
   * Whether the connection has ended and been detached from the core: possibly already when the
   * constructor returns (a transport that reports the end at once, without waiting).
   */
  get finished(): boolean {
    return (this.#flags & FINISHED) !== 0;
  }

  /** The transport's description of the peer. */
  get info(): ByteConnection["info"] {
    return this.link.info;
  }

  /** The name of the listener that accepted it ("" when none was given). */
  get listener(): string {
    return this.#o.listener ?? "";
  }

  /** Resolves when the connection has ended and been detached from the core; never rejects. */
  get done(): Promise<void> {
    const waits = this.#waits;
    if (waits.done === undefined) {
      waits.done = Promise.withResolvers();
      if ((this.#flags & FINISHED) !== 0) waits.done.resolve();
    }
    return waits.done.promise;
  }

  /** The client id once CONNECT is accepted, for logs and packet events. */
  get clientId(): string | undefined {
    return this.link.session?.clientId;
  }

  /** Whether the connection is closing or closed. */
  get closing(): boolean {
    return this.#channel.closing;
  }

  /** Bytes queued and being written. */
  get pendingBytes(): number {
    return this.#channel.pendingBytes;
  }

  /**
   * How long the pending write has been pending (see `PacketChannel.writePendingFor`).
   *
   * @param now the clock, `Date.now()` ms
   * @returns ms, 0 when none is pending
   */
  writePendingFor(now: number): number {
    return this.#channel.writePendingFor(now);
  }

  /**
   * Queues any packet for the next write, encoded at the connection's protocol level.
   *
   * @param packet the packet; ignored once the connection is closing
   */
  sendPacket(packet: Packet): void {
    if (this.#channel.closing) return;
    this.#o.observer?.(this.clientId, packet, true);
    // A CONNACK or PINGRESP the same for everyone: written as encoded once, when nothing else
    // is queued and the transport is the broker's own (see _shared_packets.ts).
    const shared = sharedBytes(packet);
    if (shared !== undefined && this.#o.ownTransports === true) this.#channel.sendShared(shared);
    else this.#channel.sendPacket(packet, this.protocolVersion);
    this.#o.core.stats.messagesSent++;
  }

  /**
   * Runs the plugins for a decision of the core (an `ask` action) and gives the answer back with
   * `core.decided`: at once when a plugin answers synchronously (the runner's pass goes on with
   * what follows), otherwise when it settles, while the channel holds this link's packets
   * (reading ahead a little, see {@linkcode PacketChannel}). A plugin that throws or rejects
   * refuses.
   *
   * @param id the core's id for the decision
   * @param request the question
   */
  ask(id: number, request: DecisionRequest): void {
    if (request.kind === "prepare") {
      // A long session read reports its parts: the preparation's bound counts from the last.
      const core = this.#o.core;
      request = { ...request, progress: () => core.progressed(id, Date.now()) };
    }
    const answer = startDecision(this.#o.policy, request, this.#o.logger);
    if (!isThenable(answer)) {
      // Answered at once (anonymous access, a password file): no callbacks to make.
      this.#o.core.decided(id, answer, Date.now());
      return;
    }
    let answered: () => void = () => {};
    settleDecision(answer, request, {
      log: (line) => this.#o.logger.error(line),
      settle: (value) => {
        const waits = this.#w;
        if (waits?.decision === settled) {
          waits.decision = undefined;
          // Nothing else waits: an idle client after an asynchronous login keeps none.
          if (
            waits.unstored === undefined && waits.pubrecs === undefined && waits.done === undefined
          ) {
            this.#w = undefined;
          }
        }
        answered();
        const sent = this.#o.forwards?.emitted;
        const journaled = this.#o.store?.emitted;
        this.#o.core.decided(id, value, Date.now());
        this.#o.runner.run();
        // The messages the answer routed (this one, and those held behind it) are copied out of
        // their read buffers now, as receive() has them after each PUBLISH: not when the next
        // PUBLISH to the broker comes, nor (kept in flight) when their deliveries are acknowledged.
        // Those buffers are not read into again (the channel starts afresh after a wait).
        this.#o.core.releaseReceived();
        if (sent !== this.#o.forwards?.emitted) this.#flags |= FORWARDED;
        // What the answer let through (a message and its deliveries, a session, the packets
        // held meanwhile) is acknowledged only once stored, as in receive().
        if (journaled !== this.#o.store?.emitted) this.#journal(journaled!);
      },
    });
    const settled = new Promise<void>((resolve) => answered = resolve);
    this.#waits.decision = settled;
  }

  /**
   * The core's deadline for this connection: nothing to do, the broker's sweep calls `core.tick`
   * twice a second for every connection, which closes this one once it has passed. (Not kept
   * either: a field holding a time is a 16-byte number box per connection.)
   *
   * @param _at ms since epoch; Infinity for none
   */
  setDeadline(_at: number): void {}

  /**
   * Stops reading the client's packets, or reads them again (flow control: a subscriber's queue
   * this client fills; see `publish_flow.ts`). Its output goes on meanwhile.
   *
   * @param reading false to pause, true to resume
   */
  setReading(reading: boolean): void {
    if (reading) this.#channel.resumeReading();
    else this.#channel.pauseReading();
  }

  /**
   * Queues a PUBLISH from the message's shared encoding, patching in the packet id and DUP.
   *
   * @param message the message
   * @param qos the delivery QoS
   * @param packetId the packet id (ignored for QoS 0)
   * @param dup whether this is a re-delivery
   * @returns false when nothing was queued: QoS 0 over the outbound bound (dropped), QoS 1/2 over
   *   it (held: the session sends it once the output drains), or closing
   */
  sendPublish(message: BrokerMessage, qos: QoS, packetId: number, dup: boolean): boolean {
    const channel = this.#channel;
    if (channel.closing) return false;
    // Back-pressure: past the bound QoS 0 is dropped, and QoS 1/2 stay in the session's window
    // unsent until the output drains (see #releaseHeld); once one is held, later ones wait
    // behind it so that they still go out in order [MQTT-4.6.0-6].
    if (channel.pendingBytes > this.#o.limits.maxOutboundBytes) {
      if (qos > 0) this.#flags |= HELD;
      return false;
    }
    if (qos > 0 && (this.#flags & HELD) !== 0) return false;
    // The core's retained feeds wait while much is unwritten: tell it as soon as that is so.
    const pending = channel.pendingBytes;
    if (pending > BACKLOG_BYTES && this.#reported <= BACKLOG_BYTES) this.#report(pending);
    // Exactly once: a QoS 2 message reaches a subscriber only once it is stored, or a crash
    // before the PUBREC to its publisher would have it sent, and delivered, again.
    if (qos === 2) this.#flags |= QOS2_OUT;
    if (this.#o.observer !== undefined) {
      this.#o.observer(this.clientId, {
        type: PacketType.PUBLISH,
        topic: message.topic,
        payload: message.payload,
        qos,
        retain: message.retainOut,
        dup,
        packetId: qos > 0 ? packetId : undefined,
      }, true);
    }
    const v5 = this.link.v5;
    if (v5 === undefined || (v5.plainDeliveries && message.plainAt5)) {
      // Nothing of this delivery's own (no Subscription Identifiers, expiry interval, alias or
      // Maximum Packet Size): the bytes every subscriber of this protocol level and QoS shares,
      // as at 3.1.1 (see BrokerMessage.shared).
      const level = v5 === undefined ? 4 : 5;
      if (
        message.writeOnce(level, qos) &&
        this.#writeStraight(message, qos, packetId, dup, this.protocolVersion, undefined)
      ) {
        return true;
      }
      const bytes = message.shared(level, qos);
      return this.#copyPublish(
        message,
        bytes,
        qos > 0 ? message.sharedIdOffset(level, bytes) : 0,
        qos,
        packetId,
        dup,
      );
    }
    return this.#sendPublish5(message, qos, packetId, dup, v5);
  }

  /**
   * A PUBLISH to a 5.0 client with something of its own: Subscription Identifiers, the Message
   * Expiry Interval left [MQTT-3.3.2-6], an outbound topic alias, or a Maximum Packet Size to
   * check [MQTT-3.1.2-24].
   */
  #sendPublish5(
    message: BrokerMessage,
    qos: QoS,
    packetId: number,
    dup: boolean,
    v5: Link5,
  ): boolean {
    const ids = message.subscriptionIdentifiers;
    const max = v5.limits.maximumPacketSize;
    if (ids === undefined && message.expiresAt === undefined && v5.outAliases === undefined) {
      // Only the Maximum Packet Size to check: the shared bytes of the plain shape.
      if (
        message.writeOnce(5, qos) &&
        this.#writeStraight(message, qos, packetId, dup, 5, max)
      ) {
        return true;
      }
      const bytes = message.shared(5, qos);
      if (max !== undefined && bytes.length > max) {
        // Never a packet over the client's Maximum Packet Size [MQTT-3.1.2-24] [MQTT-3.1.2-25].
        countDrop(this.#o.core.stats, "tooLarge");
        return true;
      }
      return this.#copyPublish(
        message,
        bytes,
        qos > 0 ? message.sharedIdOffset(5, bytes) : 0,
        qos,
        packetId,
        dup,
      );
    }
    const fields = ids === undefined ? NO_FIELDS : { subscriptionIdentifiers: ids };
    // The clock only for the expiry interval left.
    const now = message.expiresAt === undefined ? 0 : Date.now();
    let encoded = message.encoded5(qos, fields, now);
    // An alias adds 3 bytes at most: checked before one is given, so that no alias is mapped
    // by a packet that is not sent.
    if (max !== undefined && encoded.bytes.length + (v5.outAliases ? 3 : 0) > max) {
      // Never a packet over the client's Maximum Packet Size: dropped and counted, as if sent
      // [MQTT-3.1.2-24] [MQTT-3.1.2-25]. (The core drops these before, freeing their window slot:
      // deliver5.ts, Session; this is the last guard.)
      countDrop(this.#o.core.stats, "tooLarge");
      return true;
    }
    const alias = v5.outAliases?.alias(message.topic);
    if (alias?.alias !== undefined) {
      // The first PUBLISH on a topic maps the alias, the next ones send an empty topic.
      encoded = message.encoded5(
        qos,
        { ...fields, topicAlias: alias.alias, omitTopic: alias.topic === "" },
        now,
      );
    }
    return this.#copyPublish(message, encoded.bytes, encoded.packetIdOffset, qos, packetId, dup);
  }

  /**
   * One copy into the output buffer, of an encoding or of the PUBLISH as received; then this
   * delivery's flags and packet id.
   */
  #copyPublish(
    message: BrokerMessage,
    bytes: Uint8Array,
    idOffset: number,
    qos: QoS,
    packetId: number,
    dup: boolean,
  ): boolean {
    const channel = this.#channel;
    const out = channel.reserve(bytes.length);
    const start = channel.queuedBytes;
    out.set(bytes, start);
    // RETAIN only on a retained message sent for a new subscription [MQTT-3.3.1-8] [MQTT-3.3.1-9];
    // DUP marks a resend [MQTT-3.3.1-1].
    out[start] = PUBLISH_BYTE | (qos << 1) | (message.retainOut ? RETAIN_FLAG : 0) |
      (dup && qos > 0 ? DUP_FLAG : 0);
    if (qos > 0) {
      const at = start + idOffset;
      out[at] = packetId >> 8;
      out[at + 1] = packetId & 0xff;
    }
    channel.commit(start + bytes.length);
    this.#sent(qos, message.payload.length);
    return true;
  }

  /**
   * Writes a PUBLISH without properties straight into the output buffer (no encoding kept), with
   * this delivery's flags and packet id; false when it cannot (a topic that is not ASCII).
   */
  #writeStraight(
    message: BrokerMessage,
    qos: QoS,
    packetId: number,
    dup: boolean,
    version: ProtocolVersion,
    max: number | undefined,
  ): boolean {
    const size = publishSize(message.topic, message.payload.length, qos, version);
    if (size < 0) return false;
    if (max !== undefined && size > max) {
      // Never a packet over the client's Maximum Packet Size [MQTT-3.1.2-24] [MQTT-3.1.2-25].
      countDrop(this.#o.core.stats, "tooLarge");
      return true;
    }
    const channel = this.#channel;
    const out = channel.reserve(size);
    const start = channel.queuedBytes;
    channel.commit(
      writePublish(out, start, message.topic, message.payload, qos, packetId, version),
    );
    out[start] |= (message.retainOut ? RETAIN_FLAG : 0) | (dup && qos > 0 ? DUP_FLAG : 0);
    this.#sent(qos, message.payload.length);
    return true;
  }

  #sent(qos: QoS, payloadLength: number): void {
    const stats = this.#o.core.stats;
    stats.messagesSent++;
    stats.publishSentByQos[qos]++;
    stats.payloadBytesSentByQos[qos] += payloadLength;
  }

  /**
   * Flushes what is queued, then closes.
   *
   * @param reason for the log
   * @param code the MQTT 5.0 reason code of the close (what a DISCONNECT to a 5.0 client
   *   carries); default 0x00, normal disconnection
   */
  close(reason: string, code: number = ReasonCode.NORMAL_DISCONNECTION): void {
    this.#close(reason, code, false);
  }

  /**
   * Closes in order, as at shutdown: flushes what is queued (a 5.0 client's DISCONNECT), half-closes,
   * and reads and discards until the client closes its side; only then closes the socket. A socket
   * closed with bytes it has not read makes the kernel send a reset instead of FIN, and a client
   * whose last write (a PUBCOMP) then fails may drop a message it had acknowledged. Nothing bounds
   * the wait here: the caller aborts a client that has not closed after a grace period.
   *
   * @param reason for the log
   * @param code the MQTT 5.0 reason code of the close (what a DISCONNECT to a 5.0 client carries)
   */
  closeGracefully(reason: string, code: number): void {
    this.#close(reason, code, true);
  }

  #close(reason: string, code: number, graceful: boolean): void {
    if (this.#channel.closing) return;
    this.#disconnect5(reason, code);
    this.#o.core.closing(this.link);
    // Built only when written: every connection ends here.
    if (this.#o.logger.enabled?.("debug") !== false) {
      this.#o.logger.debug(
        `Closing connection from ${this.info.remoteAddress}: ${reason} (reason code ${hex(code)})`,
      );
    }
    // What the core queued last (a refusing CONNACK) still goes out; then the socket closes.
    if (graceful) this.#channel.closeGracefully();
    else this.#channel.close();
  }

  /**
   * Closes because the session was taken over: flushes what is queued (the CONNACK of a
   * connection taken over right after it was accepted) when that is little, and aborts a
   * connection with much output pending, whose peer is most likely gone: it must not hold its
   * socket until the drain timeout.
   *
   * @param reason for the log
   */
  takeOver(reason: string): void {
    if (this.#channel.pendingBytes <= TAKEOVER_FLUSH_BYTES) {
      this.close(reason, ReasonCode.SESSION_TAKEN_OVER);
    } else this.abort(reason, ReasonCode.SESSION_TAKEN_OVER);
  }

  /**
   * Releases the output buffers of a connection that wrote nothing since the last call, so an
   * idle connection holds no output memory; busy ones keep theirs. The broker's sweep calls it.
   */
  trim(): void {
    this.#channel.trim();
  }

  /**
   * Closes at once without flushing (shutdown, stuck writer, takeover, keepalive).
   *
   * @param reason for the log
   * @param code the MQTT 5.0 reason code of the close; default 0x80, unspecified error
   */
  abort(reason: string, code: number = ReasonCode.UNSPECIFIED_ERROR): void {
    if (
      !this.#channel.closing && this.link.v5 !== undefined && this.#channel.pendingBytes === 0
    ) {
      // A 5.0 client whose output is flushed still learns why (keepalive 0x8D, shutdown 0x8B):
      // the DISCONNECT is the only thing left to write, and the drain timeout bounds it.
      this.close(reason, code);
      return;
    }
    if (!this.#channel.closing && this.#o.logger.enabled?.("debug") !== false) {
      this.#o.logger.debug(
        `Aborting connection from ${this.info.remoteAddress}: ${reason} (reason code ${hex(code)})`,
      );
    }
    this.#o.core.closing(this.link);
    // Nothing more will be written; whoever waits for the output is released.
    this.#channel.abort();
  }

  /**
   * Before the server closes an accepted 5.0 connection, a DISCONNECT with the reason code
   * (MQTT 5.0 §3.14, [MQTT-4.13.2-1]); none after the client's own DISCONNECT (code 0) or for a
   * connection whose CONNECT was not accepted (its CONNACK said why).
   */
  #disconnect5(reason: string, code: number): void {
    const v5 = this.link.v5;
    if (v5 === undefined || code === ReasonCode.NORMAL_DISCONNECTION) return;
    // The log's reason for a takeover names the new connection's address: not the old client's
    // business.
    // With `server_reference`, a shutdown sends the client to the other server.
    const to = redirect(code, this.#o.limits.serverReference);
    const info = {
      reasonString: code === ReasonCode.SESSION_TAKEN_OVER ? "session taken over" : reason,
      userProperties: v5.closeUserProperties,
      serverReference: to.serverReference,
    };
    let packet: Packet;
    try {
      packet = serverDisconnect(to.code, info, v5.limits);
    } catch {
      packet = serverDisconnect(ReasonCode.UNSPECIFIED_ERROR, info, v5.limits);
    }
    this.sendPacket(packet);
  }

  /**
   * The channel's call when its read loop has ended (with nothing) or failed (with an error). The
   * channel is started without a promise and this is no closure: an idle connection holds no
   * suspended frame nor promise of its own (memory per idle connection counts).
   *
   * @param err what the decoder or the core threw, if anything
   */
  ended(err?: unknown): void {
    if (err !== undefined) {
      try {
        this.#onError(err);
      } catch (error) {
        this.#o.logger.error(`Connection task failed: ${errorText(error)}`);
      }
    }
    this.#ended();
  }

  /**
   * After the read loop: flushes or drops the output, closes, detaches from the core. Without
   * output left to write (the common case: the client sent DISCONNECT or went away) this all
   * happens at once, with no async frame.
   */
  #ended(): void {
    let closedNow = false;
    try {
      this.#o.core.closing(this.link);
      closedNow = this.#channel.finishNow();
    } catch (err) {
      this.#o.logger.error(`Connection task failed: ${errorText(err)}`);
    }
    if (!closedNow) this.#endedLater();
    else this.#detach();
  }

  /** {@linkcode #ended} when output is left to write or the transport closes later. */
  async #endedLater(): Promise<void> {
    try {
      // Give the last queued bytes (a refusing CONNACK) their chance before the socket closes;
      // an aborted connection drops them and never waits on a write the transport may not
      // settle.
      await this.#channel.finish();
    } catch (err) {
      this.#o.logger.error(`Connection task failed: ${errorText(err)}`);
    }
    this.#detach();
  }

  /** The connection has closed: the core lets go of it; its will and the like go out. */
  #detach(): void {
    try {
      this.#o.core.detach(this.link, Date.now());
      this.#o.runner.run();
    } catch (err) {
      this.#o.logger.error(`Connection task failed: ${errorText(err)}`);
    }
    this.#flags |= FINISHED;
    this.#w?.done?.resolve();
    this.#o.onEnded?.(this);
  }

  /** The channel's call before the packets of each chunk: reads the clock once for them. */
  begin(): void {
    chunkNow = Date.now();
  }

  /**
   * The channel's call for each packet from the client: hands it to the core.
   *
   * @param packet the packet
   * @returns a promise while a plugin decision holds the link's next packets
   */
  receive(packet: Packet): Promise<void> | undefined {
    if (packet.type === PacketType.CONNECT) {
      this.#setVersion(packet.protocolVersion);
      this.#flags |= SAW_CONNECT;
    }
    this.#o.observer?.(this.clientId, packet, false);
    const sent = this.#o.forwards?.emitted;
    const gate = this.#o.store;
    if (gate === undefined) {
      this.#o.core.handle(this.link, packet, chunkNow);
      this.#o.runner.run();
    } else {
      if (gate.failed && needsStore(packet, this.link)) {
        // The store cannot take it, so it cannot be acknowledged. MQTT 5.0 refuses it with a
        // reason code, and the client may try again later [MQTT-3.4.2-1] [MQTT-3.5.2-1].
        if (this.link.v5 !== undefined && packet.type === PacketType.PUBLISH) {
          this.sendPacket(storeRefusal(packet, this.link));
          return;
        }
        // MQTT 3.1.1 has no way to refuse a PUBLISH but closing the connection.
        this.#o.logger.warning(
          `Closing connection from ${this.info.remoteAddress}` +
            `${this.clientId !== undefined ? ` (${this.clientId})` : ""}: ` +
            "QoS 1/2 publish while the store cannot be written",
        );
        this.close("the store cannot be written", ReasonCode.UNSPECIFIED_ERROR);
        return;
      }
      if (gate.failed && packet.type === PacketType.PUBLISH && packet.qos === 2) {
        // Not new work (needsStore), but its message may be one a failed write held.
        const session = this.link.session;
        const stored = session && gate.stored?.(session.clientId, packet.packetId!);
        if (stored !== undefined) this.#waits.unstored = stored;
      }
      // Asked once: a 5.0 PUBLISH for its held reply, any QoS 2 one for its id (`#fresh2`).
      const v5 = this.link.v5 !== undefined;
      const publish2 = packet.type === PacketType.PUBLISH && packet.qos === 2;
      const stores = (v5 || publish2) && needsStore(packet, this.link);
      const newWork = v5 && stores;
      const fresh2 = publish2 && stores;
      const before = gate.emitted;
      const asked = this.#o.core.receivesAsked;
      this.#o.core.handle(this.link, packet, chunkNow);
      this.#o.runner.run();
      if (
        this.#o.core.receivesAsked !== asked && packet.type === PacketType.PUBLISH && packet.qos > 0
      ) {
        // Deliveries of this message wait on receive authorizations: journaled once answered.
        if (this.#receivesUntil === 0) {
          this.#receivesFrom = before;
          this.#receivesAfter = asked;
        }
        this.#receivesUntil = this.#o.core.receivesAsked;
      }
      // A subscriber's PUBACK only deletes a delivered message: were it lost in a crash, the
      // message would come again, as QoS 1 allows. Every other change (a message and its
      // deliveries, a QoS 2 id, a subscription, a session) must be stored before its reply
      // goes out.
      // Nor does a QoS 0 PUBLISH, which has no reply: its retained copy or queued deliveries
      // lost with a failed write must not close the publisher while QoS 0 is served.
      if (gate.emitted !== before && packet.type !== PacketType.PUBACK && !isQos0(packet)) {
        this.#journal(before);
        if (fresh2) {
          if (this.#fresh2 === NO_ACKS) this.#fresh2 = [];
          this.#fresh2.push(packet.packetId!);
        }
        if (newWork && packet.type === PacketType.PUBLISH && packet.qos !== 0) {
          if (this.#heldAcks === NO_ACKS) this.#heldAcks = [];
          this.#heldAcks.push(packet.qos * 65536 + packet.packetId!);
        } else this.#flags |= JOURNALED_OTHER;
      }
    }
    // Routed and copied out (or kept with a payload of its own): the chunk it came in may be read
    // into again. (Packet events hand plugins copies of the payloads: broker.ts.)
    if (packet.type === PacketType.PUBLISH && this.#o.core.releaseReceived()) {
      this.#channel.itemReleased();
    }
    // A QoS 1/2 message forwarded to other nodes: its PUBACK/PUBREC waits until Redis holds it.
    if (sent !== this.#o.forwards?.emitted) this.#flags |= FORWARDED;
    // The core holds this link's packets until a plugin has answered; the channel holds the
    // next ones meanwhile, and close() or abort() end the wait: a plugin that never answers
    // must not hold the connection (nor the broker's shutdown) forever.
    if (this.#w?.decision !== undefined) return this.#decided();
  }

  /**
   * Waits for the asynchronous decisions of the core (authentication, authorization); an answer
   * may lead to another question (a will's authorization after the login). The core restarts the
   * keepalive allowance from the answer; so does the next packet's clock (the channel calls
   * `begin` after a wait). The core ignores a late answer for a closing link.
   */
  async #decided(): Promise<void> {
    let decision: Promise<void> | undefined;
    while ((decision = this.#w?.decision) !== undefined && !this.#channel.closing) await decision;
  }

  #onError(err: unknown): void {
    if (err instanceof MqttPacketError) {
      if ((this.#flags & SAW_CONNECT) === 0 && err.reasonCode === 0x84) {
        // Unsupported protocol level: CONNACK 0x01 then close [MQTT-3.1.2-2].
        this.#setVersion(4);
        this.sendPacket({
          type: PacketType.CONNACK,
          sessionPresent: false,
          reasonCode: ConnackReturnCode.UNACCEPTABLE_PROTOCOL_VERSION,
        });
      }
      // A malformed packet or protocol violation closes this connection only [MQTT-4.8.0-1].
      this.#o.logger.warning(
        `Closing connection from ${this.info.remoteAddress}` +
          `${this.clientId !== undefined ? ` (${this.clientId})` : ""}: ${err.message}`,
      );
      this.close(err.message, err.reasonCode);
      return;
    }
    if (!this.#channel.closing) {
      this.#o.logger.warning(
        `Connection from ${this.info.remoteAddress} failed: ${errorText(err)}`,
      );
    }
    this.abort(errorText(err));
  }

  /** The channel's call when its output has drained to half the bound. */
  drained(): void {
    if (this.#reported > 0) this.#report(this.#channel.pendingBytes);
    if ((this.#flags & HELD) !== 0) this.#releaseHeld();
  }

  /**
   * The channel's call as each write starts: with a store, a PUBACK, PUBREC, PUBCOMP, SUBACK…
   * and a QoS 2 delivery go out only once the store has committed what they depend on
   * (everything journaled until now). A failed commit: a client whose packets changed durable
   * state since the previous write may be waiting for an acknowledgement of something not
   * stored; it gets none, its connection is closed, and it sends again later. Others get their
   * output.
   *
   * On a cluster node, output after a QoS 1/2 PUBLISH that was forwarded to other nodes also
   * waits until Redis acknowledged the forward (see `ClusterBus.forwards`): a PUBACK or PUBREC
   * then means every node with subscribers has it, so a crash of this node loses nothing
   * acknowledged. QoS 0 and a broker that is no cluster node wait for nothing.
   */
  gate(bytes: Uint8Array): Promise<unknown> | undefined {
    const committed = this.#afterReceives(this.#committed(bytes));
    const forwards = this.#o.forwards;
    if (forwards === undefined) return committed;
    const since = this.#forwardMark;
    this.#forwardMark = forwards.emitted;
    if ((this.#flags & FORWARDED) === 0) return committed;
    this.#flags &= ~FORWARDED;
    const forwarded = forwards.acknowledged(since);
    if (forwarded === undefined) return committed;
    // With what the store's part resolves with: other bytes to write, after a failed commit.
    return committed === undefined
      ? forwarded
      : Promise.all([committed, forwarded]).then(([out]) => out);
  }

  /**
   * The receive authorizations' part of {@linkcode gate}: a QoS 1/2 PUBLISH whose deliveries
   * waited on receive authorizations is acknowledged once they are answered and what they
   * delivered is committed (`receive_gate.ts`); a failed commit closes the connection (no
   * acknowledgement: the client sends again).
   */
  #afterReceives(committed: Promise<unknown> | undefined): Promise<unknown> | undefined {
    const until = this.#receivesUntil;
    const gate = this.#o.store;
    if (until === 0 || gate === undefined) return committed;
    this.#receivesUntil = 0;
    const from = this.#receivesFrom;
    const answered = this.#o.receives?.answered(this.#receivesAfter, until);
    const fail = () => this.abort("the store could not save what this client sent");
    let stored: Promise<unknown> | undefined;
    if (answered === undefined) stored = gate.committed(from)?.catch(fail);
    else stored = answered.then(() => gate.committed(from)).catch(fail);
    if (stored === undefined) return committed;
    return committed === undefined ? stored : Promise.all([committed, stored]).then(([out]) => out);
  }

  /** The store's part of {@linkcode gate}. */
  #committed(bytes: Uint8Array): Promise<unknown> | undefined {
    const gate = this.#o.store;
    if (gate === undefined) return undefined;
    const since = this.#mark;
    this.#mark = gate.emitted;
    const flags = this.#flags;
    const journaled = (flags & JOURNALED) !== 0;
    const mustWait = journaled || (flags & QOS2_OUT) !== 0;
    const waits = this.#w;
    const unstored = waits?.unstored;
    const held = this.#heldAcks;
    const fresh2 = this.#fresh2;
    const other = (flags & JOURNALED_OTHER) !== 0;
    this.#flags = flags & ~(JOURNALED | QOS2_OUT | JOURNALED_OTHER);
    if (unstored !== undefined) waits!.unstored = undefined;
    if (held.length > 0) this.#heldAcks = NO_ACKS;
    if (fresh2.length > 0) this.#fresh2 = NO_ACKS;
    const committed = mustWait
      ? gate.committed(journaled ? this.#journaledFrom : since)?.catch((error) => {
        if (!journaled) return;
        const taken = isTakenRefusal(error);
        if (taken) this.#releaseRefused(fresh2);
        // At 5.0, the publisher whose message revealed the outage is answered as the others
        // during it, on an open connection [MQTT-3.4.2-1] [MQTT-3.5.2-1].
        const instead = other ? undefined : this.#takeBack(bytes, held, taken);
        if (instead !== undefined) return instead;
        if (!taken) {
          this.abort("the store could not save what this client sent");
          return;
        }
        // Not an outage: the store works, and what the client sends again goes to where the
        // session is now.
        const reason =
          "a message it sent was refused in the store for a subscriber's session another node writes now: it is to send it again";
        this.#o.logger.info(
          `Closing connection from ${this.info.remoteAddress}${
            this.clientId !== undefined ? ` (${this.clientId})` : ""
          }: ${reason}`,
        );
        this.abort(reason);
      })
      : undefined;
    // Only the PUBRECs wait for the store to be written again: the rest of the output goes on.
    if (unstored !== undefined) {
      waits!.pubrecs ??= new HeldPubrecs(
        (out) => this.#channel.send(out),
        () => this.abort("the store was not written again"),
        () => this.#channel.queuedBytes > 0,
      );
      waits!.pubrecs.until(unstored);
    }
    const pubrecs = waits?.pubrecs;
    if (pubrecs === undefined || !pubrecs.holding) return committed;
    return committed === undefined
      ? Promise.resolve(pubrecs.take(bytes))
      : pubrecs.takeAfter(committed, bytes);
  }

  /**
   * A failed commit held the success PUBACK/PUBREC of 5.0 PUBLISHes (`held`) in `bytes`: they
   * are left out, and each gets what a PUBLISH during the outage gets: PUBACK 0x80 at QoS 1
   * (`storeRefusal`); at QoS 2, whose message stays routed with its id held (releasing it would
   * deliver the message twice to live subscribers if the client sent it again), PUBREC once the
   * store is written again from memory (`CommitGate.stored`), as for a QoS 2 message sent again.
   *
   * With `taken` (the commit was refused for sessions another cluster node writes), a PUBACK
   * 0x80 says so ({@linkcode TAKEN_REFUSAL_TEXT}).
   *
   * @returns the bytes to write instead, or `undefined` when the connection must be closed
   */
  #takeBack(bytes: Uint8Array, held: number[], taken: boolean): Uint8Array | undefined {
    const gate = this.#o.store!;
    const clientId = this.link.session?.clientId;
    if (held.length === 0 || clientId === undefined) return undefined;
    const acks = held.map((n): HeldAck => ({ qos: n >= 131072 ? 2 : 1, packetId: n % 65536 }));
    const { bytes: out, dropped } = withoutAcks(bytes, acks);
    if (dropped.length === 0) return undefined;
    const waits: Promise<void>[] = [];
    for (const ack of dropped) {
      if (ack.qos !== 2) continue;
      const stored = gate.stored?.(clientId, ack.packetId) ?? gate.rewritten?.();
      // Not one the store will be written again with: the client must send it again.
      if (stored === undefined) return undefined;
      waits.push(stored);
    }
    const unstored = this.#w?.unstored;
    if (unstored !== undefined) waits.push(unstored);
    if (waits.length > 0) this.#waits.unstored = Promise.all(waits).then(() => {});
    for (const ack of dropped) {
      this.sendPacket(
        ack.qos === 1
          ? storeRefusal(ack, this.link, taken ? { reasonString: TAKEN_REFUSAL_TEXT } : {})
          : { type: PacketType.PUBREC, packetId: ack.packetId },
      );
    }
    return out;
  }

  /**
   * A commit was refused for sessions another cluster node writes now (`taken`): what the QoS 2
   * messages it carried (`packetIds`) queued for those sessions is stored nowhere, and their
   * publisher got no PUBREC. Their ids are released, so that each message sent again (with DUP)
   * is routed again, to where those sessions are now, rather than taken for a duplicate and
   * acknowledged without reaching them [MQTT-4.3.3-9]. (A subscriber whose copy was stored gets
   * it twice: the lesser harm than a message acknowledged and lost for the moved sessions.)
   */
  #releaseRefused(packetIds: readonly number[]): void {
    const session = this.link.session;
    if (session === undefined) return;
    for (const packetId of packetIds) {
      if (session.inbound.release(packetId)) session.journal?.released(packetId);
    }
  }

  /** Notes that this client's packets changed durable state, from the gate's mark `before`. */
  #journal(before: number): void {
    if ((this.#flags & JOURNALED) !== 0) return;
    this.#flags |= JOURNALED;
    this.#journaledFrom = before;
  }

  /** Tells the core how much is unwritten (see `BrokerCore.pending`). */
  #report(bytes: number): void {
    this.#reported = bytes;
    this.#o.core.pending(this.link, bytes);
  }

  /** The channel's call when a write failed. */
  writeFailed(): void {
    this.abort("write failed");
  }

  /** Sends the QoS 1/2 PUBLISHes held back for back-pressure once the output is down to half. */
  #releaseHeld(): void {
    const channel = this.#channel;
    if (channel.closing || channel.pendingBytes > this.#o.limits.maxOutboundBytes / 2) return;
    this.#flags &= ~HELD;
    this.#o.core.drained(this.link);
    this.#o.runner.run();
  }
}

/** Whether a packet is a QoS 0 PUBLISH. */
function isQos0(packet: Packet): boolean {
  return packet.type === PacketType.PUBLISH && packet.qos === 0;
}

/** A reason code as the log shows it: `0x8d`. */
function hex(code: number): string {
  return `0x${code.toString(16).padStart(2, "0")}`;
}

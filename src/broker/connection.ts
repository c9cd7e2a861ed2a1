/**
 * The I/O shell of one client connection: reads bytes into the decoder, hands packets to the core,
 * runs the core's actions for it (see `action_runner.ts`) and batches everything written into one
 * write per turn of the event loop.
 *
 * @module
 */

import { ConnackReturnCode, PacketType, ReasonCode } from "../packet/constants.ts";
import type { ProtocolVersion, QoS } from "../packet/constants.ts";
import type { Packet } from "../packet/types.ts";
import { encodedLength, encodePacketInto, MqttPacketError, PacketDecoder } from "../packet/mod.ts";
import type { ByteConnection } from "../transport/types.ts";
import { errorText } from "./_error_text.ts";
import type { BrokerCore } from "./core.ts";
import type { BrokerMessage } from "./message.ts";
import { DUP_FLAG, RETAIN_FLAG } from "./publish_encoding.ts";
import type { Logger, PolicyHost } from "./policy.ts";
import { type DecisionRequest, runDecision } from "./decision.ts";
import type { ActionRunner, ActionTarget } from "./action_runner.ts";
import type { Link } from "./link.ts";
import { BACKLOG_BYTES } from "./session.ts";
import { countDrop } from "./drop_counters.ts";
import { serverDisconnect } from "./server_disconnect.ts";

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
}

const EMPTY = new Uint8Array(0);
const NO_FIELDS = {};
/** Bytes read ahead into the decoder while a plugin decision is pending. */
const READ_AHEAD = 64 * 1024;
const MIN_BUFFER = 4096;
/** Output a connection taken over may still flush; past it, it is aborted. */
const TAKEOVER_FLUSH_BYTES = 64 * 1024;

/** One client connection. */
export class BrokerConnection implements ActionTarget {
  /** The transport's description of the peer. */
  readonly info: ByteConnection["info"];
  /** The protocol level packets are encoded at: the CONNECT's (4 until one arrives). */
  protocolVersion: ProtocolVersion = 4;
  /** The core's state of this connection (session, client), written by the core only. */
  readonly link: Link;
  /** When the core next wants a tick for this connection (ms since epoch); Infinity: never. */
  deadline: number = Infinity;
  #conn: ByteConnection;
  #core: BrokerCore;
  #runner: ActionRunner;
  // Whether a CONNECT was decoded (an unsupported protocol level before it gets CONNACK 1).
  #sawConnect = false;
  // The pending bytes last reported to the core.
  #reported = 0;
  #log: Logger;
  #limits: ConnectionLimits;
  #decoder: PacketDecoder;
  #observer: PacketObserver | undefined;
  #policy: PolicyHost;
  // The plugin decision the core waits for, until its answer has been given back to the core.
  #decision: Promise<void> | undefined;
  #closing = false;
  #aborted = false;
  #closeReason = "";
  #closeCode: number | undefined;
  // Set while the read loop waits on an asynchronous decision or for its output to drain:
  // closing wakes it at once.
  #wakeReader: (() => void) | undefined;
  // While reading is paused for back-pressure: the pending bytes at which it resumes, else -1.
  #resumeBelow = -1;
  // Whether a QoS 1/2 PUBLISH was held back for back-pressure (see sendPublish).
  #held = false;
  // Double buffering: the core appends to #out while #spare is being written.
  #out: Uint8Array = EMPTY;
  #outLen = 0;
  #spare: Uint8Array = EMPTY;
  #writing = 0;
  #writeStarted = 0;
  #flushQueued = false;
  #wroteSinceTrim = false;
  /** A read started while a decision was pending, taken by the main loop next. */
  #readAhead: Promise<Uint8Array | null> | undefined;
  #flushBound = () => this.#flush();
  #writeDoneBound = () => this.#writeDone();
  #writeFailedBound = () => this.#writeFailed();
  /** Resolves when the connection has ended and been detached from the core. */
  readonly done: Promise<void>;

  /**
   * Starts serving `conn`.
   *
   * @param conn the transport connection
   * @param core the broker core
   * @param options limits, logger, and the plugins that answer the core's decisions
   */
  constructor(
    conn: ByteConnection,
    core: BrokerCore,
    options: {
      runner: ActionRunner;
      limits: ConnectionLimits;
      logger: Logger;
      policy: PolicyHost;
      observer?: PacketObserver;
      certCnAsUsername?: boolean;
    },
  ) {
    this.#conn = conn;
    this.#runner = options.runner;
    this.info = conn.info;
    this.#core = core;
    this.#log = options.logger;
    this.#limits = options.limits;
    this.#observer = options.observer;
    this.#policy = options.policy;
    this.#decoder = new PacketDecoder({
      maxPacketSize: options.limits.maxPacketSize,
      side: "server",
    });
    this.link = core.attach({
      handle: this,
      info: conn.info,
      certCnAsUsername: options.certCnAsUsername,
    }, Date.now());
    this.#runner.run();
    this.done = this.#run();
  }

  /** The client id once CONNECT is accepted, for logs and packet events. */
  get clientId(): string | undefined {
    return this.link.session?.clientId;
  }

  /** Whether the connection is closing or closed. */
  get closing(): boolean {
    return this.#closing;
  }

  /** Bytes queued and being written. */
  get pendingBytes(): number {
    return this.#outLen + this.#writing;
  }

  /** When the pending write started (ms), or 0 when none is pending. */
  get writeStarted(): number {
    return this.#writing > 0 ? this.#writeStarted : 0;
  }

  /**
   * Queues any packet for the next write, encoded at the connection's protocol level.
   *
   * @param packet the packet; ignored once the connection is closing
   */
  sendPacket(packet: Packet): void {
    if (this.#closing) return;
    this.#observer?.(this.clientId, packet, true);
    const length = encodedLength(packet, this.protocolVersion);
    this.#reserve(length);
    this.#outLen = encodePacketInto(packet, this.protocolVersion, this.#out, this.#outLen);
    this.#core.stats.messagesSent++;
    this.#schedule();
  }

  /**
   * Runs the plugins for a decision of the core (an `ask` action) and gives the answer back with
   * `core.decided`: at once when a plugin answers synchronously (the runner's pass goes on with
   * what follows), otherwise when it settles, while the read loop waits for it (reading ahead a
   * little, see #settle). A plugin that throws or rejects refuses.
   *
   * @param id the core's id for the decision
   * @param request the question
   */
  ask(id: number, request: DecisionRequest): void {
    let answered: () => void = () => {};
    const answer = runDecision(this.#policy, request, {
      log: (line) => this.#log.error(line),
      settle: (value) => {
        if (this.#decision === settled) this.#decision = undefined;
        answered();
        this.#core.decided(id, value, Date.now());
        this.#runner.run();
      },
    });
    if (answer !== undefined) {
      this.#core.decided(id, answer, Date.now());
      return;
    }
    const settled = new Promise<void>((resolve) => answered = resolve);
    this.#decision = settled;
  }

  /**
   * Notes the core's deadline for this connection. The broker's sweep calls `core.tick` twice a
   * second, which closes the connection once it has passed.
   *
   * @param at ms since epoch; Infinity for none
   */
  setDeadline(at: number): void {
    this.deadline = at;
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
    if (this.#closing) return false;
    // Back-pressure: past the bound QoS 0 is dropped, and QoS 1/2 stay in the session's window
    // unsent until the output drains (see #releaseHeld); once one is held, later ones wait
    // behind it so that they still go out in order [MQTT-4.6.0-6].
    const pending = this.#outLen + this.#writing;
    if (pending > this.#limits.maxOutboundBytes) {
      if (qos > 0) this.#held = true;
      return false;
    }
    if (qos > 0 && this.#held) return false;
    // The core's retained feeds wait while much is unwritten: tell it as soon as that is so.
    if (pending > BACKLOG_BYTES && this.#reported <= BACKLOG_BYTES) this.#report(pending);
    if (this.#observer !== undefined) {
      this.#observer(this.clientId, {
        type: PacketType.PUBLISH,
        topic: message.topic,
        payload: message.payload,
        qos,
        retain: message.retainOut,
        dup,
        packetId: qos > 0 ? packetId : undefined,
      }, true);
    }
    let bytes: Uint8Array;
    let idOffset: number;
    if (this.protocolVersion === 5) {
      // Properties forwarded, with this delivery's Subscription Identifiers and the Message
      // Expiry Interval left [MQTT-3.3.2-6].
      const ids = message.subscriptionIdentifiers;
      const fields = ids === undefined ? NO_FIELDS : { subscriptionIdentifiers: ids };
      const now = Date.now();
      let encoded = message.encoded5(qos, fields, now);
      const v5 = this.link.v5;
      const max = v5?.limits.maximumPacketSize;
      // An alias adds 3 bytes at most: checked before one is given, so that no alias is mapped
      // by a packet that is not sent.
      if (max !== undefined && encoded.bytes.length + (v5?.outAliases ? 3 : 0) > max) {
        // Never a packet over the client's Maximum Packet Size: dropped and counted, as if sent
        // [MQTT-3.1.2-24] [MQTT-3.1.2-25]. (The core drops most before; this catches a resend.)
        countDrop(this.#core.stats, "tooLarge");
        return true;
      }
      const alias = v5?.outAliases?.alias(message.topic);
      if (alias?.alias !== undefined) {
        // The first PUBLISH on a topic maps the alias, the next ones send an empty topic.
        encoded = message.encoded5(
          qos,
          { ...fields, topicAlias: alias.alias, omitTopic: alias.topic === "" },
          now,
        );
      }
      bytes = encoded.bytes;
      idOffset = encoded.packetIdOffset;
    } else {
      bytes = message.encoded(this.protocolVersion, qos);
      idOffset = message.packetIdOffset;
    }
    this.#reserve(bytes.length);
    const start = this.#outLen;
    this.#out.set(bytes, start);
    // RETAIN only on a retained message sent for a new subscription [MQTT-3.3.1-8] [MQTT-3.3.1-9].
    if (message.retainOut) this.#out[start] |= RETAIN_FLAG;
    if (qos > 0) {
      const at = start + idOffset;
      this.#out[at] = packetId >> 8;
      this.#out[at + 1] = packetId & 0xff;
      // DUP marks a resend [MQTT-3.3.1-1].
      if (dup) this.#out[start] |= DUP_FLAG;
    }
    this.#outLen = start + bytes.length;
    const stats = this.#core.stats;
    stats.messagesSent++;
    stats.publishSentByQos[qos]++;
    stats.payloadBytesSentByQos[qos] += message.payload.length;
    this.#schedule();
    return true;
  }

  /** The reason code the connection was closed with, once it is closing. */
  get closeCode(): number | undefined {
    return this.#closeCode;
  }

  /**
   * Flushes what is queued, then closes.
   *
   * @param reason for the log
   * @param code the MQTT 5.0 reason code of the close (what a DISCONNECT to a 5.0 client
   *   carries); default 0x00, normal disconnection
   */
  close(reason: string, code: number = ReasonCode.NORMAL_DISCONNECTION): void {
    if (this.#closing) return;
    this.#disconnect5(reason, code);
    this.#closing = true;
    this.#core.closing(this.link);
    this.#closeReason = reason;
    this.#closeCode = code;
    this.#log.debug(
      `Closing connection from ${this.info.remoteAddress}: ${reason} (reason code ${hex(code)})`,
    );
    this.#wakeReader?.();
    // What the core queued last (a refusing CONNACK) still goes out; then the socket closes.
    if (this.#outLen === 0 && this.#writing === 0) this.#conn.close();
    else this.#schedule();
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
    if (this.#outLen + this.#writing <= TAKEOVER_FLUSH_BYTES) {
      this.close(reason, ReasonCode.SESSION_TAKEN_OVER);
    } else this.abort(reason, ReasonCode.SESSION_TAKEN_OVER);
  }

  /**
   * Releases the output buffers of a connection that wrote nothing since the last call, so an
   * idle connection holds no output memory; busy ones keep theirs. The broker's sweep calls it.
   */
  trim(): void {
    if (!this.#wroteSinceTrim && this.#writing === 0 && this.#outLen === 0) {
      this.#out = EMPTY;
      this.#spare = EMPTY;
    }
    this.#wroteSinceTrim = false;
  }

  /**
   * Closes at once without flushing (shutdown, stuck writer, takeover, keepalive).
   *
   * @param reason for the log
   * @param code the MQTT 5.0 reason code of the close; default 0x80, unspecified error
   */
  abort(reason: string, code: number = ReasonCode.UNSPECIFIED_ERROR): void {
    if (
      !this.#closing && this.link.v5 !== undefined && this.#outLen === 0 && this.#writing === 0
    ) {
      // A 5.0 client whose output is flushed still learns why (keepalive 0x8D, shutdown 0x8B):
      // the DISCONNECT is the only thing left to write, and the drain timeout bounds it.
      this.close(reason, code);
      return;
    }
    if (!this.#closing) {
      this.#log.debug(
        `Aborting connection from ${this.info.remoteAddress}: ${reason} (reason code ${hex(code)})`,
      );
    }
    this.#closing = true;
    this.#core.closing(this.link);
    this.#aborted = true;
    if (this.#closeReason === "") this.#closeReason = reason;
    this.#closeCode ??= code;
    this.#wakeReader?.();
    this.#conn.close();
    // Nothing more will be written: release whoever waits for the output to drain, even if the
    // transport never settles the write in flight.
    this.#outLen = 0;
    this.#notifyDrained();
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
    const info = {
      reasonString: code === ReasonCode.SESSION_TAKEN_OVER ? "session taken over" : reason,
    };
    let packet: Packet;
    try {
      packet = serverDisconnect(code, info, v5.limits);
    } catch {
      packet = serverDisconnect(ReasonCode.UNSPECIFIED_ERROR, info, v5.limits);
    }
    this.sendPacket(packet);
  }

  async #run(): Promise<void> {
    const conn = this.#conn;
    // The transport's direct read() when it has one: no stream machinery per connection.
    const reader = conn.read === undefined ? conn.readable.getReader() : undefined;
    const core = this.#core;
    const decoder = this.#decoder;
    try {
      while (!this.#closing) {
        const value = await this.#nextChunk(reader);
        if (value === null || this.#closing) break;
        core.stats.bytesReceived += value.length;
        let now = Date.now();
        decoder.push(value);
        while (!this.#closing) {
          const packet = decoder.next();
          if (packet === undefined) break;
          if (packet.type === PacketType.CONNECT) {
            this.protocolVersion = packet.protocolVersion;
            this.#sawConnect = true;
          }
          this.#observer?.(this.clientId, packet, false);
          core.handle(this.link, packet, now);
          this.#runner.run();
          if (this.#decision !== undefined) {
            // The core holds this link's packets until a plugin has answered (the answer may
            // lead to another question: a will's authorization after the login). The core
            // restarts the keepalive allowance from the answer; so does the next packet's clock.
            while (this.#decision !== undefined && !this.#closing) {
              await this.#settle(this.#decision, reader);
            }
            now = Date.now();
          }
          if (this.#outLen + this.#writing > this.#limits.maxOutboundBytes) {
            // Every reply (PUBACK, PUBREC, SUBACK, PINGRESP…) costs output: a client that sends
            // without reading would grow it without bound. Decode nothing more from it until
            // its output drains; if it never does, the drain timeout closes it.
            await this.#outputDrained();
            now = Date.now();
          }
        }
      }
    } catch (err) {
      this.#onError(err);
    } finally {
      reader?.releaseLock();
      if (!this.#closing) {
        this.#closing = true;
        this.#closeReason = "connection closed by the client";
        core.closing(this.link);
      }
      // Give the last queued bytes (a refusing CONNACK) their chance before the socket closes;
      // an aborted connection drops them and never waits on a write the transport may not settle.
      if (!this.#aborted && (this.#outLen > 0 || this.#writing > 0)) {
        this.#schedule();
        await this.#drained();
      }
      this.#conn.close();
      await this.#conn.closed;
      core.detach(this.link, Date.now());
      // Its will and the like go out to the other connections.
      this.#runner.run();
    }
  }

  /**
   * Waits for an asynchronous decision of the core (authentication, authorization), or until the
   * connection closes: a plugin that never answers must not hold the connection (nor the
   * broker's shutdown) forever. The core ignores a late answer for a closing link.
   */
  /** The next chunk from the peer, or `null` at the end; a read started ahead is used first. */
  #nextChunk(
    reader: ReadableStreamDefaultReader<Uint8Array> | undefined,
  ): Promise<Uint8Array | null> {
    const ahead = this.#readAhead;
    if (ahead !== undefined) {
      this.#readAhead = undefined;
      return ahead;
    }
    if (reader === undefined) return this.#conn.read!();
    // A read still pending when the reader is released rejects: that is the end, not an error.
    return reader.read().then((r) => r.value ?? null, () => null);
  }

  /**
   * Waits for an asynchronous decision (a plugin's authentication or authorization) while still
   * reading, so that a peer that goes away meanwhile is noticed: its CONNECT must not take over a
   * live session once the answer comes. Chunks read meanwhile go into the decoder (at most
   * {@linkcode READ_AHEAD} bytes); close() and abort() end the wait at once.
   */
  async #settle(
    pending: Promise<void>,
    reader: ReadableStreamDefaultReader<Uint8Array> | undefined,
  ): Promise<void> {
    const woken = new Promise<"woken">((resolve) => this.#wakeReader = () => resolve("woken"));
    const decided = pending.then(() => "decided" as const);
    // Returning early (woken, peer gone) leaves `decided` unawaited. It does not reject (ask logs
    // plugin failures and answers false), but must never surface as unhandled.
    decided.catch(() => {});
    try {
      while (!this.#closing) {
        if (this.#decoder.bufferedBytes > READ_AHEAD) {
          await Promise.race([decided, woken]);
          return;
        }
        this.#readAhead ??= this.#nextChunk(reader);
        const ahead = this.#readAhead;
        const winner = await Promise.race([decided, woken, ahead]);
        if (winner === "decided" || winner === "woken") return;
        this.#readAhead = undefined;
        if (winner === null) {
          this.#closing = true;
          this.#closeReason = "connection closed by the client";
          this.#core.closing(this.link);
          return;
        }
        this.#core.stats.bytesReceived += winner.length;
        this.#decoder.push(winner);
      }
    } finally {
      this.#wakeReader = undefined;
    }
  }

  /** Waits until the pending output is down to half the bound, or the connection closes. */
  #outputDrained(): Promise<void> {
    if (this.#closing) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.#resumeBelow = this.#limits.maxOutboundBytes >> 1;
      this.#wakeReader = resolve;
    }).finally(() => {
      this.#resumeBelow = -1;
      this.#wakeReader = undefined;
    });
  }

  #onError(err: unknown): void {
    if (err instanceof MqttPacketError) {
      if (!this.#sawConnect && err.reasonCode === 0x84) {
        // Unsupported protocol level: CONNACK 0x01 then close [MQTT-3.1.2-2].
        this.protocolVersion = 4;
        this.sendPacket({
          type: PacketType.CONNACK,
          sessionPresent: false,
          reasonCode: ConnackReturnCode.UNACCEPTABLE_PROTOCOL_VERSION,
        });
      }
      // A malformed packet or protocol violation closes this connection only [MQTT-4.8.0-1].
      this.#log.warning(
        `Closing connection from ${this.info.remoteAddress}` +
          `${this.clientId !== undefined ? ` (${this.clientId})` : ""}: ${err.message}`,
      );
      this.close(err.message, err.reasonCode);
      return;
    }
    if (!this.#closing) {
      this.#log.warning(`Connection from ${this.info.remoteAddress} failed: ${errorText(err)}`);
    }
    this.abort(errorText(err));
  }

  #reserve(length: number): void {
    const needed = this.#outLen + length;
    if (needed <= this.#out.length) return;
    let size = this.#out.length < MIN_BUFFER ? MIN_BUFFER : this.#out.length * 2;
    while (size < needed) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.#out.subarray(0, this.#outLen));
    this.#out = grown;
  }

  #schedule(): void {
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(this.#flushBound);
  }

  #flush(): void {
    this.#flushQueued = false;
    if (this.#writing > 0 || this.#outLen === 0) return;
    const bytes = this.#out.subarray(0, this.#outLen);
    this.#wroteSinceTrim = true;
    this.#writing = this.#outLen;
    this.#writeStarted = Date.now();
    this.#core.stats.bytesSent += this.#outLen;
    // Swap: new packets go to the other buffer while this one is written.
    const written = this.#out;
    this.#out = this.#spare.length >= MIN_BUFFER && this.#spare.length <= 1 << 20
      ? this.#spare
      : EMPTY;
    this.#spare = written;
    this.#outLen = 0;
    this.#conn.write(bytes).then(this.#writeDoneBound, this.#writeFailedBound);
    this.#report(this.#writing);
  }

  /** Tells the core how much is unwritten (see `BrokerCore.pending`). */
  #report(bytes: number): void {
    this.#reported = bytes;
    this.#core.pending(this.link, bytes);
  }

  #writeDone(): void {
    this.#writing = 0;
    if (this.#outLen > 0) {
      this.#flush();
      if (this.#resumeBelow >= 0 && this.#outLen + this.#writing <= this.#resumeBelow) {
        this.#wakeReader?.();
      }
    } else {
      if (this.#resumeBelow >= 0) this.#wakeReader?.();
      this.#report(0);
      this.#notifyDrained();
      if (this.#closing) this.#conn.close();
      else if (this.#spare.length > 1 << 20) this.#spare = EMPTY;
    }
    if (this.#held) this.#releaseHeld();
  }

  /** Sends the QoS 1/2 PUBLISHes held back for back-pressure once the output is down to half. */
  #releaseHeld(): void {
    if (this.#closing || this.#outLen + this.#writing > this.#limits.maxOutboundBytes >> 1) return;
    this.#held = false;
    this.#core.drained(this.link);
    this.#runner.run();
  }

  #writeFailed(): void {
    this.#writing = 0;
    this.#outLen = 0;
    this.#notifyDrained();
    this.abort("write failed");
  }

  #drainWaiters: (() => void)[] = [];

  #drained(): Promise<void> {
    if (this.#outLen === 0 && this.#writing === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  #notifyDrained(): void {
    if (this.#drainWaiters.length === 0) return;
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
  }
}

/** A reason code as the log shows it: `0x8d`. */
function hex(code: number): string {
  return `0x${code.toString(16).padStart(2, "0")}`;
}

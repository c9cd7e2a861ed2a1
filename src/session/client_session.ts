/**
 * Sans-IO state of one MQTT client: CONNECT/CONNACK, the QoS 1/2 flows both ways, SUBSCRIBE and
 * UNSUBSCRIBE requests, keepalive deadlines, and what to resend after a reconnect.
 *
 * Packets and time go in, actions come out: packets to send, messages to deliver, requests to settle
 * (by token), connections to close. There are no timers, sockets or promises here, and the clock is
 * injected, so every flow can be driven step by step in a test.
 *
 * @module
 */

import { PacketType, type ProtocolVersion, type QoS } from "../packet/constants.ts";
import { encodedLength } from "../packet/encode.ts";
import { reasonText } from "../packet/_reason_text.ts";
import type {
  AuthPacket,
  ConnectPacket,
  Packet,
  Properties,
  PublishPacket,
  SubscribePacket,
  Subscription,
  UnsubscribePacket,
  Will,
} from "../packet/types.ts";
import { InboundQos2 } from "./inbound.ts";
import { type InflightEntry, OutboundFlow } from "./outbound.ts";
import { receiveAck, receivePublish, receivePubrel } from "./qos_flow.ts";
import { InboundTopicAliases, OutboundTopicAliases } from "./topic_aliases.ts";

/** A message to publish. */
export interface OutgoingMessage {
  /** The topic name. */
  topic: string;
  /** The payload, kept by reference until sent. */
  payload: Uint8Array;
  /** The QoS to publish at. */
  qos: QoS;
  /** Whether the server should retain it. */
  retain: boolean;
  /** MQTT 5.0 only. */
  properties?: Properties;
}

/**
 * A message received from the server.
 *
 * @example
 * ```ts
 * import type { ApplicationMessage } from "./client_session.ts";
 * import assert from "node:assert/strict";
 *
 * const text = (m: ApplicationMessage) => new TextDecoder().decode(m.payload);
 * const message: ApplicationMessage = {
 *   topic: "sensors/t1",
 *   payload: new TextEncoder().encode("21.5"),
 *   qos: 1,
 *   retain: false,
 *   dup: false,
 *   packetId: 7,
 * };
 * assert.equal(text(message), "21.5");
 * ```
 */
export interface ApplicationMessage {
  /** The topic name it was published to. */
  topic: string;
  /** The payload bytes. */
  payload: Uint8Array;
  /** The QoS it was delivered at. */
  qos: QoS;
  /** Set on a retained message sent because of a new subscription [MQTT-3.3.1-9]. */
  retain: boolean;
  /** Set when the server says this may be a redelivery [MQTT-3.3.1-1]. */
  dup: boolean;
  /** The packet id it arrived with (QoS 1 and 2 only). */
  packetId?: number;
  /** MQTT 5.0 only. */
  properties?: Properties;
}

/**
 * What the server answered to CONNECT.
 *
 * @example
 * ```ts
 * import type { ConnackResult } from "./client_session.ts";
 *
 * // After connecting with cleanSession false: was the broker's session kept?
 * const mustResubscribe = (connack: ConnackResult) => !connack.sessionPresent;
 * ```
 */
export interface ConnackResult {
  /** Whether the server resumed a session it kept for this client id. */
  sessionPresent: boolean;
  /** The CONNACK return code (3.1, 3.1.1) or reason code (5.0); 0 when accepted. */
  returnCode: number;
  /**
   * MQTT 5.0: the CONNACK properties — the server's limits (receive maximum, maximum packet
   * size, maximum QoS, retain available, topic alias maximum), the session expiry it granted, an
   * assigned client identifier, server keep alive, response information, user properties.
   */
  properties?: Properties;
}

/**
 * How the server completed a QoS 1 or 2 publish: the reason code of its PUBACK or PUBREC (0 in
 * MQTT 3.1.1 and for QoS 0) and, in MQTT 5.0, that packet's properties.
 *
 * @example
 * ```ts
 * import type { PublishResult } from "./client_session.ts";
 *
 * // 0x10: accepted, but nobody is subscribed (MQTT 5.0).
 * const unheard = (result: PublishResult) => result.reasonCode === 0x10;
 * ```
 */
export interface PublishResult {
  /** 0x00 Success, or 0x10 No matching subscribers. */
  reasonCode: number;
  /** MQTT 5.0: the acknowledgement's reason string and user properties. */
  properties?: Properties;
}

/** Why a request failed. */
export type ClientFailure =
  /** The server refused: CONNACK, or an MQTT 5.0 PUBACK/PUBREC, carried a failure code. */
  | "refused"
  /** The connection was lost (or closed by the core) while the request needed it. */
  | "connection_lost"
  /** The client was offline and its queue for messages made offline was full. */
  | "queue_full"
  /** No CONNACK arrived in time. */
  | "timeout"
  /**
   * The request was not sent: it breaks a limit the server announced in CONNACK (maximum QoS,
   * retain available, maximum packet size). `returnCode` is the matching reason code.
   */
  | "not_allowed";

/** Why the core wants the connection closed. */
export type CloseReason =
  /** A PINGREQ went unanswered for the ping timeout: the link is dead [MQTT-3.1.2-24]. */
  | "keepalive_timeout"
  /** No CONNACK within the connect timeout. */
  | "connack_timeout"
  /** CONNACK refused the connection; the server closes it too [MQTT-3.2.2-5]. */
  | "refused"
  /**
   * The server sent something a client must not receive at this point, such as an
   * acknowledgement of the wrong kind for a message in flight [MQTT-4.8.0-1].
   */
  | "protocol_error"
  /** An MQTT 5.0 server sent DISCONNECT. */
  | "server_disconnect"
  /** The application asked for it ({@linkcode ClientSession.abort}). */
  | "aborted";

/** One output of {@linkcode ClientSession}. */
export type ClientAction =
  /** Send this packet on the current connection. */
  | { type: "send"; packet: Packet }
  /** Hand this message to the application. */
  | { type: "deliver"; message: ApplicationMessage }
  /**
   * The request with this token completed. `value` is the {@linkcode ConnackResult} for connect,
   * the SUBACK or UNSUBACK reason codes for subscribe and unsubscribe, `undefined` otherwise.
   */
  | {
    type: "resolve";
    token: number;
    /** For a re-authentication: the properties of the server's AUTH Success. */
    value?: ConnackResult | number[] | PublishResult | Properties;
    /** MQTT 5.0, subscribe and unsubscribe: the SUBACK's or UNSUBACK's properties. */
    properties?: Properties;
  }
  /**
   * The request with this token failed. `returnCode` is set for `"refused"` and
   * `"not_allowed"`; `properties` are those of the refusing packet (MQTT 5.0).
   */
  | {
    type: "reject";
    token: number;
    reason: ClientFailure;
    message: string;
    returnCode?: number;
    properties?: Properties;
  }
  /**
   * Close the connection; the core already considers it lost. In MQTT 5.0, `reasonCode` and
   * `properties` are those of the server's DISCONNECT (`"server_disconnect"`), or the reason
   * code of the DISCONNECT the core sent before closing.
   */
  | {
    type: "close";
    reason: CloseReason;
    message: string;
    reasonCode?: number;
    properties?: Properties;
  }
  /**
   * MQTT 5.0 enhanced authentication: the server sent AUTH with Continue authentication (0x18).
   * Answer with {@linkcode ClientSession.authContinue}.
   */
  | { type: "auth"; reasonCode: number; properties?: Properties }
  /**
   * The server acknowledged a packet id with no message in flight (a duplicate or a stray ack).
   * It is ignored (a PUBREC is still answered with PUBREL, so the server can finish its flow);
   * the action only reports it, for a log.
   */
  | {
    type: "unsolicited";
    kind: "puback" | "pubrec" | "pubcomp";
    packetId: number;
    message: string;
  };

/** Options of {@linkcode ClientSession}. */
export interface ClientSessionOptions {
  /** The client identifier sent in CONNECT. */
  clientId: string;
  /** QoS 1/2 messages in flight at once. Default 20. */
  maxInflight?: number;
  /**
   * Messages held while the window is full or the client is offline, per QoS class (QoS 0, and
   * QoS 1/2 behind the window). Past it, `publish` is rejected with `"queue_full"`. Default 1000.
   */
  maxQueued?: number;
  /**
   * Hold back the PUBACK (QoS 1) or PUBREC (QoS 2) of a received message until {@linkcode
   * ClientSession.accept} says the application has it, so a reader that falls behind slows the
   * server down through its in-flight window instead of piling messages up. Default false: the
   * acknowledgement goes out with the delivery.
   */
  manualAcks?: boolean;
  /**
   * MQTT 5.0: give topics repeated on a connection a topic alias, within the server's Topic
   * Alias Maximum, so later PUBLISH packets carry the alias instead of the name. Default false.
   */
  topicAliases?: boolean;
}

/** The CONNECT fields; kept and reused for every reconnect. */
export interface ConnectParams {
  /** 3 (MQTT 3.1), 4 (3.1.1) or 5. Default 4. */
  protocolVersion?: ProtocolVersion;
  /** Clean session (clean start in 5.0). Default true. */
  clean?: boolean;
  /** Seconds sent in CONNECT; 0 turns keepalive off (§3.1.2.10 in 3.1.1 and 5.0). Default 60. */
  keepAlive?: number;
  /** Milliseconds to wait for PINGRESP before calling the link dead. Default half the keepalive. */
  pingTimeout?: number;
  /** Milliseconds to wait for CONNACK. Default 60000. */
  connectTimeout?: number;
  will?: Will;
  username?: string;
  password?: Uint8Array;
  /**
   * MQTT 5.0 CONNECT properties. The core enforces the limits it sets: Receive Maximum and
   * Topic Alias Maximum on what the server sends, Authentication Method for AUTH exchanges.
   */
  properties?: Properties;
}

/** Where the session is. */
export type ClientSessionState = "disconnected" | "connecting" | "connected";

interface Pending extends OutgoingMessage {
  token: number;
}

interface Held {
  sub: Subscription;
  /** The SUBSCRIBE properties it was made with (its subscription identifier). */
  properties?: Properties;
}

interface Request {
  /** Undefined for the core's own resubscribe after a reconnect. */
  token: number | undefined;
  packet: SubscribePacket | UnsubscribePacket;
}

/** Filters per SUBSCRIBE when resubscribing, so one packet stays small. */
const RESUBSCRIBE_CHUNK = 64;

/**
 * The protocol state of one MQTT client, with no I/O.
 *
 * Call an input method (`connect`, `handlePacket`, `publish`, `subscribe`, `unsubscribe`, `ping`,
 * `disconnect`, `connectionLost`, `tick`), then {@linkcode takeActions} to get what to do, then
 * arm one timer for {@linkcode nextDeadline}. Requests return a token; a later `resolve` or
 * `reject` action carries the same token.
 *
 * @example
 * ```ts
 * import { ClientSession } from "./client_session.ts";
 * import { PacketType } from "../packet/constants.ts";
 * import assert from "node:assert/strict";
 *
 * const session = new ClientSession({ clientId: "c1" });
 * const connect = session.connect(0, { keepAlive: 10 });
 * assert.equal(session.takeActions()[0]?.type, "send"); // CONNECT
 * session.handlePacket({ type: PacketType.CONNACK, sessionPresent: false, reasonCode: 0 }, 5);
 * assert.deepEqual(session.takeActions(), [
 *   { type: "resolve", token: connect, value: { sessionPresent: false, returnCode: 0 } },
 * ]);
 * assert.equal(session.nextDeadline(), 10_000); // PINGREQ due 10 s after CONNECT went out
 * ```
 */
export class ClientSession {
  #clientId: string;
  readonly #maxQueued: number;
  readonly #maxInflight: number;
  readonly #topicAliases: boolean;
  #outbound: OutboundFlow<Pending>;
  #inbound = new InboundQos2();
  // packet id -> token of the publish in flight with it.
  #tokensById = new Map<number, number>();
  // QoS 0 messages made while offline, sent in order after CONNACK.
  #queued0: Pending[] = [];
  // SUBSCRIBE/UNSUBSCRIBE awaiting their ack, by packet id, in request order.
  #requests = new Map<number, Request>();
  // What the server should hold for us, for resubscribing when it lost the session.
  #subscriptions = new Map<string, Held>();
  #pingTokens: number[] = [];
  readonly #manualAcks: boolean;
  // With manualAcks: QoS 1/2 messages delivered whose acknowledgement waits for accept(), by id.
  #unaccepted = new Map<number, ApplicationMessage>();
  // With manualAcks: QoS 1 ids accepted while offline. The server resends them after a reconnect
  // that resumes the session [MQTT-4.4.0-1]; that resend is answered, not delivered again.
  #acceptedOffline = new Set<number>();
  // QoS 1 entries of #unaccepted: with the QoS 2 ids, what counts against our Receive Maximum.
  #unacceptedQos1 = 0;

  // MQTT 5.0, per connection: the server's limits from CONNACK and the topic aliases.
  #serverMaxPacket: number | undefined;
  #serverMaxQos: QoS = 2;
  #serverRetain = true;
  #outAliases: OutboundTopicAliases | undefined;
  #inAliases = new InboundTopicAliases(0);
  #receiveMaximum = 65535;
  #authMethod: string | undefined;
  #reauthToken: number | undefined;
  // In flight from an earlier connection, waiting for room in this server's Receive Maximum.
  #resendLater: InflightEntry<Pending>[] = [];
  // MQTT 5.0 QoS 2 in flight past PUBREC: what the PUBREC said, for the result on PUBCOMP.
  #pubrecs = new Map<number, PublishResult>();

  #state: ClientSessionState = "disconnected";
  #params: ConnectParams = {};
  #version: ProtocolVersion = 4;
  #resume = false;
  #connectToken: number | undefined;
  #connackDeadline = 0;
  #keepAliveMs = 0;
  #pingTimeoutMs = 0;
  #lastSent = 0;
  #lastReceived = 0;
  #pingSentAt: number | undefined;
  #now = 0;

  #nextToken = 1;
  #actions: ClientAction[] = [];

  /**
   * @param options client id and queue bounds
   * @throws {RangeError} when a bound is out of range
   */
  constructor(options: ClientSessionOptions) {
    this.#clientId = options.clientId;
    this.#manualAcks = options.manualAcks ?? false;
    this.#topicAliases = options.topicAliases ?? false;
    this.#maxInflight = options.maxInflight ?? 20;
    this.#maxQueued = options.maxQueued ?? 1000;
    if (!(this.#maxQueued >= 0)) {
      throw new RangeError(
        `Cannot create client session: maxQueued ${this.#maxQueued} is negative`,
      );
    }
    // The flow's own queue never drops here: publish checks the bound first and rejects instead.
    this.#outbound = new OutboundFlow({
      maxInflight: this.#maxInflight,
      maxQueued: this.#maxQueued,
    });
  }

  /** Where the session is. */
  get state(): ClientSessionState {
    return this.#state;
  }

  /** The client identifier; in MQTT 5.0 the one the server assigned, once it did. */
  get clientId(): string {
    return this.#clientId;
  }

  /** The protocol level of the current (or last) connection. */
  get protocolVersion(): ProtocolVersion {
    return this.#version;
  }

  /** QoS 1/2 messages awaiting acknowledgement. */
  get inflightCount(): number {
    return this.#outbound.inflightCount;
  }

  /** Messages held behind the window or for the next connection. */
  get queuedCount(): number {
    return this.#outbound.queuedCount + this.#queued0.length;
  }

  /** With `manualAcks`: received QoS 1/2 messages whose acknowledgement waits for `accept`. */
  get unacceptedCount(): number {
    return this.#unaccepted.size;
  }

  /** The filters the session resubscribes to when the server has lost them. */
  subscriptions(): Subscription[] {
    return [...this.#subscriptions.values()].map((h) => h.sub);
  }

  /** Returns and forgets the actions produced so far. */
  takeActions(): ClientAction[] {
    const out = this.#actions;
    this.#actions = [];
    return out;
  }

  /**
   * The time (same clock as `now`) at which {@linkcode tick} has work to do: the CONNACK deadline,
   * the next PINGREQ, or the PINGRESP deadline.
   *
   * @returns the deadline, or `undefined` when no timer is needed
   */
  nextDeadline(): number | undefined {
    if (this.#state === "connecting") return this.#connackDeadline;
    if (this.#state !== "connected" || this.#keepAliveMs === 0) return undefined;
    if (this.#pingSentAt !== undefined) return this.#pingSentAt + this.#pingTimeoutMs;
    return Math.min(this.#lastSent, this.#lastReceived) + this.#keepAliveMs;
  }

  /**
   * Starts a connection: emits CONNECT. The transport must already be open.
   *
   * @param now the current time in milliseconds
   * @param params the CONNECT fields for a connection the application asked for; omitted for an
   *   automatic reconnect, which reuses the last ones and restores the session
   * @param authData MQTT 5.0 enhanced authentication: the Authentication Data for this attempt
   *   (a fresh one per connection, as challenge/response methods need)
   * @returns the token settled by CONNACK (resolved with a {@linkcode ConnackResult})
   * @throws {Error} when already connecting or connected
   * @throws {RangeError} when the protocol version or keepalive is out of range
   */
  connect(now: number, params?: ConnectParams, authData?: Uint8Array): number {
    if (this.#state !== "disconnected") {
      throw new Error(`Cannot connect: session is already ${this.#state}`);
    }
    this.#now = now;
    this.#resume = params === undefined;
    if (params !== undefined) {
      const version = params.protocolVersion ?? 4;
      if (version !== 3 && version !== 4 && version !== 5) {
        throw new RangeError(`Cannot connect: protocol version ${version} is not 3, 4 or 5`);
      }
      const keepAlive = params.keepAlive ?? 60;
      if (!(Number.isInteger(keepAlive) && keepAlive >= 0 && keepAlive <= 65535)) {
        throw new RangeError(`Cannot connect: keepalive ${keepAlive} is not 0-65535 seconds`);
      }
      this.#params = params;
      if (params.clean ?? true) {
        // A clean session discards the previous one on both sides [MQTT-3.1.2-6].
        this.#forgetInbound();
        this.#subscriptions.clear();
      }
    }
    const p = this.#params;
    this.#version = p.protocolVersion ?? 4;
    this.#setKeepAlive(p.keepAlive ?? 60);
    const packet: ConnectPacket = {
      type: PacketType.CONNECT,
      // Level 3 is MQTT 3.1, which names itself "MQIsdp".
      protocolName: this.#version === 3 ? "MQIsdp" : "MQTT",
      protocolVersion: this.#version,
      clean: p.clean ?? true,
      keepAlive: p.keepAlive ?? 60,
      clientId: this.#clientId,
    };
    if (p.will !== undefined) packet.will = p.will;
    if (p.username !== undefined) packet.username = p.username;
    if (p.password !== undefined) packet.password = p.password;
    this.#resetConnection(p);
    if (this.#version === 5) {
      const properties: Properties = { ...p.properties };
      if (authData !== undefined && this.#authMethod !== undefined) {
        properties.authenticationData = authData;
      }
      if (Object.keys(properties).length > 0) packet.properties = properties;
    }
    this.#state = "connecting";
    this.#connackDeadline = now + (p.connectTimeout ?? 60_000);
    this.#pingSentAt = undefined;
    this.#lastReceived = now;
    const token = this.#nextToken++;
    this.#connectToken = token;
    this.#send(packet);
    return token;
  }

  /**
   * Feeds one packet decoded from the server.
   *
   * @param packet the packet
   * @param now the current time in milliseconds
   */
  handlePacket(packet: Packet, now: number): void {
    this.#now = now;
    if (this.#state === "disconnected") return; // late bytes from a connection already given up
    this.#lastReceived = now;
    // Any packet proves the link works, so an outstanding PINGREQ no longer needs its answer.
    this.#pingSentAt = undefined;
    if (this.#state === "connecting") {
      if (packet.type === PacketType.AUTH && this.#version === 5) {
        this.#onAuth(packet);
        return;
      }
      if (packet.type !== PacketType.CONNACK) {
        // The first packet from the server MUST be CONNACK [MQTT-3.2.0-1].
        this.#protocolError(`Expected CONNACK, received packet type ${packet.type}`);
        return;
      }
      this.#onConnack(packet.sessionPresent, packet.reasonCode, packet.properties);
      return;
    }
    switch (packet.type) {
      case PacketType.PUBLISH:
        this.#onPublish(packet);
        return;
      case PacketType.PUBACK:
        this.#onAck(packet.packetId, "puback", packet.reasonCode, packet.properties);
        return;
      case PacketType.PUBREC:
        this.#onAck(packet.packetId, "pubrec", packet.reasonCode, packet.properties);
        return;
      case PacketType.PUBCOMP:
        this.#onAck(packet.packetId, "pubcomp", packet.reasonCode, packet.properties);
        return;
      case PacketType.PUBREL:
        // Forget the id and answer PUBCOMP even for an unknown id: our PUBCOMP may have been lost
        // and the server is retrying [MQTT-4.3.3-2]. A PUBREL before our PUBREC is the server's
        // error; the message stays with the application, and its PUBREC is no longer wanted.
        if (this.#unaccepted.get(packet.packetId)?.qos === 2) {
          this.#unaccepted.delete(packet.packetId);
        }
        this.#send(receivePubrel(this.#inbound, packet.packetId));
        return;
      case PacketType.SUBACK:
        this.#onSuback(packet.packetId, packet.reasonCodes, packet.properties);
        return;
      case PacketType.UNSUBACK:
        this.#onUnsuback(packet.packetId, packet.reasonCodes, packet.properties);
        return;
      case PacketType.PINGRESP: {
        const tokens = this.#pingTokens;
        this.#pingTokens = [];
        for (const token of tokens) this.#actions.push({ type: "resolve", token });
        return;
      }
      case PacketType.DISCONNECT:
        if (this.#version === 5) {
          const code = packet.reasonCode ?? 0;
          this.#lose(
            "server_disconnect",
            `Server sent DISCONNECT: ${
              reasonText(code, PacketType.DISCONNECT, packet.properties?.reasonString)
            }`,
            "connection_lost",
            { reasonCode: code, properties: packet.properties },
          );
          return;
        }
        this.#protocolError("Server sent DISCONNECT, which MQTT 3.1.1 does not allow");
        return;
      case PacketType.AUTH:
        if (this.#version === 5) {
          this.#onAuth(packet);
          return;
        }
        this.#protocolError("Server sent AUTH, which MQTT 3.1.1 does not allow");
        return;
      case PacketType.CONNACK:
        // A second CONNACK is a protocol violation [MQTT-3.2.0-1].
        this.#protocolError("Server sent a second CONNACK");
        return;
      default:
        this.#protocolError(`Server sent packet type ${packet.type}, which only clients send`);
    }
  }

  /**
   * Publishes a message. QoS 0 resolves as soon as it is sent; QoS 1 on PUBACK; QoS 2 on PUBCOMP.
   * While offline (or while the window is full) the message is held, up to `maxQueued`.
   *
   * @param message the message; its payload is kept by reference until sent
   * @param now the current time in milliseconds
   * @returns the token settled when the QoS flow completes
   */
  publish(message: OutgoingMessage, now: number): number {
    this.#now = now;
    const token = this.#nextToken++;
    const pending: Pending = { ...message, token };
    if (message.qos === 0) {
      if (this.#state === "connected") {
        this.#sendQos0(pending);
      } else if (this.#queued0.length >= this.#maxQueued) {
        this.#rejectFull(token);
      } else {
        this.#queued0.push(pending);
      }
      return token;
    }
    const flow = this.#outbound;
    const mustQueue = flow.inflightCount >= flow.maxInflight || flow.queuedCount > 0;
    if (mustQueue && flow.queuedCount >= this.#maxQueued) {
      this.#rejectFull(token);
      return token;
    }
    const entry = flow.offer(pending, message.qos);
    if (entry !== undefined) {
      this.#tokensById.set(entry.packetId, token);
      if (this.#state === "connected") this.#sendEntry(entry);
    }
    return token;
  }

  /**
   * MQTT 5.0 enhanced authentication: answers the server's AUTH (Continue authentication) with
   * the next step of the exchange.
   *
   * @param data the Authentication Data of the answer
   * @param now the current time in milliseconds
   */
  authContinue(data: Uint8Array | undefined, now: number): void {
    this.#now = now;
    if (this.#state === "disconnected" || this.#authMethod === undefined) return;
    this.#send(this.#authPacket(0x18, data));
  }

  /**
   * MQTT 5.0: starts a re-authentication with the method of the CONNECT [MQTT-4.12.1-1]: sends
   * AUTH with Re-authenticate (0x19). The server answers with AUTH Continue authentication
   * (an `"auth"` action, answered with {@linkcode authContinue}) until it sends AUTH Success,
   * or DISCONNECT when it refuses.
   *
   * @param data the Authentication Data to start with
   * @param now the current time in milliseconds
   * @returns the token resolved by AUTH Success, rejected when the connection ends first
   */
  reauthenticate(data: Uint8Array | undefined, now: number): number {
    this.#now = now;
    const token = this.#nextToken++;
    const problem = this.#state !== "connected"
      ? "client is not connected"
      : this.#authMethod === undefined
      ? "the connection was not made with an authentication method"
      : this.#reauthToken !== undefined
      ? "a re-authentication is already in progress"
      : undefined;
    if (problem !== undefined) {
      this.#reject(token, "connection_lost", `Cannot re-authenticate: ${problem}`);
      return token;
    }
    this.#reauthToken = token;
    this.#send(this.#authPacket(0x19, data));
    return token;
  }

  /**
   * Ends the connection because the application found a fault (a malformed packet from the
   * server, a failed authentication step): in MQTT 5.0 sends DISCONNECT with `reasonCode` first
   * [MQTT-4.13.1-1], then closes.
   *
   * @param reasonCode the DISCONNECT reason code (MQTT 5.0)
   * @param message why, for the close action
   * @param now the current time in milliseconds
   */
  abort(reasonCode: number, message: string, now: number): void {
    this.#now = now;
    if (this.#state === "disconnected") return;
    this.#fail("aborted", message, reasonCode);
  }

  /**
   * Subscribes. Sent now when connected, else after the next CONNACK.
   *
   * @param subscriptions the filters and their options
   * @param now the current time in milliseconds
   * @param properties MQTT 5.0 SUBSCRIBE properties
   * @returns the token resolved with the SUBACK return codes (0x80 and above: refused)
   * @throws {TypeError} when the list is empty [MQTT-3.8.3-3]
   */
  subscribe(subscriptions: Subscription[], now: number, properties?: Properties): number {
    if (subscriptions.length === 0) {
      throw new TypeError("Cannot subscribe: the list of topic filters is empty");
    }
    this.#now = now;
    const packet: SubscribePacket = {
      type: PacketType.SUBSCRIBE,
      packetId: this.#outbound.reserveId(),
      subscriptions: subscriptions.map((s) => ({ ...s })),
    };
    if (properties !== undefined && this.#version === 5) packet.properties = properties;
    return this.#request(packet);
  }

  /**
   * Unsubscribes. Sent now when connected, else after the next CONNACK.
   *
   * @param topics the filters
   * @param now the current time in milliseconds
   * @param properties MQTT 5.0 UNSUBSCRIBE properties (user properties)
   * @returns the token resolved with the UNSUBACK reason codes (MQTT 5.0) or `[]`
   * @throws {TypeError} when the list is empty [MQTT-3.10.3-2]
   */
  unsubscribe(topics: string[], now: number, properties?: Properties): number {
    if (topics.length === 0) {
      throw new TypeError("Cannot unsubscribe: the list of topic filters is empty");
    }
    this.#now = now;
    const packet: UnsubscribePacket = {
      type: PacketType.UNSUBSCRIBE,
      packetId: this.#outbound.reserveId(),
      topics: [...topics],
    };
    if (properties !== undefined && this.#version === 5) packet.properties = properties;
    return this.#request(packet);
  }

  /**
   * Acknowledges a received message the application has now taken (with `manualAcks`): PUBACK
   * for QoS 1, PUBREC for QoS 2, both carrying ownership to the client [MQTT-4.3.2-2]
   * [MQTT-4.3.3-2]. Call it in the order the messages were delivered, so the acknowledgements
   * keep the order of the PUBLISH packets [MQTT-4.6.0-2] [MQTT-4.6.0-3]. A QoS 0 message, one
   * accepted already, or one from a session the server has since discarded needs nothing.
   * Accepted while offline, the acknowledgement answers the server's resend after the reconnect.
   *
   * @param message the message exactly as delivered
   * @param now the current time in milliseconds
   */
  accept(message: ApplicationMessage, now: number): void {
    const packetId = message.packetId;
    if (packetId === undefined || this.#unaccepted.get(packetId) !== message) return;
    this.#now = now;
    this.#unaccepted.delete(packetId);
    if (message.qos === 1) this.#unacceptedQos1--;
    if (this.#state === "connected") {
      this.#send({ type: message.qos === 1 ? PacketType.PUBACK : PacketType.PUBREC, packetId });
    } else if (message.qos === 1) {
      this.#acceptedOffline.add(packetId);
    }
    // QoS 2 accepted offline: the id stays in the inbound set, so the resend gets its PUBREC.
  }

  /**
   * Sends PINGREQ.
   *
   * @param now the current time in milliseconds
   * @returns the token resolved by the next PINGRESP, rejected when not connected
   */
  ping(now: number): number {
    this.#now = now;
    const token = this.#nextToken++;
    if (this.#state !== "connected") {
      this.#actions.push({
        type: "reject",
        token,
        reason: "connection_lost",
        message: "Cannot ping: client is not connected",
      });
      return token;
    }
    this.#pingTokens.push(token);
    this.#sendPing(now);
    return token;
  }

  /**
   * Advances time: sends PINGREQ when the connection has been quiet for the keepalive, closes it
   * when PINGRESP or CONNACK is overdue.
   *
   * @param now the current time in milliseconds
   */
  tick(now: number): void {
    this.#now = now;
    if (this.#state === "connecting") {
      if (now >= this.#connackDeadline) {
        const ms = this.#params.connectTimeout ?? 60_000;
        this.#lose(
          "connack_timeout",
          `No CONNACK within the connect timeout (${ms} ms)`,
          "timeout",
        );
      }
      return;
    }
    if (this.#state !== "connected" || this.#keepAliveMs === 0) return;
    if (this.#pingSentAt !== undefined) {
      // A client SHOULD close the connection when PINGRESP does not come in reasonable time.
      if (now - this.#pingSentAt >= this.#pingTimeoutMs) {
        this.#lose(
          "keepalive_timeout",
          `No response to PINGREQ within ${this.#pingTimeoutMs} ms`,
        );
      }
      return;
    }
    // The client MUST ping when it has sent nothing for the keepalive [MQTT-3.1.2-23]; it also
    // pings when it has heard nothing for that long, which finds a dead link while it only sends.
    if (
      now - this.#lastSent >= this.#keepAliveMs || now - this.#lastReceived >= this.#keepAliveMs
    ) {
      this.#sendPing(now);
    }
  }

  /**
   * Ends the connection on the application's request: emits DISCONNECT when connected (so the
   * server discards the will [MQTT-3.14.4-3]). Held messages stay for a later connect; call
   * {@linkcode abandon} to fail them.
   *
   * @param now the current time in milliseconds
   * @param options MQTT 5.0: the reason code (0x00 normal, 0x04 send the will) and DISCONNECT
   *   properties (session expiry interval, reason string, user properties)
   */
  disconnect(now: number, options: { reasonCode?: number; properties?: Properties } = {}): void {
    this.#now = now;
    if (this.#state === "connected") {
      const packet: Packet = { type: PacketType.DISCONNECT };
      if (this.#version === 5) {
        if (options.reasonCode !== undefined) packet.reasonCode = options.reasonCode;
        if (options.properties !== undefined) packet.properties = options.properties;
        const max = this.#serverMaxPacket;
        if (
          max !== undefined && packet.properties !== undefined && encodedLength(packet, 5) > max
        ) {
          // Reason string and user properties are left out rather than exceed the server's
          // Maximum Packet Size [MQTT-3.14.2-3] [MQTT-3.14.2-4].
          const { reasonString: _r, userProperties: _u, ...rest } = packet.properties;
          packet.properties = rest;
        }
      }
      this.#send(packet);
    }
    this.connectionLost();
  }

  /**
   * Tells the core the connection is gone. In-flight and held messages stay, to be resent after
   * the next CONNACK; connect and ping requests are rejected. Idempotent.
   */
  connectionLost(): void {
    if (this.#state === "disconnected") return;
    this.#state = "disconnected";
    this.#pingSentAt = undefined;
    this.#resendLater = [];
    if (this.#connectToken !== undefined) {
      this.#reject(this.#connectToken, "connection_lost", "Connection closed before CONNACK");
      this.#connectToken = undefined;
    }
    const pings = this.#pingTokens;
    this.#pingTokens = [];
    for (const token of pings) {
      this.#reject(token, "connection_lost", "Connection closed before PINGRESP");
    }
    if (this.#reauthToken !== undefined) {
      this.#reject(this.#reauthToken, "connection_lost", "Connection closed before AUTH Success");
      this.#reauthToken = undefined;
    }
  }

  /**
   * Drops every held and in-flight request, for a client that gives up or is closed. Call when
   * disconnected. The caller fails the returned tokens itself (no actions are produced).
   *
   * @returns the tokens of every request that has not settled
   */
  abandon(): number[] {
    const tokens: number[] = [];
    for (const m of this.#outbound.clear()) tokens.push(m.token);
    for (const m of this.#queued0) tokens.push(m.token);
    for (const [id, r] of this.#requests) {
      this.#outbound.releaseId(id);
      if (r.token !== undefined) tokens.push(r.token);
    }
    tokens.push(...this.#pingTokens);
    if (this.#connectToken !== undefined) tokens.push(this.#connectToken);
    if (this.#reauthToken !== undefined) tokens.push(this.#reauthToken);
    this.#reauthToken = undefined;
    this.#queued0 = [];
    this.#requests.clear();
    this.#tokensById.clear();
    this.#pingTokens = [];
    this.#connectToken = undefined;
    return tokens;
  }

  #setKeepAlive(seconds: number): void {
    this.#keepAliveMs = seconds * 1000;
    this.#pingTimeoutMs = this.#params.pingTimeout ?? Math.max(this.#keepAliveMs / 2, 1);
  }

  #onConnack(sessionPresent: boolean, code: number, properties: Properties | undefined): void {
    const token = this.#connectToken!;
    this.#connectToken = undefined;
    const refused = this.#version === 5 ? code >= 0x80 : code !== 0;
    if (refused) {
      this.#state = "disconnected";
      const reject: ClientAction = {
        type: "reject",
        token,
        reason: "refused",
        returnCode: code,
        message: this.#version === 5
          ? `Server refused the connection: ${
            reasonText(code, PacketType.CONNACK, properties?.reasonString)
          }`
          : `Server refused the connection (return code 0x${hex(code)})`,
      };
      if (properties !== undefined) reject.properties = properties;
      this.#actions.push(reject);
      // The server closes after a refusing CONNACK [MQTT-3.2.2-5]; close our side too.
      this.#actions.push({
        type: "close",
        reason: "refused",
        message: `Connection refused (0x${hex(code)})`,
      });
      return;
    }
    this.#state = "connected";
    if (this.#version === 5 && properties !== undefined) this.#applyServerLimits(properties);
    const value: ConnackResult = { sessionPresent, returnCode: code };
    if (properties !== undefined) value.properties = properties;
    this.#actions.push({ type: "resolve", token, value });
    if (!sessionPresent) {
      // The server holds no session: packet ids it had seen from us in QoS 2 are forgotten, and
      // so are acknowledgements we still owed it.
      this.#forgetInbound();
      if (this.#resume) this.#resubscribe();
    }
    // Requests that never got their ack go again, in order.
    for (const request of this.#requests.values()) this.#send(request.packet);
    // Unacknowledged PUBLISH (with DUP) and PUBREL go again with their original ids, in their
    // original order [MQTT-4.4.0-1] [MQTT-4.6.0-1].
    // A server whose Receive Maximum is now below what we have in flight gets the rest as
    // acknowledgements make room [MQTT-3.3.4-7].
    this.#resendLater = [];
    let resent = 0;
    for (const entry of this.#outbound.inflight()) {
      if (resent < this.#outbound.maxInflight) {
        this.#sendEntry(entry);
        resent++;
      } else {
        this.#resendLater.push(entry);
      }
    }
    this.#pump();
    const held = this.#queued0;
    this.#queued0 = [];
    for (const m of held) this.#sendQos0(m);
  }

  /** Per connection: forgets the last connection's server limits and topic aliases. */
  #resetConnection(p: ConnectParams): void {
    this.#outbound.setMaxInflight(this.#maxInflight);
    this.#serverMaxPacket = undefined;
    this.#serverMaxQos = 2;
    this.#serverRetain = true;
    this.#outAliases = undefined;
    // Mappings never carry over to a new connection [MQTT-3.3.2-7].
    const v5 = this.#version === 5 ? p.properties : undefined;
    this.#inAliases = new InboundTopicAliases(v5?.topicAliasMaximum ?? 0);
    this.#receiveMaximum = v5?.receiveMaximum ?? 65535;
    this.#authMethod = v5?.authenticationMethod;
  }

  /** MQTT 5.0: what the CONNACK says about the server and this connection. */
  #applyServerLimits(p: Properties): void {
    if (p.assignedClientIdentifier !== undefined) {
      // Reconnects must present the id the server assigned, or the session is lost.
      this.#clientId = p.assignedClientIdentifier;
    }
    if (p.serverKeepAlive !== undefined) {
      // The server's keepalive replaces ours [MQTT-3.2.2-21].
      this.#setKeepAlive(p.serverKeepAlive);
    }
    if (p.receiveMaximum !== undefined) {
      // No more QoS 1/2 PUBLISH unacknowledged than the server accepts [MQTT-3.3.4-7].
      this.#outbound.setMaxInflight(Math.min(this.#maxInflight, p.receiveMaximum));
    }
    this.#serverMaxPacket = p.maximumPacketSize;
    if (p.maximumQoS !== undefined) this.#serverMaxQos = p.maximumQoS as QoS;
    this.#serverRetain = p.retainAvailable !== 0;
    if (this.#topicAliases && (p.topicAliasMaximum ?? 0) > 0) {
      this.#outAliases = new OutboundTopicAliases(p.topicAliasMaximum!);
    }
  }

  /** MQTT 5.0 AUTH from the server, during CONNECT or a re-authentication. */
  #onAuth(packet: AuthPacket): void {
    const code = packet.reasonCode ?? 0;
    if (this.#authMethod === undefined) {
      // Without an Authentication Method in CONNECT there is no exchange to take part in.
      this.#protocolError("Server sent AUTH, but CONNECT named no authentication method");
      return;
    }
    const method = packet.properties?.authenticationMethod;
    if (method !== this.#authMethod) {
      this.#protocolError(
        `Server sent AUTH for method "${method}", not "${this.#authMethod}" of the CONNECT`,
      );
      return;
    }
    if (code === 0x18) {
      const action: ClientAction = { type: "auth", reasonCode: code };
      if (packet.properties !== undefined) action.properties = packet.properties;
      this.#actions.push(action);
      return;
    }
    if (code === 0x00 && this.#state === "connected" && this.#reauthToken !== undefined) {
      const token = this.#reauthToken;
      this.#reauthToken = undefined;
      this.#actions.push({ type: "resolve", token, value: packet.properties ?? {} });
      return;
    }
    this.#protocolError(`Server sent AUTH with ${reasonText(code, PacketType.AUTH)} out of turn`);
  }

  #authPacket(code: number, data: Uint8Array | undefined): AuthPacket {
    const properties: Properties = { authenticationMethod: this.#authMethod! };
    if (data !== undefined) properties.authenticationData = data;
    return { type: PacketType.AUTH, reasonCode: code, properties };
  }

  #resubscribe(): void {
    // Filters made with the same SUBSCRIBE properties (subscription identifier) go together.
    const groups = new Map<string, Held[]>();
    for (const held of this.#subscriptions.values()) {
      const key = held.properties === undefined ? "" : JSON.stringify(held.properties);
      const group = groups.get(key);
      if (group === undefined) groups.set(key, [held]);
      else group.push(held);
    }
    for (const all of groups.values()) {
      for (let i = 0; i < all.length; i += RESUBSCRIBE_CHUNK) {
        const packetId = this.#outbound.reserveId();
        const chunk = all.slice(i, i + RESUBSCRIBE_CHUNK);
        const packet: SubscribePacket = {
          type: PacketType.SUBSCRIBE,
          packetId,
          subscriptions: chunk.map((h) => h.sub),
        };
        if (chunk[0]!.properties !== undefined) packet.properties = chunk[0]!.properties;
        this.#requests.set(packetId, { token: undefined, packet });
      }
    }
  }

  #onPublish(packet: PublishPacket): void {
    let topic = packet.topic;
    let properties = packet.properties;
    if (properties?.topicAlias !== undefined) {
      const resolved = this.#inAliases.resolve(topic, properties.topicAlias);
      if (typeof resolved !== "string") {
        this.#protocolError(resolved.message, resolved.reasonCode);
        return;
      }
      topic = resolved;
      // The alias belongs to this connection; the application sees the topic name.
      const { topicAlias: _, ...rest } = properties;
      properties = Object.keys(rest).length > 0 ? rest : undefined;
    }
    if (
      packet.qos > 0 && this.#version === 5 && this.#isNewInbound(packet) &&
      this.#inbound.size + this.#unacceptedQos1 >= this.#receiveMaximum
    ) {
      // The server may not have more QoS 1/2 messages unacknowledged with us than our Receive
      // Maximum [MQTT-3.3.4-9].
      this.#protocolError(
        `Server sent more than ${this.#receiveMaximum} unacknowledged QoS 1/2 messages ` +
          "(Receive Maximum) [MQTT-3.3.4-9]",
        0x93,
      );
      return;
    }
    const message: ApplicationMessage = {
      topic,
      payload: packet.payload,
      qos: packet.qos,
      retain: packet.retain,
      dup: packet.dup,
    };
    if (packet.packetId !== undefined) message.packetId = packet.packetId;
    if (properties !== undefined) message.properties = properties;
    if (packet.qos === 0) {
      this.#actions.push({ type: "deliver", message });
      return;
    }
    const packetId = packet.packetId!;
    if (this.#manualAcks) {
      this.#onPublishHeld(message, packetId);
      return;
    }
    // QoS 1 is delivered on every receipt, duplicates included (at least once) [MQTT-4.3.2-2];
    // QoS 2 once, however often the server resends before PUBREL [MQTT-4.3.3-2].
    const { deliver, reply } = receivePublish(this.#inbound, packet.qos, packetId);
    if (deliver) this.#actions.push({ type: "deliver", message });
    this.#send(reply);
  }

  /** A QoS 1/2 PUBLISH whose acknowledgement waits for {@linkcode accept}. */
  #onPublishHeld(message: ApplicationMessage, packetId: number): void {
    if (this.#unaccepted.has(packetId)) {
      // The server resends a message the application has not taken yet (after a reconnect): the
      // id is not free until we acknowledge it [MQTT-2.3.1-4], so this is the same message. Its
      // PUBACK or PUBREC goes out when the first copy is taken; no second copy is delivered.
      return;
    }
    if (message.qos === 1) {
      if (this.#acceptedOffline.delete(packetId)) {
        // Taken while we were offline: this resend only needs its PUBACK.
        this.#send({ type: PacketType.PUBACK, packetId });
        return;
      }
      this.#unaccepted.set(packetId, message);
      this.#unacceptedQos1++;
      this.#actions.push({ type: "deliver", message });
      return;
    }
    if (this.#inbound.receive(packetId)) {
      this.#unaccepted.set(packetId, message);
      this.#actions.push({ type: "deliver", message });
      return;
    }
    // Accepted already: until PUBREL, every resend gets PUBREC and is not delivered again
    // [MQTT-4.3.3-2].
    this.#send({ type: PacketType.PUBREC, packetId });
  }

  /** The server's session is gone: nothing we received from it is owed an acknowledgement. */
  #forgetInbound(): void {
    this.#inbound.clear();
    this.#unaccepted.clear();
    this.#unacceptedQos1 = 0;
    this.#acceptedOffline.clear();
  }

  /** Whether a QoS 1/2 PUBLISH is a new message rather than a resend of one still unacked. */
  #isNewInbound(packet: PublishPacket): boolean {
    const id = packet.packetId!;
    if (packet.qos === 2) return !this.#inbound.has(id);
    if (!this.#manualAcks) return true; // acknowledged at once: never counts
    return !this.#unaccepted.has(id) && !this.#acceptedOffline.has(id);
  }

  #onAck(
    packetId: number,
    kind: "puback" | "pubrec" | "pubcomp",
    code: number | undefined,
    properties: Properties | undefined,
  ): void {
    const failed = this.#version === 5 && code !== undefined && code >= 0x80;
    const outcome = receiveAck(this.#outbound, kind, packetId, failed);
    if (outcome.kind === "pubrel") {
      if (this.#version === 5 && !this.#pubrecs.has(packetId)) {
        const value: PublishResult = { reasonCode: code ?? 0 };
        if (properties !== undefined) value.properties = properties;
        this.#pubrecs.set(packetId, value);
      }
      this.#send(outcome.reply);
      return;
    }
    if (outcome.kind === "violation") {
      // Answering a QoS 1 PUBLISH with PUBREC, a QoS 2 one with PUBACK, and so on, is a protocol
      // violation: close the connection, as Mosquitto does [MQTT-4.8.0-1]. The message stays in
      // flight and is resent on the next connection.
      this.#protocolError(`Server sent ${outcome.reason}`);
      return;
    }
    if (outcome.kind === "unknown") {
      // A PUBREC for a flow we no longer hold: release it so the server can finish too.
      if (kind === "pubrec") this.#send({ type: PacketType.PUBREL, packetId });
      this.#actions.push({
        type: "unsolicited",
        kind,
        packetId,
        message: `Ignored ${outcome.reason}`,
      });
      return;
    }
    const token = this.#tokensById.get(packetId);
    this.#tokensById.delete(packetId);
    if (token !== undefined) {
      const type = kind === "puback" ? PacketType.PUBACK : PacketType.PUBREC;
      if (failed) {
        const reject: ClientAction = {
          type: "reject",
          token,
          reason: "refused",
          returnCode: code,
          message: `Server refused the message: ${
            reasonText(code!, type, properties?.reasonString)
          }`,
        };
        if (properties !== undefined) reject.properties = properties;
        this.#actions.push(reject);
      } else {
        if (this.#version !== 5) {
          this.#actions.push({ type: "resolve", token });
        } else {
          // QoS 2 completes on PUBCOMP, but the PUBREC said how the server took the message.
          let value: PublishResult | undefined = this.#pubrecs.get(packetId);
          if (value === undefined) {
            value = { reasonCode: code ?? 0 };
            if (properties !== undefined) value.properties = properties;
          }
          this.#actions.push({ type: "resolve", token, value });
        }
      }
    }
    this.#pubrecs.delete(packetId);
    this.#pump();
  }

  #onSuback(packetId: number, codes: number[], properties: Properties | undefined): void {
    const request = this.#requests.get(packetId);
    if (request === undefined || request.packet.type !== PacketType.SUBSCRIBE) return;
    this.#requests.delete(packetId);
    this.#outbound.releaseId(packetId);
    const subs = request.packet.subscriptions;
    for (let i = 0; i < subs.length; i++) {
      const sub = subs[i]!;
      const code = codes[i];
      if (code !== undefined && code < 0x80) {
        const held: Held = { sub };
        if (request.packet.properties !== undefined) held.properties = request.packet.properties;
        this.#subscriptions.set(sub.topic, held);
      } else this.#subscriptions.delete(sub.topic);
    }
    if (request.token !== undefined) this.#resolveAck(request.token, codes, properties);
  }

  #onUnsuback(
    packetId: number,
    codes: number[] | undefined,
    properties: Properties | undefined,
  ): void {
    const request = this.#requests.get(packetId);
    if (request === undefined || request.packet.type !== PacketType.UNSUBSCRIBE) return;
    this.#requests.delete(packetId);
    this.#outbound.releaseId(packetId);
    for (const topic of request.packet.topics) this.#subscriptions.delete(topic);
    if (request.token !== undefined) this.#resolveAck(request.token, codes ?? [], properties);
  }

  /** Resolves a subscribe or unsubscribe with the ack's codes and (MQTT 5.0) properties. */
  #resolveAck(token: number, codes: number[], properties: Properties | undefined): void {
    const action: Extract<ClientAction, { type: "resolve" }> = {
      type: "resolve",
      token,
      value: codes,
    };
    if (properties !== undefined) action.properties = properties;
    this.#actions.push(action);
  }

  #request(packet: SubscribePacket | UnsubscribePacket): number {
    const token = this.#nextToken++;
    const max = this.#state === "connected" ? this.#serverMaxPacket : undefined;
    const size = max === undefined ? 0 : encodedLength(packet, 5);
    if (max !== undefined && size > max) {
      // Never larger than the server accepts [MQTT-3.2.2-15].
      this.#outbound.releaseId(packet.packetId);
      const what = packet.type === PacketType.SUBSCRIBE ? "subscribe" : "unsubscribe";
      this.#actions.push({
        type: "reject",
        token,
        reason: "not_allowed",
        returnCode: 0x95,
        message: `Cannot ${what}: the packet (${size} bytes) exceeds the server's Maximum Packet ` +
          `Size ${max} [MQTT-3.2.2-15]`,
      });
      return token;
    }
    this.#requests.set(packet.packetId, { token, packet });
    if (this.#state === "connected") this.#send(packet);
    return token;
  }

  #pump(): void {
    if (this.#state !== "connected") return;
    const flow = this.#outbound;
    while (
      this.#resendLater.length > 0 &&
      flow.inflightCount - this.#resendLater.length < flow.maxInflight
    ) {
      const entry = this.#resendLater.shift()!;
      if (flow.holds(entry)) this.#sendEntry(entry);
    }
    for (let entry = this.#outbound.next(); entry !== undefined; entry = this.#outbound.next()) {
      this.#tokensById.set(entry.packetId, entry.message.token);
      this.#sendEntry(entry);
    }
  }

  #sendEntry(entry: InflightEntry<Pending>): void {
    if (entry.state === "pubrel") {
      this.#send({ type: PacketType.PUBREL, packetId: entry.packetId });
      return;
    }
    // A PUBLISH sent before carries DUP on every resend [MQTT-3.3.1-1].
    const packet = this.#publishPacket(entry.message, entry.sent, entry.packetId, entry.qos);
    if (typeof packet === "string") {
      // Not sendable on this connection: take it out of the window and fail it.
      this.#outbound.acknowledge(entry.packetId, entry.qos === 1 ? "puback" : "pubrec", true);
      this.#tokensById.delete(entry.packetId);
      this.#notAllowed(entry.message.token, packet);
      return;
    }
    this.#send(packet);
    entry.sent = true;
  }

  /** Sends a QoS 0 message (connected) and settles it. */
  #sendQos0(m: Pending): void {
    const packet = this.#publishPacket(m, false, undefined);
    if (typeof packet === "string") {
      this.#notAllowed(m.token, packet);
      return;
    }
    this.#send(packet);
    this.#actions.push({ type: "resolve", token: m.token });
  }

  /**
   * The PUBLISH for a message on this connection, with a topic alias when they are on; or, in
   * MQTT 5.0, why the server's CONNACK forbids sending it (as a reason code text key).
   */
  #publishPacket(
    m: OutgoingMessage,
    dup: boolean,
    packetId: number | undefined,
    qos: QoS = m.qos,
  ): PublishPacket | string {
    const packet = publishPacket(m, dup, packetId, qos);
    if (this.#version !== 5) return packet;
    if (qos > this.#serverMaxQos) {
      // [MQTT-3.2.2-11]
      return `QoS ${qos} exceeds the server's Maximum QoS ${this.#serverMaxQos} [MQTT-3.2.2-11]`;
    }
    if (m.retain && !this.#serverRetain) {
      return "the server does not support retained messages (Retain Available 0) [MQTT-3.2.2-14]";
    }
    const max = this.#serverMaxPacket;
    const size = max === undefined ? 0 : encodedLength(packet, 5);
    if (max !== undefined && size > max) {
      return `the packet (${size} bytes) exceeds the server's Maximum Packet Size ${max} ` +
        "[MQTT-3.2.2-15]";
    }
    // An alias costs at most 4 bytes more the first time: skip it when that would not fit.
    if (this.#outAliases !== undefined && (max === undefined || size + 4 <= max)) {
      const { topic, alias } = this.#outAliases.alias(m.topic);
      if (alias !== undefined) {
        packet.topic = topic;
        packet.properties = { ...packet.properties, topicAlias: alias };
      }
    }
    return packet;
  }

  #notAllowed(token: number, why: string): void {
    const code = why.startsWith("QoS") ? 0x9b : why.includes("retained") ? 0x9a : 0x95;
    this.#actions.push({
      type: "reject",
      token,
      reason: "not_allowed",
      returnCode: code,
      message: `Cannot publish: ${why}`,
    });
  }

  #sendPing(now: number): void {
    this.#send({ type: PacketType.PINGREQ });
    if (this.#pingSentAt === undefined) this.#pingSentAt = now;
  }

  #send(packet: Packet): void {
    this.#lastSent = this.#now;
    this.#actions.push({ type: "send", packet });
  }

  #reject(token: number, reason: ClientFailure, message: string): void {
    this.#actions.push({ type: "reject", token, reason, message });
  }

  #rejectFull(token: number): void {
    this.#reject(
      token,
      "queue_full",
      `Cannot publish: ${this.#maxQueued} messages are already waiting for the connection`,
    );
  }

  /** A protocol violation by the server: in MQTT 5.0 DISCONNECT with `code` first. */
  #protocolError(message: string, code = 0x82): void {
    this.#fail("protocol_error", message, code);
  }

  #fail(reason: CloseReason, message: string, code: number): void {
    if (this.#version !== 5) {
      this.#lose(reason, message);
      return;
    }
    // The sender of a DISCONNECT with a reason code of 0x80 or more closes after it
    // [MQTT-4.13.1-1].
    this.#send({ type: PacketType.DISCONNECT, reasonCode: code });
    this.#lose(reason, message, "connection_lost", { reasonCode: code });
  }

  #lose(
    reason: CloseReason,
    message: string,
    failure: ClientFailure = "connection_lost",
    extra: { reasonCode?: number; properties?: Properties | undefined } = {},
  ): void {
    const close: ClientAction = { type: "close", reason, message };
    if (extra.reasonCode !== undefined) close.reasonCode = extra.reasonCode;
    if (extra.properties !== undefined) close.properties = extra.properties;
    // A server's DISCONNECT comes before the requests it fails, so that they can name it as
    // their cause (a re-authentication the server refused, with its reason code).
    if (reason === "server_disconnect") this.#actions.push(close);
    if (this.#connectToken !== undefined) {
      this.#reject(this.#connectToken, failure, message);
      this.#connectToken = undefined;
    }
    this.connectionLost();
    if (reason !== "server_disconnect") this.#actions.push(close);
  }
}

function publishPacket(
  m: OutgoingMessage,
  dup: boolean,
  packetId: number | undefined,
  qos: QoS = m.qos,
): PublishPacket {
  const packet: PublishPacket = {
    type: PacketType.PUBLISH,
    topic: m.topic,
    payload: m.payload,
    qos,
    retain: m.retain,
    dup,
  };
  if (packetId !== undefined) packet.packetId = packetId;
  if (m.properties !== undefined) packet.properties = m.properties;
  return packet;
}

function hex(code: number | undefined): string {
  return (code ?? 0).toString(16).padStart(2, "0");
}

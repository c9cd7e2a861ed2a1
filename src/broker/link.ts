/**
 * One connection as the broker core keeps it. The core creates it when the shell attaches a
 * connection ({@linkcode BrokerCore.attach}) and is the only one to write it; the shell holds it
 * to address the connection in its calls and reads it in actions. `handle` is the shell's own
 * object for the connection: the core carries it in actions and never calls into it.
 *
 * @module
 */

import type { EnhancedAuthState } from "./enhanced_auth.ts";
import type { ProtocolVersion } from "../packet/constants.ts";
import type { ConnectionInfo } from "../transport/types.ts";
import type { ClientInfo } from "./policy.ts";
import type { Session } from "./session.ts";
import type { Link5 } from "./link5.ts";

/** A connection as the shell sees the core's state of it: read-only. */
export interface Link {
  /** A number unique among the core's links, for logs and maps. */
  readonly id: number;
  /** The shell's object for the connection, opaque to the core. */
  readonly handle: unknown;
  /** The transport's description of the peer. */
  readonly info: ConnectionInfo;
  /** The session once CONNECT is accepted. */
  readonly session: Session | undefined;
  /** Client details once CONNECT is accepted. */
  readonly client: ClientInfo | undefined;
  /** Whether the core closed the link or was told that it is closing. */
  readonly closing: boolean;
  /** The MQTT 5.0 state of an accepted level-5 CONNECT; undefined at 3.1/3.1.1. */
  readonly v5: Link5 | undefined;
}

// The bits of `LinkState`'s flags.
const CERT_CN = 1;
const CONNECTED = 2;
const CLOSING = 4;
const BLOCKED = 8;
/** Where the protocol level (3, 4 or 5) is kept in the flags: `(flags >> VERSION_SHIFT) & 7`. */
const VERSION_SHIFT = 4;
const VERSION_BITS = 7 << VERSION_SHIFT;

/** The core's state of one connection. Written by the core only. */
export class LinkState implements Link {
  readonly id: number;
  readonly handle: unknown;
  readonly info: ConnectionInfo;
  /** The MQTT 5.0 state, set when a level-5 CONNECT is accepted. */
  v5: Link5 | undefined = undefined;
  session: Session | undefined;
  client: ClientInfo | undefined;
  /** MQTT 5.0 enhanced authentication, when the CONNECT named an Authentication Method. */
  auth: EnhancedAuthState | undefined = undefined;
  /**
   * When the link is closed for silence: ms since the core's time base, -1 for never (see
   * `_link_clock.ts`: a small integer, not a 16-byte box per link as ms since epoch would be).
   */
  deadline = -1;
  /** The deadline last told to the shell in a `deadline` action, kept as `deadline`. */
  announced = -1;
  /** The keepalive allowance in ms (1.5 x the client's keepalive), 0 when off. */
  keepAliveMs = 0;
  /**
   * The Maximum Packet Size of a 5.0 CONNECT, for what is sent before `v5` exists (a refusing
   * CONNACK's reason string is left out where it would not fit [MQTT-3.2.2-19]).
   */
  maximumPacketSize: number | undefined = undefined;
  /** Bytes queued and being written, as the shell last reported them. */
  pendingBytes = 0;
  /** Its index in the core's set of links (see `_slot_set.ts`), -1 outside it. */
  slot = -1;
  /** The id of the plugin decision the link waits for (its later packets wait behind it), 0: none. */
  waitingFor = 0;
  /**
   * Four booleans and the protocol level in one field (8 bytes, not 40: memory per idle
   * connection), read and written through the accessors below.
   */
  #flags = 4 << VERSION_SHIFT;

  /** The protocol level of the CONNECT (4 until one is handled). */
  get protocolVersion(): ProtocolVersion {
    return ((this.#flags & VERSION_BITS) >> VERSION_SHIFT) as ProtocolVersion;
  }
  set protocolVersion(version: ProtocolVersion) {
    this.#flags = (this.#flags & ~VERSION_BITS) | (version << VERSION_SHIFT);
  }

  /** Mutual TLS: the peer certificate's CN replaces the CONNECT username. */
  get certCnAsUsername(): boolean {
    return (this.#flags & CERT_CN) !== 0;
  }

  /** Whether CONNECT has been processed (accepted or refused). */
  get connected(): boolean {
    return (this.#flags & CONNECTED) !== 0;
  }
  set connected(value: boolean) {
    this.#flags = value ? this.#flags | CONNECTED : this.#flags & ~CONNECTED;
  }

  /** Whether the core closed the link or was told that it is closing. */
  get closing(): boolean {
    return (this.#flags & CLOSING) !== 0;
  }
  set closing(value: boolean) {
    this.#flags = value ? this.#flags | CLOSING : this.#flags & ~CLOSING;
  }

  /**
   * Whether the shell held back a QoS 1/2 PUBLISH for back-pressure: later ones wait in the
   * session until the shell reports that its output drained, so that they go out in order.
   */
  get blocked(): boolean {
    return (this.#flags & BLOCKED) !== 0;
  }
  set blocked(value: boolean) {
    this.#flags = value ? this.#flags | BLOCKED : this.#flags & ~BLOCKED;
  }

  /**
   * Creates the state of a new connection.
   *
   * @param id its number
   * @param handle the shell's object
   * @param info the transport's description of the peer
   * @param certCnAsUsername whether the certificate CN names the user
   */
  constructor(id: number, handle: unknown, info: ConnectionInfo, certCnAsUsername: boolean) {
    this.id = id;
    this.handle = handle;
    this.info = info;
    if (certCnAsUsername) this.#flags |= CERT_CN;
  }
}

/**
 * One raw benchmark connection: a socket on the library's packet channel (read loop, double-
 * buffered output that turns everything queued in one turn into one write), with packets cut by
 * their fixed header and read only for their type, packet identifier and payload offsets, never
 * fully decoded.
 *
 * @module
 */

import { encodePacket } from "@amqtt/amqtt/packet";
import type { ProtocolVersion, QoS } from "@amqtt/amqtt/packet";
import { PacketChannel, socketConnection } from "@amqtt/amqtt/transport";
import { type Frame, FrameDecoder } from "./_frames.ts";

/** Where and how to connect. */
export interface BenchTarget {
  host: string;
  port: number;
  /** Connect with TLS. */
  tls?: boolean;
  /** PEM CA certificates to trust for TLS, besides the system roots. */
  caCerts?: string[];
  /** MQTT protocol level: 3 (3.1) or 4 (3.1.1). */
  protocolVersion: 3 | 4;
  /** Keepalive in CONNECT, seconds (the load generator never pings; 0 turns it off). */
  keepAlive: number;
  clean: boolean;
  username?: string;
  password?: string;
  /**
   * Milliseconds to wait for the socket and the CONNACK (and for a SUBACK) before giving up;
   * default 30,000. A server that accepts and never answers must not hang a benchmark.
   */
  handshakeTimeoutMs?: number;
}

/** What the read loop reports. `payloadStart`/`payloadEnd` index into `buf`. */
export interface PacketSink {
  /** A PUBLISH arrived. `buf`/`view` are valid only during the call. */
  publish(
    qos: number,
    packetId: number,
    buf: Uint8Array,
    view: DataView,
    payloadStart: number,
    payloadEnd: number,
  ): void;
  /** Any other packet: its type and, when it has one, its packet identifier (else 0). */
  ack(type: number, packetId: number): void;
  /** Called when a read chunk arrived, before it is scanned (a moment to read the clock once). */
  chunkStart(): void;
  /** Called after each read chunk was scanned: the moment to flush what the handlers queued. */
  chunkDone(): void;
}

const NOOP_SINK: PacketSink = { publish() {}, ack() {}, chunkStart() {}, chunkDone() {} };
const HANDSHAKE_TIMEOUT_MS = 30_000;

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A raw MQTT connection for load generation. */
export class BenchConnection {
  readonly clientId: string;
  readonly #channel: PacketChannel<Frame>;
  readonly #version: ProtocolVersion;
  readonly #handshakeMs: number;
  #sink: PacketSink = NOOP_SINK;
  #loop: Promise<void>;
  #control: ((type: number, id: number, first: number, body: Uint8Array) => void) | undefined;
  // Wakes #until after each chunk and when reading ends.
  #chunkSeen: (() => void) | undefined;

  private constructor(conn: Deno.TcpConn | Deno.TlsConn, clientId: string, target: BenchTarget) {
    this.#channel = new PacketChannel(
      socketConnection(conn, {
        transport: target.tls ? "tls" : "tcp",
        remoteAddress: `${target.host}:${target.port}`,
      }),
      new FrameDecoder(),
    );
    this.clientId = clientId;
    this.#version = target.protocolVersion;
    this.#handshakeMs = target.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
    this.#loop = this.#channel.run({
      begin: () => this.#sink.chunkStart(),
      receive: (frame) => this.#receive(frame),
      end: () => {
        this.#sink.chunkDone();
        this.#chunkSeen?.();
      },
    }).catch(() => {}).finally(() => {
      this.#channel.abort();
      this.#chunkSeen?.();
    });
  }

  /**
   * Opens a socket, sends CONNECT and waits for a CONNACK that accepts.
   *
   * @param target address and CONNECT fields
   * @param clientId the client identifier
   * @returns the connection, ready for {@linkcode subscribe} or {@linkcode start}
   * @throws {Error} when the socket fails, the server refuses, closes before CONNACK, or sends
   *   none within the handshake timeout
   */
  static async connect(target: BenchTarget, clientId: string): Promise<BenchConnection> {
    const ms = target.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
    const signal = AbortSignal.timeout(ms);
    let conn: Deno.TcpConn | Deno.TlsConn;
    try {
      if (target.tls) {
        conn = await Deno.connectTls({
          hostname: target.host,
          port: target.port,
          caCerts: target.caCerts,
        });
      } else {
        conn = await Deno.connect({ hostname: target.host, port: target.port, signal });
      }
    } catch (err) {
      if (signal.aborted) {
        throw new Error(`Cannot connect to ${target.host}:${target.port}: no answer in ${ms} ms`);
      }
      throw err;
    }
    const c = new BenchConnection(conn, clientId, target);
    try {
      const password = target.password === undefined
        ? undefined
        : new TextEncoder().encode(target.password);
      c.#channel.sendPacket({
        type: 1,
        protocolName: target.protocolVersion === 3 ? "MQIsdp" : "MQTT",
        protocolVersion: target.protocolVersion,
        clean: target.clean,
        keepAlive: target.keepAlive,
        clientId,
        username: target.username,
        password,
      }, target.protocolVersion);
      let code = -1;
      await c.#until(() => code >= 0, (type, _id, first) => {
        if (type === 2) code = first;
      });
      if (code !== 0) throw new Error(`Server refused ${clientId}: CONNACK return code ${code}`);
      return c;
    } catch (err) {
      c.close();
      await c.ended;
      throw err;
    }
  }

  /**
   * Subscribes to filters and waits for the SUBACK.
   *
   * @param filters topic filters
   * @param qos the requested QoS for each
   * @throws {Error} when the server refuses a filter (0x80) or closes
   */
  async subscribe(filters: string[], qos: QoS): Promise<void> {
    this.#channel.send(encodePacket({
      type: 8,
      packetId: 1,
      subscriptions: filters.map((topic) => ({ topic, qos })),
    }, this.#version));
    let codes: number[] | undefined;
    await this.#until(() => codes !== undefined, (type, _id, _first, body) => {
      if (type === 9) codes = [...body.subarray(2)];
    });
    if (codes!.some((c) => c === 0x80)) {
      throw new Error(
        `Server refused the subscription of ${this.clientId} to ${filters.join(" ")}`,
      );
    }
  }

  /**
   * Reports the packets that arrive from now on to `sink`.
   *
   * @param sink the packet handlers
   */
  start(sink: PacketSink): void {
    this.#sink = sink;
  }

  /** Resolves when the read loop ends (the peer closed or {@linkcode close} was called). */
  get ended(): Promise<void> {
    return this.#loop;
  }

  /**
   * Space to put `bytes` more bytes into the output buffer; returns the buffer and the offset to
   * write at. Call {@linkcode commit} with the new end, then {@linkcode flush}.
   *
   * @param bytes how many bytes the caller will write
   * @returns the current output buffer and where to write
   */
  reserve(bytes: number): { out: Uint8Array; at: number } {
    const out = this.#channel.reserve(bytes);
    return { out, at: this.#channel.queuedBytes };
  }

  /**
   * Marks the output buffer filled up to `end` (after {@linkcode reserve}).
   *
   * @param end the new end of the queued bytes
   */
  commit(end: number): void {
    this.#channel.commit(end);
  }

  /** Queues a 4-byte acknowledgement (PUBACK 4, PUBREC 5, PUBREL 6, PUBCOMP 7). */
  queueAck(type: number, packetId: number): void {
    const channel = this.#channel;
    const out = channel.reserve(4);
    const at = channel.queuedBytes;
    out[at] = (type << 4) | (type === 6 ? 2 : 0);
    out[at + 1] = 2;
    out[at + 2] = packetId >> 8;
    out[at + 3] = packetId & 0xff;
    channel.commit(at + 4);
  }

  /** Bytes queued and not yet handed to the socket. */
  get queued(): number {
    return this.#channel.queuedBytes;
  }

  /**
   * Writes everything queued as one write, unless a write is in progress (it flushes again when
   * that one ends). Double-buffered: new bytes are queued while the previous write runs.
   *
   * @returns a promise that settles when everything queued so far has been written
   */
  flush(): Promise<void> {
    this.#channel.flush();
    return this.#channel.written();
  }

  /** The first write error, if a flush failed. */
  get writeError(): unknown {
    return this.#channel.writeError;
  }

  /**
   * Queues bytes and waits until they are written.
   *
   * @param bytes the bytes
   * @throws {Error} when the socket is closed
   */
  async write(bytes: Uint8Array): Promise<void> {
    this.#channel.send(bytes);
    await this.flush();
    if (this.#channel.writeError !== undefined) throw this.#channel.writeError;
    if (this.#channel.aborted) throw new Error(`Connection of ${this.clientId} is closed`);
  }

  /** Sends DISCONNECT (best effort) and closes. */
  async disconnect(): Promise<void> {
    if (this.#channel.closing) return;
    this.#channel.send(new Uint8Array([0xe0, 0]));
    this.#channel.close();
    await this.ended;
  }

  /** Closes the socket. Idempotent. */
  close(): void {
    this.#channel.abort();
  }

  /**
   * Waits until `done()` holds, passing control packets to `onPacket`; closes the connection when
   * the handshake timeout passes first.
   */
  async #until(
    done: () => boolean,
    onPacket: (type: number, id: number, first: number, body: Uint8Array) => void,
  ): Promise<void> {
    const previous = this.#sink;
    this.#sink = NOOP_SINK;
    this.#control = onPacket;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.close(); // ends the pending read
    }, this.#handshakeMs);
    try {
      while (!done()) {
        if (this.#channel.closing) {
          throw new Error(
            timedOut
              ? `No answer to ${this.clientId} within ${this.#handshakeMs} ms`
              : `Connection of ${this.clientId} closed during the handshake`,
          );
        }
        await new Promise<void>((resolve) => this.#chunkSeen = resolve);
      }
    } finally {
      this.#chunkSeen = undefined;
      clearTimeout(timer);
      this.#control = undefined;
      this.#sink = previous;
    }
  }

  /** One packet: PUBLISH to the sink, others to the handshake's handler or the sink. */
  #receive(frame: Frame): void {
    const { buf, body, end } = frame;
    const type = buf[frame.start] >> 4;
    const len = end - body;
    if (type === 3) {
      const qos = (buf[frame.start] >> 1) & 3;
      let p = body + 2 + ((buf[body] << 8) | buf[body + 1]);
      let id = 0;
      if (qos > 0) {
        id = (buf[p] << 8) | buf[p + 1];
        p += 2;
      }
      this.#sink.publish(qos, id, buf, frame.view, p, end);
    } else if (this.#control !== undefined) {
      const id = len >= 2 ? (buf[body] << 8) | buf[body + 1] : 0;
      this.#control(type, id, len >= 2 ? buf[body + 1] : 0, buf.subarray(body, end));
    } else {
      this.#sink.ack(type, len >= 2 ? (buf[body] << 8) | buf[body + 1] : 0);
    }
  }
}

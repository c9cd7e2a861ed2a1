/**
 * One raw benchmark connection: a socket, a reused read buffer scanned for packet boundaries (type,
 * packet identifier and payload offsets, never a full decode), and a double-buffered output that
 * turns everything queued in one turn into one write.
 *
 * @module
 */

import { encodePacket } from "@amqtt/amqtt/packet";
import type { ProtocolVersion, QoS } from "@amqtt/amqtt/packet";

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
const READ_SIZE = 256 * 1024;
const OUT_SIZE = 64 * 1024;

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A raw MQTT connection for load generation. */
export class BenchConnection {
  readonly clientId: string;
  readonly #conn: Deno.TcpConn | Deno.TlsConn;
  readonly #version: ProtocolVersion;
  readonly #handshakeMs: number;
  #buf = new Uint8Array(READ_SIZE);
  #view = new DataView(this.#buf.buffer);
  #start = 0;
  #end = 0;
  #sink: PacketSink = NOOP_SINK;
  #loop: Promise<void> | undefined;
  #closed = false;
  #out = new Uint8Array(OUT_SIZE);
  #spare = new Uint8Array(OUT_SIZE);
  #outLen = 0;
  #writing: Promise<void> | undefined;
  #writeError: unknown;

  private constructor(conn: Deno.TcpConn | Deno.TlsConn, clientId: string, target: BenchTarget) {
    this.#conn = conn;
    this.clientId = clientId;
    this.#version = target.protocolVersion;
    this.#handshakeMs = target.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
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
        conn.setNoDelay(true);
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
      await c.write(encodePacket({
        type: 1,
        protocolName: target.protocolVersion === 3 ? "MQIsdp" : "MQTT",
        protocolVersion: target.protocolVersion,
        clean: target.clean,
        keepAlive: target.keepAlive,
        clientId,
        username: target.username,
        password,
      }, target.protocolVersion));
      let code = -1;
      await c.#until(() => code >= 0, (type, _id, first) => {
        if (type === 2) code = first;
      });
      if (code !== 0) throw new Error(`Server refused ${clientId}: CONNACK return code ${code}`);
      return c;
    } catch (err) {
      c.close();
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
    await this.write(encodePacket({
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
   * Starts the background read loop, reporting packets to `sink`.
   *
   * @param sink the packet handlers
   */
  start(sink: PacketSink): void {
    this.#sink = sink;
    this.#loop ??= (async () => {
      while (!this.#closed && (await this.#readChunk())) {
        this.#sink.chunkStart();
        this.#scan();
        this.#sink.chunkDone();
      }
    })();
  }

  /** Resolves when the read loop ends (the peer closed or {@linkcode close} was called). */
  get ended(): Promise<void> {
    return this.#loop ?? Promise.resolve();
  }

  /**
   * Space to put `bytes` more bytes into the output buffer; returns the buffer and the offset to
   * write at. Call {@linkcode commit} with the new end, then {@linkcode flush}.
   *
   * @param bytes how many bytes the caller will write
   * @returns the current output buffer and where to write
   */
  reserve(bytes: number): { out: Uint8Array; at: number } {
    if (this.#outLen + bytes > this.#out.length) {
      const bigger = new Uint8Array(Math.max(this.#out.length * 2, this.#outLen + bytes));
      bigger.set(this.#out.subarray(0, this.#outLen));
      this.#out = bigger;
    }
    return { out: this.#out, at: this.#outLen };
  }

  /**
   * Marks the output buffer filled up to `end` (after {@linkcode reserve}).
   *
   * @param end the new end of the queued bytes
   */
  commit(end: number): void {
    this.#outLen = end;
  }

  /** Queues a 4-byte acknowledgement (PUBACK 4, PUBREC 5, PUBREL 6, PUBCOMP 7). */
  queueAck(type: number, packetId: number): void {
    const { out, at } = this.reserve(4);
    out[at] = (type << 4) | (type === 6 ? 2 : 0);
    out[at + 1] = 2;
    out[at + 2] = packetId >> 8;
    out[at + 3] = packetId & 0xff;
    this.#outLen = at + 4;
  }

  /** Bytes queued and not yet handed to the socket. */
  get queued(): number {
    return this.#outLen;
  }

  /**
   * Writes everything queued as one write, unless a write is in progress (it flushes again when
   * that one ends). Double-buffered: new bytes are queued while the previous write runs.
   *
   * @returns a promise that settles when the queue has been handed to the socket
   */
  flush(): Promise<void> {
    if (this.#writing !== undefined) return this.#writing;
    if (this.#outLen === 0 || this.#closed) return Promise.resolve();
    const bytes = this.#out.subarray(0, this.#outLen);
    const next = this.#spare;
    this.#spare = this.#out;
    this.#out = next;
    this.#outLen = 0;
    this.#writing = this.write(bytes).then(
      () => {
        this.#writing = undefined;
        if (this.#outLen > 0) return this.flush();
      },
      (err) => {
        this.#writing = undefined;
        this.#writeError ??= err;
      },
    );
    return this.#writing;
  }

  /** The first write error, if a flush failed. */
  get writeError(): unknown {
    return this.#writeError;
  }

  /**
   * Writes bytes directly, looping over partial writes.
   *
   * @param bytes the bytes
   * @throws {Error} when the socket is closed
   */
  async write(bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.length) done += await this.#conn.write(bytes.subarray(done));
  }

  /** Sends DISCONNECT (best effort) and closes. */
  async disconnect(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#writing;
      await this.write(new Uint8Array([0xe0, 0]));
    } catch { /* already gone */ }
    this.close();
    await this.ended;
  }

  /** Closes the socket. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }

  /**
   * Reads until `done()` holds, passing control packets to `onPacket`; closes the connection when
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
        if (!(await this.#readChunk())) {
          throw new Error(
            timedOut
              ? `No answer to ${this.clientId} within ${this.#handshakeMs} ms`
              : `Connection of ${this.clientId} closed during the handshake`,
          );
        }
        this.#scan();
      }
    } finally {
      clearTimeout(timer);
      this.#control = undefined;
      this.#sink = previous;
    }
  }

  #control: ((type: number, id: number, first: number, body: Uint8Array) => void) | undefined;

  async #readChunk(): Promise<boolean> {
    if (this.#start > 0) {
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    if (this.#end === this.#buf.length) this.#grow(this.#buf.length * 2);
    let n: number | null;
    try {
      n = await this.#conn.read(this.#buf.subarray(this.#end));
    } catch {
      n = null;
    }
    if (n === null) {
      this.#closed = true;
      try {
        this.#conn.close();
      } catch { /* already closed */ }
      return false;
    }
    this.#end += n;
    return true;
  }

  #grow(size: number): void {
    const bigger = new Uint8Array(size);
    bigger.set(this.#buf.subarray(this.#start, this.#end));
    this.#end -= this.#start;
    this.#start = 0;
    this.#buf = bigger;
    this.#view = new DataView(bigger.buffer);
  }

  /** Walks the complete packets in the buffer; leaves a partial one for the next read. */
  #scan(): void {
    const buf = this.#buf;
    const end = this.#end;
    const sink = this.#sink;
    let i = this.#start;
    while (i + 1 < end) {
      const b0 = buf[i];
      let len = 0, mul = 1, j = i + 1, complete = false;
      while (j < end) {
        const d = buf[j++];
        len += (d & 0x7f) * mul;
        mul *= 128;
        if ((d & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) break;
      const packetEnd = j + len;
      if (packetEnd > end) {
        this.#start = i;
        // A packet larger than the buffer: make room so the next read can complete it.
        if (packetEnd - i > buf.length) this.#grow(packetEnd - i);
        return;
      }
      const type = b0 >> 4;
      if (type === 3) {
        const qos = (b0 >> 1) & 3;
        let p = j + 2 + ((buf[j] << 8) | buf[j + 1]);
        let id = 0;
        if (qos > 0) {
          id = (buf[p] << 8) | buf[p + 1];
          p += 2;
        }
        sink.publish(qos, id, buf, this.#view, p, packetEnd);
      } else if (this.#control !== undefined) {
        const id = len >= 2 ? (buf[j] << 8) | buf[j + 1] : 0;
        this.#control(type, id, len >= 2 ? buf[j + 1] : 0, buf.subarray(j, packetEnd));
      } else {
        sink.ack(type, len >= 2 ? (buf[j] << 8) | buf[j + 1] : 0);
      }
      i = packetEnd;
    }
    this.#start = i;
    if (i === end) this.#start = this.#end = 0;
  }
}

/**
 * A raw MQTT test client over `Deno.connect`: it sends encoded packets or arbitrary bytes and
 * awaits decoded packets with a timeout. It has no protocol logic of its own (no automatic acks,
 * no keepalive), so a test scripts every byte of an exchange, as Mosquitto's `test/broker/` does.
 *
 * @module
 */

import assert from "node:assert/strict";
import { concatBytes } from "../../src/packet/_concat_bytes.ts";
import { encodePacket, PACKET_NAMES, PacketDecoder, PacketType } from "../../src/packet/mod.ts";
import type {
  ConnackPacket,
  ConnectPacket,
  Packet,
  Properties,
  ProtocolVersion,
  PublishPacket,
  QoS,
  SubackPacket,
  Subscription,
  Will,
} from "../../src/packet/mod.ts";

/**
 * Default wait for an expected packet, ms: a failure guard only (an expected packet returns at once),
 * generous because the suite runs in parallel on two shared cores, where a password hash can take
 * seconds.
 */
export const DEFAULT_TIMEOUT = 10_000;

/** The packet with type number `T` (the ack packets share one interface, hence no `Extract`). */
export type PacketOf<T extends number> = PacketWithType<Packet, T>;
type PacketWithType<P, T> = P extends { type: infer U } ? (T extends U ? P : never) : never;

/** Fields of a CONNECT the tests vary; the rest get 3.1.1 defaults. */
export interface ConnectOptions {
  clientId?: string;
  clean?: boolean;
  keepAlive?: number;
  protocolVersion?: ProtocolVersion;
  protocolName?: string;
  will?: Will;
  username?: string;
  password?: Uint8Array;
  /** MQTT 5.0 CONNECT properties. */
  properties?: Properties;
}

/** Options of {@linkcode TestClient.open}. */
export interface TestClientOptions {
  /** Protocol level used to encode and decode before a CONNECT is sent. Default 4. */
  protocolVersion?: ProtocolVersion;
  hostname?: string;
}

/**
 * Builds a CONNECT packet with defaults (MQTT 3.1.1, clean session, keepalive 0).
 *
 * @param options the fields to set
 * @returns the packet
 */
export function connectPacket(options: ConnectOptions = {}): ConnectPacket {
  const protocolVersion = options.protocolVersion ?? 4;
  return {
    type: PacketType.CONNECT,
    protocolName: options.protocolName ?? (protocolVersion === 3 ? "MQIsdp" : "MQTT"),
    protocolVersion,
    clean: options.clean ?? true,
    keepAlive: options.keepAlive ?? 0,
    clientId: options.clientId ?? "",
    will: options.will,
    username: options.username,
    password: options.password,
    properties: options.properties,
  };
}

/**
 * Builds a PUBLISH packet.
 *
 * @param topic the topic name
 * @param payload the payload; a string is UTF-8 encoded
 * @param options QoS, retain, dup, packet id (required for QoS > 0; default 1)
 * @returns the packet
 */
export function publishPacket(
  topic: string,
  payload: string | Uint8Array,
  options: { qos?: QoS; retain?: boolean; dup?: boolean; packetId?: number } = {},
): PublishPacket {
  const qos = options.qos ?? 0;
  return {
    type: PacketType.PUBLISH,
    topic,
    payload: typeof payload === "string" ? new TextEncoder().encode(payload) : payload,
    qos,
    retain: options.retain ?? false,
    dup: options.dup ?? false,
    packetId: qos > 0 ? (options.packetId ?? 1) : undefined,
  };
}

/**
 * Builds an MQTT 5.0 PUBLISH packet with properties.
 *
 * @param topic the topic name
 * @param payload the payload, UTF-8 encoded
 * @param properties the PUBLISH properties
 * @param options QoS, retain, packet id (as {@linkcode publishPacket})
 * @returns the packet
 */
export function publish5(
  topic: string,
  payload: string,
  properties: Properties,
  options: { qos?: QoS; retain?: boolean; packetId?: number } = {},
): PublishPacket {
  return { ...publishPacket(topic, payload, options), properties };
}

/**
 * Decodes a payload as UTF-8.
 *
 * @param packet a PUBLISH
 * @returns its payload as text
 */
export function text(packet: PublishPacket): string {
  return new TextDecoder().decode(packet.payload);
}

/**
 * Sends a level-5 SUBSCRIBE (optionally with a Subscription Identifier) and waits for its SUBACK.
 *
 * @param c the client
 * @param subscriptions the filters with their options
 * @param options the packet id (default 1) and a Subscription Identifier
 * @returns the SUBACK's reason codes
 */
export async function subscribe5(
  c: TestClient,
  subscriptions: Subscription[],
  options: { packetId?: number; identifier?: number } = {},
): Promise<number[]> {
  const packetId = options.packetId ?? 1;
  const packet: Packet = { type: PacketType.SUBSCRIBE, packetId, subscriptions };
  if (options.identifier !== undefined) {
    packet.properties = { subscriptionIdentifier: [options.identifier] };
  }
  await c.send(packet);
  const suback = await c.expect(PacketType.SUBACK);
  assert.equal(suback.packetId, packetId);
  return suback.reasonCodes;
}

/** A scripted MQTT peer over TCP. */
export class TestClient implements AsyncDisposable {
  #conn: Deno.TcpConn;
  #decoder: PacketDecoder;
  #protocolVersion: ProtocolVersion;
  #packets: Packet[] = [];
  #waiter: (() => void) | undefined;
  #ended = false;
  #error: unknown;
  #pump: Promise<void>;
  #closedByUs = false;
  #paused: Promise<void> | undefined;
  #unpause: (() => void) | undefined;

  private constructor(conn: Deno.TcpConn, protocolVersion: ProtocolVersion) {
    this.#conn = conn;
    this.#protocolVersion = protocolVersion;
    this.#decoder = new PacketDecoder({ protocolVersion, side: "client" });
    this.#pump = this.#readLoop();
  }

  /**
   * Opens a TCP connection; nothing is sent.
   *
   * @param port the broker's port on 127.0.0.1
   * @param options protocol level and host
   * @returns the client
   */
  static async open(port: number, options: TestClientOptions = {}): Promise<TestClient> {
    const conn = await Deno.connect({ hostname: options.hostname ?? "127.0.0.1", port });
    conn.setNoDelay(true);
    return new TestClient(conn, options.protocolVersion ?? 4);
  }

  /**
   * Opens a connection, sends CONNECT and asserts a CONNACK with return code 0.
   *
   * @param port the broker's port
   * @param options the CONNECT fields
   * @returns the connected client and the CONNACK
   */
  static async connect(
    port: number,
    options: ConnectOptions = {},
  ): Promise<TestClient> {
    const client = await TestClient.open(port, { protocolVersion: options.protocolVersion });
    try {
      const connack = await client.handshake(options);
      assert.equal(connack.reasonCode, 0, `CONNACK return code for ${options.clientId ?? "''"}`);
    } catch (err) {
      await client.close();
      throw err;
    }
    return client;
  }

  /** The local port of the socket (identifies it in broker.clients()). */
  get localPort(): number {
    return this.#conn.localAddr.port;
  }

  /** Whether the peer closed the connection (or it failed) and every packet has been read. */
  get ended(): boolean {
    return this.#ended && this.#packets.length === 0;
  }

  /** Whether the connection has ended, even if received packets are still unread. */
  get socketEnded(): boolean {
    return this.#ended;
  }

  /**
   * Sends CONNECT and awaits the CONNACK, whatever its code.
   *
   * @param options the CONNECT fields
   * @returns the CONNACK
   */
  async handshake(options: ConnectOptions = {}): Promise<ConnackPacket> {
    const packet = connectPacket(options);
    this.#protocolVersion = packet.protocolVersion;
    this.#decoder.protocolVersion = packet.protocolVersion;
    await this.send(packet);
    return await this.expect(PacketType.CONNACK);
  }

  /**
   * Encodes and sends a packet at the client's protocol level.
   *
   * @param packets one or more packets, written in one write
   */
  async send(...packets: Packet[]): Promise<void> {
    await this.sendBytes(concatBytes(packets.map((p) => encodePacket(p, this.#protocolVersion))));
  }

  /**
   * Writes raw bytes.
   *
   * @param bytes the bytes, or numbers for them
   */
  async sendBytes(bytes: Uint8Array | number[]): Promise<void> {
    const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    let done = 0;
    while (done < data.length) done += await this.#conn.write(data.subarray(done));
  }

  /**
   * Subscribes and asserts the SUBACK codes.
   *
   * @param filters filter -> requested QoS
   * @param packetId the SUBSCRIBE packet id
   * @returns the SUBACK
   */
  async subscribe(filters: Record<string, QoS>, packetId = 1): Promise<SubackPacket> {
    await this.send({
      type: PacketType.SUBSCRIBE,
      packetId,
      subscriptions: Object.entries(filters).map(([topic, qos]) => ({ topic, qos })),
    });
    const suback = await this.expect(PacketType.SUBACK);
    assert.equal(suback.packetId, packetId, "SUBACK packet id");
    return suback;
  }

  /**
   * Awaits the next packet.
   *
   * @param timeoutMs how long to wait
   * @returns the packet
   * @throws {AssertionError} when nothing arrives in time or the connection ends first
   */
  async receive(timeoutMs = DEFAULT_TIMEOUT): Promise<Packet> {
    const packet = await this.#next(timeoutMs);
    if (packet === "timeout") assert.fail(`No packet within ${timeoutMs} ms`);
    if (packet === "end") {
      assert.fail(`Connection ended while waiting for a packet${this.#errorText()}`);
    }
    return packet;
  }

  /**
   * Awaits the next packet, or gives up quietly.
   *
   * @param timeoutMs how long to wait
   * @returns the packet, or undefined when nothing arrived in time or the connection ended
   */
  async poll(timeoutMs: number): Promise<Packet | undefined> {
    const packet = await this.#next(timeoutMs);
    return packet === "timeout" || packet === "end" ? undefined : packet;
  }

  /**
   * Awaits the next packet and asserts its type.
   *
   * @param type the expected packet type
   * @param timeoutMs how long to wait
   * @returns the packet
   */
  async expect<T extends number>(type: T, timeoutMs = DEFAULT_TIMEOUT): Promise<PacketOf<T>> {
    const packet = await this.receive(timeoutMs);
    assert.equal(
      PACKET_NAMES[packet.type],
      PACKET_NAMES[type],
      `expected ${PACKET_NAMES[type]}, got ${JSON.stringify(packet, replacer)}`,
    );
    return packet as PacketOf<T>;
  }

  /**
   * Asserts that no packet arrives within `ms` (the connection may stay open or end).
   *
   * @param ms how long to watch
   */
  async expectNothing(ms: number): Promise<void> {
    const packet = await this.#next(ms);
    if (packet !== "timeout" && packet !== "end") {
      assert.fail(`Unexpected packet ${JSON.stringify(packet, replacer)}`);
    }
  }

  /**
   * Asserts that the broker closes the connection within `timeoutMs`, with no packet before.
   *
   * @param timeoutMs how long to wait
   * @param options `allowPackets`: packets received before the close are returned, not a failure
   * @returns the packets received before the end
   */
  async expectClosed(
    timeoutMs = DEFAULT_TIMEOUT,
    options: { allowPackets?: boolean } = {},
  ): Promise<Packet[]> {
    const seen: Packet[] = [];
    const until = Date.now() + timeoutMs;
    for (;;) {
      const left = until - Date.now();
      const packet = await this.#next(left > 0 ? left : 0);
      if (packet === "end") return seen;
      if (packet === "timeout") {
        assert.fail(`The broker did not close the connection within ${timeoutMs} ms`);
      }
      if (!options.allowPackets) {
        assert.fail(`Unexpected packet before close: ${JSON.stringify(packet, replacer)}`);
      }
      seen.push(packet);
    }
  }

  /**
   * Waits until the connection ends, returning how long it took, or `undefined` when it is still
   * open after `timeoutMs`.
   *
   * @param timeoutMs how long to wait
   * @returns ms until the end, or undefined
   */
  async waitEnd(timeoutMs: number): Promise<number | undefined> {
    const start = Date.now();
    const until = start + timeoutMs;
    for (;;) {
      const left = until - Date.now();
      const packet = await this.#next(left > 0 ? left : 0);
      if (packet === "end") return Date.now() - start;
      if (packet === "timeout") return undefined;
    }
  }

  /**
   * Stops reading the socket after the read under way (at most 64 KiB more): what the broker
   * writes then fills the socket's buffers, and then its own output (back-pressure).
   */
  pauseReading(): void {
    this.#paused ??= new Promise((resolve) => this.#unpause = resolve);
  }

  /** Reads the socket again after {@linkcode pauseReading}. */
  resumeReading(): void {
    this.#unpause?.();
    this.#paused = this.#unpause = undefined;
  }

  /** Closes the socket (an abrupt close, no DISCONNECT) and waits for the reader to stop. */
  async close(): Promise<void> {
    this.resumeReading();
    if (!this.#closedByUs) {
      this.#closedByUs = true;
      try {
        this.#conn.close();
      } catch { /* already closed */ }
    }
    await this.#pump;
  }

  /** Half-closes: the broker reads end-of-stream while this side can still read. */
  async closeWrite(): Promise<void> {
    await this.#conn.closeWrite();
  }

  /** Sends DISCONNECT, then closes. */
  async disconnect(): Promise<void> {
    try {
      await this.send({ type: PacketType.DISCONNECT });
    } catch { /* the broker may have closed already */ }
    await this.close();
  }

  /** Same as {@linkcode close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #readLoop(): Promise<void> {
    const buf = new Uint8Array(65536);
    try {
      for (;;) {
        if (this.#paused !== undefined) await this.#paused;
        let n: number | null;
        try {
          n = await this.#conn.read(buf);
        } catch (err) {
          if (!this.#closedByUs) this.#error = err;
          n = null;
        }
        if (n === null) break;
        // A copy: the decoder may keep views into the chunk.
        this.#decoder.push(buf.slice(0, n));
        try {
          for (let p = this.#decoder.next(); p !== undefined; p = this.#decoder.next()) {
            this.#packets.push(p);
          }
        } catch (err) {
          this.#error = err;
          break;
        }
        this.#wake();
      }
    } finally {
      this.#ended = true;
      if (!this.#closedByUs) {
        this.#closedByUs = true;
        try {
          this.#conn.close();
        } catch { /* already closed */ }
      }
      this.#wake();
    }
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }

  async #next(timeoutMs: number): Promise<Packet | "timeout" | "end"> {
    for (;;) {
      const packet = this.#packets.shift();
      if (packet !== undefined) return packet;
      if (this.#ended) return "end";
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = await new Promise<boolean>((resolve) => {
        this.#waiter = () => resolve(false);
        timer = setTimeout(() => resolve(true), timeoutMs);
      });
      clearTimeout(timer);
      this.#waiter = undefined;
      if (timedOut) {
        const late = this.#packets.shift();
        if (late !== undefined) return late;
        return this.#ended ? "end" : "timeout";
      }
    }
  }

  #errorText(): string {
    if (this.#error === undefined) return "";
    return `: ${this.#error instanceof Error ? this.#error.message : String(this.#error)}`;
  }
}

function replacer(_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? new TextDecoder().decode(value) : value;
}

/**
 * A small, fast MQTT load generator for the throughput benchmarks: raw sockets, batched writes,
 * and a packet scanner that reads only what it needs (type, packet id) instead of decoding.
 *
 * @module
 */

import { encodePacket } from "../src/packet/mod.ts";
import type { Packet } from "../src/packet/types.ts";
import type { QoS } from "../src/packet/constants.ts";

/** A raw benchmark connection. */
export class LoadClient {
  #conn: Deno.TcpConn;
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #pending = new Uint8Array(0);
  /** Called for each PUBLISH received: (qos, packetId). */
  onPublish: (qos: number, packetId: number) => void = () => {};
  /** Called for each acknowledgement: (type, packetId). */
  onAck: (type: number, packetId: number) => void = () => {};
  #closed = false;
  #loop: Promise<void> | undefined;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    this.#reader = conn.readable.getReader();
  }

  /** Connects and completes the MQTT handshake (a persistent session with `clean` false). */
  static async connect(port: number, clientId: string, clean = true): Promise<LoadClient> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    const c = new LoadClient(conn);
    await c.write(encodePacket({
      type: 1,
      protocolName: "MQTT",
      protocolVersion: 4,
      clean,
      keepAlive: 0,
      clientId,
    }, 4));
    let connack = false;
    const previous = c.onAck;
    c.onAck = (type) => {
      if (type === 2) connack = true;
    };
    while (!connack) await c.#readOnce();
    c.onAck = previous;
    return c;
  }

  /** Subscribes and waits for the SUBACK. */
  async subscribe(topic: string, qos: QoS): Promise<void> {
    await this.write(encodePacket({ type: 8, packetId: 1, subscriptions: [{ topic, qos }] }, 4));
    let done = false;
    this.onAck = (type) => {
      if (type === 9) done = true;
    };
    while (!done) await this.#readOnce();
    this.onAck = () => {};
  }

  /** Starts reading in the background. */
  start(): void {
    this.#loop = (async () => {
      while (!this.#closed) {
        if (!(await this.#readOnce())) break;
      }
    })();
  }

  async write(bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.length) done += await this.#conn.write(bytes.subarray(done));
  }

  /** Encodes a packet. */
  static encode(packet: Packet): Uint8Array {
    return encodePacket(packet, 4);
  }

  async close(): Promise<void> {
    this.#closed = true;
    try {
      this.#conn.close();
    } catch { /* closed */ }
    await this.#loop?.catch(() => {});
  }

  async #readOnce(): Promise<boolean> {
    let r;
    try {
      r = await this.#reader.read();
    } catch {
      return false;
    }
    if (r.done) return false;
    let buf = r.value;
    if (this.#pending.length > 0) {
      const joined = new Uint8Array(this.#pending.length + buf.length);
      joined.set(this.#pending);
      joined.set(buf, this.#pending.length);
      buf = joined;
    }
    let i = 0;
    while (i < buf.length) {
      const start = i;
      const b0 = buf[i]!;
      let len = 0, mul = 1, j = i + 1;
      for (;;) {
        if (j >= buf.length) {
          len = -1;
          break;
        }
        const d = buf[j++]!;
        len += (d & 0x7f) * mul;
        mul *= 128;
        if ((d & 0x80) === 0) break;
      }
      if (len < 0 || j + len > buf.length) {
        i = start;
        break;
      }
      const type = b0 >> 4;
      if (type === 3) {
        const qos = (b0 >> 1) & 3;
        let id = 0;
        if (qos > 0) {
          const tl = (buf[j]! << 8) | buf[j + 1]!;
          id = (buf[j + 2 + tl]! << 8) | buf[j + 3 + tl]!;
        }
        this.onPublish(qos, id);
      } else {
        const id = len >= 2 ? (buf[j]! << 8) | buf[j + 1]! : 0;
        this.onAck(type, id);
      }
      i = j + len;
    }
    this.#pending = i < buf.length ? buf.slice(i) : new Uint8Array(0);
    return true;
  }
}

/** Encodes an ack packet (PUBACK 4, PUBREC 5, PUBREL 6, PUBCOMP 7) into `out` at `at`. */
export function putAck(out: Uint8Array, at: number, type: number, id: number): number {
  out[at] = (type << 4) | (type === 6 ? 2 : 0);
  out[at + 1] = 2;
  out[at + 2] = id >> 8;
  out[at + 3] = id & 0xff;
  return at + 4;
}

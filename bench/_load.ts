/**
 * A small, fast MQTT load generator for the throughput benchmarks: raw sockets on the library's
 * packet channel (batched writes), and packets cut by their fixed header and read only for what
 * the benchmark needs (type, packet id) instead of decoded.
 *
 * @module
 */

import { encodePacket } from "../src/packet/mod.ts";
import type { Packet } from "../src/packet/types.ts";
import type { QoS } from "../src/packet/constants.ts";
import { PacketChannel } from "../src/transport/packet_channel.ts";
import { socketConnection } from "../src/transport/socket.ts";
import { type Frame, FrameDecoder } from "../cli/bench/_frames.ts";

/** A raw benchmark connection. */
export class LoadClient {
  #channel: PacketChannel<Frame>;
  /** Called for each PUBLISH received: (qos, packetId). */
  onPublish: (qos: number, packetId: number) => void = () => {};
  /** Called for each acknowledgement: (type, packetId). */
  onAck: (type: number, packetId: number) => void = () => {};
  #loop: Promise<void>;

  private constructor(conn: Deno.TcpConn) {
    this.#channel = new PacketChannel(
      socketConnection(conn, { transport: "tcp", remoteAddress: "broker" }),
      new FrameDecoder(),
    );
    this.#loop = this.#channel.run({ receive: (frame) => this.#receive(frame) }).catch(() => {});
  }

  /** Connects and completes the MQTT handshake (a persistent session with `clean` false). */
  static async connect(port: number, clientId: string, clean = true): Promise<LoadClient> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const c = new LoadClient(conn);
    const connack = c.#next(2);
    await c.write(encodePacket({
      type: 1,
      protocolName: "MQTT",
      protocolVersion: 4,
      clean,
      keepAlive: 0,
      clientId,
    }, 4));
    await connack;
    return c;
  }

  /** Subscribes and waits for the SUBACK. */
  async subscribe(topic: string, qos: QoS): Promise<void> {
    const suback = this.#next(9);
    await this.write(encodePacket({ type: 8, packetId: 1, subscriptions: [{ topic, qos }] }, 4));
    await suback;
  }

  /** Reports packets to the handlers (they are reported from the start; kept for callers). */
  start(): void {}

  /** Queues bytes and waits until they are written. */
  async write(bytes: Uint8Array): Promise<void> {
    this.#channel.send(bytes);
    this.#channel.flush();
    await this.#channel.written();
    if (this.#channel.writeError !== undefined) throw this.#channel.writeError;
  }

  /** Encodes a packet. */
  static encode(packet: Packet): Uint8Array {
    return encodePacket(packet, 4);
  }

  async close(): Promise<void> {
    this.#channel.abort();
    await this.#loop;
  }

  /** Resolves at the next acknowledgement of `type` (CONNACK 2, SUBACK 9). */
  #next(type: number): Promise<void> {
    const previous = this.onAck;
    return new Promise((resolve) => {
      this.onAck = (t) => {
        if (t !== type) return;
        this.onAck = previous;
        resolve();
      };
    });
  }

  #receive(frame: Frame): void {
    const { buf, body, end } = frame;
    const b0 = buf[frame.start]!;
    const type = b0 >> 4;
    if (type === 3) {
      const qos = (b0 >> 1) & 3;
      let id = 0;
      if (qos > 0) {
        const tl = (buf[body]! << 8) | buf[body + 1]!;
        id = (buf[body + 2 + tl]! << 8) | buf[body + 3 + tl]!;
      }
      this.onPublish(qos, id);
    } else {
      const id = end - body >= 2 ? (buf[body]! << 8) | buf[body + 1]! : 0;
      this.onAck(type, id);
    }
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

/**
 * A test subscriber on a raw TCP socket that hands out the bytes the broker sends, for tests that
 * check what goes out on the wire byte for byte.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  encodePacket,
  PacketDecoder,
  PacketType,
  type Subscription,
} from "../../src/packet/mod.ts";
import type { Packet, Properties } from "../../src/packet/types.ts";
import { connectPacket } from "./test_client.ts";

/**
 * A subscriber that reads the raw bytes of what the broker sends, after CONNACK and SUBACK: what
 * comes is compared byte for byte. MQTT 5.0 unless `protocolVersion` 4 is asked for.
 */
export class RawSubscriber implements AsyncDisposable {
  #conn: Deno.TcpConn;
  #pending = new Uint8Array(0);

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  static async open(
    port: number,
    clientId: string,
    subscription: Subscription,
    connectProperties?: Properties,
    protocolVersion: 4 | 5 = 5,
  ): Promise<RawSubscriber> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    const s = new RawSubscriber(conn);
    const connect = connectPacket({ clientId, protocolVersion });
    if (connectProperties !== undefined) connect.properties = connectProperties;
    await s.#write(encodePacket(connect, protocolVersion));
    await s.#write(
      encodePacket(
        { type: PacketType.SUBSCRIBE, packetId: 1, subscriptions: [subscription] },
        protocolVersion,
      ),
    );
    const decoder = new PacketDecoder({ protocolVersion, side: "client" });
    for (const type of [PacketType.CONNACK, PacketType.SUBACK]) {
      const packet = await s.#packet(decoder);
      assert.equal(packet.type, type);
    }
    return s;
  }

  async #write(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.length) at += await this.#conn.write(bytes.subarray(at));
  }

  /** The next `n` bytes the broker sent. */
  async bytes(n: number): Promise<Uint8Array> {
    while (this.#pending.length < n) {
      const buf = new Uint8Array(4096);
      const got = await this.#conn.read(buf);
      assert.notEqual(got, null, "the broker closed the connection");
      const joined = new Uint8Array(this.#pending.length + got!);
      joined.set(this.#pending);
      joined.set(buf.subarray(0, got!), this.#pending.length);
      this.#pending = joined;
    }
    const out = this.#pending.slice(0, n);
    this.#pending = this.#pending.slice(n);
    return out;
  }

  /** The next whole packet, decoded. */
  async #packet(decoder: PacketDecoder): Promise<Packet> {
    decoder.push(await this.packetBytes());
    const packet = decoder.next();
    assert.notEqual(packet, undefined, "a whole packet");
    return packet!;
  }

  /** The raw bytes of the next whole packet: fixed header, remaining length, the rest. */
  async packetBytes(): Promise<Uint8Array> {
    const head = [...await this.bytes(2)];
    let length = head[1]! & 0x7f;
    let multiplier = 128;
    while ((head[head.length - 1]! & 0x80) !== 0) {
      const [b] = await this.bytes(1);
      head.push(b!);
      length += (b! & 0x7f) * multiplier;
      multiplier *= 128;
    }
    const body = await this.bytes(length);
    const whole = new Uint8Array(head.length + length);
    whole.set(head);
    whole.set(body, head.length);
    return whole;
  }

  /** The next PUBLISH as its raw bytes. */
  async publishBytes(): Promise<Uint8Array> {
    const bytes = await this.packetBytes();
    assert.equal(bytes[0]! >> 4, PacketType.PUBLISH, "a PUBLISH");
    return bytes;
  }

  /** Asserts that nothing comes within `ms` and that the connection is still open. */
  async expectNothing(ms: number): Promise<void> {
    if (this.#pending.length > 0) assert.fail(`unexpected bytes: ${this.#pending}`);
    const buf = new Uint8Array(16);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const read = this.#conn.read(buf);
    const timeout = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), ms));
    const first = await Promise.race([read, timeout]);
    clearTimeout(timer);
    assert.equal(first, "timeout", "nothing arrived");
    // Still open: a PINGREQ is answered (the pending read takes the PINGRESP).
    await this.#write(new Uint8Array([0xc0, 0x00]));
    assert.equal(await read, 2);
    assert.deepEqual([...buf.subarray(0, 2)], [0xd0, 0x00]);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.#write(new Uint8Array([0xe0, 0x00]));
    } catch { /* closed already */ }
    this.#conn.close();
  }
}

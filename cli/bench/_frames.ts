/**
 * Cuts a byte stream into MQTT packets without decoding them (the load generator reads only the
 * type, the packet id and the payload's place), framed by the codec's `packetLength`.
 *
 * @module
 */

import { packetLength } from "@amqtt/amqtt/packet";

/**
 * One packet in a read chunk. The decoder hands out the same object each time: its fields are
 * valid until the next call of `next()`.
 */
export interface Frame {
  /** The bytes the packet lies in. */
  buf: Uint8Array;
  /** A view over `buf` (same offsets). */
  view: DataView;
  /** Where the packet starts (its first byte: type and flags). */
  start: number;
  /** Where its variable header starts, after the remaining length. */
  body: number;
  /** Where it ends (exclusive). */
  end: number;
}

const EMPTY = new Uint8Array(0);

/** A `ChannelDecoder` of raw packets. */
export class FrameDecoder {
  #buf: Uint8Array = EMPTY;
  #start = 0;
  /** Whether `#buf` is the caller's last chunk (not a copy of our own). */
  #chunk = false;
  #frame: Frame = { buf: EMPTY, view: new DataView(EMPTY.buffer), start: 0, body: 0, end: 0 };

  /** Bytes pushed and not yet handed out as frames. */
  get bufferedBytes(): number {
    return this.#buf.length - this.#start;
  }

  /** Whether the last chunk is free again: frames are only valid during the call that gets them. */
  get chunkReleased(): boolean {
    return !this.#chunk || this.#start === this.#buf.length;
  }

  /**
   * Adds a chunk; a packet split across chunks is gathered into a buffer of its own.
   *
   * @param chunk bytes read; the decoder keeps a view into it
   */
  push(chunk: Uint8Array): void {
    const rest = this.#buf.length - this.#start;
    this.#chunk = rest === 0;
    if (rest === 0) {
      this.#buf = chunk;
    } else {
      const joined = new Uint8Array(rest + chunk.length);
      joined.set(this.#buf.subarray(this.#start));
      joined.set(chunk, rest);
      this.#buf = joined;
    }
    this.#start = 0;
    this.#frame.buf = this.#buf;
    this.#frame.view = new DataView(this.#buf.buffer, this.#buf.byteOffset, this.#buf.byteLength);
  }

  /**
   * The next whole packet, or `undefined` until more bytes arrive.
   *
   * @returns the frame (reused: valid until the next call)
   * @throws {MqttPacketError} when a remaining length is malformed
   */
  next(): Frame | undefined {
    const buf = this.#buf;
    const start = this.#start;
    const length = start < buf.length ? packetLength(buf, start) : undefined;
    if (length === undefined || start + length > buf.length) return undefined;
    const frame = this.#frame;
    frame.start = start;
    let body = start + 1;
    while ((buf[body++] & 0x80) !== 0);
    frame.body = body;
    frame.end = start + length;
    this.#start = frame.end;
    return frame;
  }
}

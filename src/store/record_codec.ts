/**
 * A compact, binary-safe encoding of message records, for stores and buses that keep or carry
 * bytes (Redis): the payload is kept as raw bytes, never as text or base64.
 *
 * Layout: one flags byte (bits 0-1 QoS, 2 retain, 3 properties, 4 origin, 5 expiry, 6 the
 * delivery's RETAIN, 7 subscription identifiers), then the expiry deadline as a float64 if
 * present, the topic, the origin and the properties as JSON (each a varint length and UTF-8
 * bytes, the last two only if present), the subscription identifiers if present (a varint count,
 * then each as a varint), then the payload to the end (or, `bounded`, with its varint length, so
 * that more can follow). Written by a {@linkcode NamingByteWriter}, the topic and the origin are
 * names: each distinct one written once, later ones as a reference (see
 * {@linkcode NamingByteWriter.name}).
 *
 * @module
 */

import type { MessageRecord } from "./message_record.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Bytes the varint of `value` takes. */
function varintSize(value: number): number {
  let size = 1;
  for (let v = value; v >= 0x80; v = Math.floor(v / 0x80)) size++;
  return size;
}

/** Appends bytes to a growing buffer. */
export class ByteWriter {
  #buf = new Uint8Array(256);
  #view = new DataView(this.#buf.buffer);
  #len = 0;

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  /** One byte. */
  u8(value: number): this {
    this.#room(1);
    this.#buf[this.#len++] = value;
    return this;
  }

  /** A non-negative safe integer, 7 bits per byte. */
  varint(value: number): this {
    this.#room(8); // a safe integer takes at most 8
    const buf = this.#buf;
    let at = this.#len;
    let v = value;
    while (v >= 0x80) {
      buf[at++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    buf[at++] = v;
    this.#len = at;
    return this;
  }

  /** A float64, big-endian. */
  f64(value: number): this {
    this.#room(8);
    this.#view.setFloat64(this.#len, value);
    this.#len += 8;
    return this;
  }

  /** Raw bytes, no length. */
  raw(bytes: Uint8Array): this {
    this.#room(bytes.length);
    this.#buf.set(bytes, this.#len);
    this.#len += bytes.length;
    return this;
  }

  /** Length-prefixed bytes. */
  bytes(bytes: Uint8Array): this {
    return this.varint(bytes.length).raw(bytes);
  }

  /** A name (topic, client id, filter): here the same as {@linkcode text}. */
  name(value: string): this {
    return this.text(value);
  }

  /** Length-prefixed UTF-8 text. */
  text(value: string): this {
    const n = value.length;
    if (n < 0x80) {
      // ASCII text (topics, client ids, node ids) written in place: TextEncoder allocates.
      this.#room(n + 1);
      const buf = this.#buf;
      let at = this.#len + 1;
      let i = 0;
      for (; i < n; i++) {
        const c = value.charCodeAt(i);
        if (c >= 0x80) break;
        buf[at++] = c;
      }
      if (i === n) {
        buf[this.#len] = n; // the varint of a length under 0x80
        this.#len = at;
        return this;
      }
    }
    // Anything else is encoded in place too, behind room for the longest length prefix it may
    // need (UTF-8 takes at most 3 bytes per UTF-16 unit), moved up when the length is shorter.
    const most = 3 * n;
    const room = varintSize(most);
    // At least the 8 bytes `varint` makes room for, so that it never moves the buffer.
    this.#room(Math.max(room + most, 8));
    const start = this.#len;
    const { written } = encoder.encodeInto(value, this.#buf.subarray(start + room));
    const size = varintSize(written);
    if (size < room) this.#buf.copyWithin(start + size, start + room, start + room + written);
    this.varint(written);
    this.#len = start + size + written;
    return this;
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#len;
  }

  /** What was written, as a view valid until the next write or {@linkcode reset}. */
  view(): Uint8Array {
    return this.#buf.subarray(0, this.#len);
  }

  /** Forgets what was written, keeping the buffer for reuse. */
  reset(): this {
    this.#len = 0;
    return this;
  }

  /** A copy of what was written. */
  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

/**
 * A {@linkcode ByteWriter} whose names are written once each: the first time as a varint `0`
 * then the text (which makes it the next entry of the table), later as the varint `n > 0` of
 * entry `n - 1`. {@linkcode NamingByteReader} reads it back. Many operations of one store log row
 * name the same client or topic.
 */
export class NamingByteWriter extends ByteWriter {
  readonly #names = new Map<string, number>();

  /** A name, through the table. */
  override name(value: string): this {
    const index = this.#names.get(value);
    if (index !== undefined) return this.varint(index + 1);
    this.#names.set(value, this.#names.size);
    return this.u8(0).text(value);
  }

  /** Forgets what was written and the names. */
  override reset(): this {
    this.#names.clear();
    return super.reset();
  }
}

/** Turns UTF-8 bytes into a string: a reader given one may keep strings it decoded before. */
export interface TextSource {
  /** The text of `bytes[start, end)` (valid UTF-8 checked). */
  text(bytes: Uint8Array, start: number, end: number): string;
}

/**
 * The text of `bytes[start, end)`: short ASCII text without TextDecoder (an op call per string),
 * anything else through it (invalid UTF-8 throws `TypeError`).
 *
 * @param bytes the bytes
 * @param start first byte
 * @param end past the last byte
 * @returns the text
 */
export function utf8Text(bytes: Uint8Array, start: number, end: number): string {
  if (end - start <= 64) {
    let ascii = true;
    for (let i = start; i < end; i++) {
      if (bytes[i]! >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (ascii) {
      return String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[]);
    }
  }
  return decoder.decode(bytes.subarray(start, end));
}

const F64_BYTES = new Uint8Array(8);
const F64_VIEW = new DataView(F64_BYTES.buffer);

/** Reads what {@linkcode ByteWriter} wrote; throws `RangeError` past the end. */
export class ByteReader {
  readonly #buf: Uint8Array;
  readonly #texts: TextSource | undefined;
  #pos = 0;

  /**
   * @param bytes what to read
   * @param texts decodes the text fields (one that keeps what it decoded before, say)
   */
  constructor(bytes: Uint8Array, texts?: TextSource) {
    this.#buf = bytes;
    this.#texts = texts;
  }

  /** Where the next read starts. */
  get position(): number {
    return this.#pos;
  }

  #need(n: number): void {
    if (this.#pos + n > this.#buf.length) {
      throw new RangeError(`Cannot decode record: truncated at byte ${this.#pos}`);
    }
  }

  u8(): number {
    this.#need(1);
    return this.#buf[this.#pos++]!;
  }

  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.u8();
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return value;
      scale *= 0x80;
    }
    throw new RangeError(`Cannot decode record: varint too long at byte ${this.#pos}`);
  }

  f64(): number {
    this.#need(8);
    // Through one shared 8-byte scratch: a DataView per reader would cost more than the copy.
    for (let i = 0; i < 8; i++) F64_BYTES[i] = this.#buf[this.#pos + i]!;
    this.#pos += 8;
    return F64_VIEW.getFloat64(0);
  }

  /** Length-prefixed bytes, copied. */
  bytes(): Uint8Array {
    const n = this.varint();
    this.#need(n);
    const out = this.#buf.slice(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }

  /** Length-prefixed bytes as a view into the input (no copy). */
  view(): Uint8Array {
    const n = this.varint();
    this.#need(n);
    this.#pos += n;
    return this.#buf.subarray(this.#pos - n, this.#pos);
  }

  /** A name written by {@linkcode ByteWriter.name}: here the same as {@linkcode text}. */
  name(): string {
    return this.text();
  }

  text(): string {
    const n = this.varint();
    this.#need(n);
    const start = this.#pos;
    this.#pos += n;
    return this.#texts === undefined
      ? utf8Text(this.#buf, start, start + n)
      : this.#texts.text(this.#buf, start, start + n);
  }

  /** Everything left, copied (or, with `view`, as a view into the input). */
  rest(view = false): Uint8Array {
    const out = view ? this.#buf.subarray(this.#pos) : this.#buf.slice(this.#pos);
    this.#pos = this.#buf.length;
    return out;
  }
}

/** Reads what a {@linkcode NamingByteWriter} wrote. */
export class NamingByteReader extends ByteReader {
  readonly #names: string[] = [];

  /** A name, through the table; throws `RangeError` for a reference to no entry. */
  override name(): string {
    const n = this.varint();
    if (n === 0) {
      const value = this.text();
      this.#names.push(value);
      return value;
    }
    const value = this.#names[n - 1];
    if (value === undefined) {
      throw new RangeError(`Cannot decode record: unknown name ${n} at byte ${this.position}`);
    }
    return value;
  }
}

/** Options of {@linkcode writeMessage} and {@linkcode readMessage}. */
export interface MessageCodecOptions {
  /**
   * The payload carries its length, so that more can follow the record.
   *
   * @default {false}
   */
  bounded?: boolean;
  /**
   * Reading: the payload is a view into the input (which must then not change), not a copy.
   *
   * @default {false}
   */
  view?: boolean;
}

/** Writes a message record to `w` (the payload last, up to the end unless `bounded`). */
export function writeMessage(
  w: ByteWriter,
  message: MessageRecord,
  options?: MessageCodecOptions,
): ByteWriter {
  const flags = message.qos |
    (message.retain ? 4 : 0) |
    (message.properties !== undefined ? 8 : 0) |
    (message.origin !== undefined ? 16 : 0) |
    (message.expiresAt !== undefined ? 32 : 0) |
    (message.retainOut ? 64 : 0) |
    (message.subscriptionIdentifiers !== undefined ? 128 : 0);
  w.u8(flags);
  if (message.expiresAt !== undefined) w.f64(message.expiresAt);
  w.name(message.topic);
  if (message.origin !== undefined) w.name(message.origin);
  if (message.properties !== undefined) w.text(JSON.stringify(message.properties));
  const ids = message.subscriptionIdentifiers;
  if (ids !== undefined) {
    w.varint(ids.length);
    for (const id of ids) w.varint(id);
  }
  return options?.bounded ? w.bytes(message.payload) : w.raw(message.payload);
}

/**
 * Reads a message record written by {@linkcode writeMessage} with the same `bounded`, to the end
 * of the input unless `bounded`.
 */
export function readMessage(r: ByteReader, options?: MessageCodecOptions): MessageRecord {
  const flags = r.u8();
  const qos = flags & 3;
  if (qos === 3) throw new RangeError(`Cannot decode record: bad flags ${flags}`);
  const expiresAt = flags & 32 ? r.f64() : undefined;
  const topic = r.name();
  const origin = flags & 16 ? r.name() : undefined;
  const properties = flags & 8 ? JSON.parse(r.text()) : undefined;
  let ids: number[] | undefined;
  if (flags & 128) {
    ids = [];
    for (let n = r.varint(); n > 0; n--) ids.push(r.varint());
  }
  const out: MessageRecord = {
    topic,
    payload: options?.bounded ? (options.view ? r.view() : r.bytes()) : r.rest(options?.view),
    qos: qos as 0 | 1 | 2,
    retain: !!(flags & 4),
  };
  if (properties !== undefined) out.properties = properties;
  if (origin !== undefined) out.origin = origin;
  if (expiresAt !== undefined) out.expiresAt = expiresAt;
  if (flags & 64) out.retainOut = true;
  if (ids !== undefined) out.subscriptionIdentifiers = ids;
  return out;
}

/**
 * Encodes a message record into one byte string.
 *
 * @param message the record
 * @returns its bytes
 *
 * @example
 * ```ts
 * import { decodeMessage, encodeMessage } from "./record_codec.ts";
 * import assert from "node:assert/strict";
 *
 * const m = { topic: "a/b", payload: new Uint8Array([0, 255]), qos: 1 as const, retain: true };
 * assert.deepEqual(decodeMessage(encodeMessage(m)), m);
 * ```
 */
export function encodeMessage(message: MessageRecord): Uint8Array {
  return writeMessage(new ByteWriter(), message).finish();
}

/**
 * Decodes what {@linkcode encodeMessage} wrote.
 *
 * @param bytes the encoding
 * @returns the record, sharing nothing with `bytes`
 * @throws {RangeError} If the bytes are truncated or malformed.
 * @throws {TypeError} If a text field is not UTF-8.
 * @throws {SyntaxError} If the properties are not JSON.
 */
export function decodeMessage(bytes: Uint8Array): MessageRecord {
  return readMessage(new ByteReader(bytes));
}

/**
 * Streaming decoder: push byte chunks as they arrive, pull whole packets.
 *
 * @module
 */

import { PacketType, type ProtocolVersion } from "./constants.ts";
import type { Packet } from "./types.ts";
import type { DecodeOptions } from "./decode.ts";
import { checkOptions, decodeSafely, Reader } from "./_decode.ts";
import type { MqttPacketError } from "./packet_error.ts";
import { frameLength } from "./_frame.ts";

const EMPTY = new Uint8Array(0);
/** The smallest buffer taken for a packet split across chunks: later chunks are appended to it. */
const MIN_BUFFER = 16 * 1024;
/**
 * The same for a chunk of at most {@linkcode SMALL_CHUNK} bytes: a slow peer's reads (256 B) often
 * end inside a packet, and glibc's malloc merges every small chunk freed since (after a scavenge,
 * thousands of records of array buffers) before it serves a request of 1,008 bytes or more: 0.1–0.6
 * ms of the main thread, 17 times a second at 5k msg/s with 16 KiB here. 1,000 bytes stay below.
 */
const SMALL_BUFFER = 1000;
const SMALL_CHUNK = 512;
/** Where a released packet's views were (see `PacketDecoder.release`). */
const CHUNK = 1;
const OWN = 2;
/** An idle internal buffer larger than this is released rather than kept for reuse. */
const KEEP_BUFFER_MAX = 64 * 1024;

// The bits of `PacketDecoder`'s flags.
/** `#src` is `#own`. */
const INTERNAL = 1;
/** Packets handed out may hold views into `#own` (then it must not be overwritten). */
const OWN_SHARED = 2;
/** The caller releases PUBLISHes (see {@linkcode PacketDecoder.release}): it has done so once. */
const RELEASES = 4;
/** A packet handed out since the last push holds views into the caller's chunk. */
const CHUNK_VIEWS = 8;

/**
 * Incremental MQTT packet decoder for one connection. Feed it chunks with
 * {@linkcode PacketDecoder.push} and take packets with {@linkcode PacketDecoder.next} until it
 * returns `undefined`.
 *
 * Nothing is copied per packet: PUBLISH payloads and other binary fields are views into a pushed
 * chunk, or into an internal buffer that gathers packets split across chunks. A caller must not
 * reuse or overwrite a chunk after pushing it, unless {@linkcode PacketDecoder.chunkReleased} says
 * it is free. The internal buffer is never overwritten while views into it that were handed out
 * may be in use (a fresh one is taken instead; a PUBLISH the caller released with
 * {@linkcode PacketDecoder.release} no longer counts), so results stay valid. A view keeps its
 * whole underlying buffer alive: copy a payload (`payload.slice()`) before storing it for long.
 *
 * After it throws, the decoder is broken for good: every later `next()` throws the same error (the
 * connection must be closed).
 *
 * @example Decoding a stream split mid-packet
 * ```ts
 * import { PacketDecoder, PacketType } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const decoder = new PacketDecoder({ protocolVersion: 4 });
 * decoder.push(new Uint8Array([0xc0, 0x00, 0xd0])); // PINGREQ, then half a PINGRESP
 * assert.deepEqual(decoder.next(), { type: PacketType.PINGREQ });
 * assert.equal(decoder.next(), undefined);
 * decoder.push(new Uint8Array([0x00]));
 * assert.deepEqual(decoder.next(), { type: PacketType.PINGRESP });
 * ```
 */
export class PacketDecoder {
  /** The cursor, which also holds the options (the protocol level among them). */
  #reader: Reader;
  /** The bytes being read: a caller's chunk, or `#own` when a packet spans chunks. */
  #src: Uint8Array = EMPTY;
  #read = 0;
  #write = 0;
  /**
   * Four booleans in one field (8 bytes, not 32: memory per idle connection): INTERNAL,
   * OWN_SHARED, RELEASES, CHUNK_VIEWS (see there).
   */
  #flags = 0;
  /**
   * The caller's chunk to decode from once `#own` is done, at `#nextAt`: its first bytes completed
   * a packet split across chunks, which alone was gathered in `#own` (see push).
   */
  #next: Uint8Array | undefined;
  #nextAt = 0;
  #own: Uint8Array | undefined;
  /** The same as {@linkcode #publishViews} for `#own`. */
  #ownPublishViews = 0;
  /**
   * PUBLISH packets without properties handed out since the last push whose payload is a view into
   * the caller's chunk and which the caller has not released (see {@linkcode release}).
   */
  #publishViews = 0;
  /** Where the last packet handed out is counted: 0 nowhere, CHUNK or OWN. */
  #lastCounted = 0;
  #error: MqttPacketError | undefined;

  /**
   * Creates a decoder.
   *
   * @param options Protocol level (left out: set by the first CONNECT), maximum packet size, side.
   * @throws {RangeError} When an option is out of range.
   */
  constructor(options?: DecodeOptions) {
    checkOptions(options);
    this.#reader = new Reader(options);
  }

  /** The protocol level in use: from the options, or from the CONNECT decoded; `undefined` before. */
  get protocolVersion(): ProtocolVersion | undefined {
    return this.#reader.protocolVersion;
  }

  /** Sets the protocol level (a client sets it to the level of the CONNECT it sent). */
  set protocolVersion(version: ProtocolVersion | undefined) {
    if (version !== undefined && version !== 3 && version !== 4 && version !== 5) {
      throw new RangeError(`Cannot set protocol version: ${version} is not 3, 4 or 5`);
    }
    this.#reader.protocolVersion = version;
  }

  /** Bytes pushed but not yet returned as packets. */
  get bufferedBytes(): number {
    const next = this.#next;
    return this.#write - this.#read + (next === undefined ? 0 : next.length - this.#nextAt);
  }

  /**
   * Whether the last chunk pushed is free again: no packet handed out holds a view into it (only
   * PUBLISH, CONNECT, AUTH and packets with properties can; a PUBLISH without properties no longer
   * does once {@linkcode release}d) and no bytes of it wait undecoded. A reader may then read the
   * next bytes into the same memory.
   */
  get chunkReleased(): boolean {
    return (this.#flags & CHUNK_VIEWS) === 0 && this.#publishViews === 0 &&
      this.#next === undefined &&
      ((this.#flags & INTERNAL) !== 0 || this.#read === this.#write);
  }

  /**
   * Tells the decoder that the caller keeps no view into the last packet {@linkcode next} returned
   * (it copied what it keeps, or keeps nothing): when that was a PUBLISH without properties, whose
   * only view is its payload, it no longer holds the chunk (see {@linkcode chunkReleased}). The
   * broker calls it once a message is routed, so that a publisher's next bytes are read into the
   * same buffer instead of a fresh one per read. Without it a PUBLISH holds its chunk for good.
   *
   * @example
   * ```ts
   * import { PacketDecoder } from "./mod.ts";
   * import assert from "node:assert/strict";
   *
   * const decoder = new PacketDecoder({ protocolVersion: 4 });
   * decoder.push(new Uint8Array([0x30, 4, 0, 1, 0x74, 9])); // PUBLISH QoS 0 to "t", payload [9]
   * const publish = decoder.next();
   * assert.equal(decoder.chunkReleased, false); // the payload is a view into the chunk
   * const kept = publish?.type === 3 ? publish.payload.slice() : undefined;
   * decoder.release();
   * assert.equal(decoder.chunkReleased, true);
   * assert.deepEqual(kept, new Uint8Array([9]));
   * ```
   */
  release(): void {
    this.#flags |= RELEASES;
    const counted = this.#lastCounted;
    this.#lastCounted = 0;
    if (counted === CHUNK) this.#publishViews--;
    else if (counted === OWN) this.#ownPublishViews--;
  }

  /**
   * Lets go of the internal buffer that gathers packets split across chunks (kept between chunks
   * for reuse, up to 64 KiB) unless bytes wait in it. A reader calls it when its connection goes
   * quiet, so that an idle connection does not keep what its last burst needed. Packets handed out
   * stay valid.
   *
   * @example
   * ```ts
   * import { PacketDecoder, PacketType } from "./mod.ts";
   * import assert from "node:assert/strict";
   *
   * const decoder = new PacketDecoder({ protocolVersion: 4 });
   * decoder.push(new Uint8Array([0xc0, 0x00, 0xd0])); // PINGREQ, then half a PINGRESP
   * assert.deepEqual(decoder.next(), { type: PacketType.PINGREQ });
   * assert.equal(decoder.next(), undefined);
   * decoder.trim(); // the half packet waits in the internal buffer: kept
   * decoder.push(new Uint8Array([0x00]));
   * assert.deepEqual(decoder.next(), { type: PacketType.PINGRESP });
   * decoder.trim(); // nothing waits: the internal buffer goes
   * assert.equal(decoder.bufferedBytes, 0);
   * ```
   */
  trim(): void {
    if ((this.#flags & INTERNAL) !== 0 && this.#read !== this.#write) return;
    this.#own = undefined;
    this.#ownPublishViews = 0;
    this.#flags &= ~OWN_SHARED;
    if (this.#lastCounted === OWN) this.#lastCounted = 0;
  }

  /**
   * Adds bytes received from the peer. Does not decode; call {@linkcode PacketDecoder.next}.
   *
   * @param chunk Bytes in arrival order. Must not be modified afterwards: decoded packets may hold
   * views into it.
   */
  push(chunk: Uint8Array): void {
    const n = chunk.length;
    if (n === 0) return;
    this.#flags &= ~CHUNK_VIEWS;
    this.#publishViews = 0;
    this.#lastCounted = 0;
    const next = this.#next;
    if (next !== undefined) {
      // The chunk before is still being decoded (pushed ahead): gather all of it.
      this.#next = undefined;
      this.#gather(next.subarray(this.#nextAt));
      this.#gather(chunk);
      return;
    }
    const left = this.#write - this.#read;
    if (left > 0 && n > 1) {
      // A packet split across chunks: gather only its rest in our buffer, then go on from the
      // chunk itself (no copy of the whole chunk; the chunk is free once decoded).
      const missing = this.#missing();
      if (missing !== undefined && missing > 0 && missing < n) {
        this.#gather(chunk.subarray(0, missing));
        this.#next = chunk;
        this.#nextAt = missing;
        return;
      }
    }
    this.#gather(chunk);
  }

  /**
   * Bytes still missing of the packet pending at `#read`, when its fixed header is whole (0 or less
   * when more than that packet is pending); a header over the limits is left for next() to report.
   */
  #missing(): number | undefined {
    try {
      const total = frameLength(this.#src, this.#read, this.#write, Number.MAX_SAFE_INTEGER);
      return total === undefined ? undefined : total - (this.#write - this.#read);
    } catch {
      return undefined;
    }
  }

  /** Appends `chunk` to the bytes pending: from it directly when none are, else in `#own`. */
  #gather(chunk: Uint8Array): void {
    const n = chunk.length;
    const left = this.#write - this.#read;
    if (left === 0) {
      // Nothing pending: decode straight from the caller's chunk, no copy.
      this.#src = chunk;
      this.#read = 0;
      this.#write = n;
      this.#flags &= ~INTERNAL;
      return;
    }
    if ((this.#flags & INTERNAL) !== 0 && this.#write + n <= this.#src.length) {
      // Room at the end: appending never touches bytes that were handed out.
      this.#src.set(chunk, this.#write);
      this.#write += n;
      return;
    }
    // Move the pending partial packet and the new chunk into a buffer nobody else sees.
    const need = left + n;
    const pending = this.#src.subarray(this.#read, this.#write);
    let own = this.#own;
    if (
      own !== undefined && (this.#flags & OWN_SHARED) === 0 && this.#ownPublishViews === 0 &&
      need <= own.length
    ) {
      // Our buffer is private and big enough: compact in place (copyWithin handles overlap).
      if ((this.#flags & INTERNAL) !== 0) own.copyWithin(0, this.#read, this.#write);
      else own.set(pending, 0);
    } else {
      // Double only for a packet that outgrows the buffer, so sizes stay bounded by packet size.
      const current = (this.#flags & INTERNAL) !== 0 ? this.#src.length : 0;
      const min = n <= SMALL_CHUNK ? SMALL_BUFFER : MIN_BUFFER;
      own = new Uint8Array(need > current ? Math.max(min, need, 2 * current) : Math.max(min, need));
      own.set(pending, 0);
      this.#own = own;
      this.#flags &= ~OWN_SHARED;
      this.#ownPublishViews = 0;
    }
    own.set(chunk, left);
    this.#src = own;
    this.#read = 0;
    this.#write = need;
    this.#flags |= INTERNAL;
  }

  /**
   * Decodes the next packet from the bytes pushed so far.
   *
   * @returns The packet, or `undefined` when more bytes are needed.
   * @throws {MqttPacketError} When the bytes are not a valid packet (then on every later call too).
   */
  next(): Packet | undefined {
    if (this.#error !== undefined) throw this.#error;
    if (this.#read === this.#write) return undefined;
    const r = this.#reader;
    let packet: Packet | undefined;
    try {
      packet = decodeSafely(r, this.#src, this.#read, this.#write);
    } catch (error) {
      this.#error = error as MqttPacketError;
      throw error;
    }
    if (packet === undefined) {
      // The rest of a packet split across chunks: its first bytes go to our buffer now, so that
      // the caller's chunk is free once its packets are (the reader reads into it again); they
      // would be copied at the next push anyway.
      if ((this.#flags & INTERNAL) === 0) this.#gather(EMPTY);
      return undefined;
    }
    this.#read += r.length;
    // A PUBLISH without properties has its payload for only view: a caller that releases
    // PUBLISHes may free the bytes it was decoded from (see release).
    const releasable = packet.type === PacketType.PUBLISH && packet.properties === undefined;
    if ((this.#flags & INTERNAL) !== 0) {
      // Kept for reuse only for a caller that releases: another's is dropped as it empties.
      if (releasable && (this.#flags & RELEASES) !== 0) {
        this.#ownPublishViews++;
        this.#lastCounted = OWN;
      } else {
        this.#lastCounted = 0;
        if (holdsViews(packet)) this.#flags |= OWN_SHARED;
      }
    } else if (releasable) {
      this.#publishViews++;
      this.#lastCounted = CHUNK;
    } else {
      this.#lastCounted = 0;
      if (holdsViews(packet)) this.#flags |= CHUNK_VIEWS;
    }
    if (packet.type === PacketType.CONNECT && r.protocolVersion === undefined) {
      r.protocolVersion = packet.protocolVersion;
    }
    if (this.#read === this.#write && this.#next !== undefined) {
      // The split packet is done: on with the chunk that completed it.
      this.#src = this.#next;
      this.#read = this.#nextAt;
      this.#write = this.#next.length;
      this.#next = undefined;
      this.#flags &= ~INTERNAL;
      r.buf = EMPTY;
      const own = this.#own;
      if (own !== undefined && ((this.#flags & OWN_SHARED) !== 0 || own.length > KEEP_BUFFER_MAX)) {
        this.#own = undefined;
      }
    } else if (this.#read === this.#write) {
      this.#read = this.#write = 0;
      // Drop the reference to a caller's chunk, and to a large or shared buffer of ours.
      this.#src = EMPTY;
      r.buf = EMPTY;
      this.#flags &= ~INTERNAL;
      const own = this.#own;
      if (own !== undefined && ((this.#flags & OWN_SHARED) !== 0 || own.length > KEEP_BUFFER_MAX)) {
        this.#own = undefined;
      }
    }
    return packet;
  }
}

/**
 * Whether a decoded packet may hold views into the bytes it was decoded from. A CONNECT's client
 * id and user name are strings: only its password, will and properties are views, and most
 * CONNECTs have none of them, so the reader reads the connection's next bytes into the same
 * buffer instead of a fresh one (a buffer less per connection made).
 */
function holdsViews(packet: Packet): boolean {
  const type = packet.type;
  if (type === PacketType.CONNECT) {
    return packet.password !== undefined || packet.will !== undefined ||
      packet.properties !== undefined;
  }
  return type === PacketType.PUBLISH || type === PacketType.AUTH ||
    (packet as { properties?: unknown }).properties !== undefined;
}

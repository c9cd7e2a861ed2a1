/**
 * One connection's packet channel: the read loop that feeds a decoder, the double-buffered output
 * that turns everything queued in one turn into one write, the outbound bound that pauses reading,
 * and the byte counters. The broker's connections, the client and the benchmark's load generator
 * all speak MQTT through it.
 *
 * @module
 */

import type { ProtocolVersion } from "../packet/constants.ts";
import { encodedLength, encodePacketInto } from "../packet/encode.ts";
import type { Packet } from "../packet/types.ts";
import { readTurns } from "./_read_turns.ts";
import type { ByteConnection, ReadReceiver, WriteReceiver } from "./types.ts";

/**
 * What a {@linkcode PacketChannel} decodes its input with: `PacketDecoder` of `./packet` fits, and
 * so does any frame scanner with the same three members.
 *
 * @example
 * ```ts
 * import { type Packet, PacketDecoder } from "../packet/mod.ts";
 * import type { ChannelDecoder } from "./packet_channel.ts";
 *
 * const decoder: ChannelDecoder<Packet> = new PacketDecoder({ protocolVersion: 4 });
 * ```
 */
export interface ChannelDecoder<T> {
  /** Adds a chunk read from the peer; the decoder may keep views into it. */
  push(chunk: Uint8Array): void;
  /** The next whole item, or `undefined` until more bytes arrive. */
  next(): T | undefined;
  /** Bytes pushed and not yet taken as items. */
  readonly bufferedBytes: number;
  /**
   * Optional: whether the last chunk pushed is free again (no item handed out refers to it, no
   * byte of it waits). The channel then reads the next bytes into the same memory.
   */
  readonly chunkReleased?: boolean;
  /**
   * Optional: the sink keeps no view into the last item `next()` returned (see
   * {@linkcode PacketChannel.itemReleased}); it then no longer holds its chunk.
   */
  release?(): void;
  /**
   * Optional: the connection goes quiet; let go of buffers kept for reuse between chunks (see
   * `PacketDecoder.trim`).
   */
  trim?(): void;
}

/**
 * Where a {@linkcode PacketChannel} hands what it decodes.
 *
 * @example
 * ```ts
 * import type { Packet } from "../packet/mod.ts";
 * import type { ChannelSink } from "./packet_channel.ts";
 *
 * const seen: Packet[] = [];
 * const sink: ChannelSink<Packet> = { receive: (packet) => void seen.push(packet) };
 * ```
 */
export interface ChannelSink<T> {
  /**
   * Called before the items of each chunk, and again after the channel waited (a held item, output
   * draining): the moment to read the clock once for the items that follow.
   */
  begin?(): void;
  /**
   * One decoded item. Returning a promise holds the channel: no further item is handed over until
   * it settles, while the channel goes on reading ahead (at most `readAhead` bytes) so that a peer
   * that goes away meanwhile is noticed. {@linkcode PacketChannel.close} ends the wait at once.
   */
  receive(item: T): void | Promise<unknown>;
  /** Called after the items of each chunk: the moment to act on what they changed. */
  end?(): void;
  /** Called after a write when the bytes still pending are at most half of `maxOutboundBytes`. */
  drained?(): void;
  /**
   * Called once when a write fails; the channel is aborted right after. What it throws goes to
   * `reportError`.
   */
  writeFailed?(error: unknown): void;
  /**
   * Called once when reading has ended, for a channel started with
   * {@linkcode PacketChannel.start}: with nothing, or with what the decoder or the sink threw (see
   * {@linkcode PacketChannel.run}). What it throws goes to `reportError`.
   */
  ended?(error?: unknown): void;
  /**
   * Called as each write starts: a promise holds that write (and the ones after it) until it
   * settles — a broker's store commits what the output acknowledges. To drop the output instead,
   * the sink aborts the channel before the promise settles; to write other bytes instead, the
   * promise resolves with them. A gate that throws fails the write (see `writeFailed`).
   *
   * @param bytes the bytes of the write (not to be modified)
   */
  gate?(bytes: Uint8Array): Promise<unknown> | undefined;
}

/** Byte totals shared by many channels (a broker's `$SYS` counters). */
export interface ByteCounters {
  /** Bytes read from peers. */
  bytesReceived: number;
  /** Bytes handed to the transport for writing. */
  bytesSent: number;
}

/** Options of {@linkcode PacketChannel}. */
export interface PacketChannelOptions {
  /**
   * Bytes waiting to be written past which no more items are decoded until half of them have
   * drained: a peer that sends without reading cannot grow the output without bound.
   *
   * @default {Infinity}
   */
  maxOutboundBytes?: number;
  /**
   * Bytes read ahead into the decoder while the sink holds the channel.
   *
   * @default {65536}
   */
  readAhead?: number;
  /** Totals to add this channel's traffic to, besides its own counters. */
  counters?: ByteCounters;
  /**
   * Bytes decoded per turn of the event loop's timers before the channel lets every other
   * connection with data take its turn (round robin): a flooding peer cannot starve the others.
   *
   * @default {1048576}
   */
  readBudget?: number;
}

/** {@linkcode PacketChannelOptions} with the defaults applied. */
interface ChannelSettings {
  readonly maxOut: number;
  readonly readAhead: number;
  readonly counters: ByteCounters | undefined;
  readonly readBudget: number;
}

const NO_OPTIONS: PacketChannelOptions = {};
/** The settings of each options object, made once and shared by the channels made with it. */
const settingsOf = new WeakMap<PacketChannelOptions, ChannelSettings>();

/** The settings of `options`: the same object for every channel made with the same options. */
function settingsFor(options: PacketChannelOptions): ChannelSettings {
  let settings = settingsOf.get(options);
  if (settings === undefined) {
    settings = {
      maxOut: options.maxOutboundBytes ?? Infinity,
      readAhead: options.readAhead ?? 64 * 1024,
      counters: options.counters,
      readBudget: options.readBudget ?? 1024 * 1024,
    };
    settingsOf.set(options, settings);
  }
  return settings;
}

const EMPTY = new Uint8Array(0);
/**
 * The first output buffer's size: a connection that only ever writes a CONNACK or a PINGRESP
 * does not allocate (and zero) more than it needs for them (every connection's first write is a
 * CONNACK: in a storm of connections, every byte of it is garbage for the next scavenge); a busy
 * one doubles from here to what it needs.
 */
const FIRST_BUFFER = 64;
/** A spare output buffer larger than this is released once idle rather than kept for reuse. */
const KEEP_BUFFER_MAX = 1 << 20;
const DONE = 1;

/**
 * A read started through `ByteConnection.readThen` while the sink held the channel: in flight
 * (`reading`), or done with its `chunk` not taken yet. While the hold waits, `to` is told when it
 * comes and takes the chunk; once the hold has ended, the chunk goes straight to `loop` (the
 * channel's read loop goes on through `readDone`, with no callback made for it, and the channel
 * keeps no reference to this read while its idle peer stays silent).
 */
class AheadRead implements ReadReceiver {
  reading = false;
  chunk: Uint8Array | null | undefined = undefined;
  to: (() => void) | undefined = undefined;
  loop: ReadReceiver | undefined = undefined;
  /** The transport's call with the chunk read. */
  readDone(chunk: Uint8Array | null): void {
    this.reading = false;
    const loop = this.loop;
    if (loop !== undefined) {
      this.loop = undefined;
      loop.readDone(chunk);
      return;
    }
    this.chunk = chunk;
    const to = this.to;
    this.to = undefined;
    to?.();
  }
  /** The chunk read, taken. */
  take(): Uint8Array | null {
    const chunk = this.chunk!;
    this.chunk = undefined;
    return chunk;
  }
}
const WOKEN = 2;
const READ = 3;

/**
 * What a {@linkcode PacketChannel} needs only while it waits, when it is awaited, or over a
 * transport without `read`/`readThen`/`writeThen`: made on first need and dropped once nothing in
 * it is in use (an idle broker connection keeps none: memory per idle connection).
 */
class ChannelExtras {
  /** The stream's reader, for a transport without a direct read(). */
  reader: ReadableStreamDefaultReader<Uint8Array> | undefined = undefined;
  /** run()'s promise, settled when the loop ends; start() has none. */
  ran: PromiseWithResolvers<void> | undefined = undefined;
  /** The error of the first write that failed. */
  writeError: unknown = undefined;
  /** Set while run() waits (a held item, draining output): close() and abort() wake it at once. */
  wake: (() => void) | undefined = undefined;
  /** While reading is paused for the outbound bound: the pending bytes at which it resumes, else -1. */
  resumeBelow = -1;
  /** Set while run() waits for resumeReading(); close() and abort() call it too. */
  unpause: (() => void) | undefined = undefined;
  /** A read started while the sink held the channel, taken by the main loop next. */
  ahead: Promise<Uint8Array | null> | undefined = undefined;
  /** The same through the transport's `readThen` (see {@linkcode AheadRead}). */
  aheadRead: AheadRead | undefined = undefined;
  /** Whoever waits in written(), by the total the bytes they wait for end at. */
  waiters: { target: number; resolve: () => void }[] | undefined = undefined;
  /** {@linkcode PacketChannel.writeSettled} as a function, for a transport without `writeThen`. */
  settler: ((error?: unknown) => void) | undefined = undefined;
  /** The loop's step as a function, for a transport without `readThen` and the rarer waits. */
  stepper: ((chunk?: unknown) => void) | undefined = undefined;

  /** Whether nothing in it is in use: the channel may drop it. */
  get unused(): boolean {
    return this.reader === undefined && this.ran === undefined && this.writeError === undefined &&
      this.wake === undefined && this.unpause === undefined && this.ahead === undefined &&
      this.aheadRead === undefined && this.waiters === undefined && this.settler === undefined &&
      this.stepper === undefined;
  }
}

/** The modulus of the write clock (see writePendingFor): 2^30, a small integer's range. */
const WRAP_MS = 2 ** 30;

/** `ms` modulo 2^30, tagged as a small integer (a `%` of a double is a heap number to V8). */
function wrapMs(ms: number): number {
  return (ms % WRAP_MS) | 0;
}

// The bits of `PacketChannel`'s flags.
/** Closing or closed (by either side, or by a failed write). */
const CLOSING = 1;
/** Aborted: output dropped, socket closed at once. */
const ABORTED = 2;
/** Set by closeGracefully(): at the end of the output, half-close and read on (see there). */
const LINGER = 4;
/** The output side was half-closed (lingering). */
const HALF_CLOSED = 8;
/** Paused by the owner (pauseReading): no item is handed over, nothing more is read. */
const PAUSED = 16;
/** A flush is queued for this turn. */
const FLUSH_QUEUED = 32;
/** Written since the output buffers were last trimmed by the sweep. */
const WROTE_SINCE_TRIM = 64;
/** The read loop runs (start() until its end). */
const RUNNING = 128;
/** The items of the chunk being handled waited: chunks read ahead went into the decoder. */
const WAITED = 256;
/**
 * Flushes queued by every channel of the process and not yet run: a channel that has handled a
 * chunk lets them run before it reads again, so what the chunk caused is written before the next
 * read is set up.
 */
let flushesQueued = 0;
/**
 * The channels with bytes queued in this turn, flushed in order by one microtask for all of them
 * (a fan-out queues one microtask, not one per subscriber, and no channel keeps a callback for it).
 */
const toFlush: { flush(): void }[] = [];
/**
 * The channels that read on once the flushes queued before them have run (a chunk's replies go
 * out before the next read is set up): called at the end of the {@linkcode flushAll} that runs
 * them, with no callback per channel. Two arrays, swapped: a channel may ask again meanwhile.
 */
let readOn: { readDone(): void }[] = [];
let readOnSpare: { readDone(): void }[] = [];

/** The microtask that flushes every channel in {@linkcode toFlush}. */
function flushAll(): void {
  let i = 0;
  try {
    // A flush may queue bytes on another channel: it is appended and flushed in this pass too.
    for (; i < toFlush.length; i++) {
      flushesQueued--;
      toFlush[i]!.flush();
    }
  } finally {
    // A flush that threw leaves the ones after it (and the reads on) to a microtask of their own.
    if (i + 1 < toFlush.length) {
      toFlush.splice(0, i + 1);
      queueMicrotask(flushAll);
    } else {
      toFlush.length = 0;
      // Every flush has run (the last may have thrown): the channels waiting for them read on.
      if (readOn.length > 0) readOnAll();
    }
  }
}

/** Steps every channel in {@linkcode readOn}: each catches its own errors (its loop ends). */
function readOnAll(): void {
  const channels = readOn;
  readOn = readOnSpare;
  readOnSpare = channels;
  for (let k = 0; k < channels.length; k++) channels[k]!.readDone();
  channels.length = 0;
}

/** Queues `channel`'s flush for the end of this turn's synchronous work. */
function queueFlush(channel: { flush(): void }): void {
  flushesQueued++;
  if (toFlush.push(channel) === 1) queueMicrotask(flushAll);
}

/**
 * A connection's packet channel over a {@linkcode ByteConnection}.
 *
 * Output: callers queue bytes (`send`, `sendPacket`, or `reserve` + `commit` to encode in place);
 * everything queued in one turn of the event loop goes out as one write. While a write is in
 * flight new bytes go to a second buffer, written as soon as the first write completes. Input:
 * {@linkcode PacketChannel.run} reads chunks, pushes them into the decoder and hands each item to
 * the sink in order.
 *
 * @example An echo of PINGREQ as PINGRESP over a real socket
 * ```ts
 * import { PacketChannel, socketConnection } from "./mod.ts";
 * import { PacketDecoder } from "../packet/mod.ts";
 * import assert from "node:assert/strict";
 *
 * using server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * using client = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
 * const conn = socketConnection(await server.accept(), { transport: "tcp", remoteAddress: "peer" });
 * const channel = new PacketChannel(conn, new PacketDecoder({ protocolVersion: 4 }));
 * const running = channel.run({
 *   receive: (packet) => {
 *     if (packet.type === 12) channel.sendPacket({ type: 13 }, 4); // PINGREQ -> PINGRESP
 *   },
 * });
 * await client.write(new Uint8Array([0xc0, 0x00]));
 * const reply = new Uint8Array(2);
 * assert.equal(await client.read(reply), 2);
 * assert.deepEqual([...reply], [0xd0, 0x00]);
 * channel.close();
 * await running;
 * await channel.finish();
 * assert.equal(channel.bytesReceived, 2);
 * assert.equal(channel.bytesSent, 2);
 * ```
 */
export class PacketChannel<T> implements ReadReceiver, WriteReceiver {
  readonly #conn: ByteConnection;
  readonly #decoder: ChannelDecoder<T>;
  /**
   * The options with their defaults applied, one object per options object (see settingsFor): one
   * reference, not four copies, and a broker's connections share one per listener.
   */
  readonly #s: ChannelSettings;
  // Bytes decoded in the turn #turn (see ./_read_turns.ts).
  #turnBytes = 0;
  #turn = -1;
  #sink: ChannelSink<T> | undefined;
  /**
   * Nine booleans in one field (8 bytes, not 72: memory per idle connection): CLOSING, ABORTED,
   * LINGER, HALF_CLOSED, PAUSED, FLUSH_QUEUED, WROTE_SINCE_TRIM, RUNNING, WAITED (see there).
   */
  #flags = 0;
  /** The rarely used state (see {@linkcode ChannelExtras}): `undefined` while none is in use. */
  #x: ChannelExtras | undefined;
  /** A chunk nothing refers to any more, handed back to the transport to read into. */
  #reuse: Uint8Array | undefined;
  // Double buffering: callers append to #out while #spare is being written.
  #out: Uint8Array = EMPTY;
  #outLen = 0;
  #spare: Uint8Array = EMPTY;
  // The view each buffer was last written through (EMPTY, or a view of that buffer from its
  // start), used again when its next write has the same length: a steady flow writes packets of
  // one size (a QoS 1 publisher's PUBACKs, a subscriber's PUBLISHes), and a view is an object per
  // write. Reset wherever its buffer is replaced.
  #outView: Uint8Array = EMPTY;
  #spareView: Uint8Array = EMPTY;
  #writing = 0;
  /**
   * When the pending write started: `Date.now()` modulo 2^30, a small integer (V8 boxes a field
   * that held `Date.now()` itself, 16 bytes per connection); exact for writes pending up to 12
   * days (see writePendingFor).
   */
  #writeStarted = 0;
  #bytesReceived = 0;
  #bytesSent = 0;
  // Bytes ever committed and ever written: written() waits for the first to reach the second.
  #queuedTotal = 0;
  #writtenTotal = 0;

  /**
   * Creates the channel; nothing is read until {@linkcode PacketChannel.run}.
   *
   * @param conn the connection; the channel closes it
   * @param decoder what turns the bytes read into items
   * @param options the outbound bound, read-ahead, shared counters and read budget: read once
   *   per options object (channels made with the same object share its settings)
   */
  constructor(
    conn: ByteConnection,
    decoder: ChannelDecoder<T>,
    options: PacketChannelOptions = NO_OPTIONS,
  ) {
    this.#conn = conn;
    this.#decoder = decoder;
    this.#s = settingsFor(options);
  }

  /** The rarely used state, made now if there is none. */
  get #extras(): ChannelExtras {
    return this.#x ??= new ChannelExtras();
  }

  /** Drops the rarely used state once nothing in it is in use. */
  #dropExtras(): void {
    if (this.#x?.unused === true) this.#x = undefined;
  }

  /** The connection the channel runs on. */
  get connection(): ByteConnection {
    return this.#conn;
  }

  /** Whether the channel is closing or closed (by either side, or by a failed write). */
  get closing(): boolean {
    return (this.#flags & CLOSING) !== 0;
  }

  /** Whether the channel was aborted: output dropped, socket closed at once. */
  get aborted(): boolean {
    return (this.#flags & ABORTED) !== 0;
  }

  /** The error of the first write that failed, if one did. */
  get writeError(): unknown {
    return this.#x?.writeError;
  }

  /** Bytes read from the peer. */
  get bytesReceived(): number {
    return this.#bytesReceived;
  }

  /** Bytes handed to the transport for writing. */
  get bytesSent(): number {
    return this.#bytesSent;
  }

  /** Bytes queued and being written. */
  get pendingBytes(): number {
    return this.#outLen + this.#writing;
  }

  /** Bytes queued and not yet handed to the transport: also where the next bytes go in the buffer. */
  get queuedBytes(): number {
    return this.#outLen;
  }

  /** When the pending write started (`Date.now()` ms), or 0 when none is pending. */
  get writeStarted(): number {
    const now = Date.now();
    return this.#writing > 0 ? now - this.writePendingFor(now) : 0;
  }

  /**
   * How long the pending write has been pending (a drain timeout's measure). Exact up to 2^30 ms
   * (12.4 days); a write pending longer counts again from 0 (a drain timeout that long is none).
   *
   * @param now the clock, `Date.now()` ms
   * @returns ms, 0 when no write is pending
   */
  writePendingFor(now: number): number {
    if (this.#writing === 0) return 0;
    const age = wrapMs(now) - this.#writeStarted;
    return age < 0 ? age + WRAP_MS : age;
  }

  /**
   * Reads and decodes until the peer closes or the channel is closed, handing each item to `sink`.
   * Items past the outbound bound wait until the output has drained to half of it.
   *
   * @param sink where decoded items go
   * @returns when reading has ended; the channel is then closing. Call
   *   {@linkcode PacketChannel.finish} to flush what is queued and close the connection.
   * @throws what the decoder or the sink throws (a malformed packet); the channel is left open so
   *   that a last packet can still be queued before {@linkcode PacketChannel.close}
   */
  run(sink: ChannelSink<T>): Promise<void> {
    const ran = Promise.withResolvers<void>();
    this.#extras.ran = ran;
    this.start(sink);
    return ran.promise;
  }

  /**
   * {@linkcode PacketChannel.run} without its promise: the end is told to `sink.ended`. A channel
   * that waits long for its peer (an idle connection) then holds no promise for its end.
   *
   * @param sink where decoded items go; its `ended` is called once reading has ended
   */
  start(sink: ChannelSink<T>): void {
    this.#sink = sink;
    this.#flags |= RUNNING;
    const conn = this.#conn;
    // The transport's direct read() when it has one: no stream machinery per connection.
    if (conn.read === undefined) this.#extras.reader = conn.readable.getReader();
    this.#readNext();
  }

  // The read loop is a chain of callbacks, not an async function: an idle connection waits with
  // no suspended frame, promise or await closures of its own (memory per idle connection counts at
  // 10k connections). Only waits inside a chunk (a held item, draining output, a pause) go through
  // an async function (#itemsAfter), which ends with the chunk.

  /** Reads the next chunk into #step, or ends the loop once closing. */
  #readNext(): void {
    if ((this.#flags & CLOSING) !== 0) {
      this.#endRun();
      return;
    }
    const x = this.#x;
    const aheadRead = x?.aheadRead;
    if (aheadRead !== undefined) {
      // The hold is over: the next one makes its own (an idle connection keeps none).
      x!.aheadRead = undefined;
      this.#dropExtras();
      if (aheadRead.reading) {
        // A read started during the hold is still in flight: its chunk comes to readDone.
        aheadRead.loop = this;
        return;
      }
      if (aheadRead.chunk !== undefined) {
        this.#step(aheadRead.take());
        return;
      }
    }
    const conn = this.#conn;
    if (
      (x === undefined || (x.ahead === undefined && x.reader === undefined)) &&
      conn.readThen !== undefined
    ) {
      const reuse = this.#reuse;
      this.#reuse = undefined;
      // A read that most likely waits: the decoder's buffer for packets split across chunks (up
      // to 64 KiB after a burst) is not kept through the quiet time (memory per idle connection).
      if (conn.readThen(reuse, this) === true) this.#decoder.trim?.();
    } else {
      const step = this.#stepFn();
      this.#nextChunk().then(step, step);
    }
  }

  /** #step as a function (see #stepper). */
  #stepFn(): (chunk?: unknown) => void {
    return this.#extras.stepper ??= (chunk?: unknown) => this.#step(chunk);
  }

  /**
   * The transport's call with the chunk read (`ByteConnection.readThen`), `null` at the end; with
   * none, the flushes it waited for have run (see flushAll): reads the next one. Not for callers.
   *
   * @param chunk the chunk, `null` at the end, or nothing
   */
  readDone(chunk?: Uint8Array | null): void {
    this.#step(chunk);
  }

  /**
   * The loop's one step: a chunk read (`null` at the end), `undefined` to read the next one (after
   * a turn or the flushes of the chunk before), or the error of a failed read (a transport's
   * read() that rejects ends run() with it). A method, not a callback per channel: the socket
   * calls `readDone` and flushAll steps the channels waiting for it.
   */
  #step(chunk?: unknown): void {
    try {
      if (chunk === undefined) {
        this.#readNext();
        return;
      }
      if (chunk !== null && !(chunk instanceof Uint8Array)) {
        this.#endRun(chunk);
        return;
      }
      if (chunk === null || (this.#flags & CLOSING) !== 0) {
        this.#flags |= CLOSING;
        this.#endRun();
        return;
      }
      this.#received(chunk);
      this.#decoder.push(chunk);
      this.#sink!.begin?.();
      this.#flags &= ~WAITED;
      const wait = this.#items();
      if (wait === undefined) this.#chunkDone(chunk);
      else {
        this.#itemsAfter(wait).then(
          () => this.#chunkDone(chunk),
          (error) => this.#endRun(error),
        );
      }
    } catch (error) {
      this.#endRun(error);
    }
  }

  /**
   * Hands the decoded items to the sink until none is left or one makes the channel wait.
   *
   * @returns the wait (the items after it are not handed over yet), or `undefined`
   */
  #items(): Promise<void> | undefined {
    const decoder = this.#decoder;
    const sink = this.#sink!;
    while ((this.#flags & CLOSING) === 0) {
      // Paused between chunks (not by an item: by the owner while a read was pending): the chunk
      // just read waits in the decoder, and no further read starts until the resume.
      if ((this.#flags & PAUSED) !== 0) return this.#wait(undefined);
      const item = decoder.next();
      if (item === undefined) return undefined;
      const hold = sink.receive(item);
      if (
        hold !== undefined || (this.#outLen + this.#writing > this.#s.maxOut) ||
        (this.#flags & PAUSED) !== 0
      ) return this.#wait(hold);
    }
    return undefined;
  }

  /** The waits after an item: what the sink returned, the output to drain, a pause. */
  async #wait(hold: void | Promise<unknown>): Promise<void> {
    if (hold !== undefined) await this.#hold(hold);
    if (this.#outLen + this.#writing > this.#s.maxOut && (this.#flags & CLOSING) === 0) {
      await this.#outputDrained();
    }
    if ((this.#flags & PAUSED) !== 0 && (this.#flags & CLOSING) === 0) await this.#resumed();
    this.#flags |= WAITED;
    this.#sink!.begin?.();
  }

  /** The rest of a chunk's items after a wait, with each further wait. */
  async #itemsAfter(wait: Promise<void>): Promise<void> {
    let next: Promise<void> | undefined = wait;
    while (next !== undefined) {
      await next;
      next = this.#items();
    }
  }

  /** After a chunk's items: the sink's end, then the next read (after a turn or the flushes). */
  #chunkDone(chunk: Uint8Array): void {
    try {
      this.#sink!.end?.();
      // Acknowledgements and pings leave nothing behind: read the next bytes into the same
      // buffer. (After a wait, chunks read ahead went into the decoder too: start afresh.)
      if ((this.#flags & WAITED) === 0 && this.#decoder.chunkReleased === true) this.#reuse = chunk;
      const turn = this.#takeTurns(chunk);
      if (turn !== undefined) turn.then(() => this.#step());
      // What this chunk caused goes out first: the flushes it queued run before the next read
      // is set up (one microtask, and only when something was queued).
      else if (flushesQueued > 0) readOn.push(this);
      else this.#readNext();
    } catch (error) {
      this.#endRun(error);
    }
  }

  /** The loop has ended: lingers if asked to (see closeGracefully), then settles run(). */
  #endRun(error?: unknown): void {
    if ((this.#flags & RUNNING) === 0) return;
    this.#flags &= ~RUNNING;
    if (error === undefined && (this.#flags & LINGER) !== 0) {
      this.#discardUntilEnd().then(() => this.#settleRun(), (e) => this.#settleRun(e));
    } else this.#settleRun(error);
  }

  #settleRun(error?: unknown): void {
    const x = this.#x;
    x?.reader?.releaseLock();
    const ran = x?.ran;
    if (x !== undefined) x.reader = x.ran = undefined;
    if (ran === undefined) {
      try {
        this.#sink!.ended?.(error);
      } catch (thrown) {
        // Nobody is left to hand it to (the read loop is a chain of callbacks): reported like an
        // event listener's error, once, rather than lost in the loop's own catch or left as the
        // unhandled rejection of a transport's read.
        reportError(thrown);
      }
    } else if (error === undefined) ran.resolve();
    else ran.reject(error);
  }

  /**
   * Stops handing items to the sink after the current one, and reading the connection: what the
   * peer sends meanwhile waits in the decoder (the rest of the chunk being decoded) and in the
   * kernel's buffers, which push back on the peer (TCP flow control). Writing goes on.
   */
  pauseReading(): void {
    this.#flags |= PAUSED;
  }

  /** Hands items to the sink and reads again after {@linkcode PacketChannel.pauseReading}. */
  resumeReading(): void {
    this.#flags &= ~PAUSED;
    this.#x?.unpause?.();
  }

  /** Whether reading is paused by {@linkcode PacketChannel.pauseReading}. */
  get readingPaused(): boolean {
    return (this.#flags & PAUSED) !== 0;
  }

  /**
   * Tells the decoder that the sink keeps no view into the item it is being handed (it copied what
   * it keeps): a chunk whose items are all released is read into again rather than replaced by a
   * fresh buffer (a PUBLISH's payload is a view into its chunk). Only during the sink's `receive`.
   */
  itemReleased(): void {
    this.#decoder.release?.();
  }

  /**
   * Room for `length` more bytes in the output buffer: write them at
   * {@linkcode PacketChannel.queuedBytes}, then call {@linkcode PacketChannel.commit}.
   *
   * @param length how many bytes the caller will write
   * @returns the output buffer (valid until the next call of any writing method)
   */
  reserve(length: number): Uint8Array {
    const needed = this.#outLen + length;
    if (needed <= this.#out.length) return this.#out;
    let size = this.#out.length < FIRST_BUFFER ? FIRST_BUFFER : this.#out.length * 2;
    while (size < needed) size *= 2;
    const grown = new Uint8Array(size);
    // A connection's first packet (its CONNACK) finds nothing to copy: no view made for it.
    if (this.#outLen > 0) grown.set(this.#out.subarray(0, this.#outLen));
    this.#out = grown;
    this.#outView = EMPTY;
    return grown;
  }

  /**
   * Marks the output buffer filled up to `end` (after {@linkcode PacketChannel.reserve}) and
   * schedules a write. Ignored once the channel is closing.
   *
   * @param end the new end of the queued bytes
   */
  commit(end: number): void {
    if ((this.#flags & ABORTED) !== 0) return;
    this.#queuedTotal += end - this.#outLen;
    this.#outLen = end;
    if ((this.#flags & FLUSH_QUEUED) === 0) {
      this.#flags |= FLUSH_QUEUED;
      queueFlush(this);
    }
  }

  /**
   * Queues a copy of `bytes`.
   *
   * @param bytes the bytes
   */
  send(bytes: Uint8Array): void {
    if ((this.#flags & ABORTED) !== 0) return;
    const out = this.reserve(bytes.length);
    out.set(bytes, this.#outLen);
    this.commit(this.#outLen + bytes.length);
  }

  /**
   * Queues bytes shared by every channel and never changed (a packet that is the same for every
   * connection, encoded once): with nothing queued and no output buffer at hand, they are written
   * as they are, with no buffer made for them; otherwise copied like {@linkcode send}. Bytes
   * queued after them go to a buffer of the channel's own, with a copy of them.
   *
   * @param bytes the bytes; must never be changed (the channel never writes into them)
   */
  sendShared(bytes: Uint8Array): void {
    if ((this.#flags & ABORTED) !== 0) return;
    // Bytes as long as a first buffer are copied: flush() keeps a spare that long for new bytes
    // (see there), and would append into the shared ones.
    if (
      this.#outLen !== 0 || this.#out !== EMPTY || bytes.length === 0 ||
      bytes.length >= FIRST_BUFFER
    ) {
      this.send(bytes);
      return;
    }
    // #out holds exactly these bytes: the next reserve() finds no room and makes a buffer of
    // its own, copying them; flush() writes them as they are and, swapping, keeps no buffer this
    // small (see #spare) for new bytes. abort() lets go of them (nothing is queued after it).
    this.#out = this.#outView = bytes;
    this.commit(bytes.length);
  }

  /**
   * Encodes a packet straight into the output buffer.
   *
   * @param packet the packet
   * @param protocolVersion the protocol level to encode at
   * @throws {MqttPacketError} when the packet cannot be encoded (nothing is queued then)
   */
  sendPacket(packet: Packet, protocolVersion: ProtocolVersion): void {
    if ((this.#flags & ABORTED) !== 0) return;
    const out = this.reserve(encodedLength(packet, protocolVersion));
    this.commit(encodePacketInto(packet, protocolVersion, out, this.#outLen));
  }

  /**
   * Writes what is queued now, unless a write is in flight (what is queued then goes out as soon
   * as that one completes). Queued bytes are flushed by themselves at the end of the turn; call
   * this only to send them earlier.
   */
  flush(): void {
    this.#flags &= ~FLUSH_QUEUED;
    if (this.#writing > 0 || this.#outLen === 0 || (this.#flags & ABORTED) !== 0) return;
    let bytes = this.#outView;
    if (bytes.length !== this.#outLen) bytes = this.#outView = this.#out.subarray(0, this.#outLen);
    this.#flags |= WROTE_SINCE_TRIM;
    this.#writing = this.#outLen;
    this.#writeStarted = wrapMs(Date.now());
    this.#bytesSent += this.#outLen;
    const counters = this.#s.counters;
    if (counters !== undefined) counters.bytesSent += this.#outLen;
    // Swap: new bytes go to the other buffer while this one is written.
    const written = this.#out;
    const keep = this.#spare.length >= FIRST_BUFFER && this.#spare.length <= KEEP_BUFFER_MAX;
    this.#out = keep ? this.#spare : EMPTY;
    this.#outView = keep ? this.#spareView : EMPTY;
    this.#spare = written;
    this.#spareView = bytes;
    this.#outLen = 0;
    let gate: Promise<unknown> | undefined;
    try {
      gate = this.#sink?.gate?.(bytes);
    } catch (error) {
      // A gate that throws fails this write like a transport would: this channel is aborted,
      // and nothing escapes into the flush that serves every channel of the turn.
      this.#writeFailed(error);
      return;
    }
    if (gate === undefined) this.#write(bytes);
    else {
      gate.then(
        (other) => this.#write(other instanceof Uint8Array ? other : bytes),
        () => this.#write(bytes),
      );
    }
  }

  #write(bytes: Uint8Array): void {
    // Aborted while the write waited at the gate: abort() dropped it and released the waiters.
    if ((this.#flags & ABORTED) !== 0) return;
    const conn = this.#conn;
    let written: Promise<unknown>;
    try {
      // The transport's promise-free write when it has one: one promise less per write.
      if (conn.writeThen !== undefined) {
        conn.writeThen(bytes, this);
        return;
      }
      written = conn.write(bytes);
    } catch (error) {
      // A transport that throws at once (closed under us) fails like one that rejects.
      this.#writeFailed(error);
      return;
    }
    const settled = this.#extras.settler ??= (error?: unknown) => this.writeSettled(error);
    written.then(settled, settled);
  }

  /**
   * The transport's call once a write has completed (`ByteConnection.writeThen`), with the error
   * when it failed. Not for callers.
   *
   * @param error the write's error; nothing when all was written
   */
  writeSettled(error?: unknown): void {
    if (error === undefined) this.#writeDone();
    else this.#writeFailed(error);
  }

  /**
   * Resolves once every byte queued so far has been written, or the channel was aborted or its
   * write failed (the bytes are lost then).
   *
   * @returns when the bytes queued before this call are written
   */
  written(): Promise<void> {
    if (this.#writtenTotal >= this.#queuedTotal || (this.#flags & ABORTED) !== 0) {
      return Promise.resolve();
    }
    const target = this.#queuedTotal;
    const waiters = this.#extras.waiters ??= [];
    return new Promise((resolve) => waiters.push({ target, resolve }));
  }

  /**
   * Releases the output buffers of a channel that wrote nothing since the last call, so an idle
   * connection holds no output memory; busy ones keep theirs. Call it from a periodic sweep.
   */
  trim(): void {
    if ((this.#flags & WROTE_SINCE_TRIM) === 0 && this.#writing === 0 && this.#outLen === 0) {
      this.#out = EMPTY;
      this.#spare = EMPTY;
      this.#outView = EMPTY;
      this.#spareView = EMPTY;
    }
    this.#flags &= ~WROTE_SINCE_TRIM;
  }

  /**
   * Stops reading, writes what is queued, then closes the connection. Idempotent.
   */
  close(): void {
    this.#flags |= CLOSING;
    this.#x?.wake?.();
    this.#x?.unpause?.();
    if ((this.#flags & ABORTED) !== 0) return;
    // What was queued last (a refusing CONNACK) still goes out; then the socket closes.
    if (this.#outLen === 0 && this.#writing === 0) this.#endOutput();
    else if ((this.#flags & FLUSH_QUEUED) === 0) {
      this.#flags |= FLUSH_QUEUED;
      queueFlush(this);
    }
  }

  /**
   * {@linkcode PacketChannel.close} for an orderly end: once what is queued is written, the
   * connection is half-closed (the peer reads the end of the stream) and {@linkcode
   * PacketChannel.run} reads and discards what the peer still sends until it closes its side; only
   * then is the connection closed. A socket closed with unread bytes in its receive buffer makes
   * the kernel send a reset instead of FIN, and a peer whose write then fails may drop what it
   * received last (libmosquitto drops a QoS 2 message it acknowledged with PUBREC when its PUBCOMP
   * write fails). Nothing bounds the wait here: the caller calls {@linkcode PacketChannel.abort}
   * after a grace period for a peer that never closes. A transport without a half-close
   * (WebSocket) closes as with `close()`.
   */
  closeGracefully(): void {
    if ((this.#flags & CLOSING) !== 0) return;
    if (this.#conn.closeWrite !== undefined) this.#flags |= LINGER;
    this.close();
  }

  /** The output has ended while closing: half-close when lingering, else close. */
  #endOutput(): void {
    if ((this.#flags & LINGER) === 0) this.#conn.close();
    else if ((this.#flags & HALF_CLOSED) === 0) {
      this.#flags |= HALF_CLOSED;
      this.#conn.closeWrite!();
    }
  }

  /** Lingering (see closeGracefully): reads and drops until the peer closes or abort(). */
  async #discardUntilEnd(): Promise<void> {
    while ((this.#flags & ABORTED) === 0) {
      const chunk = await this.#nextChunk();
      if (chunk === null) return;
      this.#received(chunk);
      if (this.#x?.reader === undefined) this.#reuse = chunk;
    }
  }

  /** Closes the connection at once, dropping what is queued. Idempotent. */
  abort(): void {
    this.#flags |= CLOSING;
    this.#flags |= ABORTED;
    this.#x?.wake?.();
    this.#x?.unpause?.();
    this.#conn.close();
    // Nothing more will be written: release whoever waits for the output, even if the transport
    // never settles the write in flight. The output buffer goes too: it may be shared bytes (see
    // sendShared), which a reserve() after this must not hand out to be written into.
    this.#outLen = 0;
    this.#out = this.#outView = EMPTY;
    this.#settleWaiters(true);
  }

  /**
   * After {@linkcode PacketChannel.run} has ended: gives what is still queued its chance to be
   * written (unless aborted), then closes the connection and waits until it is closed.
   *
   * @returns when the connection is closed
   */
  async finish(): Promise<void> {
    this.#flags |= CLOSING;
    if ((this.#flags & ABORTED) === 0 && (this.#outLen > 0 || this.#writing > 0)) {
      this.flush();
      await this.written();
    }
    this.#conn.close();
    await this.#conn.closed;
  }

  /**
   * {@linkcode PacketChannel.finish} when it need not wait: nothing is queued or being written
   * (or the channel was aborted) and the transport closes at once. Closes the connection then.
   *
   * @returns true when the connection is closed; false when `finish()` must be awaited
   */
  finishNow(): boolean {
    this.#flags |= CLOSING;
    if ((this.#flags & ABORTED) === 0 && (this.#outLen > 0 || this.#writing > 0)) return false;
    this.#conn.close();
    return this.#conn.isClosed === true;
  }

  #received(chunk: Uint8Array): void {
    this.#bytesReceived += chunk.length;
    const counters = this.#s.counters;
    if (counters !== undefined) counters.bytesReceived += chunk.length;
  }

  /** The next chunk from the peer, or `null` at the end; a read started ahead is used first. */
  #nextChunk(): Promise<Uint8Array | null> {
    const x = this.#x;
    const aheadRead = x?.aheadRead;
    if (aheadRead !== undefined && aheadRead.reading) {
      return new Promise((resolve) => aheadRead.to = () => resolve(aheadRead.take()));
    }
    if (aheadRead?.chunk !== undefined) return Promise.resolve(aheadRead.take());
    const ahead = x?.ahead;
    if (ahead !== undefined) {
      x!.ahead = undefined;
      return ahead;
    }
    const reader = x?.reader;
    if (reader === undefined) {
      const reuse = this.#reuse;
      this.#reuse = undefined;
      return this.#conn.read!(reuse);
    }
    // A read still pending when the reader is released rejects: that is the end, not an error.
    return reader.read().then((r) => r.value ?? null, () => null);
  }

  /**
   * Waits for what the sink returned while still reading ahead (at most `readAhead` bytes into the
   * decoder), so that a peer that goes away meanwhile is noticed; close() and abort() end the wait.
   */
  async #hold(pending: Promise<unknown>): Promise<void> {
    const x = this.#extras;
    const woken = new Promise<number>((resolve) => x.wake = () => resolve(WOKEN));
    // A rejection is the sink's business; here it only ends the wait.
    const settled = pending.then(() => DONE, () => DONE);
    const conn = this.#conn;
    // Through readThen when the transport has it: a read still in flight when the hold ends (an
    // idle client whose login waited for a plugin or a cluster's claim) then carries no race's
    // reactions, nor a promise of its own, for as long as the client stays silent.
    const callbacks = x.reader === undefined && x.ahead === undefined &&
      conn.readThen !== undefined;
    try {
      while ((this.#flags & CLOSING) === 0) {
        if (this.#decoder.bufferedBytes > this.#s.readAhead) {
          await Promise.race([settled, woken]);
          return;
        }
        let winner: number | Uint8Array | null;
        if (callbacks) {
          const ahead = x.aheadRead ??= new AheadRead();
          if (ahead.chunk === undefined && !ahead.reading) {
            ahead.reading = true;
            conn.readThen!(undefined, ahead);
          }
          if (ahead.chunk === undefined) {
            const got = new Promise<number>((resolve) => ahead.to = () => resolve(READ));
            const woke = await Promise.race([settled, woken, got]);
            if (woke !== READ) {
              // The chunk, now or to come, is kept for the read loop (see #readNext).
              ahead.to = undefined;
              return;
            }
          }
          winner = ahead.take();
        } else {
          x.ahead ??= this.#nextChunk();
          winner = await Promise.race([settled, woken, x.ahead]);
          if (winner === DONE || winner === WOKEN) return;
          x.ahead = undefined;
        }
        if (winner === null) {
          this.#flags |= CLOSING;
          return;
        }
        this.#received(winner as Uint8Array);
        this.#decoder.push(winner as Uint8Array);
      }
    } finally {
      x.wake = undefined;
      this.#dropExtras();
    }
  }

  /** Past its budget in this turn, waits until every other connection has had its turn. */
  #takeTurns(chunk: Uint8Array): Promise<void> | undefined {
    const turn = readTurns.turn;
    if (
      turn !== this.#turn ||
      (this.#x?.reader === undefined && chunk.length < chunk.buffer.byteLength)
    ) {
      // A new turn; or a direct read that did not fill its buffer: it took everything the kernel
      // held, so the next read waits for the event loop's poll, where every other connection is
      // served (./_read_turns.ts). Without this, a connection that is never in a hurry would
      // still add up to the budget over many turns and wait for a timer every megabyte. (A full
      // read into a slot of the sockets' idle slab, or into a buffer kept from a larger read
      // size, counts as not full: one read at most, as a full read doubles the read size.)
      this.#turn = turn;
      this.#turnBytes = 0;
    }
    this.#turnBytes += chunk.length;
    if (this.#turnBytes < this.#s.readBudget || (this.#flags & CLOSING) !== 0) return undefined;
    return readTurns.next();
  }

  /** Waits until reading is resumed, or the channel closes. */
  #resumed(): Promise<void> {
    const x = this.#extras;
    return new Promise<void>((resolve) => x.unpause = resolve).finally(() => {
      x.unpause = undefined;
      this.#dropExtras();
    });
  }

  /** Waits until the pending output is down to half the bound, or the channel closes. */
  #outputDrained(): Promise<void> {
    const x = this.#extras;
    return new Promise<void>((resolve) => {
      x.resumeBelow = this.#s.maxOut / 2;
      x.wake = resolve;
    }).finally(() => {
      x.resumeBelow = -1;
      x.wake = undefined;
      this.#dropExtras();
    });
  }

  #writeDone(): void {
    this.#writtenTotal += this.#writing;
    this.#writing = 0;
    const x = this.#x;
    if (this.#outLen > 0) {
      this.flush();
      if (
        x !== undefined && x.resumeBelow >= 0 && this.#outLen + this.#writing <= x.resumeBelow
      ) x.wake?.();
    } else {
      if (x !== undefined && x.resumeBelow >= 0) x.wake?.();
      if ((this.#flags & CLOSING) !== 0) this.#endOutput();
      else if (this.#spare.length > KEEP_BUFFER_MAX) this.#spare = this.#spareView = EMPTY;
    }
    if (x?.waiters !== undefined) this.#settleWaiters(false);
    const sink = this.#sink;
    if (sink?.drained !== undefined && this.#outLen + this.#writing <= this.#s.maxOut / 2) {
      sink.drained();
    }
  }

  #writeFailed(error: unknown): void {
    this.#writing = 0;
    this.#outLen = 0;
    const x = this.#extras;
    if (x.writeError === undefined) {
      x.writeError = error;
      try {
        this.#sink?.writeFailed?.(error);
      } catch (thrown) {
        // Called from a write's callback or the shared flush: reported, and the abort below
        // still closes the connection.
        reportError(thrown);
      }
    }
    this.abort();
  }

  #settleWaiters(all: boolean): void {
    const x = this.#x;
    const waiters = x?.waiters;
    if (waiters === undefined) return;
    let i = 0;
    while (i < waiters.length && (all || waiters[i]!.target <= this.#writtenTotal)) {
      waiters[i++]!.resolve();
    }
    if (i === waiters.length) {
      x!.waiters = undefined;
      this.#dropExtras();
    } else if (i > 0) x!.waiters = waiters.slice(i);
  }
}

/**
 * A `Deno.Conn` (TCP or TLS, either side) as a {@linkcode ByteConnection}.
 *
 * @module
 */

import { readDone } from "./_accept_turns.ts";
import type { ByteConnection, ConnectionInfo, ReadReceiver, WriteReceiver } from "./types.ts";

/**
 * Wraps a connected socket. Turns Nagle off on TCP sockets: MQTT packets are small and latency
 * matters (a request written in two pieces waited 43 ms for its reply with Nagle on). It is turned
 * off just before the connection's second write, or its first if that is larger than one segment:
 * Nagle's algorithm holds a small segment back only while earlier data is unacknowledged, so a
 * first write of one segment goes out at once either way, and a connection that writes once (the
 * CONNACK to a client that connects and goes) saves the system call.
 *
 * @param conn the socket; this object owns it from now on
 * @param info what is known about the peer
 * @param options whether its idle reads share slabs with other connections (a broker's listeners)
 * @returns the connection
 *
 * @example Serving a connection the program accepted
 * ```ts
 * import { Broker, socketConnection } from "../../broker.ts";
 * import assert from "node:assert/strict";
 *
 * // The program accepts a socket itself and hands it to an `external` listener.
 * await using broker = new Broker({
 *   listeners: { default: { bind: "127.0.0.1:0" }, local: { type: "external" } },
 * });
 * await broker.start();
 * using server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * using client = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
 * const socket = await server.accept();
 * const conn = socketConnection(socket, { transport: "tcp", remoteAddress: "local" });
 * broker.acceptConnection(conn, "local");
 * // CONNECT (MQTT 3.1.1, clean session, client id "c"), answered by CONNACK 0 (accepted).
 * await client.write(new Uint8Array([16, 13, 0, 4, 77, 81, 84, 84, 4, 2, 0, 60, 0, 1, 99]));
 * const connack = new Uint8Array(4);
 * assert.equal(await client.read(connack), 4);
 * assert.deepEqual([...connack], [0x20, 0x02, 0x00, 0x00]);
 * ```
 */
export function socketConnection(
  conn: Deno.Conn,
  info: ConnectionInfo,
  options: SocketConnectionOptions = {},
): ByteConnection {
  return options.sharedIdleReads === true
    ? new SlabSocketConnection(conn, info)
    : new SocketConnection(conn, info);
}

/** Options of {@linkcode socketConnection}. */
export interface SocketConnectionOptions {
  /**
   * Reads of the idle size, the first one (a CONNECT) included, go into slots of slabs shared
   * with other connections of this process (less memory per idle connection). The bytes a chunk
   * shows are its own, but a packet's views then sit in a buffer (`view.buffer`) that holds
   * other connections' bytes too, and a view kept keeps the whole slab alive: for a broker's
   * listeners, whose views are copied before they are kept or handed out, not for a client,
   * whose messages' payloads are handed to the application.
   *
   * @default {false}
   */
  sharedIdleReads?: boolean;
}

/**
 * The read size of an idle connection: its pending read holds a buffer this large, and at 10k
 * connections every byte of it counts; a CONNECT or a PINGREQ fits. A busy connection doubles its
 * read size with every full read up to {@linkcode MAX_READ}, but only reads that follow a full one
 * (more bytes are waiting) go into a buffer that large: a read that follows a short one (the socket
 * was drained, so this read most likely waits) goes into a small buffer, this size unless the
 * connection's messages need more (see {@linkcode MAX_WAIT}), and only once that fills does the
 * next read take the larger size again. A pending read pins its buffer until bytes arrive, so a
 * connection that goes quiet after a burst would otherwise hold up to 64 KiB until its next packet
 * (bench/RESULTS.md, branch `idlemem2`).
 */
const MIN_READ = 256;

/** The largest read size of a busy connection (see {@linkcode MIN_READ}). */
const MAX_READ = 65536;

/**
 * The largest buffer a read that most likely waits goes into. Such a read goes into
 * {@linkcode MIN_READ} bytes; when that fills and the read after it drains the socket (what came
 * was one message, or a few, larger than the buffer: a request whose sender waits for the reply,
 * a QoS 1 publisher's window), the next waiting read is twice as large, up to this size, so that
 * such messages take one read each rather than two or three (a stream of 300-byte messages took
 * two system calls per message: bench/RESULTS.md, branch `revidle`). It halves after a read less
 * than a quarter full, and a burst (a run of reads with a full one of this size or more) sets it
 * back to {@linkcode MIN_READ}: what a connection quiet after a burst holds does not grow.
 */
const MAX_WAIT = 2048;
/** log2(MAX_WAIT / MIN_READ): the largest wait code (see `SocketConnection.#readSize`). */
const MAX_WAIT_CODE = 3;
/** The low bits of `SocketConnection.#readSize` that hold a wait code, not a size. */
const CODE_BITS = 255;

/**
 * Buffers larger than {@linkcode MIN_READ} that a busy broker socket gave up when its next read
 * waited in a small one (see there), for the next large read of any broker socket, so that a busy
 * connection does not allocate a large buffer every time its socket drains: at most
 * {@linkcode SPARES} per size (powers of two up to 64 KiB: at most 512 KiB in all).
 */
const spares = new Map<number, ArrayBuffer[]>();
const SPARES = 4;

/**
 * Idle connections' read buffers are slots of shared slabs (for the broker's sockets, see
 * {@linkcode SocketConnectionOptions.sharedIdleReads}): a buffer of its own costs a
 * connection an `ArrayBuffer` object, a backing store and a malloc'd block besides its bytes (713
 * bytes of RSS per 256-byte buffer, against 449 for a view into a slab: bench/RESULTS.md, branch
 * `idle5`). Slots are handed out in order and never handed out again; a slab lives as long as a
 * view into it does: after a mass close, one idle survivor keeps its whole slab (8 KiB), so what
 * the slabs keep is at most what they took at the peak (264 bytes per connection held then). Slot
 * 0 stays unused, so that no slot has byteOffset 0: `#bufferFor` reads again into a chunk's whole
 * buffer only when the chunk starts at offset 0 (a buffer of its own). A connection's first read
 * (its CONNECT) goes into a slot too: most CONNECTs (no password, will or properties) hold no view
 * into their chunk, which is handed back and read into again, so the connection keeps that one
 * slot; a buffer of its own was a fresh `ArrayBuffer` per connection (2.2 % of the broker's CPU in
 * bursts of 64 handshakes, bench/RESULTS.md, branch `connrate4`) and stayed the idle read's buffer.
 * A CONNECT that holds views leaves its slot to the garbage and the next read takes another: two
 * slots for such a connection while its slab lives.
 */
const SLAB_SLOTS = 32;
let slab = new Uint8Array(0);
let slabNext = SLAB_SLOTS;

/** A MIN_READ-byte buffer of its own for one connection: a slot of the current slab. */
function idleBuffer(): Uint8Array {
  if (slabNext === SLAB_SLOTS) {
    slab = new Uint8Array(SLAB_SLOTS * MIN_READ);
    slabNext = 1;
  }
  const at = slabNext++ * MIN_READ;
  return slab.subarray(at, at + MIN_READ);
}

/** The read buffer before the first read: one empty array for every connection. */
const NO_BYTES = new Uint8Array(0);

/** Bytes that fit in one TCP segment on any IPv4 path (the smallest MSS a host must accept). */
const ONE_SEGMENT = 536;

class SocketConnection implements ByteConnection {
  readonly info: ConnectionInfo;
  #conn: Deno.Conn;
  #isClosed = false;
  // Made when first asked for: the broker asks only once the connection ends.
  #closed: PromiseWithResolvers<void> | undefined;
  #readable: ReadableStream<Uint8Array> | undefined;
  // Adaptive read size (see MIN_READ and MAX_WAIT): a busy connection's reads grow to 64 KiB so
  // that one read carries many packets. Sizes are multiples of 256, so that the low 8 bits carry
  // the waiting read's size as a code c (256 << c bytes). Positive: the last read filled its
  // buffer, the next one reads (#readSize & ~CODE_BITS) bytes; the low bits are c + 1 when that
  // full read was the one that waited (the run of reads since the socket drained is one read so
  // far), else 0. Negative: the last read was short, −#readSize is (busy | c): the next read waits
  // in 256 << c bytes and busy is the size to read once that one fills. One field for all of it
  // (memory per idle connection).
  #readSize = -MIN_READ;
  // System calls of write() so far, while Nagle's algorithm is still on (-1: it is off, or the
  // socket has no such switch).
  #writes: number;

  constructor(conn: Deno.Conn, info: ConnectionInfo) {
    this.#conn = conn;
    this.info = info;
    this.#writes = "setNoDelay" in conn && typeof conn.setNoDelay === "function" ? 0 : -1;
  }

  get isClosed(): boolean {
    return this.#isClosed;
  }

  get closed(): Promise<void> {
    if (this.#closed === undefined) {
      this.#closed = Promise.withResolvers();
      if (this.#isClosed) this.#closed.resolve();
    }
    return this.#closed.promise;
  }

  /**
   * The next chunk, or `null` at the end. Each chunk is a fresh buffer the decoder may keep views
   * into, unless the caller hands back one it no longer references (`reuse`) and that one has the
   * size wanted; a read after close() ends quietly instead of erroring.
   */
  read(reuse?: Uint8Array): Promise<Uint8Array | null> {
    if (this.#isClosed) return Promise.resolve(null);
    return this.#conn.read(this.#bufferFor(reuse)).then(this.#afterRead, this.#afterRead);
  }

  readThen(reuse: Uint8Array | undefined, to: ReadReceiver): boolean {
    if (this.#isClosed) {
      to.readDone(null);
      return false;
    }
    const buf = this.#bufferFor(reuse);
    this.#readDone = to;
    this.#conn.read(buf).then(this.#afterRead, this.#afterRead);
    return this.#readSize < 0;
  }

  /** The buffer of the next read: the one handed back when it is free and of the size wanted. */
  #bufferFor(reuse: Uint8Array | undefined): Uint8Array {
    const state = this.#readSize;
    const last = this.#buf;
    // The chunk handed back is a view of the last read's buffer, which is free again. (Same
    // buffer and offset: two slots of one slab share the buffer.)
    const free = reuse !== undefined && reuse.buffer === last.buffer &&
      reuse.byteOffset === last.byteOffset;
    let buf: Uint8Array;
    if (state < 0) {
      // The socket was drained: this read most likely waits, in a small buffer. A large one
      // handed back goes to the spares (broker sockets) rather than staying pinned here.
      const wait = MIN_READ << (-state & CODE_BITS);
      if (free && last.length === wait) buf = last;
      else {
        if (free && last.byteOffset === 0 && last.buffer.byteLength > MIN_READ) {
          this.spare(last.buffer as ArrayBuffer);
        }
        buf = wait === MIN_READ ? this.idleBuffer() : this.largeBuffer(wait);
      }
    } else {
      // Read into the buffer handed back, also when the read size has just shrunk to half of it
      // (a busy connection's reads vary in length: the size goes up and down between two steps,
      // which must not cost a buffer each time).
      const size = state & ~CODE_BITS;
      const bytes = reuse?.buffer.byteLength ?? 0;
      buf = free && last.length === size
        ? last
        : reuse !== undefined && reuse.byteOffset === 0 && bytes >= size && bytes <= 2 * size
        ? new Uint8Array(reuse.buffer, 0, size)
        : this.largeBuffer(size);
    }
    this.#buf = buf;
    return buf;
  }

  /** A buffer of `size` bytes for a read larger than the idle size (see SlabSocketConnection). */
  largeBuffer(size: number): Uint8Array {
    return new Uint8Array(size);
  }

  /** Takes a large read buffer no longer in use (see SlabSocketConnection): here, none. */
  spare(_buffer: ArrayBuffer): void {}

  /** A buffer of the idle read size (see SlabSocketConnection). */
  idleBuffer(): Uint8Array {
    return new Uint8Array(MIN_READ);
  }

  // The buffer of the read in flight, and readThen's callback for it. A plain promise chain with
  // one callback made once per connection, for the read's result and its failure alike: an idle
  // connection holds no suspended async function per pending read. Bound, as #wrote is: a bound
  // function is 48 bytes, an arrow function field 56 and the two share a 40-byte context for
  // `this` (memory per idle connection).
  #buf: Uint8Array = NO_BYTES;
  #readDone: ReadReceiver | undefined;
  #afterRead: (n: number | null | unknown) => Uint8Array | null = this.#readSettled.bind(this);
  #readSettled(n: number | null | unknown): Uint8Array | null {
    const buf = this.#buf;
    let chunk: Uint8Array | null = null;
    // The end of the stream (null) or a failed read (an error): either closes.
    if (typeof n !== "number") this.close();
    else {
      readDone();
      const length = buf.length;
      const state = this.#readSize;
      const bits = state < 0 ? -state : state;
      const busy = bits & ~CODE_BITS;
      const low = bits & CODE_BITS;
      if (n === length) {
        // Full: more is waiting, read at least twice this much next. A waiting read (c in the low
        // bits) starts a run: c + 1, kept while the run's full reads stay under MAX_WAIT bytes
        // each (256 + 512 + 1,024); a full read of MAX_WAIT or more makes it a burst (0).
        const size = Math.min(Math.max(busy, 2 * length), MAX_READ);
        this.#readSize = state < 0 ? size | (low + 1) : length < MAX_WAIT ? size | low : size;
      } else {
        // Short: the next read waits (see MIN_READ and MAX_WAIT). A large read that came back
        // less than a quarter full halves the size.
        const next = state >= 0 && length > MIN_READ && n < length >> 2
          ? Math.max(busy >> 1, MIN_READ)
          : busy;
        // The waiting buffer: the same after one read that held what came (half when less than a
        // quarter of it), twice as large when it filled and the run stayed short of a burst, the
        // smallest after a burst.
        const wait = state < 0
          ? (low > 0 && n < length >> 2 ? low - 1 : low)
          : low > 0
          ? Math.min(low, MAX_WAIT_CODE)
          : 0;
        this.#readSize = -(next | wait);
      }
      chunk = buf.subarray(0, n);
    }
    const done = this.#readDone;
    if (done !== undefined) {
      this.#readDone = undefined;
      done.readDone(chunk);
    }
    return chunk;
  }

  // Made on first use: the broker calls read() directly and a stream per idle connection costs
  // several KiB of heap.
  get readable(): ReadableStream<Uint8Array> {
    this.#readable ??= new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        const chunk = await this.read();
        if (chunk === null) controller.close();
        else controller.enqueue(chunk);
      },
      cancel: () => this.close(),
    }, { highWaterMark: 0 });
    return this.#readable;
  }

  write(bytes: Uint8Array): Promise<void> {
    if (this.#isClosed) return Promise.reject(new Deno.errors.BadResource("Connection is closed"));
    if (this.#writes >= 0 && (this.#writes++ > 0 || bytes.length > ONE_SEGMENT)) this.#noDelay();
    // Mostly one system call takes it all: no async function frame per write, and no closure
    // either while writes come one at a time (as a PacketChannel makes them).
    if (this.#writing !== undefined) {
      return this.#conn.write(bytes).then((n) =>
        n < bytes.length ? this.#writeRest(bytes, n) : undefined
      );
    }
    this.#writing = bytes;
    return this.#conn.write(bytes).then(this.#wrote, this.#wrote);
  }

  /**
   * write() without its promise: the PacketChannel's path, one write at a time, so the write in
   * flight and its callback are fields and the runtime's promise is the only one made.
   */
  writeThen(bytes: Uint8Array, settled: WriteReceiver): void {
    if (this.#isClosed || this.#writing !== undefined) {
      this.write(bytes).then(() => settled.writeSettled(), (error) => settled.writeSettled(error));
      return;
    }
    if (this.#writes >= 0 && (this.#writes++ > 0 || bytes.length > ONE_SEGMENT)) this.#noDelay();
    this.#writing = bytes;
    this.#settled = settled;
    try {
      this.#conn.write(bytes).then(this.#wrote, this.#wrote);
    } catch (error) {
      // Closed under us: the caller fails it like a rejected write.
      this.#writing = undefined;
      this.#settled = undefined;
      throw error;
    }
  }

  // The bytes of the write in flight when it is the only one (see write), and writeThen's
  // callback for it. One callback made once per connection for both ways, for the write's result
  // (a count) and its failure (an error, passed on).
  #writing: Uint8Array | undefined;
  #settled: WriteReceiver | undefined;
  #wrote: (n: number | unknown) => Promise<void> | undefined = this.#writeDone.bind(this);
  #writeDone(n: number | unknown): Promise<void> | undefined {
    const bytes = this.#writing!;
    const settled = this.#settled;
    this.#writing = undefined;
    if (settled !== undefined) {
      this.#settled = undefined;
      if (typeof n !== "number") settled.writeSettled(n);
      else if (n < bytes.length) {
        this.#writeRest(bytes, n).then(
          () => settled.writeSettled(),
          (error) => settled.writeSettled(error),
        );
      } else settled.writeSettled();
      return undefined;
    }
    if (typeof n !== "number") throw n;
    return n < bytes.length ? this.#writeRest(bytes, n) : undefined;
  }

  /** conn.write may take only part of a large buffer: writes the rest, until all of it is. */
  async #writeRest(bytes: Uint8Array, done: number): Promise<void> {
    while (done < bytes.length) {
      if (this.#isClosed) throw new Deno.errors.BadResource("Connection is closed");
      if (this.#writes >= 0) this.#noDelay();
      done += await this.#conn.write(bytes.subarray(done));
    }
  }

  /** Turns Nagle's algorithm off, before any write that could find earlier data unacknowledged. */
  #noDelay(): void {
    this.#writes = -1;
    try {
      (this.#conn as Deno.TcpConn).setNoDelay(true);
    } catch {
      // The peer may already be gone; the write or the read loop will notice.
    }
  }

  closeWrite(): void {
    if (this.#isClosed) return;
    // A peer gone meanwhile fails it; the read that follows notices.
    this.#conn.closeWrite().catch(() => {});
  }

  close(): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the runtime.
    }
    this.#closed?.resolve();
  }
}

/**
 * Formats a `Deno.Addr` as `host:port` for logs.
 *
 * @param addr the address
 * @returns `host:port`, `[v6]:port`, a Unix socket's path, or the transport's name
 */
export function formatAddr(addr: Deno.Addr): string {
  if (addr.transport === "tcp" || addr.transport === "udp") {
    // Each property read once: the runtime's address objects are slow to read (360-490 ns a
    // call of this function, a percent of a login's CPU: bench/RESULTS.md, branch `connrate4`).
    return hostPort(addr.hostname, addr.port);
  }
  return "path" in addr ? addr.path : String(addr.transport);
}

/**
 * `host:port`, or `[host]:port` for an IPv6 host: {@linkcode formatAddr} for a caller that has
 * read the host and port already (the TCP listener, which keeps the host apart).
 *
 * @param host the IP address or name
 * @param port the port
 * @returns the address for logs
 */
export function hostPort(host: string, port: number): string {
  // The peers of a listener mostly share a host: its `host:` part is made once and only the port
  // appended, rather than the runtime's host string searched and joined for each peer
  // (bench/RESULTS.md, branch `connrate5`).
  if (host !== lastHost) {
    lastPrefix = host.includes(":") ? `[${host}]:` : `${host}:`;
    lastHost = host;
  }
  return lastPrefix + portText(port);
}

/**
 * A port's decimal digits. `String(port)` looks the number up in V8's number-to-string cache,
 * which the ephemeral ports of a listener's peers (tens of thousands of them) mostly miss, and a
 * miss is a call into the runtime: `prefix + port` took 0.64 % of the broker's busy time in
 * bursts of 64 handshakes, this and the join 0.28 % (bench/RESULTS.md, branch `connrate5`). Up
 * to five character codes make the string in generated code.
 */
function portText(port: number): string {
  if (!Number.isInteger(port) || port < 0 || port > 65535) return String(port);
  if (port < 10) return String.fromCharCode(48 + port);
  const d4 = port % 10, r4 = (port - d4) / 10;
  if (port < 100) return String.fromCharCode(48 + r4, 48 + d4);
  const d3 = r4 % 10, r3 = (r4 - d3) / 10;
  if (port < 1000) return String.fromCharCode(48 + r3, 48 + d3, 48 + d4);
  const d2 = r3 % 10, r2 = (r3 - d2) / 10;
  if (port < 10000) return String.fromCharCode(48 + r2, 48 + d2, 48 + d3, 48 + d4);
  const d1 = r2 % 10, r1 = (r2 - d1) / 10;
  return String.fromCharCode(48 + r1, 48 + d1, 48 + d2, 48 + d3, 48 + d4);
}

// The host hostPort saw last and its `host:` (or `[host]:`) part.
let lastHost = "";
let lastPrefix = "";

/**
 * A socket whose idle reads go into slots of the shared slabs ({@linkcode socketConnection}'s
 * `sharedIdleReads`): a subclass rather than a field, as a field costs every idle connection.
 */
class SlabSocketConnection extends SocketConnection {
  override idleBuffer(): Uint8Array {
    return idleBuffer();
  }

  override largeBuffer(size: number): Uint8Array {
    const buffer = spares.get(size)?.pop();
    return buffer === undefined ? new Uint8Array(size) : new Uint8Array(buffer);
  }

  override spare(buffer: ArrayBuffer): void {
    const size = buffer.byteLength;
    let list = spares.get(size);
    if (list === undefined) spares.set(size, list = []);
    if (list.length < SPARES) list.push(buffer);
  }
}

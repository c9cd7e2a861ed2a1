/**
 * A minimal Redis client (RESP2) for the cluster bus's hot path: the XADDs that forward messages
 * and the XREAD that receives them. Commands are pipelined: each is encoded at once into one
 * reused write buffer, and what was encoded during a turn goes out in one socket write, however
 * many commands are unanswered; replies are matched to commands in order. A large argument (a
 * batch of forwarded messages) is not copied into that buffer but written from where it is, between
 * the bytes before and after it. Replies are parsed in place: a bulk string is a view into the bytes
 * read from the socket (never copied), so a large XREAD reply costs no concatenation.
 *
 * No reconnection of its own: when the connection is lost every unanswered command is rejected
 * with a {@linkcode RespConnectionError} and the client stays closed; its owner opens a new one.
 *
 * @module
 */

/** Where and how to connect (plain TCP, or TLS with the server's certificate verified). */
export interface RespClientOptions {
  /** Host name or address. */
  hostname: string;
  /** TCP port. */
  port: number;
  /** User name (Redis 6 ACL); `AUTH user password` when set, `AUTH password` otherwise. */
  username?: string;
  /** Password; no AUTH when unset. */
  password?: string;
  /**
   * Database number (SELECT), when not 0.
   *
   * @default {0}
   */
  db?: number;
  /** TLS: PEM CA certificates to trust, and a client certificate with its key. */
  tls?: { caCerts?: string[]; cert?: string; key?: string };
  /**
   * A name for the connection in Redis's `CLIENT LIST` (`CLIENT SETNAME`; characters `!` to `~`).
   * A refusal (an ACL without `CLIENT`, a renamed command) is ignored: the name is only a label.
   */
  name?: string;
  /**
   * Milliseconds the whole connection (TCP, TLS handshake, AUTH, first reply) may take.
   *
   * @default {10000}
   */
  connectTimeout?: number;
}

/**
 * One connection attempt: its socket once there is one, whether its time ran out, the signal that
 * aborts a TCP connect still waiting for its SYN to be answered, and a promise rejected when the
 * time runs out (for what that signal cannot abort).
 */
interface Attempt {
  conn?: Deno.Conn;
  expired: boolean;
  signal: AbortSignal;
  timedOut: Promise<never>;
}

/** A reply value: simple string, integer, bulk string (a view), null, or an array of them. */
export type RespValue = string | number | Uint8Array | null | RespError | RespValue[];

/** An error reply of Redis (`-ERR …`, `-NOSCRIPT …`, `-READONLY …`), in place of a value. */
export class RespError extends Error {
  /**
   * @param message the error line as Redis sent it
   */
  constructor(message: string) {
    super(message);
    this.name = "RespError";
  }
}

/**
 * Deno's TLS could not set up the connection: it refused the certificates or keys given, or the
 * server's certificate (a self-signed certificate that is its own CA, say, which OpenSSL accepts
 * and rustls does not), or the handshake failed otherwise. Another TLS implementation may succeed
 * where this one fails; a connection that is refused or lost is not this error.
 */
export class RespTlsError extends Error {
  /**
   * @param message what failed
   * @param options the cause (Deno's error)
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RespTlsError";
  }
}

/** The connection was lost or closed before a command was answered. */
export class RespConnectionError extends Error {
  /**
   * @param message what happened
   * @param options the cause
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RespConnectionError";
  }
}

/** A command argument: text, raw bytes, or an integer. */
export type RespArg = string | Uint8Array | number;

/** Returned by the parser when the reply is not complete yet. */
const MORE = Symbol("more");

const CR = 13;
const LF = 10;
/** Fresh read buffers are at least this large; a reply larger than it gets one of its size. */
const READ_BUFFER = 256 * 1024;
/** A read buffer with less room than this left is replaced before the next read. */
const MIN_READ = 16 * 1024;
/** A write buffer grown past this (a large value) is given back after its write. */
const WRITE_BUFFER = 64 * 1024;
/**
 * A byte argument this large or larger is written from where it is, not copied into the write
 * buffer: a copy (and the buffer growing to hold it) costs more than the two writes more.
 */
export const DIRECT_BYTES = 16 * 1024;

interface Pending {
  resolve(value: RespValue): void;
  reject(error: Error): void;
}

/**
 * A pipelined RESP2 connection to Redis.
 *
 * @example
 * ```ts ignore
 * const redis = await RespClient.connect({ hostname: "127.0.0.1", port: 6379 });
 * await redis.send(["XADD", "s", "*", "f", new Uint8Array([1, 2])]);
 * await redis.close();
 * ```
 */
export class RespClient {
  readonly #conn: Deno.Conn;
  /** Commands encoded and not written yet. */
  #out = new Uint8Array(WRITE_BUFFER);
  #outLength = 0;
  /**
   * What goes out before `#out` from `#cut` on: views of `#out` up to `#cut` and, between them,
   * large arguments written from where they are.
   */
  #queue: Uint8Array[] = [];
  #cut = 0;
  /** The buffer being written (swapped with `#out`). */
  #spare = new Uint8Array(WRITE_BUFFER);
  #writing = false;
  #writeScheduled = false;
  /** The write loop running, awaited by close. */
  #written: Promise<void> = Promise.resolve();
  /** Unanswered commands, oldest first (from `#head`). */
  #pending: Pending[] = [];
  #head = 0;
  #in = new Uint8Array(READ_BUFFER);
  #start = 0;
  #end = 0;
  /** Bytes the reply at `#start` needs at least, when known (a large bulk string). */
  #need = 0;
  #closed: RespConnectionError | undefined;
  readonly #reading: Promise<void>;
  readonly #encoder = new TextEncoder();
  readonly #decoder = new TextDecoder();

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
    this.#reading = this.#readLoop();
  }

  /**
   * Connects, authenticates and selects the database.
   *
   * @param options where and how
   * @returns the connected client
   * @throws {RespError} If Redis refuses AUTH or SELECT.
   * @throws {Deno.errors.ConnectionRefused} If nothing listens there (or another socket error).
   */
  static async connect(options: RespClientOptions): Promise<RespClient> {
    const { hostname, port } = options;
    const timeout = options.connectTimeout ?? 10_000;
    const abort = new AbortController();
    const expiry = Promise.withResolvers<never>();
    expiry.promise.catch(() => {});
    const attempt: Attempt = { expired: false, signal: abort.signal, timedOut: expiry.promise };
    const timer = setTimeout(() => {
      attempt.expired = true;
      // A TCP connect whose SYN is never answered (a host that drops it, a listen queue that is
      // full) would wait for the kernel's retries, minutes: it is aborted. What waits on the
      // socket (the handshake, a reply) fails at once.
      abort.abort();
      expiry.reject(new Error("connection timed out"));
      try {
        attempt.conn?.close();
      } catch { /* closed already */ }
    }, timeout);
    try {
      return await RespClient.#connect(options, attempt);
    } catch (error) {
      if (!attempt.expired) throw error;
      throw new RespConnectionError(
        `Cannot connect to Redis at ${hostname}:${port}: no answer within ${timeout} ms`,
        { cause: error },
      );
    } finally {
      clearTimeout(timer);
    }
  }

  static async #connect(options: RespClientOptions, attempt: Attempt): Promise<RespClient> {
    const { hostname, port, tls } = options;
    let conn: Deno.Conn;
    if (tls === undefined) {
      const tcp = await Deno.connect({ hostname, port, signal: attempt.signal });
      attempt.conn = tcp;
      tcp.setNoDelay(true);
      conn = tcp;
    } else {
      let secure: Deno.TlsConn;
      // Deno.connectTls takes no signal: past the time, the attempt fails without it, and a
      // socket it opens later is closed at once.
      const connecting = Deno.connectTls({
        hostname,
        port,
        ...(tls.caCerts === undefined ? {} : { caCerts: tls.caCerts }),
        ...(tls.cert !== undefined && tls.key !== undefined
          ? { cert: tls.cert, key: tls.key }
          : {}),
      });
      try {
        secure = await Promise.race([connecting, attempt.timedOut]);
      } catch (error) {
        if (attempt.expired) {
          connecting.then((late) => late.close(), () => {});
          throw error;
        }
        throw tlsRefusal(error, hostname, port);
      }
      attempt.conn = secure;
      try {
        if (attempt.expired) throw new Error("connection timed out");
        // Now rather than at the first read, so that a refused certificate is told apart.
        await secure.handshake();
      } catch (error) {
        try {
          secure.close();
        } catch { /* closed by the timeout */ }
        throw attempt.expired ? error : tlsRefusal(error, hostname, port);
      }
      // TLS connections also carry many small commands: no Nagle delay on their replies.
      (secure as unknown as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
      conn = secure;
    }
    if (attempt.expired) {
      conn.close();
      throw new Error("connection timed out");
    }
    const client = new RespClient(conn);
    try {
      // Pipelined. The PING proves that the connection serves commands: a server at its
      // maxclients accepts the socket, answers the first command with an error and closes it.
      const replies: Promise<unknown>[] = [];
      if (options.password !== undefined && options.password !== "") {
        const auth = options.username === undefined || options.username === ""
          ? ["AUTH", options.password]
          : ["AUTH", options.username, options.password];
        replies.push(client.send(auth));
      }
      if (options.db !== undefined && options.db !== 0) {
        replies.push(client.send(["SELECT", options.db]));
      }
      replies.push(client.send(["PING"]));
      if (options.name !== undefined) {
        replies.push(
          client.send(["CLIENT", "SETNAME", options.name]).catch((error) => {
            if (!(error instanceof RespError)) throw error;
          }),
        );
      }
      await Promise.all(replies);
    } catch (error) {
      await client.close();
      throw error;
    }
    return client;
  }

  /** Whether the connection is closed (lost or closed by {@linkcode close}). */
  get closed(): boolean {
    return this.#closed !== undefined;
  }

  /** Commands sent and not answered yet. */
  get unanswered(): number {
    return this.#pending.length - this.#head;
  }

  /**
   * Sends a command, pipelined behind those not answered yet. The arguments are encoded now, so
   * a buffer passed in may be reused as soon as this returns, except a byte argument of
   * {@linkcode DIRECT_BYTES} or more: that one is written from where it is, and must not change
   * until the command is answered.
   *
   * @param args the command and its arguments
   * @returns the reply; bulk strings are views into the bytes read, valid until dropped
   * @throws {RespError} (as a rejection) If Redis answers with an error.
   * @throws {RespConnectionError} (as a rejection) If the connection is closed or lost first.
   */
  send(args: readonly RespArg[]): Promise<RespValue> {
    if (this.#closed !== undefined) return Promise.reject(this.#closed);
    this.#encode(args);
    const { promise, resolve, reject } = Promise.withResolvers<RespValue>();
    this.#pending.push({ resolve, reject });
    if (!this.#writing && !this.#writeScheduled) {
      this.#writeScheduled = true;
      queueMicrotask(() => this.#written = this.#writeLoop());
    }
    return promise;
  }

  /**
   * Closes the connection at once (no QUIT: a blocking XREAD would delay it); unanswered
   * commands are rejected. Idempotent.
   *
   * @returns settled when the socket is closed
   */
  async close(): Promise<void> {
    this.#fail(new RespConnectionError("Redis connection closed"));
    await Promise.all([this.#reading, this.#written]);
  }

  /** Same as {@linkcode close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #room(bytes: number): void {
    if (this.#outLength + bytes <= this.#out.length) return;
    // Queued views keep the old buffer; only what is not queued yet moves over.
    const rest = this.#outLength - this.#cut;
    const grown = new Uint8Array(Math.max(this.#out.length * 2, rest + bytes));
    grown.set(this.#out.subarray(this.#cut, this.#outLength));
    this.#out = grown;
    this.#outLength = rest;
    this.#cut = 0;
  }

  #ascii(text: string): void {
    this.#room(text.length);
    const out = this.#out;
    let at = this.#outLength;
    for (let i = 0; i < text.length; i++) out[at++] = text.charCodeAt(i);
    this.#outLength = at;
  }

  #encode(args: readonly RespArg[]): void {
    this.#ascii(`*${args.length}\r\n`);
    for (const arg of args) {
      let bytes: Uint8Array;
      if (arg instanceof Uint8Array) bytes = arg;
      else {
        const text = typeof arg === "number" ? String(arg) : arg;
        if (isAscii(text)) {
          this.#ascii(`$${text.length}\r\n`);
          this.#ascii(text);
          this.#ascii("\r\n");
          continue;
        }
        bytes = this.#encoder.encode(text);
      }
      this.#ascii(`$${bytes.length}\r\n`);
      if (bytes.length >= DIRECT_BYTES) {
        // Written from where it is: what was encoded before it goes first.
        this.#queue.push(this.#out.subarray(this.#cut, this.#outLength), bytes);
        this.#cut = this.#outLength;
        this.#ascii("\r\n");
        continue;
      }
      this.#room(bytes.length + 2);
      this.#out.set(bytes, this.#outLength);
      this.#outLength += bytes.length;
      this.#out[this.#outLength++] = CR;
      this.#out[this.#outLength++] = LF;
    }
  }

  /**
   * Writes what was encoded: one write per batch, two more per large argument; loops on partial
   * writes.
   */
  async #writeLoop(): Promise<void> {
    this.#writeScheduled = false;
    if (this.#writing) return;
    this.#writing = true;
    try {
      while (this.#outLength > 0 && this.#closed === undefined) {
        const chunks = this.#queue;
        const out = this.#out;
        if (this.#outLength > this.#cut) chunks.push(out.subarray(this.#cut, this.#outLength));
        // Commands sent while these are written go into the other buffer.
        this.#out = this.#spare;
        this.#outLength = 0;
        this.#queue = [];
        this.#cut = 0;
        for (const chunk of chunks) {
          let off = 0;
          while (off < chunk.length) off += await this.#conn.write(chunk.subarray(off));
        }
        this.#spare = out.length > WRITE_BUFFER ? new Uint8Array(WRITE_BUFFER) : out;
      }
    } catch (error) {
      this.#fail(new RespConnectionError("Redis connection lost", { cause: error }));
    } finally {
      this.#writing = false;
    }
  }

  async #readLoop(): Promise<void> {
    try {
      while (this.#closed === undefined) {
        if (this.#in.length - this.#end < MIN_READ || this.#need > this.#in.length - this.#start) {
          // A fresh buffer: views handed out keep the old one; the unparsed rest moves over.
          const rest = this.#end - this.#start;
          // Sized for the reply being read plus room, not doubled while small: large buffers cost
          // GC work. A large unfinished reply (a backlog read) doubles, so that it is not copied
          // over again every READ_BUFFER bytes.
          const next = new Uint8Array(
            Math.max(READ_BUFFER, this.#need + MIN_READ, rest + READ_BUFFER, 2 * rest),
          );
          next.set(this.#in.subarray(this.#start, this.#end));
          this.#in = next;
          this.#start = 0;
          this.#end = rest;
        }
        const n = await this.#conn.read(this.#in.subarray(this.#end));
        if (n === null) throw new Error("closed by Redis");
        this.#end += n;
        if (this.#end - this.#start < this.#need) continue;
        this.#deliver();
      }
    } catch (error) {
      this.#fail(new RespConnectionError("Redis connection lost", { cause: error }));
    }
  }

  /** Parses and hands out every complete reply read so far. */
  #deliver(): void {
    this.#need = 0;
    while (this.#start < this.#end) {
      this.#at = this.#start;
      const value = this.#parse();
      if (value === MORE) return;
      this.#start = this.#at;
      const pending = this.#pending[this.#head];
      if (pending === undefined) throw new Error("reply without a command");
      this.#pending[this.#head++] = undefined as unknown as Pending;
      if (this.#head > 1024 && this.#head * 2 > this.#pending.length) {
        this.#pending = this.#pending.slice(this.#head);
        this.#head = 0;
      }
      if (value instanceof RespError) pending.reject(value);
      else pending.resolve(value);
    }
  }

  #at = 0;

  /** The end of the line starting at `#at` (the index of its CR), or -1. */
  #lineEnd(): number {
    const buf = this.#in;
    for (let i = this.#at; i < this.#end - 1; i++) {
      if (buf[i] === CR && buf[i + 1] === LF) return i;
    }
    return -1;
  }

  #integer(from: number, to: number): number {
    const buf = this.#in;
    let i = from;
    const negative = buf[i] === 45; // "-"
    if (negative) i++;
    let n = 0;
    for (; i < to; i++) n = n * 10 + (buf[i]! - 48);
    return negative ? -n : n;
  }

  #parse(): RespValue | typeof MORE {
    const type = this.#in[this.#at];
    const eol = this.#lineEnd();
    if (eol < 0) return MORE;
    const from = this.#at + 1;
    this.#at = eol + 2;
    switch (type) {
      case 43: // "+"
        return this.#decoder.decode(this.#in.subarray(from, eol));
      case 45: // "-"
        return new RespError(this.#decoder.decode(this.#in.subarray(from, eol)));
      case 58: // ":"
        return this.#integer(from, eol);
      case 36: { // "$"
        const length = this.#integer(from, eol);
        if (length < 0) return null;
        if (this.#at + length + 2 > this.#end) {
          this.#need = Math.max(this.#need, this.#at + length + 2 - this.#start);
          return MORE;
        }
        const value = this.#in.subarray(this.#at, this.#at + length);
        this.#at += length + 2;
        return value;
      }
      case 42: { // "*"
        const count = this.#integer(from, eol);
        if (count < 0) return null;
        const items: RespValue[] = new Array(count);
        for (let i = 0; i < count; i++) {
          const item = this.#parse();
          if (item === MORE) return MORE;
          items[i] = item;
        }
        return items;
      }
      default:
        throw new Error(`unexpected reply type ${type}`);
    }
  }

  #fail(error: RespConnectionError): void {
    if (this.#closed !== undefined) return;
    this.#closed = error;
    try {
      this.#conn.close();
    } catch { /* closed already */ }
    const pending = this.#pending;
    const head = this.#head;
    this.#pending = [];
    this.#head = 0;
    for (let i = head; i < pending.length; i++) pending[i]!.reject(error);
  }
}

/** A failure of Deno's TLS as a {@linkcode RespTlsError}; a network error as it is. */
function tlsRefusal(error: unknown, hostname: string, port: number): unknown {
  // rustls's refusals (certificate, key, handshake) come as InvalidData; unreadable PEM too.
  if (!(error instanceof Deno.errors.InvalidData || error instanceof TypeError)) return error;
  return new RespTlsError(
    `Cannot open a TLS connection to ${hostname}:${port}: ${error.message}`,
    { cause: error },
  );
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 127) return false;
  return true;
}

/**
 * Small I/O helpers for the transport tests: bounded reads from a `ByteConnection` or a socket,
 * and a queue of accepted connections.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { ByteConnection } from "../../src/transport/types.ts";

/** Resolves with `promise`, or rejects after `ms` milliseconds (the timer is always cleared). */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads chunks from a stream reader until `n` bytes came; returns them and the chunk count. */
export async function readBytes(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  n: number,
): Promise<{ bytes: Uint8Array; chunks: number }> {
  const bytes = new Uint8Array(n);
  let got = 0;
  let chunks = 0;
  while (got < n) {
    const { value, done } = await within(reader.read(), 5000, `reading ${n} bytes`);
    if (done) throw new Error(`Stream ended after ${got} of ${n} bytes`);
    if (got + value.length > n) throw new Error(`Got ${got + value.length} bytes, wanted ${n}`);
    bytes.set(value, got);
    got += value.length;
    chunks++;
  }
  return { bytes, chunks };
}

/** Reads exactly `n` bytes from a socket. */
export async function readConn(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const bytes = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const r = await within(conn.read(bytes.subarray(got)), 5000, `reading ${n} bytes`);
    if (r === null) throw new Error(`Socket ended after ${got} of ${n} bytes`);
    got += r;
  }
  return bytes;
}

/** Writes all of `bytes` to a socket (a write may take only part of a large buffer). */
export async function writeConn(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) done += await conn.write(bytes.subarray(done));
}

/** Accepted connections, in order, for a test to take one by one. */
export class Accepted {
  readonly all: ByteConnection[] = [];
  #waiting: ((c: ByteConnection) => void)[] = [];

  /** The handler to give a listener. */
  readonly handler = (conn: ByteConnection): void => {
    this.all.push(conn);
    this.#waiting.shift()?.(conn);
  };

  /** The `index`-th accepted connection (waiting up to 5 s for it). */
  take(index: number): Promise<ByteConnection> {
    if (index < this.all.length) return Promise.resolve(this.all[index]);
    if (index > this.all.length) throw new Error("Take connections in order");
    return within(new Promise((resolve) => this.#waiting.push(resolve)), 5000, "a connection");
  }

  /** Closes every accepted connection and waits until they are closed. */
  async closeAll(): Promise<void> {
    for (const c of this.all) c.close();
    await Promise.all(this.all.map((c) => c.closed));
  }
}

/**
 * Writes 1 MiB pieces until one stays pending for 500 ms (at most 256 MiB): the peer is not
 * reading and the transport holds the writer back. Returns that pending write (boxed: an async
 * function returning a promise would wait for it), or undefined.
 */
export async function writeUntilBlocked(
  conn: ByteConnection,
): Promise<{ pending: Promise<void> } | undefined> {
  const piece = new Uint8Array(1 << 20);
  for (let i = 0; i < 256; i++) {
    const write = conn.write(piece);
    const settled = write.then(() => true, () => true);
    const done = await within(settled, 500, "a write").catch(() => false);
    if (!done) return { pending: write };
  }
  return undefined;
}

/**
 * Asserts that `conn`, whose peer reads nothing, holds a write back, and that close() still
 * completes and rejects that pending write rather than leaving it hanging.
 */
export async function assertCloseSettlesBlockedWrite(conn: ByteConnection): Promise<void> {
  const blocked = await writeUntilBlocked(conn);
  assert.ok(blocked, "a write must stay pending while the peer reads nothing");
  conn.close();
  await within(conn.closed, 5000, "closed despite the silent peer");
  await assert.rejects(
    within(blocked.pending, 5000, "the pending write to settle"),
    (err: Error) => !err.message.startsWith("Timed out"),
    "the pending write is rejected, not left hanging",
  );
}

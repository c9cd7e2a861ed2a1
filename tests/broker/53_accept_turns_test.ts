/**
 * Broker, area 53: the accept loop lets connections already accepted be read while the accept
 * queue still holds more. Before, accept() completed at once for every queued connection and the
 * loop took them all before the first CONNECT was read: in a storm of 1,000 the first CONNACK
 * waited for the 1,000th accept.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  ACCEPT_RUN,
  acceptTimerRunning,
  acceptTimersMade,
} from "../../src/transport/_accept_turns.ts";
import { listenTcp } from "../../src/transport/tcp.ts";
import type { ByteConnection } from "../../src/transport/types.ts";

const QUEUED = 100;

/** A child process that opens `QUEUED` connections, writes a byte on each, then says so. */
function queueConnections(port: number, readyFile: string): Deno.ChildProcess {
  const script = `
    const conns = [];
    for (let i = 0; i < ${QUEUED}; i++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: ${port} });
      await c.write(new Uint8Array([i]));
      conns.push(c);
    }
    Deno.writeTextFileSync(${JSON.stringify(readyFile)}, "ready");
    // Hold them until the test closes stdin.
    for await (const _ of Deno.stdin.readable) { /* wait */ }
    for (const c of conns) c.close();
  `;
  return new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    stdin: "piped",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
}

/** Blocks the event loop (the listener cannot accept) until `file` exists. */
function blockUntil(file: string): void {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      Deno.statSync(file);
      return;
    } catch {
      Atomics.wait(cell, 0, 0, 5);
    }
  }
}

Deno.test("53 accept turns: with 100 connections queued, the first reads come before the last accept", async () => {
  const events: string[] = [];
  const conns: ByteConnection[] = [];
  let done: () => void;
  const allRead = new Promise<void>((resolve) => done = resolve);
  let reads = 0;
  const listener = listenTcp({ name: "t", hostname: "127.0.0.1", port: 0 }, (conn) => {
    events.push("accept");
    conns.push(conn);
    conn.read!().then((chunk) => {
      assert.equal(chunk?.length, 1);
      events.push("read");
      if (++reads === QUEUED) done();
    });
  });
  const dir = await Deno.makeTempDir();
  const ready = `${dir}/ready`;
  const child = queueConnections(listener.port, ready);
  try {
    // Every connection and its byte wait in the kernel (handshakes completed, accept queue).
    blockUntil(ready);
    await allRead;
    assert.equal(events.filter((e) => e === "accept").length, QUEUED);
    const firstRead = events.indexOf("read");
    const lastAccept = events.lastIndexOf("accept");
    // The loop stops after ACCEPT_RUN accepts in a row and the reads ready are served then.
    assert.ok(
      firstRead < lastAccept && firstRead <= 2 * ACCEPT_RUN,
      `first read at ${firstRead}, last accept at ${lastAccept}: ${events.join(" ")}`,
    );
  } finally {
    for (const c of conns) c.close();
    await listener.close();
    await child.stdin.close();
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("53 accept turns: a wait a read ends leaves its timer for the next waits, and close() outlives it", async () => {
  // The accept loop waits after ACCEPT_RUN accepts; the last connection's read ends that wait
  // while its 1 ms timer still runs (one timer for every wait within its millisecond, not one
  // made and cleared per wait). The listener is closed right then: close() must not return
  // before that timer has fired (the test's op sanitizer fails a timer left running too). (On a
  // machine so loaded that the read comes a millisecond after the accept, the timer ends the
  // wait instead and nothing is left to outlive.)
  let read = 0;
  let closed: () => void;
  const closing = new Promise<void>((resolve) => closed = resolve);
  const conns: ByteConnection[] = [];
  const listener = listenTcp({ name: "t", hostname: "127.0.0.1", port: 0 }, (conn) => {
    conns.push(conn);
    conn.read!().then(() => {
      if (++read < ACCEPT_RUN) return;
      listener.close().then(closed);
    });
  });
  const clients: Deno.Conn[] = [];
  try {
    for (let i = 0; i < ACCEPT_RUN; i++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: listener.port });
      clients.push(c);
      await c.write(new Uint8Array([i]));
    }
    await closing;
    assert.equal(acceptTimerRunning(), false, "close() returned before the timer fired");
    assert.equal(conns.length, ACCEPT_RUN);
  } finally {
    for (const c of clients) c.close();
    for (const c of conns) c.close();
    await listener.close();
  }
});

/**
 * Opens `n` connections to `port`, one after another (each accepted in turn), writing nothing.
 */
async function dial(port: number, n: number, into: Deno.Conn[]): Promise<void> {
  for (let i = 0; i < n; i++) into.push(await Deno.connect({ hostname: "127.0.0.1", port }));
}

Deno.test("53 accept turns: a second close() called while the accept timer runs waits for it too", async () => {
  // The 16th accept starts the accept loop's wait, and its timer, right after the handler
  // returns: a microtask queued by the handler runs while the wait (nothing reads) is pending.
  // close() is called twice there; awaiting only the second must find the timer gone (it used
  // to return at once, leaving the first caller's timer running).
  const conns: ByteConnection[] = [];
  const clients: Deno.Conn[] = [];
  let first: Promise<void> | undefined;
  let seen: Promise<boolean> | undefined;
  const listener = listenTcp({ name: "t", hostname: "127.0.0.1", port: 0 }, (conn) => {
    conns.push(conn);
    if (conns.length !== ACCEPT_RUN) return;
    seen = new Promise((resolve) =>
      queueMicrotask(() => {
        const pending = acceptTimerRunning();
        first = listener.close();
        listener.close().then(() => resolve(pending && !acceptTimerRunning()));
      })
    );
  });
  try {
    await dial(listener.port, ACCEPT_RUN, clients);
    while (seen === undefined) await new Promise((resolve) => setTimeout(resolve, 1));
    assert.equal(await seen, true, "the second close() returned before the accept timer fired");
    await first;
  } finally {
    for (const c of clients) c.close();
    for (const c of conns) c.close();
    await listener.close();
  }
});

Deno.test("53 accept turns: two listeners share the accept timer; one closed while the other waits on it leaves the other accepting", async () => {
  // B's 16th accept starts the wait and its timer; A, at its accept, is closed right then: its
  // close() waits for the timer B started, and B's wait ends by that timer all the same.
  const clients: Deno.Conn[] = [];
  const aConns: ByteConnection[] = [];
  const bConns: ByteConnection[] = [];
  let aClosed: Promise<boolean> | undefined;
  const a = listenTcp({ name: "a", hostname: "127.0.0.1", port: 0 }, (conn) => aConns.push(conn));
  const b = listenTcp({ name: "b", hostname: "127.0.0.1", port: 0 }, (conn) => {
    bConns.push(conn);
    if (bConns.length !== ACCEPT_RUN) return;
    aClosed = new Promise((resolve) =>
      queueMicrotask(() => {
        const pending = acceptTimerRunning();
        a.close().then(() => resolve(pending && !acceptTimerRunning()));
      })
    );
  });
  try {
    await dial(a.port, 3, clients);
    await dial(b.port, ACCEPT_RUN, clients);
    while (aClosed === undefined) await new Promise((resolve) => setTimeout(resolve, 1));
    assert.equal(await aClosed, true, "A's close() returned before the shared timer fired");
    assert.equal(aConns.length, 3);
    // B's wait is over: it accepts again.
    await dial(b.port, 1, clients);
    while (bConns.length < ACCEPT_RUN + 1) await new Promise((resolve) => setTimeout(resolve, 1));
    await b.close();
    assert.equal(acceptTimerRunning(), false);
  } finally {
    for (const c of clients) c.close();
    for (const c of [...aConns, ...bConns]) c.close();
    await a.close();
    await b.close();
  }
});

Deno.test("53 accept turns: the accept timer is made once and armed again for each later wait", async () => {
  // Three waits, each ended by the timer (the connections write nothing, so no read ends them),
  // each begun after the last one's timer fired: every wait has its timer running, and no new
  // timer object is made for the later ones (a timer made per wait cost 1.3 % of the broker's CPU
  // in bursts of 64 handshakes).
  const conns: ByteConnection[] = [];
  const clients: Deno.Conn[] = [];
  const armedAtWait: boolean[] = [];
  const made = acceptTimersMade();
  const listener = listenTcp({ name: "t", hostname: "127.0.0.1", port: 0 }, (conn) => {
    conns.push(conn);
    // The wait starts right after the handler of every ACCEPT_RUN-th accept returns.
    if (conns.length % ACCEPT_RUN === 0) {
      queueMicrotask(() => armedAtWait.push(acceptTimerRunning()));
    }
  });
  try {
    for (let round = 1; round <= 3; round++) {
      await dial(listener.port, ACCEPT_RUN, clients);
      while (armedAtWait.length < round || acceptTimerRunning()) {
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    }
    assert.deepEqual(armedAtWait, [true, true, true]);
    assert.equal(conns.length, 3 * ACCEPT_RUN);
    // At most the process's first one, if no earlier test made it.
    assert.equal(acceptTimersMade() - made, made === 0 ? 1 : 0, "timers made for three waits");
  } finally {
    for (const c of clients) c.close();
    for (const c of conns) c.close();
    await listener.close();
  }
});

/**
 * A TCP proxy in front of a test's redis-server, for connections that do not get through: it
 * forwards new connections, or accepts them and never answers (`stall`), or holds a chosen one
 * until the test lets it through (`hold`), or stops accepting with its listen queue full, so that a
 * connect's SYN is never answered (`fillQueue`). Connections already forwarded go on meanwhile,
 * until the test cuts them all (`cut`).
 *
 * @module
 */

import assert from "node:assert/strict";

/** What the proxy does with a connection it accepts. */
export type ProxyMode = "forward" | "stall";

/** A connection held by {@linkcode StallProxy.hold} until {@linkcode release}d. */
interface Held {
  conn: Deno.Conn;
  first: Uint8Array;
}

/** A forwarded connection: what its client sent (its first 64 KiB), a gate on the replies. */
interface Link {
  sent: string;
  gate: Promise<void> | undefined;
  /** Bytes per second the server's replies are slowed to (0: not slowed). */
  rate: number;
  /** Set by {@linkcode StallProxy.holdRequestsFrom}: what the client sends waits for it. */
  requests?: Promise<void>;
}

/** A slowing armed by {@linkcode StallProxy.throttleRepliesFrom}: set on `link` once reached. */
interface Throttle {
  pattern: string;
  bytesPerSecond: number;
  reached: PromiseWithResolvers<void>;
  link?: Link;
}

/** A proxy on 127.0.0.1, port 0, to `127.0.0.1:upstream`. */
export class StallProxy implements AsyncDisposable {
  readonly port: number;
  /** What happens to connections accepted from now on. */
  mode: ProxyMode = "forward";
  /** Connections accepted in `stall` mode (never answered). */
  readonly stalled: Deno.Conn[] = [];
  #upstream: number;
  readonly #listener: Deno.TcpListener;
  readonly #conns = new Set<Deno.Conn>();
  readonly #tasks = new Set<Promise<void>>();
  #gate: PromiseWithResolvers<void> | undefined;
  #fillers: Deno.Conn[] = [];
  #holding: { pattern: string; held: PromiseWithResolvers<Held> } | undefined;
  readonly #accepting: Promise<void>;

  constructor(upstream: number) {
    this.#upstream = upstream;
    // A short listen queue, filled by a few connections the proxy does not accept (long enough
    // for a node's four connections made at once while it accepts).
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0, tcpBacklog: 4 });
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    this.#accepting = this.#acceptLoop();
  }

  /** `redis://127.0.0.1:PORT` of the proxy. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Sends connections accepted from now on to another server. */
  set upstream(port: number) {
    this.#upstream = port;
  }

  /**
   * The next connection whose first bytes contain `pattern` (`CLIENT SETNAME …:xread`) is held:
   * nothing of it is forwarded until {@linkcode release}. Resolves once it arrived.
   */
  hold(pattern: string): Promise<Held> {
    this.#holding = { pattern, held: Promise.withResolvers() };
    return this.#holding.held.promise;
  }

  /**
   * Holds back what the server sends on the one forwarded connection whose client sent (in any case)
   * `pattern` (`SUBSCRIBE`: a node's subscriber connection), from now until the returned release
   * is called: the client's commands still reach the server, their answers and the messages
   * published to it wait in the proxy, in order.
   */
  delayReplies(pattern: string): () => void {
    const links = [...this.#links].filter((link) =>
      link.sent.toLowerCase().includes(pattern.toLowerCase())
    );
    assert.equal(links.length, 1, `one connection sent ${pattern}`);
    const gate = Promise.withResolvers<void>();
    links[0]!.gate = gate.promise;
    const release = () => {
      if (links[0]!.gate === gate.promise) links[0]!.gate = undefined;
      gate.resolve();
      this.#replyGates.delete(release);
    };
    this.#replyGates.add(release);
    return release;
  }

  /**
   * The releases of {@linkcode delayReplies} not called yet: the proxy's end calls them. A test
   * that failed before its release left the reply copy of that link waiting on the gate for
   * ever, its socket closed or not, and the proxy's end waiting for that copy
   * (`late_claim_copy_test` hung 26 min once, its nodes long gone).
   */
  readonly #replyGates = new Set<() => void>();

  /**
   * Slows what the server sends on the forwarded connection whose client next sends `pattern`
   * (in any case; `HMGET key`: a node's read of a session's messages) to `bytesPerSecond`, from
   * that command on, its answer included, until `release` is called: a slow link, on which each
   * answer still comes (the connection's other commands are answered in turn, not held).
   * `reached` settles once the command went to the server.
   */
  throttleRepliesFrom(
    pattern: string,
    bytesPerSecond: number,
  ): { reached: Promise<void>; release: () => void } {
    const reached = Promise.withResolvers<void>();
    const throttle: Throttle = { pattern: pattern.toLowerCase(), bytesPerSecond, reached };
    this.#throttle = throttle;
    return {
      reached: reached.promise,
      release: () => {
        if (this.#throttle === throttle) this.#throttle = undefined;
        if (throttle.link !== undefined) throttle.link.rate = 0;
      },
    };
  }

  /**
   * Holds back what a client sends, from the first piece containing `pattern` (in any case;
   * `$2\r\nqo\r\n`: a store write queuing a message) on, on the forwarded connection it came by,
   * until `release` is called: its commands reach the server late, in order, while the client's
   * other connections go on. `reached` settles once such a piece arrived (and is held).
   */
  holdRequestsFrom(pattern: string): { reached: Promise<void>; release: () => void } {
    const reached = Promise.withResolvers<void>();
    const gate = Promise.withResolvers<void>();
    this.#requestHold = { pattern: pattern.toLowerCase(), gate: gate.promise, reached };
    const release = () => {
      if (this.#requestHold?.gate === gate.promise) this.#requestHold = undefined;
      this.#requestGates.delete(release);
      gate.resolve();
    };
    this.#requestGates.add(release);
    return { reached: reached.promise, release };
  }

  /** The releases of {@linkcode holdRequestsFrom} not called yet: the proxy's end calls them. */
  readonly #requestGates = new Set<() => void>();

  /** Armed by {@linkcode holdRequestsFrom} until a client sends its pattern. */
  #requestHold:
    | { pattern: string; gate: Promise<void>; reached: PromiseWithResolvers<void> }
    | undefined;

  /** Forwards a held connection (its first bytes, then the rest) to the current upstream. */
  release(held: Held): void {
    this.#track(this.#forward(held.conn, held.first));
  }

  /**
   * Closes every connection the proxy has (forwarded, stalled, held): their clients see the
   * server go away and connect again, to what `mode` then does.
   */
  cut(): void {
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch { /* closed already */ }
    }
    this.#conns.clear();
    this.stalled.length = 0;
  }

  /**
   * Stops accepting and fills the listen queue: a connect to the proxy then waits for an answer
   * to its SYN that never comes (the kernel drops it), until {@linkcode resume}.
   */
  async fillQueue(): Promise<void> {
    this.#gate = Promise.withResolvers();
    for (let i = 0;; i++) {
      assert.ok(i < 20, "the listen queue fills");
      // A loopback handshake is answered by the kernel at once; one unanswered for a while
      // means the queue is full.
      const abort = AbortSignal.timeout(1000);
      try {
        this.#fillers.push(
          await Deno.connect({ hostname: "127.0.0.1", port: this.port, signal: abort }),
        );
      } catch (error) {
        assert.equal((error as Error).name, "TimeoutError");
        return;
      }
    }
  }

  /**
   * Accepts again (the queued fillers are closed); resolves once the listen queue is drained, so
   * that a connect from then on is answered at once.
   */
  async resume(): Promise<void> {
    for (const conn of this.#fillers) conn.close();
    this.#fillers = [];
    if (this.#gate === undefined) return;
    this.#gate.resolve();
    this.#gate = undefined;
    // Behind every queued connection: accepted last.
    this.#accepted.clear();
    const probe = await Deno.connect({ hostname: "127.0.0.1", port: this.port });
    const local = (probe.localAddr as Deno.NetAddr).port;
    while (!this.#accepted.has(local)) await new Promise((resolve) => setTimeout(resolve, 10));
    probe.close();
  }

  /** Forwarded connections: what the client sent (its first 64 KiB), and a gate on the replies. */
  readonly #links = new Set<Link>();
  /** Armed by {@linkcode throttleRepliesFrom} until a client sends its pattern. */
  #throttle: Throttle | undefined;

  /** Client ports of the connections accepted since the last resume. */
  readonly #accepted = new Set<number>();

  async #acceptLoop(): Promise<void> {
    for (;;) {
      if (this.#gate !== undefined) await this.#gate.promise;
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch {
        return; // closed
      }
      this.#conns.add(conn);
      if (this.#gate !== undefined) continue; // a filler, accepted by the accept pending
      this.#accepted.add((conn.remoteAddr as Deno.NetAddr).port);
      if (this.mode === "stall") {
        this.stalled.push(conn);
        continue;
      }
      this.#track(this.#route(conn));
    }
  }

  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
  }

  async #route(conn: Deno.Conn): Promise<void> {
    const holding = this.#holding;
    if (holding === undefined) return this.#forward(conn, new Uint8Array(0));
    const buf = new Uint8Array(4096);
    const n = await conn.read(buf).catch(() => null);
    if (n === null) return;
    const first = buf.slice(0, n);
    if (new TextDecoder().decode(first).includes(holding.pattern)) {
      this.#holding = undefined;
      holding.held.resolve({ conn, first });
      return;
    }
    return this.#forward(conn, first);
  }

  async #forward(conn: Deno.Conn, first: Uint8Array): Promise<void> {
    let up: Deno.Conn;
    try {
      up = await Deno.connect({ hostname: "127.0.0.1", port: this.#upstream });
    } catch {
      conn.close();
      this.#conns.delete(conn);
      return;
    }
    this.#conns.add(up);
    const link: Link = { sent: new TextDecoder().decode(first), gate: undefined, rate: 0 };
    this.#links.add(link);
    const end = () => {
      this.#links.delete(link);
      for (const c of [conn, up]) {
        try {
          c.close();
        } catch { /* closed already */ }
        this.#conns.delete(c);
      }
    };
    const copy = async (from: Deno.Conn, to: Deno.Conn, head: Uint8Array) => {
      try {
        if (head.length > 0) await to.write(head);
        const buf = new Uint8Array(64 * 1024);
        for (;;) {
          const n = await from.read(buf);
          if (n === null) break;
          if (from === conn && link.sent.length < 65536) {
            link.sent += new TextDecoder().decode(buf.subarray(0, n));
          }
          const throttle = this.#throttle;
          if (
            from === conn && throttle !== undefined &&
            new TextDecoder().decode(buf.subarray(0, n)).toLowerCase().includes(throttle.pattern)
          ) {
            // Set before the command goes on: its answer comes slowly whatever the timing.
            this.#throttle = undefined;
            throttle.link = link;
            link.rate = throttle.bytesPerSecond;
            throttle.reached.resolve();
          }
          const hold = this.#requestHold;
          if (
            from === conn && hold !== undefined &&
            new TextDecoder().decode(buf.subarray(0, n)).toLowerCase().includes(hold.pattern)
          ) {
            this.#requestHold = undefined;
            link.requests = hold.gate;
            hold.reached.resolve();
          }
          if (from === conn && link.requests !== undefined) await link.requests;
          if (from === up && link.gate !== undefined) await link.gate;
          // Slowed: 16 KiB at a time, each after its share of a second (until released).
          for (let start = 0; start < n;) {
            const rate = from === up ? link.rate : 0;
            const end = rate > 0 ? Math.min(n, start + 16 * 1024) : n;
            if (rate > 0) {
              await new Promise((resolve) => setTimeout(resolve, (end - start) / rate * 1000));
            }
            let off = start;
            while (off < end) off += await to.write(buf.subarray(off, end));
            start = end;
          }
        }
      } catch { /* closed */ }
      end();
    };
    await Promise.all([copy(conn, up, first), copy(up, conn, new Uint8Array(0))]);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const conn of this.#fillers) conn.close();
    this.#fillers = [];
    this.#gate?.resolve();
    for (const release of [...this.#requestGates]) release();
    for (const release of [...this.#replyGates]) release();
    this.#throttle = undefined;
    for (const link of this.#links) link.rate = 0;
    this.#listener.close();
    await this.#accepting;
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch { /* closed already */ }
    }
    this.#conns.clear();
    await Promise.all(this.#tasks);
  }
}

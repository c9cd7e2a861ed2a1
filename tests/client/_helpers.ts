/**
 * Test fixtures for the client: a TCP proxy that can blackhole or cut its connections, and a
 * scripted server that plays a broker packet by packet.
 *
 * @module
 */

import { PacketDecoder } from "../../src/packet/decoder.ts";
import { encodePacket } from "../../src/packet/encode.ts";
import { PacketType, type ProtocolVersion } from "../../src/packet/constants.ts";
import type { ConnectPacket, Packet } from "../../src/packet/types.ts";

/**
 * A TCP proxy in front of a port. {@linkcode blackhole} makes the open connections swallow traffic
 * both ways while staying open to the client, even when the server closes (a dead link); new
 * connections flow normally. {@linkcode cut}
 * closes the open connections (an abrupt close).
 */
export class TcpProxy {
  readonly port: number;
  /** Connections accepted so far. */
  accepted = 0;
  #listener: Deno.Listener;
  #target: number;
  #pairs = new Set<{ conns: Deno.Conn[]; dead: boolean }>();
  #tasks = new Set<Promise<void>>();
  #accepting: Promise<void>;

  constructor(targetPort: number) {
    this.#target = targetPort;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    this.#accepting = this.#accept();
  }

  async #accept(): Promise<void> {
    for (;;) {
      let inbound: Deno.TcpConn;
      try {
        inbound = await this.#listener.accept() as Deno.TcpConn;
      } catch {
        return;
      }
      this.accepted++;
      let outbound: Deno.TcpConn;
      try {
        outbound = await Deno.connect({ hostname: "127.0.0.1", port: this.#target });
      } catch {
        inbound.close();
        continue;
      }
      inbound.setNoDelay(true);
      outbound.setNoDelay(true);
      const pair = { conns: [inbound, outbound], dead: false };
      this.#pairs.add(pair);
      const task = Promise.all([
        this.#pump(pair, inbound, outbound),
        this.#pump(pair, outbound, inbound),
      ]).then(() => {});
      this.#tasks.add(task);
      task.finally(() => this.#tasks.delete(task));
    }
  }

  async #pump(
    pair: { conns: Deno.Conn[]; dead: boolean },
    from: Deno.Conn,
    to: Deno.Conn,
  ): Promise<void> {
    const buf = new Uint8Array(16 * 1024);
    try {
      for (;;) {
        const n = await from.read(buf);
        if (n === null) break;
        if (pair.dead) continue;
        let done = 0;
        while (done < n) done += await to.write(buf.subarray(done, n));
      }
    } catch { /* one side closed */ }
    if (pair.dead && from === pair.conns[1]) {
      // A dead link: the client does not see the server behind it close (the server's own
      // keepalive timeout, say). Only the client's side closing, or `cut`, ends the pair, so a
      // test sees the client find the dead link by itself.
      try {
        from.close();
      } catch { /* already closed */ }
      return;
    }
    this.#closePair(pair);
  }

  #closePair(pair: { conns: Deno.Conn[]; dead: boolean }): void {
    if (!this.#pairs.delete(pair)) return;
    for (const c of pair.conns) {
      try {
        c.close();
      } catch { /* already closed */ }
    }
  }

  /** Silently drops all traffic on the connections open now, which stay open. */
  blackhole(): void {
    for (const pair of this.#pairs) pair.dead = true;
  }

  /** Closes every proxied connection (both sides), like a network failure. */
  async cut(): Promise<void> {
    for (const pair of [...this.#pairs]) this.#closePair(pair);
    await Promise.all([...this.#tasks]);
  }

  /** Stops the proxy and closes everything. */
  async close(): Promise<void> {
    try {
      this.#listener.close();
    } catch { /* closed */ }
    await this.#accepting;
    await this.cut();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** One accepted connection of a {@linkcode ScriptedServer}: read packets, send packets. */
export class ScriptedConn {
  readonly conn: Deno.Conn;
  #decoder = new PacketDecoder({ side: "server" });
  #buf = new Uint8Array(64 * 1024);
  #version: ProtocolVersion = 4;

  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  /** The next packet from the client, or `undefined` when it closed. */
  async next(): Promise<Packet | undefined> {
    for (;;) {
      const p = this.#decoder.next();
      if (p !== undefined) {
        if (p.type === PacketType.CONNECT) this.#version = p.protocolVersion;
        return p;
      }
      let n: number | null;
      try {
        n = await this.conn.read(this.#buf);
      } catch {
        n = null;
      }
      if (n === null) return undefined;
      this.#decoder.push(this.#buf.slice(0, n));
    }
  }

  /** Sends packets in one write. */
  async send(...packets: Packet[]): Promise<void> {
    for (const p of packets) {
      const bytes = encodePacket(p, this.#version);
      let done = 0;
      while (done < bytes.length) done += await this.conn.write(bytes.subarray(done));
    }
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* closed */ }
  }
}

/** A TCP server the test drives packet by packet, to script a broker's side exactly. */
export class ScriptedServer {
  readonly port: number;
  #listener: Deno.Listener;
  #conns: ScriptedConn[] = [];

  constructor() {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = (this.#listener.addr as Deno.NetAddr).port;
  }

  /** Waits for the next connection. */
  async accept(): Promise<ScriptedConn> {
    const c = new ScriptedConn(await this.#listener.accept());
    this.#conns.push(c);
    return c;
  }

  /** Accepts a connection, reads its CONNECT and answers CONNACK. */
  async acceptSession(sessionPresent = false): Promise<[ScriptedConn, ConnectPacket]> {
    const c = await this.accept();
    const connect = await c.next();
    if (connect?.type !== PacketType.CONNECT) throw new Error("Expected CONNECT");
    await c.send({ type: PacketType.CONNACK, sessionPresent, reasonCode: 0 });
    return [c, connect];
  }

  [Symbol.asyncDispose](): Promise<void> {
    for (const c of this.#conns) c.close();
    try {
      this.#listener.close();
    } catch { /* closed */ }
    return Promise.resolve();
  }
}

/**
 * Test fixtures for the client: a Mosquitto broker run from a generated config, and a TCP proxy
 * that can blackhole or cut its connections.
 *
 * @module
 */

import { PacketDecoder } from "../../src/packet/decoder.ts";
import { encodePacket } from "../../src/packet/encode.ts";
import { PacketType, type ProtocolVersion } from "../../src/packet/constants.ts";
import type { ConnectPacket, Packet } from "../../src/packet/types.ts";
import type { CertFiles } from "../_helpers/certs.ts";

export const MOSQUITTO = "/usr/sbin/mosquitto";

/** A port that was free a moment ago (listen on 0, close, reuse). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Resolves after `ms`. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every 20 ms until it returns true, or throws after `ms`. */
export async function waitFor(check: () => boolean, ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  while (!check()) {
    if (performance.now() > end) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await delay(20);
  }
}

/** One listener of a {@linkcode Mosquitto}. */
export interface MosquittoListener {
  protocol?: "mqtt" | "websockets";
  /** Serve TLS with these files. */
  tls?: { certs: CertFiles; requireCertificate?: boolean };
}

/** Options of {@linkcode Mosquitto.start}. */
export interface MosquittoOptions {
  /** Listeners besides the plain TCP one that always comes first (mosquitto 2.0.11 will not start
   * with websockets listeners only). */
  listeners?: MosquittoListener[];
  allowAnonymous?: boolean;
  /** Keep sessions in a file across restarts. */
  persistence?: boolean;
  /** Extra config lines; `{dir}` stands for the broker's directory. */
  extra?: string[];
  /** Files to write into the broker's directory before it starts, by name. */
  files?: Record<string, string>;
}

/** A mosquitto process on 127.0.0.1 with free ports, stoppable and restartable on the same ports. */
export class Mosquitto {
  readonly dir: string;
  /** Ports: `[0]` is the plain TCP listener, then one per extra listener, in order. */
  readonly ports: number[];
  #child: Deno.ChildProcess | undefined;

  private constructor(dir: string, ports: number[]) {
    this.dir = dir;
    this.ports = ports;
  }

  /** The plain TCP port. */
  get port(): number {
    return this.ports[0]!;
  }

  /** Writes the config and starts mosquitto; resolves when every port accepts connections. */
  static async start(options: MosquittoOptions = {}): Promise<Mosquitto> {
    const dir = await Deno.makeTempDir({ prefix: "amqtt_mosq_" });
    await Deno.chmod(dir, 0o777);
    const extras = options.listeners ?? [];
    const ports = [freePort(), ...extras.map(() => freePort())];
    const lines = [
      `listener ${ports[0]} 127.0.0.1`,
      `allow_anonymous ${options.allowAnonymous ?? true}`,
    ];
    extras.forEach((l, i) => {
      lines.push(`listener ${ports[i + 1]} 127.0.0.1`);
      if (l.protocol === "websockets") lines.push("protocol websockets");
      if (l.tls !== undefined) {
        lines.push(
          `cafile ${l.tls.certs.caFile}`,
          `certfile ${l.tls.certs.serverCertFile}`,
          `keyfile ${l.tls.certs.serverKeyFile}`,
        );
        if (l.tls.requireCertificate) lines.push("require_certificate true");
      }
    });
    if (options.persistence) {
      lines.push("persistence true", `persistence_location ${dir}/`, "autosave_interval 0");
    }
    lines.push(...(options.extra ?? []).map((l) => l.replaceAll("{dir}", dir)));
    for (const [name, content] of Object.entries(options.files ?? {})) {
      await Deno.writeTextFile(`${dir}/${name}`, content);
    }
    await Deno.writeTextFile(`${dir}/mosquitto.conf`, lines.join("\n") + "\n");
    const m = new Mosquitto(dir, ports);
    await m.restart();
    return m;
  }

  /** Starts the process again (after {@linkcode stop}) on the same ports and config. */
  async restart(): Promise<void> {
    if (this.#child !== undefined) throw new Error("mosquitto is already running");
    this.#child = new Deno.Command(MOSQUITTO, {
      args: ["-c", `${this.dir}/mosquitto.conf`],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    for (const port of this.ports) await waitForPort(port, 5000);
  }

  /** Stops the process (SIGTERM, so a persistent broker saves its sessions). */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    this.#child = undefined;
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    await child.status;
  }

  /** Stops it and removes its directory. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

async function waitForPort(port: number, ms: number): Promise<void> {
  const end = performance.now() + ms;
  for (;;) {
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      c.close();
      return;
    } catch (error) {
      if (performance.now() > end) throw error;
      await delay(20);
    }
  }
}

/**
 * A TCP proxy in front of a port. {@linkcode blackhole} makes the open connections swallow traffic
 * both ways while staying open (a dead link); new connections flow normally. {@linkcode cut}
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

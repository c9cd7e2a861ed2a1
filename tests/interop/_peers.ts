/**
 * Fixtures for the interop matrix: our broker with tcp, tls, ws and wss listeners; Mosquitto and
 * Aedes as peer brokers on the same four transports; the test wrapper and the subscriber checks
 * the command-line peers share.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Aedes } from "aedes";
import net from "node:net";
import tls from "node:tls";
import http from "node:http";
import https from "node:https";
// The same ws package src/transport/websocket.ts uses.
// @ts-types="npm:@types/ws@8.18.2"
import { createWebSocketStream, WebSocketServer } from "ws";
import { Broker } from "../../broker.ts";
import { delay, MemoryLogger, waitFor } from "../_helpers/broker.ts";
import type { CertFiles } from "../_helpers/certs.ts";
import { Mosquitto, type Tool } from "../_helpers/peers.ts";

/** The four transports of the matrix. */
export type Transport = "tcp" | "tls" | "ws" | "wss";

/** Every transport, in table order. */
export const TRANSPORTS: readonly Transport[] = ["tcp", "tls", "ws", "wss"];

/** The URL scheme MQTT.js and MQTTClient use for a transport. */
export const SCHEME: Record<Transport, string> = {
  tcp: "mqtt",
  tls: "mqtts",
  ws: "ws",
  wss: "wss",
};

/** A broker under test, reachable on every transport. */
export interface BrokerUnderTest extends AsyncDisposable {
  /** The URL of a transport, e.g. `ws://127.0.0.1:1234/mqtt`. */
  url(transport: Transport): string;
  /** Host and port of a transport. */
  port(transport: Transport): number;
  /**
   * The protocol level (3 = MQTT 3.1, 4 = 3.1.1) of the last CONNECT the broker accepted from
   * `clientId`, as the broker itself saw it; undefined when it saw none.
   */
  levelOf(clientId: string): Promise<number | undefined>;
}

/** A client connection our broker accepted: who, over which transport, at which level. */
export interface AcceptedConnection {
  clientId: string;
  transport: string;
  protocolVersion: number;
}

/** Our broker with four listeners, its log and the connections it accepted. */
export interface OurBroker extends BrokerUnderTest {
  broker: Broker;
  log: MemoryLogger;
  /** Every accepted CONNECT, in order: proves a cell ran over its transport and level. */
  connections: AcceptedConnection[];
}

function urlOf(transport: Transport, port: number): string {
  const path = transport === "ws" || transport === "wss" ? "/mqtt" : "";
  return `${SCHEME[transport]}://127.0.0.1:${port}${path}`;
}

/**
 * Starts our broker on 127.0.0.1 with tcp, tls, ws and wss listeners on free ports.
 *
 * @param certs server certificate and key for tls and wss
 * @returns the broker; dispose to shut it down
 */
export async function startOurBroker(certs: CertFiles): Promise<OurBroker> {
  const log = new MemoryLogger();
  const ssl = { ssl: true, certfile: certs.serverCertFile, keyfile: certs.serverKeyFile };
  const broker = new Broker({
    listeners: {
      default: { bind: "127.0.0.1:0" },
      tls: { bind: "127.0.0.1:0", ...ssl },
      ws: { type: "ws", bind: "127.0.0.1:0" },
      wss: { type: "ws", bind: "127.0.0.1:0", ...ssl },
    },
  }, { logger: log });
  const connections: AcceptedConnection[] = [];
  broker.on("clientConnected", ({ client }) => {
    connections.push({
      clientId: client.clientId,
      transport: client.transport,
      protocolVersion: client.protocolVersion,
    });
  });
  await broker.start();
  const ports: Record<Transport, number> = {
    tcp: broker.listeners[0].port,
    tls: broker.listeners[1].port,
    ws: broker.listeners[2].port,
    wss: broker.listeners[3].port,
  };
  return {
    broker,
    log,
    connections,
    url: (t) => urlOf(t, ports[t]),
    port: (t) => ports[t],
    levelOf: (id) =>
      Promise.resolve(connections.findLast((c) => c.clientId === id)?.protocolVersion),
    [Symbol.asyncDispose]: () => broker.shutdown(),
  };
}

/** Mosquitto with tcp, tls, ws and wss listeners, optionally persistent. */
export interface MosquittoPeer extends BrokerUnderTest {
  mosquitto: Mosquitto;
}

/**
 * Starts Debian's Mosquitto on free loopback ports for all four transports.
 *
 * @param certs server certificate and key for tls and wss
 * @returns the running broker; dispose to stop it and remove its directory
 */
export async function startMosquittoPeer(certs: CertFiles): Promise<MosquittoPeer> {
  const mosquitto = await Mosquitto.start({
    listeners: [
      { tls: { certs } },
      { protocol: "websockets" },
      { protocol: "websockets", tls: { certs } },
    ],
    // "New client connected from … as ID (p2, c1, k10)": the log says which level each CONNECT had.
    extra: ["connection_messages true"],
  });
  const ports: Record<Transport, number> = {
    tcp: mosquitto.ports[0],
    tls: mosquitto.ports[1],
    ws: mosquitto.ports[2],
    wss: mosquitto.ports[3],
  };
  return {
    mosquitto,
    url: (t) => urlOf(t, ports[t]),
    port: (t) => ports[t],
    levelOf: async (id) => {
      const log = await Deno.readTextFile(mosquitto.log).catch(() => "");
      let level: number | undefined;
      // Mosquitto numbers its protocols 1 = MQTT 3.1, 2 = 3.1.1, 5 = 5.0.
      for (const [, client, p] of log.matchAll(/ as (\S+) \(p(\d+),/g)) {
        if (client === id) level = ({ "1": 3, "2": 4, "5": 5 } as Record<string, number>)[p];
      }
      return level;
    },
    [Symbol.asyncDispose]: () => mosquitto[Symbol.asyncDispose](),
  };
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port));
  });
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * Starts Aedes (npm:aedes, in-memory persistence) in this process: tcp and tls on `node:net` /
 * `node:tls`, ws and wss through `ws`'s `createWebSocketStream` on `node:http` / `node:https`.
 *
 * @param certs server certificate and key for tls and wss
 * @returns the running broker; dispose to close it
 */
export async function startAedesPeer(certs: CertFiles): Promise<BrokerUnderTest> {
  const aedes = await Aedes.createBroker();
  const levels = new Map<string, number>();
  aedes.on("client", (client) => {
    const version = (client as unknown as { version?: number }).version;
    if (version !== undefined) levels.set(client.id, version);
  });
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  };
  const tcp = net.createServer((s) => {
    track(s);
    aedes.handle(s);
  });
  const secure = tls.createServer({ cert: certs.serverCert, key: certs.serverKey }, (s) => {
    track(s);
    aedes.handle(s);
  });
  const plainHttp = http.createServer();
  const secureHttp = https.createServer({ cert: certs.serverCert, key: certs.serverKey });
  const wsServers = [plainHttp, secureHttp].map((server) => {
    const wss = new WebSocketServer({ server });
    wss.on("connection", (socket, req) => aedes.handle(createWebSocketStream(socket), req));
    return wss;
  });
  for (const s of [plainHttp, secureHttp]) s.on("connection", track);
  const ports: Record<Transport, number> = {
    tcp: await listen(tcp),
    tls: await listen(secure),
    ws: await listen(plainHttp),
    wss: await listen(secureHttp),
  };
  return {
    url: (t) => urlOf(t, ports[t]),
    port: (t) => ports[t],
    levelOf: (id) => Promise.resolve(levels.get(id)),
    [Symbol.asyncDispose]: async () => {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      for (const w of wsServers) {
        for (const c of w.clients) c.terminate();
        await new Promise((resolve) => w.close(resolve));
      }
      for (const s of sockets) s.destroy();
      await Promise.all([tcp, secure, plainHttp, secureHttp].map(closeServer));
    },
  };
}

/**
 * Asserts that every connection our broker accepted came over `transport` at `protocolVersion`
 * (and that there was at least one).
 *
 * @param b our broker
 * @param transport the transport of the cell
 * @param protocolVersion 3 (MQTT 3.1) or 4 (3.1.1)
 */
export function assertConnections(
  b: OurBroker,
  transport: Transport,
  protocolVersion: number,
): void {
  if (b.connections.length === 0) throw new Error("No client connected to the broker");
  const kinds = new Set(b.connections.map((c) => `${c.transport} level ${c.protocolVersion}`));
  const expected = `${transport} level ${protocolVersion}`;
  if (kinds.size !== 1 || !kinds.has(expected)) {
    throw new Error(`Expected every connection over ${expected}, got ${[...kinds].join(", ")}`);
  }
}

/** Options of {@linkcode interopTest}. */
export interface InteropTestOptions {
  /**
   * Milliseconds to wait after the body, still inside the test: Aedes, node:net and MQTT.js finish
   * closing on setImmediate callbacks, which the sanitizers must see run in the test that made them.
   */
  settleMs?: number;
}

/**
 * Registers an interop test with the op and resource sanitizers on.
 *
 * @param name the test name
 * @param fn the body
 * @param options how long to let closing callbacks run afterwards
 */
export function interopTest(
  name: string,
  fn: () => Promise<void>,
  options: InteropTestOptions = {},
): void {
  const settleMs = options.settleMs ?? 0;
  Deno.test({
    name,
    fn: async () => {
      await fn();
      if (settleMs > 0) await delay(settleMs);
    },
    sanitizeOps: true,
    sanitizeResources: true,
  });
}

/**
 * Waits until `broker` holds a subscription that the command-line subscriber `sub` made, or until
 * `sub` has exited (given a retained message and a count of one it may be done before we look).
 * When neither happens in time, `sub` is killed and reaped before the error is thrown.
 *
 * @param sub the running subscriber
 * @param broker our broker
 * @param expected the subscriber's client id, the filter when it matters, and the deadline
 * @returns `sub`
 * @throws {Error} when no such subscription appears within `expected.ms`
 */
export async function whenSubscribed(
  sub: Tool,
  broker: Broker,
  expected: { clientId: string; topic?: string; ms: number },
): Promise<Tool> {
  const { clientId, topic, ms } = expected;
  try {
    await waitFor(
      () =>
        sub.exited ||
        broker.subscriptions().some((s) =>
          s.clientId === clientId && (topic === undefined || s.topic === topic)
        ),
      ms,
      `${clientId} to subscribe`,
    );
  } catch (err) {
    await sub[Symbol.asyncDispose]();
    throw err;
  }
  return sub;
}

/**
 * Waits for mosquitto_sub to end by itself (its `-C` count reached) and returns its output lines.
 *
 * @param sub the running mosquitto_sub
 * @returns the non-empty lines it printed
 */
export async function subscriberLines(sub: Tool): Promise<string[]> {
  const r = await sub.result();
  assert.equal(r.timedOut, false, "mosquitto_sub was killed at its deadline");
  assert.equal(r.code, 0, `mosquitto_sub exited ${r.code}: ${r.stderr}`);
  return r.stdout.split("\n").filter((l) => l !== "");
}

/**
 * Broker, area 73: the CONNACK of a 3.1/3.1.1 login and PINGRESP are encoded once and the same
 * bytes are handed to every connection's transport (`src/broker/_shared_packets.ts`). Checked on
 * each kind of listener (tcp, TLS, ws and wss, each with its own write path: Deno sockets, node
 * TLS sockets, the `ws` package's frames): two connections at once, a PINGRESP queued behind a
 * large write the client is slow to read, a client gone before its CONNACK is written, and a
 * plugin that tries to change the packets it is shown. The bytes on the wire are right each
 * time, and the shared bytes are never written into, detached or resized.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, type Packet, PacketType } from "../../src/packet/mod.ts";
import type { BrokerPlugin } from "../../src/plugins/types.ts";
import {
  CONNACK_NEW,
  CONNACK_PRESENT,
  PINGRESP,
  sharedBytes,
} from "../../src/broker/_shared_packets.ts";
import { type CertFiles, certFiles } from "../_helpers/certs.ts";
import { startBroker } from "../_helpers/broker.ts";
import { connectPacket } from "../_helpers/test_client.ts";
import { readConn, within, writeConn } from "../transport/_io.ts";
import { socketConnection } from "../../src/transport/socket.ts";
import type { ByteConnection } from "../../src/transport/types.ts";

const test = (name: string, fn: () => void | Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const CONNACK_BYTES = [0x20, 0x02, 0x00, 0x00];
const PINGREQ_BYTES = [0xc0, 0x00];
const PINGRESP_BYTES = [0xd0, 0x00];

/** The shared arrays, and what they must hold. */
const SHARED: [string, Uint8Array, number[]][] = [
  ["CONNACK", sharedBytes(CONNACK_NEW)!, CONNACK_BYTES],
  ["CONNACK (session present)", sharedBytes(CONNACK_PRESENT)!, [0x20, 0x02, 0x01, 0x00]],
  ["PINGRESP", sharedBytes(PINGRESP)!, PINGRESP_BYTES],
];

function assertShared(where: string): void {
  for (const [name, bytes, expected] of SHARED) {
    assert.equal(
      (bytes.buffer as ArrayBuffer).detached,
      false,
      `${where}: the shared ${name} was detached`,
    );
    assert.equal(bytes.byteLength, expected.length, `${where}: the shared ${name} was resized`);
    assert.deepEqual([...bytes], expected, `${where}: the shared ${name} was written into`);
  }
}

/** A client's byte stream over any of the listeners. */
interface Peer {
  write(bytes: Uint8Array): Promise<void>;
  /** Exactly `n` bytes. */
  read(n: number): Promise<Uint8Array>;
  /** Closes; resolves once closed. Idempotent. */
  close(): Promise<void>;
}

function socketPeer(conn: Deno.Conn): Peer {
  let closed = false;
  return {
    write: (bytes) => writeConn(conn, bytes),
    read: (n) => readConn(conn, n),
    close: () => {
      if (!closed) conn.close();
      closed = true;
      return Promise.resolve();
    },
  };
}

/** A WebSocket client whose binary messages are read as one byte stream (frames are not packets). */
async function webSocketPeer(url: string, ca?: string): Promise<Peer> {
  const client = ca === undefined ? undefined : Deno.createHttpClient({ caCerts: [ca] });
  const ws = new WebSocket(url, { protocols: ["mqtt"], ...(client ? { client } : {}) });
  ws.binaryType = "arraybuffer";
  let received = new Uint8Array(0);
  let wake: (() => void) | undefined;
  let ended = false;
  let closing: Promise<void> | undefined;
  ws.onmessage = (e) => {
    const chunk = new Uint8Array(e.data as ArrayBuffer);
    const all = new Uint8Array(received.length + chunk.length);
    all.set(received);
    all.set(chunk, received.length);
    received = all;
    wake?.();
  };
  const closed = new Promise<void>((resolve) => {
    ws.onclose = () => {
      ended = true;
      wake?.();
      resolve();
    };
  });
  await within(
    new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`Cannot open ${url}`));
    }),
    5000,
    `opening ${url}`,
  );
  ws.onerror = () => {};
  return {
    write: (bytes) => {
      ws.send(bytes);
      return Promise.resolve();
    },
    read: async (n) => {
      while (received.length < n) {
        if (ended) throw new Error(`WebSocket ended after ${received.length} of ${n} bytes`);
        await within(new Promise<void>((resolve) => wake = resolve), 5000, `reading ${n} bytes`);
      }
      const out = received.slice(0, n);
      received = received.slice(n);
      return out;
    },
    close: () => {
      if (!ended) ws.close();
      // Both ends gone before the test ends (the resource sanitizer).
      return closing ??= closed.then(() => client?.close());
    },
  };
}

/** Messages of a megabyte sent to the slow client: more than loopback's socket buffers hold. */
const MESSAGES = 8;

/** One whole packet's bytes (its first byte already read when `first` is given). */
async function readPacket(peer: Peer, first?: Uint8Array): Promise<Uint8Array> {
  const header = [...(first ?? await peer.read(1))];
  let length = 0;
  for (let shift = 0;; shift += 7) {
    const b = (await peer.read(1))[0]!;
    header.push(b);
    length += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) break;
  }
  const body = await peer.read(length);
  const out = new Uint8Array(header.length + length);
  out.set(header);
  out.set(body, header.length);
  return out;
}

function bytes(packet: Packet): Uint8Array {
  return encodePacket(packet, 4);
}

/** Config with a tcp, a TLS, a ws and a wss listener. */
function listeners(f: CertFiles) {
  const tls = { ssl: true, certfile: f.serverCertFile, keyfile: f.serverKeyFile };
  return {
    listeners: {
      default: { bind: "127.0.0.1:0" },
      tls: { bind: "127.0.0.1:0", ...tls },
      web: { type: "ws", bind: "127.0.0.1:0" },
      webs: { type: "ws", bind: "127.0.0.1:0", ...tls },
    },
  };
}

/** Opens a client on the listener `name`. */
type Open = (name: string) => Promise<Peer>;

function opener(ports: Record<string, number>, f: CertFiles, closers: Peer[]): Open {
  return async (name) => {
    const port = ports[name]!;
    let peer: Peer;
    if (name === "default") {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.setNoDelay(true);
      peer = socketPeer(conn);
    } else if (name === "tls") {
      peer = socketPeer(await Deno.connectTls({ hostname: "localhost", port, caCerts: [f.ca] }));
    } else if (name === "web") peer = await webSocketPeer(`ws://127.0.0.1:${port}/mqtt`);
    else peer = await webSocketPeer(`wss://localhost:${port}/mqtt`, f.ca);
    closers.push(peer);
    return peer;
  };
}

const NAMES = ["default", "tls", "web", "webs"];

test("73 shared bytes: two logins at once and their pings, on tcp, TLS, ws and wss listeners, get CONNACK and PINGRESP byte for byte [MQTT-3.2.2-1] [MQTT-3.12.4-1]", async () => {
  await using f = await certFiles();
  await using b = await startBroker(listeners(f));
  const ports = Object.fromEntries(b.broker.listeners.map((l) => [l.name, l.port]));
  const peers: Peer[] = [];
  const open = opener(ports, f, peers);
  try {
    for (let round = 0; round < 3; round++) {
      // Every listener at once, two connections each: the same shared array in up to eight
      // writes pending together.
      const opened = await Promise.all(NAMES.flatMap((name) => [open(name), open(name)]));
      await Promise.all(opened.map(async (peer, i) => {
        const where = `${NAMES[i >> 1]} #${i & 1} round ${round}`;
        await peer.write(bytes(connectPacket({ clientId: `c${round}-${i}`, keepAlive: 60 })));
        assert.deepEqual([...await peer.read(4)], CONNACK_BYTES, `${where}: CONNACK`);
        // Three pings in one write: PINGRESPs written as they are, and copied behind each other.
        await peer.write(new Uint8Array([...PINGREQ_BYTES, ...PINGREQ_BYTES, ...PINGREQ_BYTES]));
        assert.deepEqual(
          [...await peer.read(6)],
          [...PINGRESP_BYTES, ...PINGRESP_BYTES, ...PINGRESP_BYTES],
          `${where}: PINGRESPs`,
        );
        // And one at a time: each write's buffer is the spare of the next.
        for (let i = 0; i < 4; i++) {
          await peer.write(new Uint8Array(PINGREQ_BYTES));
          assert.deepEqual([...await peer.read(2)], PINGRESP_BYTES, `${where}: PINGRESP ${i}`);
        }
      }));
      assertShared(`round ${round}`);
    }
  } finally {
    await Promise.all(peers.map((p) => p.close()));
  }
});

test("73 shared bytes: PINGRESPs queued behind large writes a slow client reads late, and clients gone before their CONNACK, on every listener", async () => {
  await using f = await certFiles();
  // Room for every message the slow client leaves unread (QoS 0 past the bound is dropped).
  await using b = await startBroker({ ...listeners(f), max_outbound_bytes: 64 * 1024 * 1024 });
  const ports = Object.fromEntries(b.broker.listeners.map((l) => [l.name, l.port]));
  const peers: Peer[] = [];
  const open = opener(ports, f, peers);
  const payload = new Uint8Array(1024 * 1024).map((_, i) => i * 7);
  try {
    const pub = await open("default");
    await pub.write(bytes(connectPacket({ clientId: "pub" })));
    await pub.read(4);
    for (const name of NAMES) {
      // A client that logs in and leaves at once: its CONNACK's write may fail.
      for (let i = 0; i < 4; i++) {
        const gone = await open(name);
        await gone.write(bytes(connectPacket({ clientId: `gone-${name}-${i}` })));
        await gone.close();
      }
      const sub = await open(name);
      await sub.write(bytes(connectPacket({ clientId: `slow-${name}`, keepAlive: 60 })));
      assert.deepEqual([...await sub.read(4)], CONNACK_BYTES);
      const topic = `big/${name}`;
      await sub.write(bytes({
        type: PacketType.SUBSCRIBE,
        packetId: 1,
        subscriptions: [{ topic, qos: 0 }],
      }));
      assert.deepEqual([...await sub.read(5)], [0x90, 0x03, 0x00, 0x01, 0x00]);
      // Megabytes the client does not read yet: the broker's writes wait on it; the PINGRESPs
      // answered meanwhile queue behind them.
      const publish = bytes({
        type: PacketType.PUBLISH,
        topic,
        payload,
        qos: 0,
        retain: false,
        dup: false,
      });
      for (let i = 0; i < MESSAGES; i++) await pub.write(publish);
      // The first bytes of the first message: its write has started. The pings come behind it
      // (and behind the later messages, or between them: the publisher's socket is another).
      const head = await sub.read(1);
      for (let i = 0; i < 3; i++) {
        await sub.write(new Uint8Array(PINGREQ_BYTES));
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      let messages = 0;
      let pings = 0;
      for (let first: Uint8Array | undefined = head; messages < MESSAGES || pings < 3;) {
        const packet = await readPacket(sub, first);
        first = undefined;
        if (packet[0] === PINGRESP_BYTES[0]) {
          assert.deepEqual([...packet], PINGRESP_BYTES, `${name}: PINGRESP`);
          pings++;
        } else {
          assert.deepEqual(packet, publish, `${name}: message ${messages}`);
          messages++;
        }
      }
      assert.equal(pings, 3);
      assertShared(name);
      await sub.close();
    }
  } finally {
    await Promise.all(peers.map((p) => p.close()));
  }
});

test("73 shared bytes: a plugin that changes the CONNACK and PINGRESP it is shown changes nothing another client gets", async () => {
  let tried = 0;
  let refused = 0;
  const plugin: BrokerPlugin = {
    name: "meddler",
    onMqttPacketSent: ({ packet }) => {
      if (packet.type !== PacketType.CONNACK && packet.type !== PacketType.PINGRESP) return;
      tried++;
      try {
        const p = packet as { type: number; sessionPresent?: boolean; reasonCode?: number };
        p.sessionPresent = true;
        p.reasonCode = 0x05;
        p.type = PacketType.DISCONNECT;
      } catch (error) {
        if (error instanceof TypeError) refused++;
        else throw error;
      }
    },
  };
  await using f = await certFiles();
  await using b = await startBroker(listeners(f), { plugins: [plugin], packetEvents: true });
  const ports = Object.fromEntries(b.broker.listeners.map((l) => [l.name, l.port]));
  const peers: Peer[] = [];
  const open = opener(ports, f, peers);
  try {
    for (const name of NAMES) {
      for (let i = 0; i < 2; i++) {
        const peer = await open(name);
        await peer.write(bytes(connectPacket({ clientId: `m-${name}-${i}`, keepAlive: 60 })));
        assert.deepEqual([...await peer.read(4)], CONNACK_BYTES, `${name}: CONNACK`);
        await peer.write(new Uint8Array(PINGREQ_BYTES));
        assert.deepEqual([...await peer.read(2)], PINGRESP_BYTES, `${name}: PINGRESP`);
      }
    }
    assert.equal(tried, 16);
    assert.equal(refused, tried, "the shared packets are frozen");
    assertShared("after the plugin");
  } finally {
    await Promise.all(peers.map((p) => p.close()));
  }
});

/**
 * A host's transport that does what nothing forbids it: writes a copy, then zeroes the bytes it
 * was given and transfers their memory away (detaching them), as a transport handing buffers to
 * a worker would.
 */
class GreedyConnection implements ByteConnection {
  readonly #inner: ByteConnection;
  constructor(inner: ByteConnection) {
    this.#inner = inner;
  }
  get info() {
    return this.#inner.info;
  }
  get readable() {
    return this.#inner.readable;
  }
  get closed() {
    return this.#inner.closed;
  }
  read(reuse?: Uint8Array): Promise<Uint8Array | null> {
    return this.#inner.read!(reuse);
  }
  async write(bytes: Uint8Array): Promise<void> {
    await this.#inner.write(bytes.slice());
    bytes.fill(0);
    structuredClone(bytes.buffer, { transfer: [bytes.buffer as ArrayBuffer] });
  }
  close(): void {
    this.#inner.close();
  }
}

test("73 shared bytes: an external listener's transport that zeroes and transfers what it writes is never handed the shared bytes [MQTT-3.2.2-1]", async () => {
  await using b = await startBroker({
    listeners: { default: { bind: "127.0.0.1:0" }, host: { type: "external" } },
  });
  using own = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const peers: Peer[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      // Through the host's transport: its own client gets its bytes all the same.
      const dialing = Deno.connect({ hostname: "127.0.0.1", port: own.addr.port });
      const accepted = await own.accept();
      b.broker.acceptConnection(
        new GreedyConnection(
          socketConnection(accepted, { transport: "tcp", remoteAddress: "host" }),
        ),
        "host",
      );
      const hosted = socketPeer(await dialing);
      peers.push(hosted);
      await hosted.write(bytes(connectPacket({ clientId: `hosted-${i}`, keepAlive: 60 })));
      assert.deepEqual([...await hosted.read(4)], CONNACK_BYTES, `hosted ${i}: CONNACK`);
      await hosted.write(new Uint8Array(PINGREQ_BYTES));
      assert.deepEqual([...await hosted.read(2)], PINGRESP_BYTES, `hosted ${i}: PINGRESP`);
      assertShared(`after hosted ${i}`);
      // And a client of the broker's own listener.
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: b.port });
      const direct = socketPeer(conn);
      peers.push(direct);
      await direct.write(bytes(connectPacket({ clientId: `direct-${i}`, keepAlive: 60 })));
      assert.deepEqual([...await direct.read(4)], CONNACK_BYTES, `direct ${i}: CONNACK`);
      await direct.write(new Uint8Array(PINGREQ_BYTES));
      assert.deepEqual([...await direct.read(2)], PINGRESP_BYTES, `direct ${i}: PINGRESP`);
    }
  } finally {
    await Promise.all(peers.map((p) => p.close()));
  }
});

/**
 * Broker, area 59: the close at shutdown is orderly. A server that closes a socket whose receive
 * buffer still holds unread bytes makes the kernel answer with a reset (RST) instead of FIN, and
 * a client whose acknowledgement write then fails may drop what it had received (libmosquitto
 * drops a QoS 2 message it had PUBREC'd when its PUBCOMP write fails). So at shutdown the broker
 * writes what it has (a 5.0 client's DISCONNECT 0x8B first [MQTT-3.14.2-1]), half-closes, reads
 * and discards until the client closes, and closes only then, or after a bounded grace period for
 * a client that never closes. Without the orderly close, the client's writes after the broker's
 * close fail (EPIPE: the broker's kernel answered them with a reset).
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, PacketDecoder, PacketType } from "../../src/packet/mod.ts";
import type { Packet } from "../../src/packet/mod.ts";
import { certFiles } from "../_helpers/certs.ts";
import { startBroker } from "../_helpers/broker.ts";
import { connectPacket } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const PINGREQ = new Uint8Array([0xc0, 0x00]);

/**
 * For the tests of a client that does close: a grace out of reach, so that a client starved on a
 * loaded machine for more than the default second is not aborted (a reset) before it reads the end.
 */
const PATIENT = { shutdownGraceMs: 600_000 };

/** A raw client: its socket, its decoder and the packets read and not yet looked at. */
interface RawClient {
  conn: Deno.Conn;
  decoder: PacketDecoder;
  packets: Packet[];
}

/**
 * A raw socket to the broker, connected (CONNACK read) at `protocolVersion`; over TLS trusting
 * `ca` when given.
 */
async function rawClient(
  port: number,
  protocolVersion: 4 | 5,
  clientId: string,
  ca?: string,
): Promise<RawClient> {
  const conn = ca === undefined
    ? await Deno.connect({ hostname: "127.0.0.1", port })
    : await Deno.connectTls({ hostname: "localhost", port, caCerts: [ca] });
  if (ca === undefined) (conn as Deno.TcpConn).setNoDelay(true);
  await conn.write(
    encodePacket(connectPacket({ clientId, protocolVersion }), protocolVersion),
  );
  const decoder = new PacketDecoder({ protocolVersion, side: "client" });
  const packets: Packet[] = [];
  while (packets.length === 0) {
    const buf = new Uint8Array(256);
    const n = await conn.read(buf);
    assert.ok(n !== null, "the broker answers CONNECT");
    decoder.push(buf.subarray(0, n));
    for (let p = decoder.next(); p !== undefined; p = decoder.next()) packets.push(p);
  }
  assert.equal(packets.shift()?.type, PacketType.CONNACK);
  return { conn, decoder, packets };
}

/**
 * Reads until the end: "eof" for an orderly close (FIN), or the error's name (`ConnectionReset`
 * for a reset), with the packets read before it.
 */
async function readToEnd(
  client: RawClient,
): Promise<{ end: string; packets: Packet[] }> {
  for (;;) {
    const buf = new Uint8Array(4096);
    let n: number | null;
    try {
      n = await client.conn.read(buf);
    } catch (error) {
      return { end: (error as Error).name, packets: client.packets };
    }
    if (n === null) return { end: "eof", packets: client.packets };
    client.decoder.push(buf.subarray(0, n));
    for (let p = client.decoder.next(); p !== undefined; p = client.decoder.next()) {
      client.packets.push(p);
    }
  }
}

/**
 * Sends PINGREQs without pause while reading until the end, so that the broker's receive buffer
 * holds bytes it has not read whenever it closes; stops writing at the end of the stream.
 * Returns how the stream ended and the first write error (after a reset, writes fail).
 */
async function pingUntilEnd(
  client: RawClient,
): Promise<{ end: string; packets: Packet[]; writeError?: string }> {
  let done = false;
  let writeError: string | undefined;
  const writer = (async () => {
    while (!done) {
      try {
        await client.conn.write(PINGREQ);
      } catch (error) {
        writeError = (error as Error).name;
        return;
      }
    }
  })();
  const result = await readToEnd(client);
  done = true;
  await writer;
  return { ...result, writeError };
}

test("59 shutdown: a 5.0 client gets DISCONNECT 0x8B last, then an orderly close (EOF, not a reset) though it was sending bytes the broker had not read [MQTT-3.14.2-1] [MQTT-3.14.4-1] [MQTT-3.14.4-2]", async () => {
  const b = await startBroker({}, PATIENT);
  const client = await rawClient(b.port, 5, "graceful5");
  try {
    const ended = pingUntilEnd(client);
    const stopped = b.broker.shutdown();
    const { end, packets, writeError } = await ended;
    assert.equal(end, "eof", "the broker closes with FIN, not RST");
    assert.equal(writeError, undefined, "no write of the client is refused with a reset");
    const last = packets.at(-1);
    assert.equal(last?.type, PacketType.DISCONNECT, "a DISCONNECT is the last packet");
    assert.equal(last?.type === PacketType.DISCONNECT && last.reasonCode, 0x8b);
    client.conn.close();
    await stopped;
  } finally {
    try {
      client.conn.close();
    } catch { /* closed above */ }
    await b.broker.shutdown();
  }
});

test("59 shutdown: a 3.1.1 client that was sending bytes the broker had not read sees an orderly close (EOF, not a reset)", async () => {
  const b = await startBroker({}, PATIENT);
  const client = await rawClient(b.port, 4, "graceful4");
  try {
    const ended = pingUntilEnd(client);
    const stopped = b.broker.shutdown();
    const { end, writeError } = await ended;
    assert.equal(end, "eof", "the broker closes with FIN, not RST");
    assert.equal(writeError, undefined, "no write of the client is refused with a reset");
    client.conn.close();
    await stopped;
  } finally {
    try {
      client.conn.close();
    } catch { /* closed above */ }
    await b.broker.shutdown();
  }
});

test("59 shutdown: over TLS with client certificates (node's TLS server), a 5.0 client gets DISCONNECT 0x8B last, then an orderly close, not a reset [MQTT-3.14.4-2]", async () => {
  await using f = await certFiles();
  const b = await startBroker({
    listeners: {
      default: {
        bind: "127.0.0.1:0",
        ssl: "on",
        certfile: f.serverCertFile,
        keyfile: f.serverKeyFile,
        cafile: f.caFile,
        client_cert_mode: "optional",
      },
    },
  }, PATIENT);
  const client = await rawClient(b.port, 5, "graceful-tls", f.ca);
  try {
    const ended = pingUntilEnd(client);
    const stopped = b.broker.shutdown();
    const { end, packets, writeError } = await ended;
    assert.equal(end, "eof", "the broker ends the stream in order, not with a reset");
    assert.equal(writeError, undefined, "no write of the client is refused with a reset");
    const last = packets.at(-1);
    assert.equal(last?.type === PacketType.DISCONNECT && last.reasonCode, 0x8b);
    client.conn.close();
    await stopped;
  } finally {
    try {
      client.conn.close();
    } catch { /* closed above */ }
    await b.broker.shutdown();
  }
});

test("59 shutdown: a client that never closes its side does not keep the broker from stopping", async () => {
  const b = await startBroker();
  const client = await rawClient(b.port, 5, "stubborn");
  try {
    // The client neither reads nor closes while the broker stops.
    await b.broker.shutdown();
    assert.deepEqual(b.broker.clients(), []);
    // The broker let go of the socket: the client reads the DISCONNECT, then the end.
    const { packets } = await readToEnd(client);
    assert.equal(packets.at(-1)?.type, PacketType.DISCONNECT);
    // A new connection finds nobody listening.
    await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: b.port }));
  } finally {
    client.conn.close();
    await b.broker.shutdown();
  }
});

test("59 shutdown: a second shutdown() while the first is stopping resolves only once the broker has stopped", async () => {
  const b = await startBroker();
  const client = await rawClient(b.port, 5, "stubborn");
  try {
    // The client neither reads nor closes: the first shutdown waits for its grace period.
    let firstDone = false;
    const first = b.broker.shutdown().then(() => firstDone = true);
    await b.broker.shutdown();
    // Registered before the second call's await, the first's callback has run if it was done.
    assert.equal(firstDone, true, "the second shutdown() returned while the first was stopping");
    assert.deepEqual(b.broker.clients(), []);
    await first;
  } finally {
    client.conn.close();
    await b.broker.shutdown();
  }
});

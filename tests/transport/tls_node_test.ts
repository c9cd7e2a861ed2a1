/**
 * listenTlsClientAuth: TLS with client certificates on node:tls, driven by Deno.connectTls.
 *
 * @module
 */

import assert from "node:assert/strict";
import { listenTlsClientAuth } from "../../src/transport/tls_node.ts";
import type { TlsClientAuthListenOptions } from "../../src/transport/tls_node.ts";
import { delay } from "../_helpers/broker.ts";
import { testCerts } from "../_helpers/certs.ts";
import {
  Accepted,
  assertCloseSettlesBlockedWrite,
  readBytes,
  readConn,
  within,
  writeConn,
} from "./_io.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const certs = await testCerts();

function options(clientCert: "none" | "optional" | "required"): TlsClientAuthListenOptions {
  return {
    name: "mtls",
    hostname: "127.0.0.1",
    port: 0,
    cert: certs.serverCert,
    key: certs.serverKey,
    ca: [certs.ca],
    clientCert,
  };
}

function connect(port: number, who?: "client" | "rogue"): Promise<Deno.TlsConn> {
  const identity = who === "client"
    ? { cert: certs.clientCert, key: certs.clientKey }
    : who === "rogue"
    ? { cert: certs.rogueCert, key: certs.rogueKey }
    : {};
  return Deno.connectTls({ hostname: "localhost", port, caCerts: [certs.ca], ...identity });
}

/**
 * A listener in `mode`, the connections it accepts, and one client connected as `who`. Disposing
 * closes the client (unless the test did), every accepted connection and the listener.
 */
async function connected(mode: "none" | "optional" | "required", who?: "client" | "rogue") {
  const accepted = new Accepted();
  const listener = await listenTlsClientAuth(options(mode), accepted.handler);
  const client = await connect(listener.port, who).catch(async (err) => {
    await listener.close();
    throw err;
  });
  return {
    accepted,
    listener,
    client,
    async [Symbol.asyncDispose]() {
      try {
        client.close();
      } catch { /* the test closed it */ }
      await accepted.closeAll();
      await listener.close();
    },
  };
}

/** Whether the server refused the client: its first read fails or ends without data. */
async function refused(conn: Deno.TlsConn): Promise<boolean> {
  try {
    await conn.write(new Uint8Array([0x10]));
    const n = await within(conn.read(new Uint8Array(16)), 5000, "the refusal");
    return n === null;
  } catch {
    return true;
  } finally {
    conn.close();
  }
}

test("listenTlsClientAuth: bytes echo both ways, info says tls and the peer address", async () => {
  await using s = await connected("optional");
  const { accepted, client, listener } = s;
  assert.equal(listener.transport, "tls");
  assert.equal(listener.name, "mtls");
  assert.ok(listener.port > 0);
  await client.write(new Uint8Array([0x10, 0x02, 0x00, 0x04]));
  const conn = await accepted.take(0);
  assert.equal(conn.info.transport, "tls");
  assert.equal(conn.info.listener, "mtls");
  assert.equal(conn.info.peerCommonName, undefined);
  assert.equal(conn.info.remoteAddress, `127.0.0.1:${(client.localAddr as Deno.NetAddr).port}`);
  const reader = conn.readable.getReader();
  const { bytes } = await readBytes(reader, 4);
  assert.deepEqual([...bytes], [0x10, 0x02, 0x00, 0x04]);
  await conn.write(new Uint8Array([0x20, 0x02, 0x00, 0x00]));
  assert.deepEqual([...await readConn(client, 4)], [0x20, 0x02, 0x00, 0x00]);
  // A second exchange on the same connection.
  await client.write(new Uint8Array([0xc0, 0x00]));
  assert.deepEqual([...(await readBytes(reader, 2)).bytes], [0xc0, 0x00]);
  reader.releaseLock();
});

test("listenTlsClientAuth: required mode accepts a client certificate and reports its CN", async () => {
  await using s = await connected("required", "client");
  const { accepted, client } = s;
  await client.write(new Uint8Array([1, 2, 3]));
  const conn = await accepted.take(0);
  assert.equal(conn.info.peerCommonName, "client-one");
  assert.deepEqual([...(await readBytes(conn.readable.getReader(), 3)).bytes], [1, 2, 3]);
});

test("listenTlsClientAuth: required mode refuses a client without a certificate, then serves the next", async () => {
  const accepted = new Accepted();
  await using listener = await listenTlsClientAuth(options("required"), accepted.handler);
  let conn: Deno.TlsConn | undefined;
  try {
    conn = await connect(listener.port);
  } catch {
    // Refused during the handshake: as good as refused after it.
  }
  if (conn) assert.ok(await refused(conn), "the server must not talk to a client without a cert");
  assert.equal(accepted.all.length, 0);
  // The failed handshake concerned that peer only.
  const good = await connect(listener.port, "client");
  try {
    await good.write(new Uint8Array([7]));
    const accepted0 = await accepted.take(0);
    assert.equal(accepted0.info.peerCommonName, "client-one");
  } finally {
    good.close();
    await accepted.closeAll();
  }
});

test("listenTlsClientAuth: optional mode accepts no certificate but refuses an unverifiable one", async () => {
  const accepted = new Accepted();
  await using listener = await listenTlsClientAuth(options("optional"), accepted.handler);
  let rogue: Deno.TlsConn | undefined;
  try {
    rogue = await connect(listener.port, "rogue");
  } catch {
    // Refused during the handshake.
  }
  if (rogue) assert.ok(await refused(rogue), "a certificate from an unknown CA must be refused");
  const plain = await connect(listener.port);
  let withCert: Deno.TlsConn | undefined;
  try {
    await plain.write(new Uint8Array([1]));
    const first = await accepted.take(0);
    withCert = await connect(listener.port, "client");
    await withCert.write(new Uint8Array([2]));
    const second = await accepted.take(1);
    assert.equal(accepted.all.length, 2);
    assert.equal(first.info.peerCommonName, undefined);
    assert.equal(second.info.peerCommonName, "client-one");
  } finally {
    plain.close();
    withCert?.close();
    await accepted.closeAll();
  }
});

test("listenTlsClientAuth: none mode asks for no certificate, so none is reported", async () => {
  await using s = await connected("none", "client");
  const { accepted, client } = s;
  await client.write(new Uint8Array([5]));
  const conn = await accepted.take(0);
  assert.equal(conn.info.transport, "tls");
  assert.equal(conn.info.peerCommonName, undefined);
  assert.deepEqual([...(await readBytes(conn.readable.getReader(), 1)).bytes], [5]);
});

test("listenTlsClientAuth: a 4 MiB write arrives whole and in order", async () => {
  await using s = await connected("optional");
  const { accepted, client } = s;
  await client.write(new Uint8Array([0]));
  const conn = await accepted.take(0);
  const big = new Uint8Array(4 << 20);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
  const [, got] = await Promise.all([conn.write(big), readConn(client, big.length)]);
  assert.ok(got.every((b, i) => b === big[i]), "bytes differ");
});

test("listenTlsClientAuth: bytes written just before close() still reach the peer", async () => {
  await using s = await connected("optional");
  const { accepted, client } = s;
  await client.write(new Uint8Array([0]));
  const conn = await accepted.take(0);
  await conn.write(new Uint8Array([0x20, 0x02, 0x00, 0x05])); // a refusing CONNACK
  conn.close();
  await conn.closed;
  assert.deepEqual([...await readConn(client, 4)], [0x20, 0x02, 0x00, 0x05]);
  await assert.rejects(conn.write(new Uint8Array([1])), Deno.errors.BadResource);
});

test("listenTlsClientAuth: the peer closing ends the readable and resolves closed", async () => {
  await using s = await connected("optional");
  const { accepted, client } = s;
  await client.write(new Uint8Array([9]));
  const conn = await accepted.take(0);
  const reader = conn.readable.getReader();
  assert.deepEqual([...(await readBytes(reader, 1)).bytes], [9]);
  client.close();
  const { done } = await within(reader.read(), 5000, "end of stream");
  assert.equal(done, true);
  await within(conn.closed, 5000, "closed");
});

test("listenTlsClientAuth: a peer that stops reading holds writes back; close() still completes", async () => {
  await using s = await connected("optional");
  const { accepted, client } = s;
  await client.write(new Uint8Array([0]));
  const conn = await accepted.take(0);
  await assertCloseSettlesBlockedWrite(conn);
});

test("listenTlsClientAuth: a reader that lags behind still gets every byte in order", async () => {
  await using s = await connected("optional");
  const { accepted, client } = s;
  const big = new Uint8Array(4 << 20);
  for (let i = 0; i < big.length; i++) big[i] = (i * 13) & 0xff;
  const sending = writeConn(client, big);
  const conn = await accepted.take(0);
  await delay(200); // let the bytes pile up
  const { bytes } = await readBytes(conn.readable.getReader(), big.length);
  await sending;
  assert.ok(bytes.every((b, i) => b === big[i]), "bytes differ");
});

test("listenTlsClientAuth: close() stops accepting but leaves accepted connections working", async () => {
  await using s = await connected("optional");
  const { accepted, client, listener } = s;
  await client.write(new Uint8Array([1]));
  const conn = await accepted.take(0);
  const reader = conn.readable.getReader();
  await readBytes(reader, 1);
  await within(listener.close(), 5000, "listener close");
  await listener.close(); // idempotent
  await assert.rejects(connect(listener.port));
  await client.write(new Uint8Array([2]));
  assert.deepEqual([...(await readBytes(reader, 1)).bytes], [2]);
  await conn.write(new Uint8Array([3]));
  assert.deepEqual([...await readConn(client, 1)], [3]);
  reader.releaseLock();
});

test("listenTlsClientAuth: an unknown clientCert mode is a TypeError", async () => {
  await assert.rejects(
    listenTlsClientAuth(
      { ...options("optional"), clientCert: "sometimes" as "optional" },
      () => {},
    ),
    TypeError,
  );
});

test("listenTlsClientAuth: a port in use is reported", async () => {
  await using first = await listenTlsClientAuth(options("optional"), () => {});
  await assert.rejects(listenTlsClientAuth({ ...options("optional"), port: first.port }, () => {}));
});

/**
 * listenWebSocket: ws and wss on both engines, driven by the WebSocket API, raw frames, fetch and
 * MQTT.js.
 *
 * @module
 */

import assert from "node:assert/strict";
import mqtt from "mqtt";
import { listenWebSocket } from "../../src/transport/websocket.ts";
import type { WebSocketListenOptions } from "../../src/transport/websocket.ts";
import type { ByteConnection } from "../../src/transport/types.ts";
import { delay } from "../_helpers/broker.ts";
import { testCerts } from "../_helpers/certs.ts";
import { Accepted, assertCloseSettlesBlockedWrite, readBytes, within } from "./_io.ts";
import {
  type Browser,
  BROWSER_KEY_ACCEPT,
  browserUpgrade,
  clientFrame,
  rawUpgrade,
  serverFrame,
} from "./_ws_raw.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const certs = await testCerts();

const ENGINES = ["deno", "node"] as const;

function options(
  engine: "deno" | "node",
  extra: Partial<WebSocketListenOptions> = {},
): WebSocketListenOptions {
  return { name: "ws", hostname: "127.0.0.1", port: 0, engine, ...extra };
}

function wssOptions(
  engine: "deno" | "node",
  clientCert?: "none" | "optional" | "required",
): WebSocketListenOptions {
  return options(engine, {
    name: "wss",
    tls: { cert: certs.serverCert, key: certs.serverKey, ca: [certs.ca], clientCert },
  });
}

/** A WebSocket client that keeps every message; open() resolves once it is open. */
class Client {
  readonly ws: WebSocket;
  readonly messages: Uint8Array[] = [];
  readonly closed: Promise<CloseEvent>;
  readonly opened: Promise<void>;
  #waiters: (() => void)[] = [];

  constructor(url: string, protocols: string[], client?: Deno.HttpClient) {
    this.ws = new WebSocket(url, { protocols, ...(client ? { client } : {}) });
    this.ws.binaryType = "arraybuffer";
    this.opened = new Promise((resolve, reject) => {
      this.ws.onopen = () => resolve();
      this.ws.onerror = (e) => reject(new Error((e as ErrorEvent).message));
    });
    this.closed = new Promise((resolve) => this.ws.onclose = resolve);
    this.ws.onmessage = (e: MessageEvent<ArrayBuffer>) => {
      this.messages.push(new Uint8Array(e.data));
      for (const wake of this.#waiters.splice(0)) wake();
    };
  }

  static async open(url: string, protocols = ["mqtt"], client?: Deno.HttpClient) {
    const c = new Client(url, protocols, client);
    try {
      await within(c.opened, 5000, "the WebSocket to open");
    } catch (err) {
      await within(c.closed, 5000, "the failed WebSocket to close");
      throw err;
    }
    return c;
  }

  /** Waits until `count` messages came; returns them concatenated. */
  async received(count: number): Promise<Uint8Array> {
    while (this.messages.length < count) {
      await within(new Promise<void>((r) => this.#waiters.push(r)), 5000, `${count} messages`);
    }
    const all = new Uint8Array(this.messages.reduce((n, m) => n + m.length, 0));
    let at = 0;
    for (const m of this.messages) {
      all.set(m, at);
      at += m.length;
    }
    return all;
  }

  async close(): Promise<void> {
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.close();
    await within(this.closed, 5000, "the WebSocket to close");
  }
}

/**
 * A listener with `listenOptions`, the connections it accepts, and one WebSocket client on `path`.
 * Disposing closes the client (unless the test did), every accepted connection and the listener.
 */
async function connected(listenOptions: WebSocketListenOptions, path = "/mqtt") {
  const accepted = new Accepted();
  const listener = await listenWebSocket(listenOptions, accepted.handler);
  const client = await Client.open(`ws://127.0.0.1:${listener.port}${path}`).catch(async (err) => {
    await listener.close();
    throw err;
  });
  return {
    accepted,
    listener,
    client,
    async [Symbol.asyncDispose]() {
      await client.close();
      await accepted.closeAll();
      await listener.close();
    },
  };
}

for (const engine of ENGINES) {
  test(`listenWebSocket (${engine}): bytes flow both ways, info says ws and the peer address`, async () => {
    await using s = await connected(options(engine));
    const { accepted, client, listener } = s;
    assert.equal(listener.transport, "ws");
    assert.ok(listener.port > 0);
    assert.equal(client.ws.protocol, "mqtt"); // [MQTT-6.0.0-4]
    const conn = await accepted.take(0);
    assert.equal(conn.info.transport, "ws");
    assert.equal(conn.info.listener, "ws");
    assert.match(conn.info.remoteAddress, /^127\.0\.0\.1:\d+$/);
    client.ws.send(new Uint8Array([0x10, 0x02, 0x00, 0x04]));
    const reader = conn.readable.getReader();
    assert.deepEqual([...(await readBytes(reader, 4)).bytes], [0x10, 0x02, 0x00, 0x04]);
    await conn.write(new Uint8Array([0x20, 0x02, 0x00, 0x00]));
    assert.deepEqual([...await client.received(1)], [0x20, 0x02, 0x00, 0x00]);
    reader.releaseLock();
  });

  test(`listenWebSocket (${engine}): one write of three MQTT packets goes out as three frames`, async () => {
    await using s = await connected(options(engine));
    const { accepted, client } = s;
    const conn = await accepted.take(0);
    // SUBACK, a retained PUBLISH "t"/"hi", PINGRESP: Paho C drops packets after the first of a frame.
    const suback = [0x90, 0x03, 0x00, 0x01, 0x00];
    const publish = [0x31, 0x05, 0x00, 0x01, 0x74, 0x68, 0x69];
    const pingresp = [0xd0, 0x00];
    await conn.write(new Uint8Array([...suback, ...publish, ...pingresp]));
    await client.received(3);
    assert.deepEqual(client.messages.map((m) => [...m]), [suback, publish, pingresp]);
  });

  test(`listenWebSocket (${engine}): a packet split across messages and two packets in one message arrive intact`, async () => {
    await using s = await connected(options(engine));
    const { accepted, client } = s;
    const conn = await accepted.take(0);
    const reader = conn.readable.getReader();
    // PUBLISH "t" payload "hi" (7 bytes) in two messages: each message is one chunk.
    client.ws.send(new Uint8Array([0x30, 0x05, 0x00]));
    client.ws.send(new Uint8Array([0x01, 0x74, 0x68, 0x69]));
    const split = await readBytes(reader, 7);
    assert.deepEqual([...split.bytes], [0x30, 0x05, 0x00, 0x01, 0x74, 0x68, 0x69]);
    assert.equal(split.chunks, 2);
    // Two PINGREQs in one message: one chunk holding both.
    client.ws.send(new Uint8Array([0xc0, 0x00, 0xc0, 0x00]));
    const joined = await readBytes(reader, 4);
    assert.deepEqual([...joined.bytes], [0xc0, 0x00, 0xc0, 0x00]);
    assert.equal(joined.chunks, 1);
    reader.releaseLock();
  });

  test(`listenWebSocket (${engine}): a message fragmented into continuation frames arrives as one chunk`, async () => {
    const accepted = new Accepted();
    await using listener = await listenWebSocket(options(engine), accepted.handler);
    const { conn: raw, head } = await rawUpgrade(listener.port, "/mqtt", "mqtt");
    try {
      assert.match(head, /^HTTP\/1\.1 101/);
      assert.match(head, /sec-websocket-protocol: mqtt\r\n/i);
      await raw.write(clientFrame(0x2, new Uint8Array([0x30, 0x03]), false));
      await raw.write(clientFrame(0x0, new Uint8Array([0x00, 0x01]), false));
      await raw.write(clientFrame(0x0, new Uint8Array([0x74]), true));
      const conn = await accepted.take(0);
      const got = await readBytes(conn.readable.getReader(), 5);
      assert.deepEqual([...got.bytes], [0x30, 0x03, 0x00, 0x01, 0x74]);
      assert.equal(got.chunks, 1);
      // One write is one binary frame.
      await conn.write(new Uint8Array([0xd0, 0x00]));
      const frame = await serverFrame(raw);
      assert.equal(frame.opcode, 0x2);
      assert.deepEqual([...frame.payload], [0xd0, 0x00]);
    } finally {
      raw.close();
      await accepted.closeAll();
    }
  });

  for (const browser of ["chrome", "firefox", "safari"] as Browser[]) {
    test(`listenWebSocket (${engine}): ${browser}'s exact upgrade request gets mqtt, no deflate, binary frames [MQTT-6.0.0-4]`, async () => {
      const accepted = new Accepted();
      await using listener = await listenWebSocket(options(engine), accepted.handler);
      const { conn: raw, status, headers } = await browserUpgrade(listener.port, "/mqtt", browser);
      try {
        assert.equal(status, 101);
        assert.equal(headers.get("upgrade")?.toLowerCase(), "websocket");
        assert.equal(headers.get("sec-websocket-accept"), BROWSER_KEY_ACCEPT);
        // A browser fails the connection unless the server picks one of the offered subprotocols.
        assert.equal(headers.get("sec-websocket-protocol"), "mqtt");
        // Declining permessage-deflate is allowed; accepting it would oblige us to inflate frames.
        assert.equal(headers.get("sec-websocket-extensions"), undefined);
        // A CONNECT header in one frame, its rest in another: frames are not packets.
        await raw.write(clientFrame(0x2, new Uint8Array([0x10, 0x0c, 0x00, 0x04]), true));
        await raw.write(
          clientFrame(0x2, new Uint8Array([0x4d, 0x51, 0x54, 0x54, 4, 2, 0, 60, 0, 0]), true),
        );
        const conn = await accepted.take(0);
        const got = await readBytes(conn.readable.getReader(), 14);
        assert.deepEqual(
          [...got.bytes],
          [0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 4, 2, 0, 60, 0, 0],
        );
        await conn.write(new Uint8Array([0x20, 0x02, 0x00, 0x00]));
        const frame = await serverFrame(raw);
        assert.equal(frame.opcode, 0x2, "a binary frame: browsers deliver it as an ArrayBuffer");
        assert.deepEqual([...frame.payload], [0x20, 0x02, 0x00, 0x00]);
      } finally {
        raw.close();
        await accepted.closeAll();
      }
    });
  }

  test(`listenWebSocket (${engine}): 64 writes of 64 KiB arrive whole and in order`, async () => {
    await using s = await connected(options(engine, { framing: "write" }));
    const { accepted, client } = s;
    const conn = await accepted.take(0);
    const piece = 64 * 1024;
    for (let i = 0; i < 64; i++) await conn.write(new Uint8Array(piece).fill(i));
    const all = await client.received(64);
    assert.equal(all.length, 64 * piece);
    for (let i = 0; i < 64; i++) assert.equal(all[i * piece + piece - 1], i);
  });

  test(`listenWebSocket (${engine}): a reader that lags behind still gets every byte in order`, async () => {
    await using s = await connected(options(engine));
    const { accepted, client } = s;
    const conn = await accepted.take(0);
    const piece = 16 * 1024;
    for (let i = 0; i < 256; i++) client.ws.send(new Uint8Array(piece).fill(i));
    await delay(200); // let the bytes pile up before the first read
    const { bytes } = await readBytes(conn.readable.getReader(), 256 * piece);
    for (let i = 0; i < 256; i++) {
      assert.equal(bytes[i * piece], i);
      assert.equal(bytes[i * piece + piece - 1], i);
    }
  });

  test(`listenWebSocket (${engine}): a peer that stops reading holds writes back; close() still completes`, async () => {
    const accepted = new Accepted();
    await using listener = await listenWebSocket(
      options(engine, { framing: "write" }),
      accepted.handler,
    );
    const { conn: raw } = await rawUpgrade(listener.port, "/mqtt", "mqtt");
    try {
      const conn = await accepted.take(0);
      await assertCloseSettlesBlockedWrite(conn);
    } finally {
      raw.close();
    }
  });

  test(`listenWebSocket (${engine}): a text frame is a protocol error that closes the WebSocket`, async () => {
    await using s = await connected(options(engine));
    const { accepted, client } = s;
    const conn = await accepted.take(0);
    const reader = conn.readable.getReader();
    client.ws.send("CONNECT");
    const event = await within(client.closed, 5000, "the server to close");
    assert.equal(event.code, 1003);
    assert.equal((await within(reader.read(), 5000, "end of stream")).done, true);
    await within(conn.closed, 5000, "closed");
    await assert.rejects(conn.write(new Uint8Array([1])), Deno.errors.BadResource);
  });

  test(`listenWebSocket (${engine}): a message over maxMessageSize closes with 1009; one at the limit passes`, async () => {
    await using s = await connected(options(engine, { maxMessageSize: 1024 }));
    const { accepted, client } = s;
    const conn = await accepted.take(0);
    const reader = conn.readable.getReader();
    client.ws.send(new Uint8Array(1024).fill(7));
    const whole = await readBytes(reader, 1024);
    assert.ok(whole.bytes.every((b) => b === 7));
    client.ws.send(new Uint8Array(1025));
    const event = await within(client.closed, 5000, "the server to close");
    assert.equal(event.code, 1009, "message too big");
    assert.equal((await within(reader.read(), 5000, "end of stream")).done, true);
  });

  test(`listenWebSocket (${engine}): the client closing ends the readable and resolves closed`, async () => {
    await using s = await connected(options(engine));
    const { accepted, client } = s;
    const conn = await accepted.take(0);
    const reader = conn.readable.getReader();
    await client.close();
    assert.equal((await within(reader.read(), 5000, "end of stream")).done, true);
    await within(conn.closed, 5000, "closed");
  });

  test(`listenWebSocket (${engine}): mqttv3.1 and no subprotocol are accepted, mqtt preferred`, async () => {
    const accepted = new Accepted();
    await using listener = await listenWebSocket(options(engine), accepted.handler);
    const url = `ws://127.0.0.1:${listener.port}/mqtt`;
    const legacy = await Client.open(url, ["mqttv3.1"]);
    const none = await Client.open(url, []);
    const both = await Client.open(url, ["mqttv3.1", "mqtt"]);
    try {
      assert.equal(legacy.ws.protocol, "mqttv3.1");
      assert.equal(none.ws.protocol, "");
      assert.equal(both.ws.protocol, "mqtt");
      await accepted.take(2);
      assert.equal(accepted.all.length, 3);
    } finally {
      await Promise.all([legacy.close(), none.close(), both.close()]);
      await accepted.closeAll();
    }
  });

  test(`listenWebSocket (${engine}): only unknown subprotocols offered is refused with 400 [MQTT-6.0.0-3]`, async () => {
    const accepted = new Accepted();
    await using listener = await listenWebSocket(options(engine), accepted.handler);
    const { conn, head } = await rawUpgrade(listener.port, "/mqtt", "chat, superchat");
    conn.close();
    assert.match(head, /^HTTP\/1\.1 400/);
    assert.equal(accepted.all.length, 0);
  });

  test(`listenWebSocket (${engine}): a wrong path is 404, a plain request 426`, async () => {
    const accepted = new Accepted();
    await using listener = await listenWebSocket(options(engine), accepted.handler);
    const wrong = await fetch(`http://127.0.0.1:${listener.port}/other`);
    assert.equal(wrong.status, 404);
    await wrong.body?.cancel();
    const plain = await fetch(`http://127.0.0.1:${listener.port}/mqtt`);
    assert.equal(plain.status, 426);
    assert.equal(plain.headers.get("upgrade"), "websocket");
    assert.match(await plain.text(), /WebSocket/);
    const { conn, head } = await rawUpgrade(listener.port, "/mqtt/extra", "mqtt");
    conn.close();
    assert.match(head, /^HTTP\/1\.1 404/);
    assert.equal(accepted.all.length, 0);
  });

  test(`listenWebSocket (${engine}): path "/" serves the root only`, async () => {
    await using s = await connected(options(engine, { path: "/" }), "/");
    const { accepted, listener } = s;
    await accepted.take(0);
    const { conn, head } = await rawUpgrade(listener.port, "/mqtt", "mqtt");
    conn.close();
    assert.match(head, /^HTTP\/1\.1 404/);
  });

  test(`listenWebSocket (${engine}): wss exchanges bytes with a client trusting the test CA`, async () => {
    const accepted = new Accepted();
    await using listener = await listenWebSocket(wssOptions(engine), accepted.handler);
    assert.equal(listener.transport, "wss");
    using http = Deno.createHttpClient({ caCerts: [certs.ca] });
    const client = await Client.open(`wss://localhost:${listener.port}/mqtt`, ["mqtt"], http);
    try {
      const conn = await accepted.take(0);
      assert.equal(conn.info.transport, "wss");
      assert.equal(conn.info.peerCommonName, undefined);
      client.ws.send(new Uint8Array([0xc0, 0x00]));
      assert.deepEqual([...(await readBytes(conn.readable.getReader(), 2)).bytes], [0xc0, 0x00]);
      await conn.write(new Uint8Array([0xd0, 0x00]));
      assert.deepEqual([...await client.received(1)], [0xd0, 0x00]);
    } finally {
      await client.close();
      await accepted.closeAll();
    }
  });

  test(`listenWebSocket (${engine}): close() closes open WebSockets and stops accepting`, async () => {
    await using s = await connected(options(engine));
    const { accepted, client, listener } = s;
    const conn = await accepted.take(0);
    const reader = conn.readable.getReader();
    await within(listener.close(), 5000, "listener close");
    await listener.close(); // idempotent
    assert.equal((await within(reader.read(), 5000, "end of stream")).done, true);
    await within(conn.closed, 5000, "closed");
    await within(client.closed, 5000, "the client to see the close");
    await assert.rejects(fetch(`http://127.0.0.1:${listener.port}/mqtt`));
  });

  test(`listenWebSocket (${engine}): MQTT.js connects over ws to a fake responder`, async () => {
    const connects: number[][] = [];
    const responders: Promise<void>[] = [];
    const respond = async (conn: ByteConnection) => {
      const reader = conn.readable.getReader();
      const head = await readBytes(reader, 2);
      assert.equal(head.bytes[0], 0x10);
      assert.ok(head.bytes[1] < 0x80, "this CONNECT fits a one-byte remaining length");
      const body = await readBytes(reader, head.bytes[1]);
      connects.push([...head.bytes, ...body.bytes]);
      await conn.write(new Uint8Array([0x20, 0x02, 0x00, 0x00]));
      const disconnect = await readBytes(reader, 2);
      assert.deepEqual([...disconnect.bytes], [0xe0, 0x00]);
      reader.releaseLock();
      conn.close();
    };
    await using listener = await listenWebSocket(options(engine), (conn) => {
      responders.push(respond(conn));
    });
    const client = mqtt.connect(`ws://127.0.0.1:${listener.port}/mqtt`, {
      clientId: "mqttjs-ws",
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    try {
      const connack = await within(
        new Promise<{ returnCode?: number }>((resolve, reject) => {
          client.once("connect", resolve);
          client.once("error", reject);
        }),
        5000,
        "CONNACK at MQTT.js",
      );
      assert.equal(connack.returnCode, 0);
    } finally {
      await client.endAsync();
    }
    await within(Promise.all(responders), 5000, "the responder");
    assert.equal(connects.length, 1);
    // Protocol name "MQTT", level 4, then the client id at the end.
    assert.deepEqual(connects[0].slice(2, 9), [0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04]);
    assert.equal(new TextDecoder().decode(new Uint8Array(connects[0].slice(-9))), "mqttjs-ws");
  });
}

test("listenWebSocket (deno): a peer 16 MiB ahead of its reader is disconnected", async () => {
  await using s = await connected(options("deno"));
  const { accepted, client } = s;
  const conn = await accepted.take(0);
  for (let i = 0; i < 24; i++) client.ws.send(new Uint8Array(1 << 20));
  await within(client.closed, 5000, "the server to disconnect");
  await within(conn.closed, 5000, "closed");
  // What was queued before the cut-off is still readable; the rest never arrives.
  const reader = conn.readable.getReader();
  let total = 0;
  for (;;) {
    const { value, done } = await within(reader.read(), 5000, "the queued bytes");
    if (done) break;
    total += value.length;
  }
  assert.ok(total >= 16 << 20 && total < 24 << 20, `${total} bytes were queued`);
});

test("listenWebSocket: wss with required client certificates reports the CN", async () => {
  const accepted = new Accepted();
  await using listener = await listenWebSocket(wssOptions("deno", "required"), accepted.handler);
  using http = Deno.createHttpClient({
    caCerts: [certs.ca],
    cert: certs.clientCert,
    key: certs.clientKey,
  });
  const client = await Client.open(`wss://localhost:${listener.port}/mqtt`, ["mqtt"], http);
  try {
    const conn = await accepted.take(0);
    assert.equal(conn.info.transport, "wss");
    assert.equal(conn.info.peerCommonName, "client-one");
    client.ws.send(new Uint8Array([0xc0, 0x00]));
    assert.deepEqual([...(await readBytes(conn.readable.getReader(), 2)).bytes], [0xc0, 0x00]);
  } finally {
    await client.close();
    await accepted.closeAll();
  }
});

test("listenWebSocket: wss with required client certificates refuses a client without one", async () => {
  const accepted = new Accepted();
  await using listener = await listenWebSocket(wssOptions("deno", "required"), accepted.handler);
  using http = Deno.createHttpClient({ caCerts: [certs.ca] });
  await assert.rejects(Client.open(`wss://localhost:${listener.port}/mqtt`, ["mqtt"], http));
  assert.equal(accepted.all.length, 0);
});

test("listenWebSocket: wss with optional client certificates accepts one without, refuses a rogue one", async () => {
  const accepted = new Accepted();
  await using listener = await listenWebSocket(wssOptions("deno", "optional"), accepted.handler);
  using plain = Deno.createHttpClient({ caCerts: [certs.ca] });
  using rogue = Deno.createHttpClient({
    caCerts: [certs.ca],
    cert: certs.rogueCert,
    key: certs.rogueKey,
  });
  await assert.rejects(Client.open(`wss://localhost:${listener.port}/mqtt`, ["mqtt"], rogue));
  const client = await Client.open(`wss://localhost:${listener.port}/mqtt`, ["mqtt"], plain);
  try {
    const conn = await accepted.take(0);
    assert.equal(conn.info.peerCommonName, undefined);
    assert.equal(accepted.all.length, 1);
  } finally {
    await client.close();
    await accepted.closeAll();
  }
});

test("listenWebSocket: a maxMessageSize that is not a positive integer is a RangeError", async () => {
  for (const maxMessageSize of [0, -1, 1.5, NaN]) {
    await assert.rejects(
      listenWebSocket(options("node", { maxMessageSize }), () => {}),
      RangeError,
      String(maxMessageSize),
    );
  }
});

test("listenWebSocket: a path without a leading slash is a TypeError", async () => {
  await assert.rejects(listenWebSocket(options("deno", { path: "mqtt" }), () => {}), TypeError);
});

test("listenWebSocket: a port in use is reported", async () => {
  await using first = await listenWebSocket(options("deno"), () => {});
  for (const engine of ENGINES) {
    await assert.rejects(listenWebSocket(options(engine, { port: first.port }), () => {}));
  }
});

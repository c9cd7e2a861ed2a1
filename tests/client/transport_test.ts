import assert from "node:assert/strict";
import { ConnectError, MQTTClient } from "../../client.ts";
import { dialTarget } from "../../src/transport/dial.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { PacketDecoder } from "../../src/packet/decoder.ts";
import { encodePacket } from "../../src/packet/encode.ts";
import { certFiles, SharedCerts } from "../_helpers/certs.ts";
import { Mosquitto } from "../_helpers/peers.ts";
import { ScriptedServer } from "./_helpers.ts";

const certs = new SharedCerts();

/** Subscribes and publishes QoS 1 over one client, proving the link carries MQTT both ways. */
async function roundTrip(client: MQTTClient, topic: string): Promise<void> {
  assert.deepEqual(await client.subscribe([{ topic, qos: 1 }]), [1]);
  await client.publish(topic, "over the wire", { qos: 1 });
  const m = await client.deliverMessage({ timeout: 3000 });
  assert.equal(m.topic, topic);
  assert.equal(new TextDecoder().decode(m.payload), "over the wire");
}

Deno.test("dialTarget fills in default ports and the /mqtt WebSocket path", () => {
  assert.deepEqual(dialTarget("mqtt://h"), { transport: "tcp", hostname: "h", port: 1883 });
  assert.deepEqual(dialTarget("mqtts://h"), { transport: "tls", hostname: "h", port: 8883 });
  assert.deepEqual(dialTarget("ws://u:p@h"), {
    transport: "ws",
    hostname: "h",
    port: 80,
    url: "ws://h/mqtt",
  });
  assert.deepEqual(dialTarget("wss://h:9001/custom"), {
    transport: "wss",
    hostname: "h",
    port: 9001,
    url: "wss://h:9001/custom",
  });
  assert.equal(dialTarget("mqtt://[::1]:1884").hostname, "::1");
  assert.throws(() => dialTarget("http://h"), TypeError);
  assert.throws(() => dialTarget("not a url"), TypeError);
});

Deno.test("MQTTClient connects over TLS trusting a CA made by openssl", async () => {
  const c = await certs.get();
  await using broker = await Mosquitto.start({ listeners: [{ tls: { certs: c } }] });
  await using client = new MQTTClient();
  const result = await client.connect(`mqtts://localhost:${broker.ports[1]}`, { ca: c.ca });
  assert.equal(result.returnCode, 0);
  await roundTrip(client, "tls/t");
});

Deno.test("MQTTClient reads cafile from the config's connection entry", async () => {
  const c = await certs.get();
  await using broker = await Mosquitto.start({ listeners: [{ tls: { certs: c } }] });
  await using client = new MQTTClient({
    config: { connection: { uri: `mqtts://localhost:${broker.ports[1]}`, cafile: c.caFile } },
  });
  assert.equal((await client.connect()).returnCode, 0);
});

Deno.test("MQTTClient TLS fails with ConnectError when the CA is not trusted", async () => {
  const c = await certs.get();
  await using broker = await Mosquitto.start({ listeners: [{ tls: { certs: c } }] });
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const error = await client.connect(`mqtts://localhost:${broker.ports[1]}`).catch((e) => e);
  assert.ok(error instanceof ConnectError, String(error));
  assert.equal(error.returnCode, undefined);
});

Deno.test("MQTTClient mutual TLS with a client certificate is accepted", async () => {
  const c = await certs.get();
  await using broker = await Mosquitto.start({
    listeners: [{ tls: { certs: c, requireCertificate: true } }],
  });
  await using client = new MQTTClient();
  const result = await client.connect(`mqtts://localhost:${broker.ports[1]}`, {
    ca: c.ca,
    cert: c.clientCert,
    key: c.clientKey,
  });
  assert.equal(result.returnCode, 0);
  await roundTrip(client, "mtls/t");
});

Deno.test("MQTTClient mutual TLS without a client certificate is refused", async () => {
  const c = await certs.get();
  await using broker = await Mosquitto.start({
    listeners: [{ tls: { certs: c, requireCertificate: true } }],
  });
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const error = await client.connect(`mqtts://localhost:${broker.ports[1]}`, { ca: c.ca })
    .catch((e) => e);
  assert.ok(error instanceof ConnectError, String(error));
  assert.equal(error.returnCode, undefined, "refused by TLS, not by CONNACK");
  assert.equal(client.connected, false);
});

Deno.test("MQTTClient mutual TLS with a certificate from an untrusted CA is refused", async () => {
  const c = await certs.get();
  await using broker = await Mosquitto.start({
    listeners: [{ tls: { certs: c, requireCertificate: true } }],
  });
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const error = await client.connect(`mqtts://localhost:${broker.ports[1]}`, {
    ca: c.ca,
    cert: c.rogueCert,
    key: c.rogueKey,
  }).catch((e) => e);
  assert.ok(error instanceof ConnectError, String(error));
  assert.equal(error.returnCode, undefined, "refused by TLS, not by CONNACK");
});

Deno.test("MQTTClient mutual TLS fails with ConnectError when the server's CA is not trusted", async () => {
  const c = await certs.get();
  await using broker = await Mosquitto.start({
    listeners: [{ tls: { certs: c, requireCertificate: true } }],
  });
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const error = await client.connect(`mqtts://localhost:${broker.ports[1]}`, {
    cert: c.clientCert,
    key: c.clientKey,
  }).catch((e) => e);
  assert.ok(error instanceof ConnectError, String(error));
  assert.equal(error.returnCode, undefined);
});

Deno.test("MQTTClient TLS, mutual TLS and wss check the server's name unless check_hostname is false", async () => {
  await using c = await certFiles({ serverNames: "DNS:elsewhere.example" });
  await using broker = await Mosquitto.start({
    listeners: [
      { tls: { certs: c } },
      { tls: { certs: c, requireCertificate: true } },
      { protocol: "websockets", tls: { certs: c } },
    ],
  });
  const mutual = { ca: c.ca, cert: c.clientCert, key: c.clientKey };
  for (
    const [url, options] of [
      [`mqtts://localhost:${broker.ports[1]}`, { ca: c.ca }],
      [`mqtts://localhost:${broker.ports[2]}`, mutual],
      [`wss://localhost:${broker.ports[3]}`, { ca: c.ca }],
    ] as const
  ) {
    await using strict = new MQTTClient({ config: { auto_reconnect: false } });
    const error = await strict.connect(url, options).catch((e) => e);
    assert.ok(error instanceof ConnectError, `${url}: ${error}`);
    await using lax = new MQTTClient({
      config: { auto_reconnect: false, check_hostname: false },
    });
    assert.equal((await lax.connect(url, options)).returnCode, 0);
    await roundTrip(lax, "names/t");
  }
});

Deno.test("MQTTClient connects over WebSocket (ws://, default /mqtt path)", async () => {
  await using broker = await Mosquitto.start({ listeners: [{ protocol: "websockets" }] });
  await using client = new MQTTClient();
  const result = await client.connect(`ws://127.0.0.1:${broker.ports[1]}`, {
    headers: { "x-test": "1" },
  });
  assert.equal(result.returnCode, 0);
  await roundTrip(client, "ws/t");
  // A payload larger than mosquitto's 4 KiB WebSocket buffer arrives whole. (Kept small: mosquitto
  // 2.0.11 moves large WebSocket messages slowly, about 40 KB/s.)
  const big = new Uint8Array(20_000).map((_, i) => i & 0xff);
  await client.publish("ws/t", big, { qos: 1 });
  const m = await client.deliverMessage({ timeout: 3000 });
  assert.deepEqual(m.payload, big);
});

Deno.test("MQTTClient connects over secure WebSocket (wss://) with a private CA", async () => {
  const c = await certs.get();
  await using broker = await Mosquitto.start({
    listeners: [{ protocol: "websockets", tls: { certs: c } }],
  });
  await using client = new MQTTClient();
  const result = await client.connect(`wss://localhost:${broker.ports[1]}/mqtt`, { ca: [c.ca] });
  assert.equal(result.returnCode, 0);
  await roundTrip(client, "wss/t");
});

Deno.test("MQTTClient secure WebSocket with a client certificate is accepted, without one refused", async () => {
  const c = await certs.get();
  await using broker = await Mosquitto.start({
    listeners: [{ protocol: "websockets", tls: { certs: c, requireCertificate: true } }],
  });
  const url = `wss://localhost:${broker.ports[1]}`;
  await using client = new MQTTClient();
  await client.connect(url, { ca: c.ca, cert: c.clientCert, key: c.clientKey });
  await roundTrip(client, "wss/mtls");
  await using refused = new MQTTClient({ config: { auto_reconnect: false } });
  const error = await refused.connect(url, { ca: c.ca }).catch((e) => e);
  assert.ok(error instanceof ConnectError, String(error));
  assert.equal(error.returnCode, undefined);
});

Deno.test("MQTTClient over WebSocket refused by the broker throws ConnectError with the code", async () => {
  await using broker = await Mosquitto.start({
    listeners: [{ protocol: "websockets" }],
    allowAnonymous: false,
  });
  await using client = new MQTTClient();
  const error = await client.connect(`ws://127.0.0.1:${broker.ports[1]}`).catch((e) => e);
  assert.ok(error instanceof ConnectError, String(error));
  assert.equal(error.returnCode, 5);
});

Deno.test("MQTTClient over WebSocket treats frames as a byte stream, not as packets", async () => {
  // A scripted broker: CONNACK split over two frames, then SUBACK and a PUBLISH in one frame.
  const ac = new AbortController();
  let sawProtocol = "";
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    (req) => {
      sawProtocol = req.headers.get("sec-websocket-protocol") ?? "";
      const { socket, response } = Deno.upgradeWebSocket(req, { protocol: "mqtt", idleTimeout: 0 });
      socket.binaryType = "arraybuffer";
      const decoder = new PacketDecoder({ side: "server" });
      socket.onmessage = (e) => {
        decoder.push(new Uint8Array(e.data as ArrayBuffer));
        for (let p = decoder.next(); p !== undefined; p = decoder.next()) {
          if (p.type === PacketType.CONNECT) {
            const connack = encodePacket({
              type: PacketType.CONNACK,
              sessionPresent: false,
              reasonCode: 0,
            }, 4);
            socket.send(connack.subarray(0, 1));
            socket.send(connack.subarray(1));
          } else if (p.type === PacketType.SUBSCRIBE) {
            const suback = encodePacket(
              { type: PacketType.SUBACK, packetId: p.packetId, reasonCodes: [0] },
              4,
            );
            const publish = encodePacket({
              type: PacketType.PUBLISH,
              topic: "f",
              payload: new Uint8Array([1, 2, 3]),
              qos: 0,
              retain: false,
              dup: false,
            }, 4);
            const both = new Uint8Array(suback.length + publish.length);
            both.set(suback);
            both.set(publish, suback.length);
            socket.send(both);
          }
        }
      };
      return response;
    },
  );
  try {
    await using client = new MQTTClient();
    await client.connect(`ws://127.0.0.1:${server.addr.port}`);
    assert.deepEqual(await client.subscribe([{ topic: "f", qos: 0 }]), [0]);
    const m = await client.deliverMessage({ timeout: 3000 });
    assert.deepEqual(m.payload, new Uint8Array([1, 2, 3]));
    assert.equal(sawProtocol, "mqtt", "offers the mqtt subprotocol [MQTT-6.0.0-3]");
  } finally {
    ac.abort();
    await server.finished;
  }
});

Deno.test("MQTTClient gives up on a server that never answers the TLS or WebSocket handshake", async () => {
  const c = await certs.get();
  await using server = new ScriptedServer(); // accepts, then says nothing
  const mutual = { ca: c.ca, cert: c.clientCert, key: c.clientKey };
  for (
    const [url, options] of [
      [`mqtts://localhost:${server.port}`, mutual],
      [`mqtts://localhost:${server.port}`, { ca: c.ca }],
      [`ws://127.0.0.1:${server.port}`, {}],
      [`wss://localhost:${server.port}`, mutual],
    ] as const
  ) {
    const accepted = server.accept();
    await using client = new MQTTClient({
      config: { connection_timeout: 0.3, auto_reconnect: false },
    });
    const start = performance.now();
    const error = await client.connect(url, options).catch((e) => e);
    const elapsed = performance.now() - start;
    assert.ok(error instanceof ConnectError, `${url}: ${error}`);
    // The configured 0.3 s ran out, not the 60 s default: the error names it.
    assert.match(error.message, /timed out \(300 ms\)/, `${url}: ${error.message}`);
    assert.ok(elapsed >= 250, `${url}: gave up after ${elapsed} ms, before the connect timeout`);
    (await accepted).close();
  }
});

Deno.test("transport tests clean up their certificates", async () => {
  const { dir } = await certs.get();
  await certs.remove();
  await assert.rejects(Deno.stat(dir), Deno.errors.NotFound);
});

// Every listener type, configured the aMQTT way and driven by real clients: TLS and mutual TLS with
// Debian's mosquitto_pub/mosquitto_sub (certificates made by openssl in the test), ws and wss with
// our MQTTClient, the WebSocket path option, and use_cert_cn_as_username.
import assert from "node:assert/strict";
import { MQTTClient } from "../../client.ts";
import { decodePacket, encodePacket, PacketType } from "../../src/packet/mod.ts";
import type { Packet } from "../../src/packet/mod.ts";
import type { BrokerPlugin, ClientInfo } from "../../src/plugins/types.ts";
import { type CertFiles, certFiles } from "../_helpers/certs.ts";
import { type Browser, browserUpgrade, clientFrame, serverFrame } from "../transport/_ws_raw.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import { runTool, Tool } from "../_helpers/peers.ts";

/** A client that gives up at the first failure instead of reconnecting. */
function oneShotClient(): MQTTClient {
  return new MQTTClient({ config: { auto_reconnect: false } });
}

/** mosquitto_pub/mosquitto_sub arguments for our TLS listener, trusting `cafile`. */
function tlsArgs(port: string | number, cafile: string): string[] {
  return ["-h", "localhost", "-p", String(port), "--cafile", cafile];
}

/** Configuration with one ws listener serving TLS with the test server certificate. */
function wssListener(f: CertFiles, extra: Record<string, unknown> = {}) {
  return {
    listeners: {
      default: {
        type: "ws",
        bind: "127.0.0.1:0",
        ssl: true,
        certfile: f.serverCertFile,
        keyfile: f.serverKeyFile,
        ...extra,
      },
    },
  };
}

/** Configuration with one tcp listener serving TLS (`ssl: on`) with the test server certificate. */
function tlsListener(f: CertFiles, extra: Record<string, unknown> = {}) {
  return {
    listeners: {
      default: {
        bind: "127.0.0.1:0",
        ssl: "on",
        certfile: f.serverCertFile,
        keyfile: f.serverKeyFile,
        ...extra,
      },
    },
  };
}

Deno.test("11 listeners: TLS (ssl: on) with mosquitto_sub and mosquitto_pub --cafile", async () => {
  await using f = await certFiles();
  await using b = await startBroker(tlsListener(f));
  assert.equal(b.broker.listeners[0]!.transport, "tls");
  const port = String(b.port);
  await using sub = new Tool("mosquitto_sub", [
    ...tlsArgs(port, f.caFile),
    "-t",
    "secure/#",
    "-q",
    "1",
    "-C",
    "1",
  ]);
  await waitForSubscriber(b.broker);
  const pub = await runTool("mosquitto_pub", [
    ...tlsArgs(port, f.caFile),
    "-t",
    "secure/a",
    "-m",
    "over tls",
    "-q",
    "1",
  ]);
  assert.equal(pub.code, 0, pub.stderr);
  const out = await sub.result();
  assert.equal(out.stdout.trim(), "over tls");
  // A client that does not trust the broker's CA cannot connect.
  const untrusted = await runTool("mosquitto_pub", [
    ...tlsArgs(port, f.rogueCertFile),
    "-t",
    "x",
    "-m",
    "no",
  ]);
  assert.notEqual(untrusted.code, 0);
});

Deno.test("11 listeners: mutual TLS required: a client certificate is accepted, none or a rogue one refused", async () => {
  await using f = await certFiles();
  await using b = await startBroker(
    tlsListener(f, { cafile: f.caFile, client_cert_mode: "required" }),
  );
  const port = String(b.port);
  const base = [...tlsArgs(port, f.caFile), "-t", "m/t", "-m", "hi"];
  const ok = await runTool("mosquitto_pub", [
    ...base,
    "--cert",
    f.clientCertFile,
    "--key",
    f.clientKeyFile,
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  const none = await runTool("mosquitto_pub", base);
  assert.notEqual(none.code, 0, "no client certificate");
  const rogue = await runTool("mosquitto_pub", [
    ...base,
    "--cert",
    f.rogueCertFile,
    "--key",
    f.rogueKeyFile,
  ]);
  assert.notEqual(rogue.code, 0, "a certificate from an untrusted CA");
  assert.ok(b.broker.stats.clientsTotal === 1, "only the good client got through");
});

Deno.test("11 listeners: use_cert_cn_as_username makes the certificate CN the user for the ACL", async () => {
  await using f = await certFiles();
  await using b = await startBroker({
    ...tlsListener(f, {
      cafile: f.caFile,
      client_cert_mode: "required",
      use_cert_cn_as_username: true,
    }),
    "topic-check": {
      enabled: true,
      plugins: ["topic_acl"],
      "publish-acl": { "client-one": ["devices/client-one/#"] },
      acl: { "client-one": ["#"] },
    },
  });
  const seen: string[] = [];
  b.broker.on("message", (m) => seen.push(m.topic));
  const port = String(b.port);
  const base = [
    ...tlsArgs(port, f.caFile),
    "--cert",
    f.clientCertFile,
    "--key",
    f.clientKeyFile,
    "-q",
    "1",
    "-m",
    "x",
    // The CONNECT user name is ignored in favour of the certificate's CN.
    "-u",
    "someone-else",
  ];
  assert.equal((await runTool("mosquitto_pub", [...base, "-t", "devices/client-one/t"])).code, 0);
  assert.equal((await runTool("mosquitto_pub", [...base, "-t", "devices/other/t"])).code, 0);
  assert.deepEqual(seen, ["devices/client-one/t"]);
  // A valid certificate without a CN does not fall back to the CONNECT user name.
  const noCn = await runTool("mosquitto_pub", [
    ...base.map((a) =>
      a === f.clientCertFile ? f.noCnCertFile : a === f.clientKeyFile ? f.noCnKeyFile : a
    ),
    "-t",
    "devices/client-one/t",
  ]);
  assert.notEqual(noCn.code, 0);
  assert.ok(b.log.has("no client certificate common name"));
  assert.deepEqual(seen, ["devices/client-one/t"]);
});

Deno.test("11 listeners: ws listener: MQTTClient publishes and receives over ws://", async () => {
  await using b = await startBroker({
    listeners: { default: { type: "ws", bind: "127.0.0.1:0" } },
  });
  assert.equal(b.broker.listeners[0]!.transport, "ws");
  await using client = oneShotClient();
  await client.connect(`ws://127.0.0.1:${b.port}/mqtt`);
  await client.subscribe([{ topic: "ws/#", qos: 1 }]);
  await client.publish("ws/a", "over websocket", { qos: 1 });
  const m = await client.deliverMessage({ timeout: 3000 });
  assert.equal(new TextDecoder().decode(m.payload), "over websocket");
});

Deno.test("11 listeners: ws without a path setting upgrades / and /mqtt; a configured path only itself", async () => {
  await using open = await startBroker({
    listeners: { default: { type: "ws", bind: "127.0.0.1:0" } },
  });
  for (const path of ["/", "/mqtt"]) {
    await using c = oneShotClient();
    const ack = await c.connect(`ws://127.0.0.1:${open.port}${path}`);
    assert.equal(ack.returnCode, 0, `path ${path}`);
  }
  await using fixed = await startBroker({
    listeners: { default: { type: "ws", bind: "127.0.0.1:0", path: "/broker" } },
  });
  await using good = oneShotClient();
  assert.equal((await good.connect(`ws://127.0.0.1:${fixed.port}/broker`)).returnCode, 0);
  await using bad = new MQTTClient({ config: { auto_reconnect: false, reconnect_retries: 0 } });
  await assert.rejects(bad.connect(`ws://127.0.0.1:${fixed.port}/mqtt`));
});

Deno.test("11 listeners: wss listener with a private CA", async () => {
  await using f = await certFiles();
  await using b = await startBroker(wssListener(f));
  assert.equal(b.broker.listeners[0]!.transport, "wss");
  await using client = oneShotClient();
  await client.connect(`wss://localhost:${b.port}/mqtt`, { ca: f.ca });
  await client.subscribe([{ topic: "s", qos: 0 }]);
  await client.publish("s", "secure ws");
  const m = await client.deliverMessage({ timeout: 3000 });
  assert.equal(new TextDecoder().decode(m.payload), "secure ws");
});

Deno.test("11 listeners: tcp, ws and tls listeners side by side route to each other", async () => {
  await using f = await certFiles();
  await using b = await startBroker({
    listeners: {
      default: { bind: "127.0.0.1:0" },
      web: { type: "ws", bind: "127.0.0.1:0" },
      secure: {
        bind: "127.0.0.1:0",
        ssl: true,
        certfile: f.serverCertFile,
        keyfile: f.serverKeyFile,
      },
    },
  });
  const byName = Object.fromEntries(b.broker.listeners.map((l) => [l.name, l.port]));
  await using sub = oneShotClient();
  await sub.connect(`ws://127.0.0.1:${byName.web}`);
  await sub.subscribe([{ topic: "mix/#", qos: 1 }]);
  const pub = await runTool("mosquitto_pub", [
    ...tlsArgs(byName.secure, f.caFile),
    "-t",
    "mix/tls",
    "-m",
    "from tls",
    "-q",
    "1",
  ]);
  assert.equal(pub.code, 0, pub.stderr);
  const m = await sub.deliverMessage({ timeout: 3000 });
  assert.equal(m.topic, "mix/tls");
});

/** A plugin that records each client it is asked to authenticate, and abstains. */
function recorder(): { seen: ClientInfo[]; plugin: BrokerPlugin } {
  const seen: ClientInfo[] = [];
  return {
    seen,
    plugin: {
      name: "recorder",
      authenticate: (client) => {
        seen.push(client);
        return undefined;
      },
    },
  };
}

/** Settles with `promise`'s outcome, or fails the test if it is still pending after `ms`. */
async function settlesWithin<T>(promise: Promise<T>, ms: number, what: string): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"hung">((resolve) => timer = setTimeout(() => resolve("hung"), ms));
  try {
    const outcome = await Promise.race([promise.then(() => "done", () => "done"), timeout]);
    assert.equal(outcome, "done", `${what} is still pending after ${ms} ms`);
  } finally {
    clearTimeout(timer);
  }
}

async function waitForSubscriber(broker: { subscriptions(): unknown[] }): Promise<void> {
  for (let i = 0; i < 300 && broker.subscriptions().length === 0; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(broker.subscriptions().length > 0, "the subscriber subscribed");
}

for (const browser of ["chrome", "firefox", "safari"] as Browser[]) {
  Deno.test(`11 listeners: ws accepts ${browser}'s exact handshake; packets split across and packed into frames`, async () => {
    await using b = await startBroker({
      listeners: { default: { type: "ws", bind: "127.0.0.1:0", path: "/mqtt" } },
    });
    const { conn, status, headers } = await browserUpgrade(b.port, "/mqtt", browser);
    try {
      assert.equal(status, 101);
      assert.equal(headers.get("sec-websocket-protocol"), "mqtt"); // [MQTT-6.0.0-4]
      const connect = encodePacket({
        type: PacketType.CONNECT,
        protocolName: "MQTT",
        protocolVersion: 4,
        clean: true,
        keepAlive: 60,
        clientId: `browser-${browser}`,
      }, 4);
      // [MQTT-6.0.0-2]: a packet may span frames, and a frame may hold several packets.
      await conn.write(clientFrame(0x2, connect.subarray(0, 3), true));
      await conn.write(clientFrame(0x2, connect.subarray(3), true));
      assert.equal((await nextPacket(conn)).type, PacketType.CONNACK);
      const subscribe = encodePacket({
        type: PacketType.SUBSCRIBE,
        packetId: 7,
        subscriptions: [{ topic: "web/#", qos: 1 }],
      }, 4);
      const publish = encodePacket({
        type: PacketType.PUBLISH,
        topic: "web/page",
        payload: new TextEncoder().encode("from a browser"),
        qos: 1,
        retain: false,
        dup: false,
        packetId: 8,
      }, 4);
      const both = new Uint8Array([...subscribe, ...publish]);
      const cut = subscribe.length + 5;
      await conn.write(clientFrame(0x2, both.subarray(0, cut), true));
      await conn.write(clientFrame(0x2, both.subarray(cut), true));
      const got = [await nextPacket(conn), await nextPacket(conn), await nextPacket(conn)];
      const byType = new Map(got.map((p) => [p.type, p]));
      assert.deepEqual(byType.get(PacketType.SUBACK), {
        type: PacketType.SUBACK,
        packetId: 7,
        reasonCodes: [1],
      });
      assert.deepEqual(byType.get(PacketType.PUBACK), { type: PacketType.PUBACK, packetId: 8 });
      const echoed = byType.get(PacketType.PUBLISH);
      assert.ok(echoed?.type === PacketType.PUBLISH, "the message comes back to its subscriber");
      assert.equal(echoed.topic, "web/page");
      assert.equal(new TextDecoder().decode(echoed.payload), "from a browser");
    } finally {
      conn.close();
    }
  });
}

/** Reads one server frame and decodes the single MQTT packet it must hold. */
async function nextPacket(conn: Deno.Conn): Promise<Packet> {
  const frame = await serverFrame(conn);
  assert.equal(frame.opcode, 0x2, "binary frame");
  const decoded = decodePacket(frame.payload, { protocolVersion: 4, side: "client" });
  assert.ok(decoded !== undefined, "a whole packet in the frame");
  assert.equal(decoded.length, frame.payload.length, "one packet per frame");
  return decoded.packet;
}

Deno.test("11 listeners: max-connections on ws and tls listeners refuses extra clients promptly, then frees the slot", async () => {
  await using f = await certFiles();
  await using b = await startBroker({
    listeners: {
      default: { bind: "127.0.0.1:0", "max-connections": 1 },
      web: { type: "ws", bind: "127.0.0.1:0" },
      secure: {
        bind: "127.0.0.1:0",
        ssl: "on",
        certfile: f.serverCertFile,
        keyfile: f.serverKeyFile,
      },
    },
  });
  const ports = Object.fromEntries(b.broker.listeners.map((l) => [l.name, l.port]));
  for (const url of [`ws://127.0.0.1:${ports.web}/mqtt`, `mqtts://localhost:${ports.secure}`]) {
    const options = { ca: f.ca };
    const first = oneShotClient();
    assert.equal((await first.connect(url, options)).returnCode, 0, url);
    const extra = oneShotClient();
    const attempt = extra.connect(url, options);
    // Refused: closed at once, not left waiting for a slot as aMQTT's semaphore does.
    await settlesWithin(attempt, 3000, `the extra connection to ${url}`);
    await assert.rejects(attempt, Error, `the extra connection to ${url} is refused`);
    await extra.disconnect().catch(() => {});
    assert.ok(b.log.has("max-connections 1 reached"), "the refusal is logged");
    await first.disconnect();
    await waitFor(() => b.broker.stats.clientsConnected === 0, 3000, "the first client gone");
    await using again = oneShotClient();
    assert.equal((await again.connect(url, options)).returnCode, 0, `${url} has a free slot`);
    await again.disconnect();
    await waitFor(() => b.broker.stats.clientsConnected === 0, 3000, "the client gone");
  }
});

Deno.test("11 listeners: mutual TLS optional: no certificate is let in, a good one gives its CN, a rogue one is refused", async () => {
  await using f = await certFiles();
  const { seen, plugin } = recorder();
  await using b = await startBroker(
    tlsListener(f, { cafile: f.caFile, client_cert_mode: "optional" }),
    { plugins: [plugin] },
  );
  const url = `mqtts://localhost:${b.port}`;
  await using anonymous = oneShotClient();
  assert.equal((await anonymous.connect(url, { ca: f.ca })).returnCode, 0);
  await using named = oneShotClient();
  const withCert = { ca: f.ca, cert: f.clientCert, key: f.clientKey };
  assert.equal((await named.connect(url, withCert)).returnCode, 0);
  await using rogue = oneShotClient();
  const rogueCert = { ca: f.ca, cert: f.rogueCert, key: f.rogueKey };
  await assert.rejects(rogue.connect(url, rogueCert), Error, "an unverifiable certificate");
  assert.deepEqual(
    seen.map((c) => [c.transport, c.peerCommonName]),
    [["tls", undefined], ["tls", "client-one"]],
  );
  await anonymous.disconnect();
  await named.disconnect();
});

Deno.test("11 listeners: client_cert_mode none with a cafile asks for no certificate", async () => {
  await using f = await certFiles();
  const { seen, plugin } = recorder();
  await using b = await startBroker(
    tlsListener(f, { cafile: f.caFile, client_cert_mode: "none" }),
    { plugins: [plugin] },
  );
  const url = `mqtts://localhost:${b.port}`;
  // Even a certificate the broker cannot verify is not looked at: it was never asked for.
  for (
    const [cert, key] of [[f.clientCert, f.clientKey], [
      f.rogueCert,
      f.rogueKey,
    ]]
  ) {
    await using c = oneShotClient();
    assert.equal((await c.connect(url, { ca: f.ca, cert, key })).returnCode, 0);
    await c.disconnect();
  }
  assert.deepEqual(seen.map((c) => c.peerCommonName), [undefined, undefined]);
});

Deno.test("11 listeners: wss with required client certificates: the CN is the user, no certificate is refused", async () => {
  await using f = await certFiles();
  const { seen, plugin } = recorder();
  await using b = await startBroker(
    wssListener(f, { cafile: f.caFile, use_cert_cn_as_username: true }),
    { plugins: [plugin] },
  );
  assert.equal(b.broker.listeners[0]!.transport, "wss");
  const url = `wss://localhost:${b.port}/mqtt`;
  await using bare = oneShotClient();
  await assert.rejects(bare.connect(url, { ca: f.ca }), Error, "no certificate");
  await using named = oneShotClient();
  const ack = await named.connect(url, {
    ca: f.ca,
    cert: f.clientCert,
    key: f.clientKey,
  });
  assert.equal(ack.returnCode, 0);
  assert.deepEqual(
    seen.map((c) => [c.transport, c.peerCommonName, c.username, c.anonymous]),
    [["wss", "client-one", "client-one", false]],
  );
  await named.disconnect();
});

Deno.test("11 listeners: client CAs from capath (a directory) and from cadata (PEM text) verify client certificates", async () => {
  await using f = await certFiles();
  const caDir = await Deno.makeTempDir({ prefix: "amqtt-capath-" });
  try {
    await Deno.writeTextFile(`${caDir}/ca.crt`, f.ca);
    for (const ca of [{ capath: caDir }, { cadata: f.ca }]) {
      const { seen, plugin } = recorder();
      await using b = await startBroker(
        tlsListener(f, { ...ca, client_cert_mode: "required" }),
        { plugins: [plugin] },
      );
      const url = `mqtts://localhost:${b.port}`;
      await using good = oneShotClient();
      const ack = await good.connect(url, {
        ca: f.ca,
        cert: f.clientCert,
        key: f.clientKey,
      });
      assert.equal(ack.returnCode, 0, JSON.stringify(Object.keys(ca)));
      await using rogue = oneShotClient();
      await assert.rejects(
        rogue.connect(url, { ca: f.ca, cert: f.rogueCert, key: f.rogueKey }),
        Error,
        "a certificate from another CA",
      );
      assert.deepEqual(seen.map((c) => c.peerCommonName), ["client-one"]);
      await good.disconnect();
    }
  } finally {
    await Deno.remove(caDir, { recursive: true });
  }
});

// Every listener type, configured the aMQTT way and driven by real clients: TLS and mutual TLS with
// Debian's mosquitto_pub/mosquitto_sub (certificates made by openssl in the test), ws and wss with
// our MQTTClient, the WebSocket path option, and use_cert_cn_as_username.
import assert from "node:assert/strict";
import { MQTTClient } from "../../client.ts";
import { makeCerts, type TestCerts } from "../transport/_certs.ts";
import { startBroker } from "../_helpers/broker.ts";
import { runTool, ToolProcess } from "../_helpers/mosquitto.ts";

interface CertFiles {
  dir: string;
  ca: string;
  cert: string;
  key: string;
  clientCert: string;
  clientKey: string;
  rogueCert: string;
  rogueKey: string;
  pems: TestCerts;
}

async function certFiles(): Promise<CertFiles> {
  const pems = await makeCerts();
  const dir = await Deno.makeTempDir({ prefix: "amqtt-listeners-" });
  const write = async (name: string, text: string) => {
    await Deno.writeTextFile(`${dir}/${name}`, text);
    return `${dir}/${name}`;
  };
  return {
    dir,
    pems,
    ca: await write("ca.pem", pems.ca),
    cert: await write("server.pem", pems.serverCert),
    key: await write("server.key", pems.serverKey),
    clientCert: await write("client.pem", pems.clientCert),
    clientKey: await write("client.key", pems.clientKey),
    rogueCert: await write("rogue.pem", pems.rogueCert),
    rogueKey: await write("rogue.key", pems.rogueKey),
  };
}

function tlsListener(f: CertFiles, extra: Record<string, unknown> = {}) {
  return {
    listeners: {
      default: { bind: "127.0.0.1:0", ssl: "on", certfile: f.cert, keyfile: f.key, ...extra },
    },
  };
}

Deno.test("11 listeners: TLS (ssl: on) with mosquitto_sub and mosquitto_pub --cafile", async () => {
  const f = await certFiles();
  try {
    await using b = await startBroker(tlsListener(f));
    assert.equal(b.broker.listeners[0]!.transport, "tls");
    const port = String(b.port);
    await using sub = ToolProcess.spawn("mosquitto_sub", [
      "-h",
      "localhost",
      "-p",
      port,
      "--cafile",
      f.ca,
      "-t",
      "secure/#",
      "-q",
      "1",
      "-C",
      "1",
    ]);
    await waitForSubscriber(b.broker);
    const pub = await runTool("mosquitto_pub", [
      "-h",
      "localhost",
      "-p",
      port,
      "--cafile",
      f.ca,
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
      "-h",
      "localhost",
      "-p",
      port,
      "--cafile",
      f.rogueCert,
      "-t",
      "x",
      "-m",
      "no",
    ]);
    assert.notEqual(untrusted.code, 0);
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});

Deno.test("11 listeners: mutual TLS required: a client certificate is accepted, none or a rogue one refused", async () => {
  const f = await certFiles();
  try {
    await using b = await startBroker(
      tlsListener(f, { cafile: f.ca, client_cert_mode: "required" }),
    );
    const port = String(b.port);
    const base = ["-h", "localhost", "-p", port, "--cafile", f.ca, "-t", "m/t", "-m", "hi"];
    const ok = await runTool("mosquitto_pub", [
      ...base,
      "--cert",
      f.clientCert,
      "--key",
      f.clientKey,
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    const none = await runTool("mosquitto_pub", base);
    assert.notEqual(none.code, 0, "no client certificate");
    const rogue = await runTool("mosquitto_pub", [
      ...base,
      "--cert",
      f.rogueCert,
      "--key",
      f.rogueKey,
    ]);
    assert.notEqual(rogue.code, 0, "a certificate from an untrusted CA");
    assert.ok(b.broker.stats.clientsTotal === 1, "only the good client got through");
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});

Deno.test("11 listeners: use_cert_cn_as_username makes the certificate CN the user for the ACL", async () => {
  const f = await certFiles();
  try {
    await using b = await startBroker({
      ...tlsListener(f, {
        cafile: f.ca,
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
      "-h",
      "localhost",
      "-p",
      port,
      "--cafile",
      f.ca,
      "--cert",
      f.clientCert,
      "--key",
      f.clientKey,
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
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});

Deno.test("11 listeners: ws listener: MQTTClient publishes and receives over ws://", async () => {
  await using b = await startBroker({
    listeners: { default: { type: "ws", bind: "127.0.0.1:0" } },
  });
  assert.equal(b.broker.listeners[0]!.transport, "ws");
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
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
    await using c = new MQTTClient({ config: { auto_reconnect: false } });
    const ack = await c.connect(`ws://127.0.0.1:${open.port}${path}`);
    assert.equal(ack.returnCode, 0, `path ${path}`);
  }
  await using fixed = await startBroker({
    listeners: { default: { type: "ws", bind: "127.0.0.1:0", path: "/broker" } },
  });
  await using good = new MQTTClient({ config: { auto_reconnect: false } });
  assert.equal((await good.connect(`ws://127.0.0.1:${fixed.port}/broker`)).returnCode, 0);
  await using bad = new MQTTClient({ config: { auto_reconnect: false, reconnect_retries: 0 } });
  await assert.rejects(bad.connect(`ws://127.0.0.1:${fixed.port}/mqtt`));
});

Deno.test("11 listeners: wss listener with a private CA", async () => {
  const f = await certFiles();
  try {
    await using b = await startBroker({
      listeners: {
        default: { type: "ws", bind: "127.0.0.1:0", ssl: true, certfile: f.cert, keyfile: f.key },
      },
    });
    assert.equal(b.broker.listeners[0]!.transport, "wss");
    await using client = new MQTTClient({ config: { auto_reconnect: false } });
    await client.connect(`wss://localhost:${b.port}/mqtt`, { ca: f.pems.ca });
    await client.subscribe([{ topic: "s", qos: 0 }]);
    await client.publish("s", "secure ws");
    const m = await client.deliverMessage({ timeout: 3000 });
    assert.equal(new TextDecoder().decode(m.payload), "secure ws");
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});

Deno.test("11 listeners: tcp, ws and tls listeners side by side route to each other", async () => {
  const f = await certFiles();
  try {
    await using b = await startBroker({
      listeners: {
        default: { bind: "127.0.0.1:0" },
        web: { type: "ws", bind: "127.0.0.1:0" },
        secure: { bind: "127.0.0.1:0", ssl: true, certfile: f.cert, keyfile: f.key },
      },
    });
    const byName = Object.fromEntries(b.broker.listeners.map((l) => [l.name, l.port]));
    await using sub = new MQTTClient({ config: { auto_reconnect: false } });
    await sub.connect(`ws://127.0.0.1:${byName.web}`);
    await sub.subscribe([{ topic: "mix/#", qos: 1 }]);
    const pub = await runTool("mosquitto_pub", [
      "-h",
      "localhost",
      "-p",
      String(byName.secure),
      "--cafile",
      f.ca,
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
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});

async function waitForSubscriber(broker: { subscriptions(): unknown[] }): Promise<void> {
  for (let i = 0; i < 300 && broker.subscriptions().length === 0; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(broker.subscriptions().length > 0, "the subscriber subscribed");
}

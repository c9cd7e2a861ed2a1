/**
 * The client against our own broker (broker.ts): the same scenarios as against mosquitto.
 */

import assert from "node:assert/strict";
import { ConnectError, MQTTClient } from "../../client.ts";
import type { ApplicationMessage } from "../../client.ts";
import { Broker, type BrokerConfigInput } from "../../broker.ts";
import { SharedCerts } from "../_helpers/certs.ts";
import { waitFor } from "../_helpers/broker.ts";
import { freePort } from "../_helpers/peers.ts";
import { TcpProxy } from "./_helpers.ts";

const text = (m: ApplicationMessage) => new TextDecoder().decode(m.payload);

const certs = new SharedCerts();

async function startBroker(
  listeners: Record<string, Record<string, unknown>> = {},
  extra: Record<string, unknown> = {},
): Promise<Broker & { port(name?: string): number }> {
  const broker = new Broker({
    listeners: { default: { type: "tcp", bind: "127.0.0.1:0" }, ...listeners },
    ...extra,
  });
  await broker.start();
  return Object.assign(broker, {
    port(name = "default"): number {
      const l = broker.listeners.find((x) => x.name === name);
      if (l === undefined) throw new Error(`No listener named ${name}`);
      return l.port;
    },
  });
}

async function roundTrip(client: MQTTClient, topic: string): Promise<void> {
  assert.deepEqual(await client.subscribe([{ topic, qos: 1 }]), [1]);
  await client.publish(topic, "over the wire", { qos: 1 });
  const m = await client.deliverMessage({ timeout: 3000 });
  assert.equal(m.topic, topic);
  assert.equal(text(m), "over the wire");
}

Deno.test("MQTTClient with our broker: tcp, QoS 0/1/2 both ways", async () => {
  await using broker = await startBroker();
  const url = `mqtt://127.0.0.1:${broker.port()}`;
  await using sub = new MQTTClient();
  await using pub = new MQTTClient();
  assert.deepEqual(await sub.connect(url), { sessionPresent: false, returnCode: 0 });
  await pub.connect(url);
  assert.deepEqual(await sub.subscribe([{ topic: "t/#", qos: 2 }]), [2]);
  await pub.publish("t/0", "zero", { qos: 0 });
  await pub.publish("t/1", "one", { qos: 1 });
  await pub.publish("t/2", "two", { qos: 2 });
  const got = [];
  for (let i = 0; i < 3; i++) got.push(await sub.deliverMessage({ timeout: 3000 }));
  assert.deepEqual(got.map((m) => [m.topic, m.qos, text(m)]), [
    ["t/0", 0, "zero"],
    ["t/1", 1, "one"],
    ["t/2", 2, "two"],
  ]);
  await pub.ping();
});

Deno.test("MQTTClient with our broker: MQTT 3.1 (MQIsdp)", async () => {
  await using broker = await startBroker();
  await using client = new MQTTClient();
  await client.connect(`mqtt://127.0.0.1:${broker.port()}`, { protocolVersion: 3 });
  await roundTrip(client, "v3/t");
});

Deno.test("MQTTClient with our broker: tls and mutual TLS accepted and refused", async () => {
  const c = await certs.get();
  await using broker = await startBroker({
    tls: {
      type: "tcp",
      bind: "127.0.0.1:0",
      ssl: true,
      certfile: c.serverCertFile,
      keyfile: c.serverKeyFile,
    },
    mtls: {
      type: "tcp",
      bind: "127.0.0.1:0",
      ssl: true,
      certfile: c.serverCertFile,
      keyfile: c.serverKeyFile,
      cafile: c.caFile,
      client_cert_mode: "required",
    },
  });
  await using tls = new MQTTClient();
  await tls.connect(`mqtts://localhost:${broker.port("tls")}`, { ca: c.ca });
  await roundTrip(tls, "tls/t");

  await using mtls = new MQTTClient();
  await mtls.connect(`mqtts://localhost:${broker.port("mtls")}`, {
    ca: c.ca,
    cert: c.clientCert,
    key: c.clientKey,
  });
  await roundTrip(mtls, "mtls/t");

  await using refused = new MQTTClient({ config: { auto_reconnect: false } });
  const error = await refused.connect(`mqtts://localhost:${broker.port("mtls")}`, { ca: c.ca })
    .catch((e) => e);
  assert.ok(error instanceof ConnectError, String(error));
  assert.equal(error.returnCode, undefined);

  const untrusted = await refused.connect(`mqtts://localhost:${broker.port("mtls")}`, {
    ca: c.ca,
    cert: c.rogueCert,
    key: c.rogueKey,
  }).catch((e) => e);
  assert.ok(untrusted instanceof ConnectError, String(untrusted));
  assert.equal(untrusted.returnCode, undefined);
});

Deno.test("MQTTClient with our broker: ws and wss", async () => {
  const c = await certs.get();
  await using broker = await startBroker({
    ws: { type: "ws", bind: "127.0.0.1:0" },
    wss: {
      type: "ws",
      bind: "127.0.0.1:0",
      ssl: true,
      certfile: c.serverCertFile,
      keyfile: c.serverKeyFile,
    },
  });
  await using ws = new MQTTClient();
  await ws.connect(`ws://127.0.0.1:${broker.port("ws")}`);
  await roundTrip(ws, "ws/t");
  const big = new Uint8Array(300_000).map((_, i) => i & 0xff);
  await ws.publish("ws/t", big, { qos: 1 });
  assert.deepEqual((await ws.deliverMessage({ timeout: 3000 })).payload, big);

  await using wss = new MQTTClient();
  await wss.connect(`wss://localhost:${broker.port("wss")}/mqtt`, { ca: c.ca });
  await roundTrip(wss, "wss/t");
});

Deno.test("MQTTClient with our broker: will on abrupt close, retained, persistent session", async () => {
  await using broker = await startBroker();
  const url = `mqtt://127.0.0.1:${broker.port()}`;
  await using proxy = new TcpProxy(broker.port());
  await using watcher = new MQTTClient();
  await watcher.connect(url);
  await watcher.subscribe([{ topic: "wills/#", qos: 1 }]);
  await using dying = new MQTTClient({ config: { auto_reconnect: false } });
  await dying.connect(`mqtt://127.0.0.1:${proxy.port}`, {
    will: { topic: "wills/d", payload: "gone", qos: 1 },
  });
  await proxy.cut();
  assert.equal(text(await watcher.deliverMessage({ timeout: 3000 })), "gone");

  await watcher.publish("kept/t", "kept", { qos: 1, retain: true });
  await using late = new MQTTClient();
  await late.connect(url);
  await late.subscribe([{ topic: "kept/#", qos: 1 }]);
  const retained = await late.deliverMessage({ timeout: 3000 });
  assert.equal(retained.retain, true);
  assert.equal(text(retained), "kept");

  const sub = new MQTTClient({ clientId: "ours-persistent" });
  await sub.connect(url, { cleanSession: false });
  await sub.subscribe([{ topic: "p/#", qos: 1 }]);
  await sub.disconnect();
  await watcher.publish("p/x", "while away", { qos: 1 });
  assert.equal((await sub.connect(url, { cleanSession: false })).sessionPresent, true);
  assert.equal(text(await sub.deliverMessage({ timeout: 3000 })), "while away");
  await sub.disconnect();
});

Deno.test("MQTTClient with our broker: refused connection throws ConnectError with the code", async () => {
  await using broker = await startBroker({}, {
    auth: { "allow-anonymous": false, plugins: ["auth_anonymous"] },
  });
  await using client = new MQTTClient();
  const error = await client.connect(`mqtt://127.0.0.1:${broker.port()}`).catch((e) => e);
  assert.ok(error instanceof ConnectError, String(error));
  assert.equal(error.returnCode, 5);
});

Deno.test("MQTTClient with our broker: dead link found by keepalive, then reconnect and resubscribe", async () => {
  await using broker = await startBroker();
  await using proxy = new TcpProxy(broker.port());
  await using client = new MQTTClient({
    config: { keep_alive: 2, ping_delay: 1, reconnect_retries: -1, reconnect_max_interval: 0.1 },
  });
  await client.connect(`mqtt://127.0.0.1:${proxy.port}`);
  await client.subscribe([{ topic: "ka", qos: 1 }]);
  // The blackholed link stays open to the client even when the broker closes its side (its
  // keepalive timeout): only the client's own keepalive can find it dead. The exact deadlines
  // [MQTT-3.1.2-24] are held with an injected clock by "ClientSession closes a link whose
  // PINGRESP is overdue" in tests/session/client_session_test.ts.
  proxy.blackhole();
  const start = performance.now();
  await waitFor(() => proxy.accepted === 2, 15_000, "a reconnect through the proxy");
  const detected = performance.now() - start;
  assert.ok(detected > 500, `reconnected after ${detected} ms, before a ping could time out`);
  await waitFor(() => client.connected, 3000, "the client to be connected again");
  await using other = new MQTTClient();
  await other.connect(`mqtt://127.0.0.1:${broker.port()}`);
  await other.publish("ka", "after", { qos: 1 });
  assert.equal(text(await client.deliverMessage({ timeout: 3000 })), "after");
});

Deno.test("MQTTClient with our broker: survives a broker restart mid-stream; QoS 1 from both sides of the outage arrives", async () => {
  const port = freePort();
  const config = (p: number): BrokerConfigInput => ({
    listeners: { default: { type: "tcp", bind: `127.0.0.1:${p}` } },
  });
  let broker = new Broker(config(port));
  await broker.start();
  await using client = new MQTTClient({
    config: { reconnect_retries: -1, reconnect_max_interval: 0.2 },
  });
  const url = `mqtt://127.0.0.1:${port}`;
  const expected = Array.from({ length: 40 }, (_, i) => `m${i}`);
  await client.connect(url);
  await client.subscribe([{ topic: "r/#", qos: 1 }]);
  for (let i = 0; i < 20; i++) await client.publish("r/x", `m${i}`, { qos: 1 });
  await broker.shutdown();
  await waitFor(() => !client.connected, 3000, "the client to notice");
  // Held by the client while the broker is down, sent after the reconnect.
  const held = expected.slice(20).map((m) => client.publish("r/x", m, { qos: 1 }));
  broker = new Broker(config(port));
  try {
    await broker.start();
    await Promise.all(held);
    assert.equal(client.connected, true);
    // The new broker had no session: the client resubscribed before sending what it held, so
    // its own messages come back, each once, in order.
    const got: string[] = [];
    for (let i = 0; i < 40; i++) got.push(text(await client.deliverMessage({ timeout: 3000 })));
    assert.deepEqual(got, expected);
  } finally {
    await client.disconnect();
    await broker.shutdown();
  }
});

Deno.test("client broker tests clean up their certificates", async () => {
  const { dir } = await certs.get();
  await certs.remove();
  await assert.rejects(Deno.stat(dir), Deno.errors.NotFound);
});

Deno.test("client against our broker: a message's payload sits in memory of its own connection, with no other connection's bytes behind it", async () => {
  // Two clients of one process, as a program serving two tenants: what one receives must not
  // carry the other's bytes in its payload's buffer (`payload.buffer`, a common reach), as it
  // would were a client's idle reads slots of slabs shared with other connections.
  await using broker = await startBroker();
  const url = `mqtt://127.0.0.1:${broker.port()}`;
  await using a = new MQTTClient({});
  await using b = new MQTTClient({});
  await a.connect(url);
  await b.connect(url);
  await a.subscribe([{ topic: "a/#", qos: 0 }]);
  await b.subscribe([{ topic: "b/#", qos: 0 }]);
  const got: ApplicationMessage[] = [];
  for (let i = 0; i < 8; i++) {
    await a.publish(`a/${i}`, `tenant-a-${i}`);
    await b.publish(`b/${i}`, `secret-b-${i}`);
    got.push(await a.deliverMessage({ timeout: 5000 }));
    await b.deliverMessage({ timeout: 5000 });
  }
  got.forEach((m, i) => {
    assert.equal(text(m), `tenant-a-${i}`);
    const behind = new TextDecoder("latin1").decode(new Uint8Array(m.payload.buffer));
    assert.ok(!behind.includes("secret-b"), `message ${i}: b's bytes behind a's payload`);
  });
});

import assert from "node:assert/strict";
import { ClientError, MQTTClient } from "../../client.ts";
import type { ApplicationMessage } from "../../client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import type { Packet } from "../../src/packet/types.ts";
import { Broker } from "../../broker.ts";
import { waitFor } from "../_helpers/broker.ts";
import { freePort, Mosquitto } from "../_helpers/peers.ts";
import { ScriptedServer, TcpProxy } from "./_helpers.ts";

const text = (m: ApplicationMessage) => new TextDecoder().decode(m.payload);

/** Collects messages until `want` distinct payloads were seen (duplicates allowed at QoS 1). */
async function collect(client: MQTTClient, want: number, ms: number): Promise<Set<string>> {
  const seen = new Set<string>();
  const end = performance.now() + ms;
  while (seen.size < want) {
    const left = end - performance.now();
    if (left <= 0) break;
    try {
      seen.add(text(await client.deliverMessage({ timeout: left })));
    } catch {
      break;
    }
  }
  return seen;
}

function describe(p: Packet | undefined): string {
  if (p === undefined) return "closed";
  if (p.type === PacketType.PUBLISH) {
    return `PUBLISH ${p.topic} q${p.qos} id=${p.packetId} dup=${p.dup}`;
  }
  if ("packetId" in p) return `${p.type} id=${p.packetId}`;
  return String(p.type);
}

Deno.test("MQTTClient reconnects by itself across a broker restart; QoS 1 from both sides of the outage arrives", async () => {
  await using broker = await Mosquitto.start({ persistence: true });
  const url = `mqtt://127.0.0.1:${broker.port}`;
  const config = { reconnect_retries: -1, reconnect_max_interval: 0.3 };
  await using sub = new MQTTClient({ clientId: "restart-sub", config });
  await using pub = new MQTTClient({ clientId: "restart-pub", config });
  await sub.connect(url, { cleanSession: false });
  await pub.connect(url, { cleanSession: false });
  await sub.subscribe([{ topic: "r/#", qos: 1 }]);

  for (let i = 0; i < 20; i++) await pub.publish("r/x", `m${i}`, { qos: 1 });
  await broker.stop();
  await waitFor(() => !pub.connected && !sub.connected, 3000, "both clients to notice");
  // Published while the broker is down: held by the client, sent after the reconnect.
  const offline = Array.from(
    { length: 20 },
    (_, i) => pub.publish("r/x", `m${20 + i}`, { qos: 1 }),
  );
  await broker.restart();
  await Promise.all(offline);
  await waitFor(() => pub.connected && sub.connected, 5000, "both clients to reconnect");
  const seen = await collect(sub, 40, 5000);
  assert.deepEqual(
    [...seen].sort(),
    Array.from({ length: 40 }, (_, i) => `m${i}`).sort(),
  );
});

Deno.test("MQTTClient detects a dead link by its own keepalive and reconnects [MQTT-3.1.2-24]", async () => {
  await using broker = await Mosquitto.start();
  await using proxy = new TcpProxy(broker.port);
  // keep_alive 2 - ping_delay 1: CONNECT carries 1 s; PINGRESP is due within 0.5 s.
  await using client = new MQTTClient({
    config: { keep_alive: 2, ping_delay: 1, reconnect_retries: -1, reconnect_max_interval: 0.1 },
  });
  await client.connect(`mqtt://127.0.0.1:${proxy.port}`);
  await client.subscribe([{ topic: "ka", qos: 1 }]);
  assert.equal(proxy.accepted, 1);

  // The blackholed link stays open to the client even when mosquitto closes its side: only the
  // client's own keepalive (PINGREQ after 1 s, PINGRESP overdue 0.5 s later) can find it dead.
  // The exact deadlines [MQTT-3.1.2-24] are held with an injected clock by "ClientSession closes
  // a link whose PINGRESP is overdue" in tests/session/client_session_test.ts.
  proxy.blackhole();
  const start = performance.now();
  await waitFor(() => proxy.accepted === 2, 15_000, "a reconnect through the proxy");
  const detected = performance.now() - start;
  assert.ok(detected > 500, `reconnected after ${detected} ms, before a ping could time out`);
  await waitFor(() => client.connected, 3000, "the client to be connected again");

  // The new clean session lost the subscription; the client resubscribed by itself.
  await using other = new MQTTClient();
  await other.connect(`mqtt://127.0.0.1:${broker.port}`);
  await other.publish("ka", "after", { qos: 1 });
  assert.equal(text(await client.deliverMessage({ timeout: 3000 })), "after");
});

Deno.test("MQTTClient gives up after reconnect_retries and fails every pending operation", async () => {
  await using broker = await Mosquitto.start();
  await using client = new MQTTClient({
    config: { reconnect_retries: 2, reconnect_max_interval: 0.05 },
  });
  await client.connect(`mqtt://127.0.0.1:${broker.port}`);
  const waiting = client.deliverMessage().catch((e) => e);
  await broker.stop();
  await waitFor(() => !client.connected, 3000, "the client to notice");
  const held = client.publish("x", "y", { qos: 1 }).catch((e) => e);
  const error = await held;
  assert.ok(error instanceof ClientError, String(error));
  assert.match(error.message, /Will not reconnect/);
  const deliverError = await waiting;
  assert.ok(deliverError instanceof ClientError);
  await assert.rejects(client.publish("x", "y"), /Will not reconnect/);
  await assert.rejects(client.deliverMessage(), /Will not reconnect/);
  // connect() starts over after giving up.
  await broker.restart();
  assert.equal((await client.connect(`mqtt://127.0.0.1:${broker.port}`)).returnCode, 0);
});

Deno.test("MQTTClient without auto_reconnect fails pending operations when the link drops", async () => {
  await using broker = await Mosquitto.start();
  await using proxy = new TcpProxy(broker.port);
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  await client.connect(`mqtt://127.0.0.1:${proxy.port}`);
  proxy.blackhole();
  const pending = client.publish("x", "y", { qos: 1 }).catch((e) => e);
  await proxy.cut();
  assert.ok(await pending instanceof ClientError);
  assert.equal(client.connected, false);
  await assert.rejects(client.publish("x", "y"), ClientError);
});

Deno.test("MQTTClient rejects a publish beyond maxQueued while offline", async () => {
  await using broker = await Mosquitto.start();
  await using client = new MQTTClient({
    maxQueued: 2,
    config: { reconnect_retries: -1, reconnect_max_interval: 10 },
  });
  await client.connect(`mqtt://127.0.0.1:${broker.port}`);
  await broker.stop();
  await waitFor(() => !client.connected, 3000, "the client to notice");
  const held = [client.publish("q", "1").catch((e) => e), client.publish("q", "2").catch((e) => e)];
  await assert.rejects(client.publish("q", "3"), /already waiting/);
  await client.disconnect();
  for (const h of held) assert.ok(await h instanceof ClientError);
});

Deno.test("MQTTClient resends unacknowledged PUBLISH with DUP and PUBREL in order on reconnect [MQTT-4.4.0-1]", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({
    config: { reconnect_retries: 3, reconnect_max_interval: 0.05 },
  });
  const url = `mqtt://127.0.0.1:${server.port}`;
  const first = server.acceptSession();
  await client.connect(url, { cleanSession: false });
  const [c1] = await first;
  const q1 = client.publish("one", "1", { qos: 1 });
  const q2 = client.publish("two", "2", { qos: 2 });
  const p1 = await c1.next();
  const p2 = await c1.next();
  assert.deepEqual([describe(p1), describe(p2)], [
    "PUBLISH one q1 id=1 dup=false",
    "PUBLISH two q2 id=2 dup=false",
  ]);
  await c1.send({ type: PacketType.PUBREC, packetId: 2 });
  assert.equal(describe(await c1.next()), `${PacketType.PUBREL} id=2`);
  c1.close(); // the link drops before PUBACK and PUBCOMP

  const [c2, connect] = await server.acceptSession(true);
  assert.equal(connect.clean, false);
  assert.equal(connect.clientId, client.clientId);
  assert.deepEqual([describe(await c2.next()), describe(await c2.next())], [
    "PUBLISH one q1 id=1 dup=true",
    `${PacketType.PUBREL} id=2`,
  ]);
  await c2.send({ type: PacketType.PUBACK, packetId: 1 }, {
    type: PacketType.PUBCOMP,
    packetId: 2,
  });
  await q1;
  await q2;
  await client.disconnect();
  assert.equal(describe(await c2.next()), String(PacketType.DISCONNECT));
});

Deno.test("MQTTClient resubscribes on reconnect when the server kept no session", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({
    config: { reconnect_retries: 3, reconnect_max_interval: 0.05 },
  });
  const first = server.acceptSession();
  await client.connect(`mqtt://127.0.0.1:${server.port}`);
  const [c1] = await first;
  const subscribing = client.subscribe([{ topic: "a/#", qos: 1 }, { topic: "b", qos: 2 }]);
  const sub = await c1.next();
  assert.equal(sub?.type, PacketType.SUBSCRIBE);
  if (sub?.type !== PacketType.SUBSCRIBE) return;
  await c1.send({ type: PacketType.SUBACK, packetId: sub.packetId, reasonCodes: [1, 2] });
  assert.deepEqual(await subscribing, [1, 2]);
  c1.close();

  const [c2] = await server.acceptSession(false);
  const again = await c2.next();
  assert.equal(again?.type, PacketType.SUBSCRIBE);
  if (again?.type !== PacketType.SUBSCRIBE) return;
  assert.deepEqual(again.subscriptions, [{ topic: "a/#", qos: 1 }, { topic: "b", qos: 2 }]);
  await c2.send({ type: PacketType.SUBACK, packetId: again.packetId, reasonCodes: [1, 2] });
  // The internal SUBSCRIBE settles nothing the application waits on; the link still works.
  const pinging = client.ping();
  assert.equal((await c2.next())?.type, PacketType.PINGREQ);
  await c2.send({ type: PacketType.PINGRESP });
  await pinging;
});

Deno.test("MQTTClient closes a connection whose server never answers CONNECT", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({
    config: { connection_timeout: 0.3, auto_reconnect: false },
  });
  const accepting = server.accept();
  const start = performance.now();
  const error = await client.connect(`mqtt://127.0.0.1:${server.port}`).catch((e) => e);
  const elapsed = performance.now() - start;
  assert.equal(error?.name, "ConnectError");
  // The configured 0.3 s ran out, not the 60 s default: the error names it. Not before it either;
  // the exact deadline is held with an injected clock by "ClientSession closes when CONNACK is
  // overdue" in tests/session/client_session_test.ts.
  assert.match(error.message, /\(300 ms\)/);
  assert.ok(elapsed >= 250, `gave up after ${elapsed} ms, before the connect timeout`);
  const conn = await accepting;
  assert.equal((await conn.next())?.type, PacketType.CONNECT);
  assert.equal(await conn.next(), undefined, "the client closed the connection");
});

Deno.test("MQTTClient connect to a port nobody listens on fails fast without retries", async () => {
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  await assert.rejects(client.connect(`mqtt://127.0.0.1:${freePort()}`), { name: "ConnectError" });
});

for (const kind of ["amqtt", "mosquitto"] as const) {
  Deno.test(`MQTTClient with ${kind}: a persistent session outlives a cut link; QoS 1 from both sides of the outage arrives`, async () => {
    let port: number;
    let stop: () => Promise<void>;
    if (kind === "amqtt") {
      const b = new Broker({ listeners: { default: { type: "tcp", bind: "127.0.0.1:0" } } });
      await b.start();
      port = b.listeners[0]!.port;
      stop = () => b.shutdown();
    } else {
      const m = await Mosquitto.start();
      port = m.port;
      stop = () => m[Symbol.asyncDispose]();
    }
    try {
      await using proxy = new TcpProxy(port);
      await using sub = new MQTTClient({
        clientId: `cut-${kind}`,
        config: { reconnect_retries: -1, reconnect_max_interval: 0.3 },
      });
      await using pub = new MQTTClient();
      await sub.connect(`mqtt://127.0.0.1:${proxy.port}`, { cleanSession: false });
      await sub.subscribe([{ topic: "cut/#", qos: 1 }]);
      await pub.connect(`mqtt://127.0.0.1:${port}`);
      for (let i = 0; i < 20; i++) await pub.publish("cut/x", `m${i}`, { qos: 1 });
      await proxy.cut();
      await waitFor(() => !sub.connected, 3000, "the subscriber to notice");
      // The broker queues these for the offline session.
      for (let i = 20; i < 40; i++) await pub.publish("cut/x", `m${i}`, { qos: 1 });
      await waitFor(() => sub.connected, 5000, "the subscriber to reconnect");
      const seen = await collect(sub, 40, 5000);
      assert.deepEqual([...seen].sort(), Array.from({ length: 40 }, (_, i) => `m${i}`).sort());
      assert.equal(proxy.accepted, 2, "one reconnect");
    } finally {
      await stop();
    }
  });
}

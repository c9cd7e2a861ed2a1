import assert from "node:assert/strict";
import { ClientError, ConnectError, MQTTClient } from "../../client.ts";
import type { ApplicationMessage } from "../../client.ts";
import { ConfigError } from "../../src/config/config_error.ts";
import { parseClientConfigYaml } from "../../src/config/client_config.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { delay } from "../_helpers/broker.ts";
import { Mosquitto } from "../_helpers/peers.ts";
import { ScriptedServer, TcpProxy } from "./_helpers.ts";

const text = (m: ApplicationMessage) => new TextDecoder().decode(m.payload);

Deno.test("MQTTClient connects over tcp and resolves with the CONNACK", async () => {
  await using broker = await Mosquitto.start();
  await using client = new MQTTClient();
  assert.match(client.clientId, /^amqtt\/[A-Za-z0-9]{16}$/);
  const result = await client.connect(`mqtt://127.0.0.1:${broker.port}`);
  assert.deepEqual(result, { sessionPresent: false, returnCode: 0 });
  assert.equal(client.connected, true);
  await client.ping();
  await client.disconnect();
  assert.equal(client.connected, false);
});

Deno.test("MQTTClient publishes and receives at QoS 0, 1 and 2", async () => {
  await using broker = await Mosquitto.start();
  const url = `mqtt://127.0.0.1:${broker.port}`;
  await using sub = new MQTTClient({ clientId: "sub" });
  await using pub = new MQTTClient({ clientId: "pub" });
  await sub.connect(url);
  await pub.connect(url);
  assert.deepEqual(await sub.subscribe([{ topic: "t/#", qos: 2 }]), [2]);
  await pub.publish("t/0", "zero", { qos: 0 });
  await pub.publish("t/1", "one", { qos: 1 });
  await pub.publish("t/2", new Uint8Array([2, 2]), { qos: 2 });
  const got = [
    await sub.deliverMessage({ timeout: 3000 }),
    await sub.deliverMessage({ timeout: 3000 }),
    await sub.deliverMessage({ timeout: 3000 }),
  ];
  assert.deepEqual(got.map((m) => [m.topic, m.qos, m.retain]), [
    ["t/0", 0, false],
    ["t/1", 1, false],
    ["t/2", 2, false],
  ]);
  assert.equal(text(got[0]!), "zero");
  assert.deepEqual(got[2]!.payload, new Uint8Array([2, 2]));
  assert.ok(got[1]!.packetId !== undefined && got[1]!.packetId > 0);
});

Deno.test("MQTTClient speaks MQTT 3.1 (protocol level 3) to mosquitto", async () => {
  await using broker = await Mosquitto.start();
  await using client = new MQTTClient();
  const result = await client.connect(`mqtt://127.0.0.1:${broker.port}`, { protocolVersion: 3 });
  assert.equal(result.returnCode, 0);
  await client.subscribe([{ topic: "v3", qos: 1 }]);
  await client.publish("v3", "hello", { qos: 1 });
  assert.equal(text(await client.deliverMessage({ timeout: 3000 })), "hello");
});

Deno.test("MQTTClient batches many publishes made in one turn and all arrive in order", async () => {
  await using broker = await Mosquitto.start();
  const url = `mqtt://127.0.0.1:${broker.port}`;
  const n = 2000;
  // Room for everything: this test reads only after publishing, and QoS 0 past the bound drops.
  await using sub = new MQTTClient({ maxReceiveQueue: n });
  await using pub = new MQTTClient({ maxInflight: 50 });
  await sub.connect(url);
  await pub.connect(url);
  await sub.subscribe([{ topic: "bulk", qos: 1 }]);
  await Promise.all(
    Array.from({ length: n }, (_, i) => pub.publish("bulk", String(i), { qos: i % 2 ? 1 : 0 })),
  );
  const seen: string[] = [];
  for (let i = 0; i < n; i++) seen.push(text(await sub.deliverMessage({ timeout: 5000 })));
  // Order holds within each QoS [MQTT-4.6.0-6]; check each class separately.
  const odd = seen.filter((s) => Number(s) % 2 === 1);
  const even = seen.filter((s) => Number(s) % 2 === 0);
  assert.equal(odd.length, n / 2);
  assert.equal(even.length, n / 2);
  assert.deepEqual(odd.map(Number), [...odd.map(Number)].sort((a, b) => a - b));
  assert.deepEqual(even.map(Number), [...even.map(Number)].sort((a, b) => a - b));
});

Deno.test("MQTTClient applies config defaults and per-topic settings; explicit arguments win", async () => {
  await using broker = await Mosquitto.start();
  const url = `mqtt://127.0.0.1:${broker.port}`;
  await using sub = new MQTTClient();
  await using pub = new MQTTClient({
    config: {
      default_qos: 1,
      default_retain: true,
      topics: { "cfg/two": { qos: 2, retain: false } },
    },
  });
  await sub.connect(url);
  await pub.connect(url);
  await sub.subscribe([{ topic: "cfg/#", qos: 2 }]);
  await pub.publish("cfg/one", "a"); // default_qos 1, default_retain true
  await pub.publish("cfg/two", "b"); // the topic's entry: QoS 2, no retain
  await pub.publish("cfg/three", "c", { qos: 0, retain: false }); // explicit values win
  const got = [
    await sub.deliverMessage({ timeout: 3000 }),
    await sub.deliverMessage({ timeout: 3000 }),
    await sub.deliverMessage({ timeout: 3000 }),
  ];
  assert.deepEqual(got.map((m) => [m.topic, m.qos]), [["cfg/one", 1], ["cfg/two", 2], [
    "cfg/three",
    0,
  ]]);
  // A live subscriber sees RETAIN 0 [MQTT-3.3.1-9]; the retained store tells what was kept.
  await using late = new MQTTClient();
  await late.connect(url);
  await late.subscribe([{ topic: "cfg/#", qos: 0 }]);
  const retained = await late.deliverMessage({ timeout: 3000 });
  assert.equal(retained.topic, "cfg/one");
  assert.equal(retained.retain, true);
  await assert.rejects(late.deliverMessage({ timeout: 200 }), { name: "TimeoutError" });
});

Deno.test("MQTTClient receives a retained message with RETAIN set [MQTT-3.3.1-8]", async () => {
  await using broker = await Mosquitto.start();
  const url = `mqtt://127.0.0.1:${broker.port}`;
  await using pub = new MQTTClient();
  await pub.connect(url);
  await pub.publish("r/t", "kept", { qos: 1, retain: true });
  await using sub = new MQTTClient();
  await sub.connect(url);
  await sub.subscribe([["r/#", 1]]);
  const m = await sub.deliverMessage({ timeout: 3000 });
  assert.equal(m.topic, "r/t");
  assert.equal(m.retain, true);
  assert.equal(text(m), "kept");
});

Deno.test("MQTTClient will is published when the connection drops without DISCONNECT", async () => {
  await using broker = await Mosquitto.start();
  const url = `mqtt://127.0.0.1:${broker.port}`;
  await using proxy = new TcpProxy(broker.port);
  await using watcher = new MQTTClient();
  await watcher.connect(url);
  await watcher.subscribe([{ topic: "wills/#", qos: 1 }]);
  await using dying = new MQTTClient({ config: { auto_reconnect: false } });
  await dying.connect(`mqtt://127.0.0.1:${proxy.port}`, {
    will: { topic: "wills/dying", payload: "gone", qos: 1, retain: false },
  });
  await proxy.cut();
  const will = await watcher.deliverMessage({ timeout: 3000 });
  assert.equal(will.topic, "wills/dying");
  assert.equal(text(will), "gone");
  assert.equal(will.qos, 1);
});

Deno.test("MQTTClient will is not published after disconnect() [MQTT-3.14.4-3]", async () => {
  await using broker = await Mosquitto.start();
  const url = `mqtt://127.0.0.1:${broker.port}`;
  await using watcher = new MQTTClient();
  await watcher.connect(url);
  await watcher.subscribe([{ topic: "wills/#", qos: 1 }]);
  const polite = new MQTTClient({ config: { will: { topic: "wills/polite", message: "x" } } });
  await polite.connect(url);
  await polite.disconnect();
  await assert.rejects(watcher.deliverMessage({ timeout: 300 }), { name: "TimeoutError" });
});

Deno.test("MQTTClient persistent session keeps subscriptions and QoS 1 messages across connections", async () => {
  await using broker = await Mosquitto.start();
  const url = `mqtt://127.0.0.1:${broker.port}`;
  const sub = new MQTTClient({ clientId: "persistent-1" });
  assert.equal((await sub.connect(url, { cleanSession: false })).sessionPresent, false);
  await sub.subscribe([{ topic: "p/#", qos: 1 }]);
  await sub.disconnect();
  await using pub = new MQTTClient();
  await pub.connect(url);
  await pub.publish("p/x", "while away", { qos: 1 });
  const again = await sub.connect(url, { cleanSession: false });
  assert.equal(again.sessionPresent, true);
  const m = await sub.deliverMessage({ timeout: 3000 });
  assert.equal(text(m), "while away");
  await sub.disconnect();
});

Deno.test("MQTTClient refused connection throws ConnectError with the return code", async () => {
  await using broker = await Mosquitto.start({ allowAnonymous: false });
  await using client = new MQTTClient();
  await assert.rejects(
    client.connect(`mqtt://127.0.0.1:${broker.port}`),
    (e: unknown) => e instanceof ConnectError && e.returnCode === 5,
  );
  assert.equal(client.connected, false);
  // Credentials in the URL go into CONNECT; mosquitto refuses the unknown user the same way.
  const bad = await client.connect(`mqtt://someone:secret@127.0.0.1:${broker.port}`).catch((e) =>
    e
  );
  assert.ok(bad instanceof ConnectError);
  assert.equal(bad.returnCode, 5);
});

Deno.test("MQTTClient unreachable broker throws ConnectError after the configured retries", async () => {
  const port = (() => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const p = (l.addr as Deno.NetAddr).port;
    l.close();
    return p;
  })();
  await using client = new MQTTClient({
    config: { reconnect_retries: 2, reconnect_max_interval: 0.05 },
  });
  const error = await client.connect(`mqtt://127.0.0.1:${port}`).catch((e) => e);
  assert.ok(error instanceof ConnectError, String(error));
  assert.equal(error.returnCode, undefined);
  assert.ok(error.cause !== undefined);
});

Deno.test("MQTTClient makes 1 + reconnect_retries connect attempts, then throws ConnectError", async () => {
  // A server that accepts and hangs up at once: each attempt is counted where it arrives.
  // (That the back-off waits min(reconnect_max_interval, 2 ** n) s is backoff_test.ts.)
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let attempts = 0;
  const accepting = (async () => {
    for await (const conn of listener) {
      attempts++;
      conn.close();
    }
  })();
  try {
    await using client = new MQTTClient({
      config: { reconnect_retries: 2, reconnect_max_interval: 0.05 },
    });
    const port = (listener.addr as Deno.NetAddr).port;
    const error = await client.connect(`mqtt://127.0.0.1:${port}`).catch((e) => e);
    assert.ok(error instanceof ConnectError, String(error));
    assert.equal(attempts, 3);
  } finally {
    listener.close();
    await accepting.catch(() => {});
  }
});

Deno.test("MQTTClient subscribe returns 0x80 for a filter the broker refuses", async () => {
  // Mosquitto grants filters its ACL denies, so a scripted broker gives the refusal.
  await using server = new ScriptedServer();
  await using client = new MQTTClient();
  const serving = (async () => {
    const [conn] = await server.acceptSession();
    const sub = await conn.next();
    assert.equal(sub?.type, PacketType.SUBSCRIBE);
    if (sub?.type !== PacketType.SUBSCRIBE) return;
    await conn.send({ type: PacketType.SUBACK, packetId: sub.packetId, reasonCodes: [2, 0x80] });
  })();
  await client.connect(`mqtt://127.0.0.1:${server.port}`);
  assert.deepEqual(
    await client.subscribe([{ topic: "allowed/a", qos: 2 }, { topic: "secret/#", qos: 1 }]),
    [2, 0x80],
  );
  await serving;
  await client.disconnect();
});

Deno.test("MQTTClient unsubscribe stops delivery", async () => {
  await using broker = await Mosquitto.start();
  await using client = new MQTTClient();
  await client.connect(`mqtt://127.0.0.1:${broker.port}`);
  await client.subscribe([{ topic: "u", qos: 1 }]);
  await client.unsubscribe(["u"]);
  await client.publish("u", "x", { qos: 1 });
  await assert.rejects(client.deliverMessage({ timeout: 200 }), { name: "TimeoutError" });
});

Deno.test("MQTTClient rejects a wildcard topic, QoS 3 and use before connect", async () => {
  await using client = new MQTTClient();
  await assert.rejects(client.publish("a/+", "x"), TypeError);
  await assert.rejects(client.publish("a/#", "x"), TypeError);
  // @ts-expect-error: checking a value the type forbids
  await assert.rejects(client.publish("a", "x", { qos: 3 }), RangeError);
  // @ts-expect-error: checking a value the type forbids
  await assert.rejects(client.subscribe([{ topic: "a", qos: 3 }]), RangeError);
  await assert.rejects(client.subscribe([{ topic: "a/#/b", qos: 0 }]), TypeError);
  await assert.rejects(client.subscribe([]), TypeError);
  await assert.rejects(client.publish("a", "x"), ClientError);
  await assert.rejects(client.ping(), ClientError);
  await assert.rejects(client.deliverMessage(), ClientError);
  await assert.rejects(client.connect("http://127.0.0.1"), TypeError);
  assert.throws(() => new MQTTClient({ config: { default_qos: 3 as 0 } }), ConfigError);
  assert.throws(() => new MQTTClient({ config: { no_such_key: 1 } as never }), ConfigError);
  assert.throws(() => new MQTTClient({ maxReceiveQueue: -1 }), RangeError);
  assert.throws(() => new MQTTClient({ maxReceiveQueue: 2.5 }), RangeError);
});

Deno.test("MQTTClient messages() yields in order and ends on disconnect", async () => {
  await using broker = await Mosquitto.start();
  const client = new MQTTClient();
  await client.connect(`mqtt://127.0.0.1:${broker.port}`);
  await client.subscribe([{ topic: "it", qos: 1 }]);
  for (let i = 0; i < 3; i++) await client.publish("it", `m${i}`, { qos: 1 });
  const seen: string[] = [];
  for await (const m of client.messages()) {
    seen.push(text(m));
    if (seen.length === 3) break;
  }
  assert.deepEqual(seen, ["m0", "m1", "m2"]);
  const iterating = (async () => {
    const rest: string[] = [];
    for await (const m of client.messages()) rest.push(text(m));
    return rest;
  })();
  await delay(50);
  await client.disconnect();
  assert.deepEqual(await iterating, []);
});

Deno.test("MQTTClient disconnect settles every pending operation", async () => {
  await using broker = await Mosquitto.start();
  await using proxy = new TcpProxy(broker.port);
  const client = new MQTTClient();
  await client.connect(`mqtt://127.0.0.1:${proxy.port}`);
  proxy.blackhole(); // nothing comes back: QoS 1 and ping stay pending
  const settled = Promise.allSettled([
    client.publish("x", "y", { qos: 1 }),
    client.ping(),
    client.deliverMessage(),
    client.subscribe([{ topic: "s", qos: 0 }]),
  ]);
  await delay(50);
  await client.disconnect();
  for (const result of await settled) {
    assert.equal(result.status, "rejected");
    assert.ok(result.status === "rejected" && result.reason instanceof ClientError);
  }
});

Deno.test("MQTTClient CONNECT carries aMQTT's keepalive (keep_alive - ping_delay), URL credentials and the config will", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({
    clientId: "fields",
    config: parseClientConfigYaml(
      "cleansession: false\nwill:\n  topic: status/fields\n  message: bye\n  qos: 1\n  retain: true\n",
    ),
  });
  const accepting = server.acceptSession();
  await client.connect(`mqtt://us%40er:p%3Ass@127.0.0.1:${server.port}`);
  const [, connect] = await accepting;
  assert.equal(connect.keepAlive, 9);
  assert.equal(connect.clientId, "fields");
  assert.equal(connect.clean, false);
  assert.equal(connect.protocolName, "MQTT");
  assert.equal(connect.username, "us@er");
  assert.deepEqual(connect.password, new TextEncoder().encode("p:ss"));
  assert.deepEqual(connect.will, {
    topic: "status/fields",
    payload: new TextEncoder().encode("bye"),
    qos: 1,
    retain: true,
  });
});

Deno.test("MQTTClient closes the connection on a packet above maxPacketSize", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({ maxPacketSize: 100, config: { auto_reconnect: false } });
  const accepting = server.acceptSession();
  await client.connect(`mqtt://127.0.0.1:${server.port}`);
  const [conn] = await accepting;
  const waiting = client.deliverMessage().catch((e) => e);
  await conn.send({
    type: PacketType.PUBLISH,
    topic: "big",
    payload: new Uint8Array(1000),
    qos: 0,
    retain: false,
    dup: false,
  });
  assert.equal(await conn.next(), undefined, "the client closed the connection");
  assert.ok(await waiting instanceof ClientError);
  assert.equal(client.connected, false);
  assert.throws(() => new MQTTClient({ maxPacketSize: 1 }), RangeError);
});

Deno.test("MQTTClient refuses a second connect while the first is under way", async () => {
  await using broker = await Mosquitto.start();
  await using client = new MQTTClient();
  const url = `mqtt://127.0.0.1:${broker.port}`;
  const first = client.connect(url);
  await assert.rejects(client.connect(url), /already connecting/);
  assert.equal((await first).returnCode, 0);
  await assert.rejects(client.connect(url), /already connected/);
});

Deno.test("MQTTClient publish resolves on PUBACK (QoS 1) and PUBCOMP (QoS 2), not before [MQTT-4.3.2-1] [MQTT-4.3.3-1]", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const accepting = server.acceptSession();
  await client.connect(`mqtt://127.0.0.1:${server.port}`);
  const [conn] = await accepting;
  const done: string[] = [];
  const q1 = client.publish("a", "1", { qos: 1 }).then(() => done.push("q1"));
  const q2 = client.publish("b", "2", { qos: 2 }).then(() => done.push("q2"));
  const p1 = await conn.next();
  const p2 = await conn.next();
  assert.ok(p1?.type === PacketType.PUBLISH && p2?.type === PacketType.PUBLISH);
  await delay(50);
  assert.deepEqual(done, [], "nothing settles before its acknowledgement");
  await conn.send({ type: PacketType.PUBREC, packetId: p2.packetId! });
  assert.deepEqual(await conn.next(), { type: PacketType.PUBREL, packetId: p2.packetId });
  await delay(50);
  assert.deepEqual(done, [], "PUBREC does not complete QoS 2");
  await conn.send({ type: PacketType.PUBACK, packetId: p1.packetId! });
  await q1;
  assert.deepEqual(done, ["q1"]);
  await conn.send({ type: PacketType.PUBCOMP, packetId: p2.packetId! });
  await q2;
  assert.deepEqual(done, ["q1", "q2"]);
});

Deno.test("MQTTClient closes the connection when a QoS 1 PUBLISH is answered with PUBREC, and resends it after reconnecting [MQTT-4.8.0-1]", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({ config: { cleansession: false, reconnect_retries: 1 } });
  const accepting = server.acceptSession();
  await client.connect(`mqtt://127.0.0.1:${server.port}`);
  const [first] = await accepting;
  const published = client.publish("t", "x", { qos: 1 });
  const publish = await first.next();
  assert.equal(publish?.type, PacketType.PUBLISH);
  if (publish?.type !== PacketType.PUBLISH) return;
  const again = server.acceptSession(true);
  await first.send({ type: PacketType.PUBREC, packetId: publish.packetId! });
  assert.equal(await first.next(), undefined, "the client closed the connection");
  // The message was not acknowledged: it goes again, with DUP and its id, on the next connection.
  const [second] = await again;
  const resent = await second.next();
  assert.equal(resent?.type === PacketType.PUBLISH && resent.dup, true);
  assert.equal(resent?.type === PacketType.PUBLISH && resent.packetId, publish.packetId);
  await second.send({ type: PacketType.PUBACK, packetId: publish.packetId! });
  await published;
});

Deno.test("MQTTClient ignores a PUBACK for a packet id not in flight and stays connected", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  const accepting = server.acceptSession();
  await client.connect(`mqtt://127.0.0.1:${server.port}`);
  const [conn] = await accepting;
  await conn.send({ type: PacketType.PUBACK, packetId: 4242 });
  // Still connected: a QoS 1 round trip after the stray PUBACK completes on the same connection.
  const published = client.publish("t", "x", { qos: 1 });
  const publish = await conn.next();
  assert.equal(publish?.type, PacketType.PUBLISH);
  if (publish?.type !== PacketType.PUBLISH) return;
  await conn.send({ type: PacketType.PUBACK, packetId: publish.packetId! });
  await published;
  assert.equal(client.connected, true);
});

/**
 * MQTTClient with `protocolVersion: 5` against a real MQTT 5.0 broker: Mosquitto (Debian), started
 * per test on a free port with its own configuration. Session expiry, server limits, reason codes,
 * user properties, subscription options and identifiers, request/response, topic aliases,
 * session takeover and maximum packet size.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type ApplicationMessage,
  ClientError,
  ConnectError,
  type ConnectOptions,
  MQTTClient,
  type MQTTClientOptions,
  PublishError,
} from "../../client.ts";
import { waitFor } from "../_helpers/broker.ts";
import { Mosquitto } from "../_helpers/peers.ts";
import { TcpProxy } from "./_helpers.ts";

const text = (m: ApplicationMessage) => new TextDecoder().decode(m.payload);

/** A v5 client, connected, with reconnects off unless the options say otherwise. */
async function v5(
  url: string,
  clientId: string,
  connect: ConnectOptions = {},
  options: MQTTClientOptions = {},
): Promise<MQTTClient> {
  const client = new MQTTClient({ clientId, config: { auto_reconnect: false }, ...options });
  await client.connect(url, { protocolVersion: 5, ...connect });
  return client;
}

/** Proves a client's connection is still up: a PINGREQ gets its PINGRESP. */
async function stillUp(client: MQTTClient): Promise<void> {
  await client.ping();
  assert.equal(client.connected, true);
}

Deno.test("MQTTClient v5 + mosquitto: CONNACK limits are honoured [MQTT-3.2.2-11] [MQTT-3.2.2-14] [MQTT-3.2.2-15] [MQTT-3.3.4-7]", async () => {
  await using broker = await Mosquitto.start({
    extra: [
      "max_inflight_messages 3",
      "max_packet_size 200",
      "max_qos 1",
      "retain_available false",
    ],
  });
  await using client = new MQTTClient({ clientId: "limits", config: { auto_reconnect: false } });
  const result = await client.connect(`mqtt://127.0.0.1:${broker.port}`, { protocolVersion: 5 });
  assert.equal(result.properties?.receiveMaximum, 3);
  assert.equal(result.properties?.maximumPacketSize, 200);
  assert.equal(result.properties?.maximumQoS, 1);
  assert.equal(result.properties?.retainAvailable, 0);

  const refusals = await Promise.all([
    client.publish("l/a", "x", { qos: 2 }).catch((e) => e),
    client.publish("l/a", "x", { qos: 0, retain: true }).catch((e) => e),
    client.publish("l/a", new Uint8Array(300), { qos: 1 }).catch((e) => e),
  ]);
  assert.deepEqual(
    refusals.map((e) => e instanceof PublishError && e.reasonCode),
    [0x9b, 0x9a, 0x95],
  );
  // Mosquitto would have disconnected us for any of them; the connection is up.
  await stillUp(client);
  // Twenty QoS 1 messages through a window of three all complete.
  await client.subscribe([{ topic: "l/#", qos: 1 }]);
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) => client.publish(`l/${i}`, `m${i}`, { qos: 1 })),
  );
  assert.equal(results.length, 20);
  const got = [];
  for (let i = 0; i < 20; i++) got.push(text(await client.deliverMessage({ timeout: 5000 })));
  assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => `m${i}`));
});

Deno.test("MQTTClient v5 + mosquitto: refusals carry reason codes — CONNACK 0x87, PUBACK 0x87", async () => {
  await using closed = await Mosquitto.start({ allowAnonymous: false });
  await using refused = new MQTTClient({ config: { auto_reconnect: false } });
  const error = await refused.connect(`mqtt://127.0.0.1:${closed.port}`, { protocolVersion: 5 })
    .catch((e) => e);
  assert.ok(error instanceof ConnectError);
  assert.equal(error.returnCode, 0x87);

  await using broker = await Mosquitto.start({
    extra: ["acl_file {dir}/acl"],
    files: { acl: "topic readwrite open/#\n" },
  });
  await using client = await v5(`mqtt://127.0.0.1:${broker.port}`, "acl");
  const denied = await client.publish("closed/x", "x", { qos: 1 }).catch((e) => e);
  assert.ok(denied instanceof PublishError);
  assert.equal(denied.reasonCode, 0x87);
  // Allowed, and nobody listens: 0x10 No matching subscribers is a success code.
  await client.publish("open/x", "x", { qos: 1 });
  await stillUp(client);
});

Deno.test("MQTTClient v5 + mosquitto: a session with an expiry interval outlives the connection [MQTT-3.1.2-23]", async () => {
  await using broker = await Mosquitto.start();
  const url = `mqtt://127.0.0.1:${broker.port}`;
  const persistent: ConnectOptions = { cleanSession: false, sessionExpiryInterval: 60 };
  await using sub = await v5(url, "sleeper", persistent);
  await sub.subscribe([{ topic: "se/#", qos: 1 }]);
  await sub.disconnect();
  await using pub = await v5(url, "waker");
  await pub.publish("se/1", "while you slept", { qos: 1 });
  const resumed = await sub.connect(url, { protocolVersion: 5, ...persistent });
  assert.equal(resumed.sessionPresent, true);
  assert.equal(text(await sub.deliverMessage({ timeout: 5000 })), "while you slept");
  // DISCONNECT with session expiry 0 ends the session now.
  await sub.disconnect({ sessionExpiryInterval: 0 });
  const fresh = await sub.connect(url, { protocolVersion: 5, ...persistent });
  assert.equal(fresh.sessionPresent, false);
});

Deno.test("MQTTClient v5 + mosquitto: with session expiry 0 the session ends with the connection", async () => {
  await using broker = await Mosquitto.start();
  const url = `mqtt://127.0.0.1:${broker.port}`;
  await using client = await v5(url, "brief", { cleanSession: false });
  await client.subscribe([{ topic: "b/#", qos: 1 }]);
  await client.disconnect();
  const again = await client.connect(url, { protocolVersion: 5, cleanSession: false });
  assert.equal(again.sessionPresent, false);
});

Deno.test("MQTTClient v5 + mosquitto: user properties and message properties arrive unaltered and in order [MQTT-3.3.2-17] [MQTT-3.3.2-18]", async () => {
  await using broker = await Mosquitto.start();
  const url = `mqtt://127.0.0.1:${broker.port}`;
  await using sub = await v5(url, "up-sub");
  await sub.subscribe([{ topic: "up/#", qos: 1 }]);
  await using pub = await v5(url, "up-pub");
  await pub.publish("up/1", "{}", {
    qos: 1,
    properties: {
      userProperties: [["z", "1"], ["a", "2"], ["z", "3"]],
      contentType: "application/json",
      payloadFormatIndicator: 1,
      correlationData: new Uint8Array([9, 8, 7]),
      responseTopic: "up/reply",
    },
  });
  const m = await sub.deliverMessage({ timeout: 5000 });
  assert.deepEqual(m.properties?.userProperties, [["z", "1"], ["a", "2"], ["z", "3"]]);
  assert.equal(m.properties?.contentType, "application/json");
  assert.equal(m.properties?.payloadFormatIndicator, 1);
  assert.deepEqual(m.properties?.correlationData, new Uint8Array([9, 8, 7]));
  assert.equal(m.properties?.responseTopic, "up/reply");
});

Deno.test("MQTTClient v5 + mosquitto: No Local keeps a client's own messages from it [MQTT-3.8.3-3]", async () => {
  await using broker = await Mosquitto.start();
  const url = `mqtt://127.0.0.1:${broker.port}`;
  await using client = await v5(url, "nl");
  await client.subscribe([{ topic: "nl/mine", qos: 1, noLocal: true }, {
    topic: "nl/echo",
    qos: 1,
  }]);
  await client.publish("nl/mine", "not back to me", { qos: 1 });
  await client.publish("nl/echo", "back to me", { qos: 1 });
  // Order is kept: had the first come back, it would be read first.
  const m = await client.deliverMessage({ timeout: 5000 });
  assert.equal(m.topic, "nl/echo");
  await using other = await v5(url, "nl-other");
  await other.publish("nl/mine", "from someone else", { qos: 1 });
  assert.equal(text(await client.deliverMessage({ timeout: 5000 })), "from someone else");
});

Deno.test("MQTTClient v5 + mosquitto: Retain As Published and Retain Handling [MQTT-3.3.1-12] [MQTT-3.3.1-10] [MQTT-3.3.1-11]", async () => {
  await using broker = await Mosquitto.start();
  const url = `mqtt://127.0.0.1:${broker.port}`;
  await using pub = await v5(url, "rh-pub");
  await pub.publish("rh/kept", "old", { qos: 1, retain: true });

  await using never = await v5(url, "rh-never");
  await never.subscribe([{ topic: "rh/#", qos: 1, retainHandling: 2 }]);
  await using once = await v5(url, "rh-once");
  await once.subscribe([{ topic: "rh/#", qos: 1, retainHandling: 1 }]);
  assert.equal(text(await once.deliverMessage({ timeout: 5000 })), "old");
  // Subscribing again is not new: no retained message this time [MQTT-3.3.1-10].
  await once.subscribe([{ topic: "rh/#", qos: 1, retainHandling: 1 }]);

  await using rap = await v5(url, "rh-rap");
  await rap.subscribe([{ topic: "rh/live", qos: 1, retainAsPublished: true }]);
  await using plain = await v5(url, "rh-plain");
  await plain.subscribe([{ topic: "rh/live", qos: 1 }]);
  await pub.publish("rh/live", "new", { qos: 1, retain: true });
  const kept = await rap.deliverMessage({ timeout: 5000 });
  assert.equal(kept.retain, true); // as published [MQTT-3.3.1-12]
  assert.equal((await plain.deliverMessage({ timeout: 5000 })).retain, false);
  // retainHandling 2 got no retained message [MQTT-3.3.1-11]; the first it reads is the live one.
  assert.equal(text(await never.deliverMessage({ timeout: 5000 })), "new");
  assert.equal(text(await once.deliverMessage({ timeout: 5000 })), "new");
});

Deno.test("MQTTClient v5 + mosquitto: delivered messages carry the subscription identifiers, also after a resubscribe [MQTT-3.3.4-3]", async () => {
  await using broker = await Mosquitto.start();
  await using proxy = new TcpProxy(broker.port);
  const url = `mqtt://127.0.0.1:${proxy.port}`;
  await using client = await v5(url, "sid", {}, {
    config: { auto_reconnect: true, reconnect_max_interval: 0.05 },
  });
  await client.subscribe([{ topic: "sid/#", qos: 1 }], { subscriptionIdentifier: 1 });
  await client.subscribe([{ topic: "sid/+", qos: 1 }], { subscriptionIdentifier: 2 });
  await client.publish("sid/x", "x", { qos: 1 });
  const ids = [];
  for (let i = 0; i < 2; i++) {
    ids.push(
      ...(await client.deliverMessage({ timeout: 5000 })).properties!.subscriptionIdentifier!,
    );
  }
  assert.deepEqual(ids.sort(), [1, 2]);
  // A clean reconnect loses the session; the client resubscribes with the same identifiers.
  await proxy.cut();
  await waitFor(() => proxy.accepted >= 2 && client.connected, 10_000, "the reconnect");
  await using pub = await v5(`mqtt://127.0.0.1:${broker.port}`, "sid-pub");
  // The resubscribe may still be on its way: publish until both subscriptions answered. A
  // resubscribe without the identifiers would deliver messages without them and fail here.
  const again = new Set<number>();
  while (again.size < 2) {
    await pub.publish("sid/y", "y", { qos: 1 });
    const m = await client.deliverMessage({ timeout: 5000 });
    for (const id of m.properties!.subscriptionIdentifier!) again.add(id);
  }
  assert.deepEqual([...again].sort(), [1, 2]);
});

Deno.test("MQTTClient v5 + mosquitto: request() gets the response that respond() sends", async () => {
  await using broker = await Mosquitto.start();
  const url = `mqtt://127.0.0.1:${broker.port}`;
  await using service = await v5(url, "svc");
  await service.subscribe([{ topic: "svc/upper", qos: 1 }]);
  const serving = (async () => {
    for (let i = 0; i < 2; i++) {
      const request = await service.deliverMessage({ timeout: 5000 });
      await service.respond(request, text(request).toUpperCase(), {
        properties: { userProperties: [["served-by", "svc"]] },
      });
    }
  })();
  await using client = await v5(url, "asker");
  const [a, b] = await Promise.all([
    client.request("svc/upper", "abc", { timeout: 5000 }),
    client.request("svc/upper", "xyz", { timeout: 5000 }),
  ]);
  await serving;
  assert.equal(text(a), "ABC");
  assert.equal(text(b), "XYZ");
  assert.deepEqual(a.properties?.userProperties, [["served-by", "svc"]]);
  // Responses are consumed by request(), not queued for deliverMessage.
  assert.equal(client.receiveQueueSize, 0);
});

Deno.test("MQTTClient v5 + mosquitto: request() times out when nobody answers", async () => {
  await using broker = await Mosquitto.start();
  await using client = await v5(`mqtt://127.0.0.1:${broker.port}`, "lonely");
  const error = await client.request("nobody/home", "?", { timeout: 200 }).catch((e) => e);
  assert.ok(error instanceof DOMException);
  assert.equal(error.name, "TimeoutError");
  await stillUp(client);
});

Deno.test("MQTTClient v5 + mosquitto: a second connection with the same client id takes the session over [MQTT-3.1.4-3]", async () => {
  await using broker = await Mosquitto.start();
  const url = `mqtt://127.0.0.1:${broker.port}`;
  const kicks: number[] = [];
  // Mosquitto 2.0.11 closes the old connection without DISCONNECT 0x8E (the scripted tests in
  // v5_disconnect_test.ts cover the 0x8E policy), so this client must not reconnect: it would
  // take the session back, and the two would take turns for ever.
  await using first = await v5(url, "twin", {}, {
    onServerDisconnect: (e) => kicks.push(e.reasonCode),
  });
  const reading = first.deliverMessage().catch((e) => e);
  await using second = await v5(url, "twin");
  const error = await reading;
  assert.ok(error instanceof ClientError);
  assert.equal(first.connected, false);
  // Either the broker said why (0x8E) or it said nothing; never another code.
  assert.ok(kicks.length === 0 || (kicks.length === 1 && kicks[0] === 0x8e));
  // The newcomer keeps the session: it is still connected and works.
  await second.subscribe([{ topic: "twin/#", qos: 1 }]);
  await second.publish("twin/x", "mine", { qos: 1 });
  assert.equal(text(await second.deliverMessage({ timeout: 5000 })), "mine");
  await stillUp(second);
});

Deno.test("MQTTClient v5 + mosquitto: outbound topic aliases are accepted and resolved by the broker", async () => {
  await using broker = await Mosquitto.start();
  const url = `mqtt://127.0.0.1:${broker.port}`;
  await using sub = await v5(url, "al-sub");
  await sub.subscribe([{ topic: "al/#", qos: 1 }]);
  await using pub = await v5(url, "al-pub", {}, { topicAliases: true });
  for (let i = 0; i < 15; i++) {
    await pub.publish(`al/${i % 12}`, `m${i}`, { qos: i % 3 as 0 | 1 | 2 });
  }
  const got = [];
  for (let i = 0; i < 15; i++) {
    const m = await sub.deliverMessage({ timeout: 5000 });
    got.push(`${m.topic}=${text(m)}`);
  }
  assert.deepEqual(got, Array.from({ length: 15 }, (_, i) => `al/${i % 12}=m${i}`));
  await stillUp(pub);
});

Deno.test("MQTTClient v5 + mosquitto: the broker sends nothing above our Maximum Packet Size [MQTT-3.1.2-24]", async () => {
  await using broker = await Mosquitto.start();
  const url = `mqtt://127.0.0.1:${broker.port}`;
  await using small = await v5(url, "small", {}, { maxPacketSize: 128 });
  await small.subscribe([{ topic: "mp/#", qos: 1 }]);
  await using pub = await v5(url, "mp-pub");
  await pub.publish("mp/big", new Uint8Array(1000), { qos: 1 });
  await pub.publish("mp/small", "fits", { qos: 1 });
  const m = await small.deliverMessage({ timeout: 5000 });
  assert.equal(m.topic, "mp/small");
  await stillUp(small);
});

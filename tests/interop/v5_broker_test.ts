/**
 * Interop at MQTT 5.0 against our broker: our own `MQTTClient` (request/response, subscription
 * identifiers, session expiry), MQTT.js with `protocolVersion: 5` (user properties, topic aliases,
 * session expiry) and Debian's `mosquitto_pub`/`mosquitto_sub -V mqttv5` with `-D` properties.
 *
 * @module
 */

import assert from "node:assert/strict";
import mqtt from "mqtt";
import { MQTTClient } from "../../src/client/mqtt_client.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import { runTool, Tool } from "../_helpers/peers.ts";
import { interopTest, subscriberLines, whenSubscribed } from "./_peers.ts";

const test = (name: string, fn: () => Promise<void>) => interopTest(name, fn, { settleMs: 20 });
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

test("interop v5: our client's request/response works end to end through the broker [MQTT-3.3.2-15] [MQTT-3.3.2-16]", async () => {
  await using b = await startBroker();
  const url = `mqtt://127.0.0.1:${b.port}`;
  await using responder = new MQTTClient({
    clientId: "responder",
    config: { auto_reconnect: false },
  });
  await responder.connect(url, { protocolVersion: 5 });
  await responder.subscribe([{ topic: "svc/echo", qos: 1 }]);
  const serving = (async () => {
    const request = await responder.deliverMessage({ timeout: 10_000 });
    await responder.respond(request, `echo ${decode(request.payload)}`);
  })();
  await using requester = new MQTTClient({
    clientId: "requester",
    config: { auto_reconnect: false },
  });
  await requester.connect(url, { protocolVersion: 5 });
  const reply = await requester.request("svc/echo", "ping", { timeout: 10_000 });
  await serving;
  assert.equal(decode(reply.payload), "echo ping");
});

test("interop v5: our client gets the Subscription Identifier and a kept session [MQTT-3.3.4-3] [MQTT-3.1.2-23]", async () => {
  await using b = await startBroker();
  const url = `mqtt://127.0.0.1:${b.port}`;
  {
    await using c = new MQTTClient({ clientId: "keeper", config: { auto_reconnect: false } });
    await c.connect(url, { protocolVersion: 5, cleanSession: false, sessionExpiryInterval: 60 });
    await c.subscribe([{ topic: "keep/#", qos: 1 }], { subscriptionIdentifier: 42 });
    await c.disconnect();
  }
  await using pub = new MQTTClient({ clientId: "pub", config: { auto_reconnect: false } });
  await pub.connect(url, { protocolVersion: 5 });
  await pub.publish("keep/x", "while away", { qos: 1 });
  await using again = new MQTTClient({ clientId: "keeper", config: { auto_reconnect: false } });
  const connack = await again.connect(url, {
    protocolVersion: 5,
    cleanSession: false,
    sessionExpiryInterval: 60,
  });
  assert.equal(connack.sessionPresent, true);
  const m = await again.deliverMessage({ timeout: 10_000 });
  assert.equal(decode(m.payload), "while away");
  assert.deepEqual(m.properties?.subscriptionIdentifier, [42]);
});

test("interop v5: MQTT.js with protocolVersion 5 gets user properties, uses topic aliases and a kept session [MQTT-3.3.2-17] [MQTT-3.3.2-12]", async () => {
  await using b = await startBroker({ topic_alias_maximum: 5 });
  const url = `mqtt://127.0.0.1:${b.port}`;
  const common = { protocolVersion: 5 as const, reconnectPeriod: 0, connectTimeout: 5000 };
  const sub = await mqtt.connectAsync(url, {
    ...common,
    clientId: "js5-sub",
    clean: false,
    properties: { sessionExpiryInterval: 60 },
  });
  const pub = await mqtt.connectAsync(url, {
    ...common,
    clientId: "js5-pub",
    autoUseTopicAlias: true,
  });
  try {
    const got: { topic: string; payload: string; user?: unknown }[] = [];
    sub.on("message", (topic, payload, packet) => {
      got.push({ topic, payload: payload.toString(), user: packet.properties?.userProperties });
    });
    await sub.subscribeAsync("js5/#", { qos: 1 });
    for (const n of [1, 2, 3]) {
      await pub.publishAsync("js5/alias", `m${n}`, {
        qos: 1,
        properties: { userProperties: { n: String(n) } },
      });
    }
    await waitFor(() => got.length >= 3, 5000, "three messages");
    assert.deepEqual(got.map((m) => [m.topic, m.payload]), [
      ["js5/alias", "m1"],
      ["js5/alias", "m2"],
      ["js5/alias", "m3"],
    ]);
    assert.deepEqual({ ...(got[2].user as object) }, { n: "3" });
    await sub.endAsync();
    await waitFor(
      () => b.broker.clients().find((x) => x.clientId === "js5-sub")?.connected === false,
      5000,
      "the subscriber offline",
    );
    assert.ok(b.broker.clients().some((x) => x.clientId === "js5-sub"), "its session is kept");
  } finally {
    await pub.endAsync();
    await sub.endAsync();
  }
});

test("interop v5: mosquitto_pub -V mqttv5 -D user-property reaches mosquitto_sub -V mqttv5 [MQTT-3.3.2-17]", async () => {
  await using b = await startBroker();
  const base = (id: string) => ["-h", "127.0.0.1", "-p", String(b.port), "-i", id, "-V", "mqttv5"];
  const sub = await whenSubscribed(
    new Tool("mosquitto_sub", [
      ...base("msub5"),
      "-t",
      "m5/#",
      "-q",
      "1",
      "-C",
      "1",
      "-W",
      "6",
      "-F",
      "%t %p %P",
    ]),
    b.broker,
    { clientId: "msub5", topic: "m5/#", ms: 4000 },
  );
  await using _sub = sub;
  const result = await runTool("mosquitto_pub", [
    ...base("mpub5"),
    "-t",
    "m5/x",
    "-q",
    "1",
    "-m",
    "hello",
    "-D",
    "publish",
    "user-property",
    "room",
    "kitchen",
  ]);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(await subscriberLines(sub), ["m5/x hello room:kitchen"]);
});

test("interop v5: MQTT.js resolves the broker's outbound topic aliases [MQTT-3.3.2-11]", async () => {
  await using b = await startBroker({ outbound_topic_aliases: true });
  const url = `mqtt://127.0.0.1:${b.port}`;
  const common = { protocolVersion: 5 as const, reconnectPeriod: 0, connectTimeout: 5000 };
  const sub = await mqtt.connectAsync(url, {
    ...common,
    clientId: "js5-alias-sub",
    properties: { topicAliasMaximum: 4 },
  });
  try {
    const topics: string[] = [];
    const aliases: (number | undefined)[] = [];
    sub.on("message", (topic, _payload, packet) => {
      topics.push(topic);
      aliases.push(packet.properties?.topicAlias);
    });
    await sub.subscribeAsync("alias5/#", { qos: 1 });
    await using pub = await TestPublisher.open(url);
    for (let i = 0; i < 3; i++) await pub.publish("alias5/t", `m${i}`);
    await waitFor(() => topics.length >= 3, 5000, "three messages");
    assert.deepEqual(topics, ["alias5/t", "alias5/t", "alias5/t"]);
    assert.deepEqual(aliases, [1, 1, 1], "sent with the broker's alias");
  } finally {
    await sub.endAsync();
  }
});

/** A plain 3.1.1 publisher (our client). */
class TestPublisher implements AsyncDisposable {
  #client: MQTTClient;
  private constructor(client: MQTTClient) {
    this.#client = client;
  }
  static async open(url: string): Promise<TestPublisher> {
    const client = new MQTTClient({ clientId: "alias-pub", config: { auto_reconnect: false } });
    await client.connect(url);
    return new TestPublisher(client);
  }
  async publish(topic: string, payload: string): Promise<void> {
    await this.#client.publish(topic, payload, { qos: 1 });
  }
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#client.disconnect();
  }
}

/**
 * Interop: MQTT.js (npm:mqtt) against our broker over tcp, tls, ws and wss — QoS 0/1/2, retained
 * messages, wills, persistent sessions, MQTT 3.1 and 3.1.1.
 *
 * @module
 */

import assert from "node:assert/strict";
import mqtt from "mqtt";
import type { IClientOptions, MqttClient } from "mqtt";
import { waitFor } from "../_helpers/broker.ts";
import { SharedCerts } from "../_helpers/certs.ts";
import {
  assertConnections,
  interopTest,
  type OurBroker,
  startOurBroker,
  type Transport,
  TRANSPORTS,
} from "./_peers.ts";

const certs = new SharedCerts();

// MQTT.js finishes closing on setImmediate callbacks: let them run in the test that made them.
const test = (name: string, fn: () => Promise<void>) => interopTest(name, fn, { settleMs: 20 });

interface Received {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
}

/** An MQTT.js client that records what it receives. */
class JsClient implements AsyncDisposable {
  readonly client: MqttClient;
  readonly received: Received[] = [];

  constructor(client: MqttClient) {
    this.client = client;
    client.on("message", (topic, payload, packet) => {
      this.received.push({
        topic,
        payload: payload.toString(),
        qos: packet.qos,
        retain: packet.retain,
      });
    });
  }

  static async connect(
    b: OurBroker,
    transport: Transport,
    options: IClientOptions = {},
  ): Promise<JsClient> {
    const { ca } = await certs.get();
    const client = await mqtt.connectAsync(b.url(transport), {
      ca,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...options,
    });
    return new JsClient(client);
  }

  async waitFor(count: number, what: string): Promise<Received[]> {
    await waitFor(() => this.received.length >= count, 5000, what);
    return this.received;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.client.endAsync();
  }
}

for (const t of TRANSPORTS) {
  test(`MQTT.js over ${t} -> amqtt: QoS 0, 1 and 2 publish and subscribe`, async () => {
    await using b = await startOurBroker(await certs.get());
    await using sub = await JsClient.connect(b, t, { clientId: `js-sub-${t}` });
    await sub.client.subscribeAsync("js/+", { qos: 2 });
    await using pub = await JsClient.connect(b, t, { clientId: `js-pub-${t}` });
    for (const qos of [0, 1, 2] as const) {
      await pub.client.publishAsync(`js/q${qos}`, `payload ${qos}`, { qos });
    }
    const got = await sub.waitFor(3, "three messages");
    const byTopic = Object.fromEntries(got.map((m) => [m.topic, m]));
    for (const qos of [0, 1, 2]) {
      assert.equal(byTopic[`js/q${qos}`]?.payload, `payload ${qos}`);
      assert.equal(byTopic[`js/q${qos}`]?.qos, qos, "delivered at the publish QoS [MQTT-3.8.4-6]");
    }
    assertConnections(b, t, 4);
  });

  test(`MQTT.js over ${t} -> amqtt: retained message goes to a later subscriber with RETAIN set [MQTT-3.3.1-6]`, async () => {
    await using b = await startOurBroker(await certs.get());
    await using pub = await JsClient.connect(b, t, { clientId: `js-rpub-${t}` });
    await pub.client.publishAsync("js/retained", "kept", { qos: 1, retain: true });
    await using sub = await JsClient.connect(b, t, { clientId: `js-rsub-${t}` });
    await sub.client.subscribeAsync("js/#", { qos: 1 });
    const [m] = await sub.waitFor(1, "the retained message");
    assert.deepEqual(m, { topic: "js/retained", payload: "kept", qos: 1, retain: true });
    assertConnections(b, t, 4);
    // A retained message with an empty payload clears it [MQTT-3.3.1-10].
    await pub.client.publishAsync("js/retained", "", { qos: 1, retain: true });
    await waitFor(
      () => !b.broker.retainedMessages().some((r) => r.topic === "js/retained"),
      3000,
      "the retained clear",
    );
  });

  test(`MQTT.js over ${t} -> amqtt: will is published when the connection drops [MQTT-3.1.2-8]`, async () => {
    await using b = await startOurBroker(await certs.get());
    await using sub = await JsClient.connect(b, t, { clientId: `js-wsub-${t}` });
    await sub.client.subscribeAsync("js/will", { qos: 1 });
    const dying = await JsClient.connect(b, t, {
      clientId: `js-dying-${t}`,
      will: { topic: "js/will", payload: "gone", qos: 1, retain: false },
    });
    // Drop the transport without DISCONNECT.
    dying.client.stream.destroy();
    const [m] = await sub.waitFor(1, "the will");
    assert.equal(m.topic, "js/will");
    assert.equal(m.payload, "gone");
    await dying.client.endAsync(true);
    assertConnections(b, t, 4);
  });

  test(`MQTT.js over ${t} -> amqtt: persistent session keeps the subscription and queues QoS 1 [MQTT-3.1.2-4]`, async () => {
    await using b = await startOurBroker(await certs.get());
    const id = `js-persist-${t}`;
    const first = await JsClient.connect(b, t, { clientId: id, clean: false });
    await first.client.subscribeAsync("js/persist", { qos: 1 });
    await first.client.endAsync();
    await using pub = await JsClient.connect(b, t, { clientId: `js-ppub-${t}` });
    await pub.client.publishAsync("js/persist", "while away", { qos: 1 });
    const client = mqtt.connect(b.url(t), {
      ca: (await certs.get()).ca,
      clientId: id,
      clean: false,
      reconnectPeriod: 0,
    });
    await using again = new JsClient(client);
    const connack = await new Promise<{ sessionPresent: boolean }>((resolve, reject) => {
      client.once("connect", resolve);
      client.once("error", reject);
    });
    assert.equal(connack.sessionPresent, true, "CONNACK session present [MQTT-3.2.2-2]");
    const [m] = await again.waitFor(1, "the queued message");
    assert.equal(m.payload, "while away");
    assert.equal(m.qos, 1);
    assertConnections(b, t, 4);
  });

  test(`MQTT.js over ${t} -> amqtt: MQTT 3.1 (MQIsdp, level 3) QoS 1 round trip`, async () => {
    await using b = await startOurBroker(await certs.get());
    const v31 = { protocolId: "MQIsdp", protocolVersion: 3 } as const;
    await using sub = await JsClient.connect(b, t, { clientId: `js31-sub-${t}`, ...v31 });
    await sub.client.subscribeAsync("js/31", { qos: 1 });
    await using pub = await JsClient.connect(b, t, { clientId: `js31-pub-${t}`, ...v31 });
    await pub.client.publishAsync("js/31", "old protocol", { qos: 1 });
    const [m] = await sub.waitFor(1, "the message");
    assert.equal(m.payload, "old protocol");
    assert.ok(b.broker.clients().some((c) => c.clientId === `js31-sub-${t}` && c.connected));
    assertConnections(b, t, 3);
  });
}

test("MQTT.js interop certificates are removed", async () => {
  const dir = (await certs.get()).dir;
  await certs.remove();
  await assert.rejects(Deno.stat(dir), Deno.errors.NotFound);
});

/**
 * Interop: our `MQTTClient` against Mosquitto (Debian) and Aedes (npm:aedes, in this process) over
 * tcp, tls, ws and wss — QoS 0/1/2, retained messages, wills, persistent sessions, MQTT 3.1 and
 * 3.1.1. The same scenarios run against each broker.
 *
 * @module
 */

import assert from "node:assert/strict";
import { MQTTClient } from "../../client.ts";
import type { ConnectOptions } from "../../client.ts";
import { SharedCerts } from "../_helpers/certs.ts";
import { TcpProxy } from "../client/_helpers.ts";
import {
  type BrokerUnderTest,
  interopTest,
  startAedesPeer,
  startMosquittoPeer,
  TRANSPORTS,
} from "./_peers.ts";

const certs = new SharedCerts();

// Aedes and node:net finish closing on setImmediate callbacks: let them run in the test.
const test = (name: string, fn: () => Promise<void>) => interopTest(name, fn, { settleMs: 20 });

const PEERS: { name: string; start: () => Promise<BrokerUnderTest> }[] = [
  { name: "mosquitto", start: async () => startMosquittoPeer(await certs.get()) },
  { name: "aedes", start: async () => startAedesPeer(await certs.get()) },
];

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** A connected client with reconnects off (a lost link must stay lost in these tests). */
async function client(
  url: string,
  id: string,
  options: ConnectOptions = {},
): Promise<MQTTClient> {
  const c = new MQTTClient({ clientId: id, config: { auto_reconnect: false } });
  await c.connect(url, { ca: (await certs.get()).ca, ...options });
  return c;
}

/** The URL of `transport` with the port replaced (to go through a proxy). */
function via(url: string, port: number): string {
  const u = new URL(url);
  u.port = String(port);
  return u.href;
}

for (const peer of PEERS) {
  for (const t of TRANSPORTS) {
    const on = `amqtt MQTTClient -> ${peer.name} over ${t}`;

    test(`${on}: QoS 0, 1 and 2 publish and subscribe`, async () => {
      await using b = await peer.start();
      await using sub = await client(b.url(t), `c-sub-${t}`);
      assert.deepEqual(await sub.subscribe([{ topic: "cl/+", qos: 2 }]), [2]);
      await using pub = await client(b.url(t), `c-pub-${t}`);
      for (const qos of [0, 1, 2] as const) {
        await pub.publish(`cl/q${qos}`, `payload ${qos}`, { qos });
      }
      const got = new Map<string, { payload: string; qos: number }>();
      for (let i = 0; i < 3; i++) {
        const m = await sub.deliverMessage({ timeout: 5000 });
        got.set(m.topic, { payload: text(m.payload), qos: m.qos });
      }
      for (const qos of [0, 1, 2]) {
        assert.deepEqual(got.get(`cl/q${qos}`), { payload: `payload ${qos}`, qos });
      }
      assert.equal(await b.levelOf(`c-sub-${t}`), 4, `${peer.name} saw an MQTT 3.1.1 CONNECT`);
      assert.equal(await b.levelOf(`c-pub-${t}`), 4);
    });

    test(`${on}: retained message reaches a later subscriber with RETAIN set [MQTT-3.3.1-6]`, async () => {
      await using b = await peer.start();
      await using pub = await client(b.url(t), `c-rpub-${t}`);
      await pub.publish("cl/retained", "kept", { qos: 1, retain: true });
      await using sub = await client(b.url(t), `c-rsub-${t}`);
      await sub.subscribe([{ topic: "cl/#", qos: 1 }]);
      const m = await sub.deliverMessage({ timeout: 5000 });
      assert.equal(m.topic, "cl/retained");
      assert.equal(text(m.payload), "kept");
      assert.equal(m.retain, true);
    });

    test(`${on}: will is published when the link drops without DISCONNECT [MQTT-3.1.2-8]`, async () => {
      await using b = await peer.start();
      await using watcher = await client(b.url(t), `c-watch-${t}`);
      await watcher.subscribe([{ topic: "cl/will", qos: 1 }]);
      await using proxy = new TcpProxy(b.port(t));
      await using dying = await client(via(b.url(t), proxy.port), `c-dying-${t}`, {
        will: { topic: "cl/will", payload: "gone", qos: 1 },
      });
      await proxy.cut();
      const m = await watcher.deliverMessage({ timeout: 5000 });
      assert.equal(m.topic, "cl/will");
      assert.equal(text(m.payload), "gone");
      assert.equal(dying.clientId, `c-dying-${t}`);
    });

    test(`${on}: persistent session keeps the subscription and queued QoS 1 [MQTT-3.1.2-4]`, async () => {
      await using b = await peer.start();
      const id = `c-persist-${t}`;
      const first = await client(b.url(t), id, { cleanSession: false });
      await first.subscribe([{ topic: "cl/persist", qos: 1 }]);
      await first.disconnect();
      await using pub = await client(b.url(t), `c-ppub-${t}`);
      await pub.publish("cl/persist", "while away", { qos: 1 });
      await using again = new MQTTClient({ clientId: id, config: { auto_reconnect: false } });
      const connack = await again.connect(b.url(t), {
        ca: (await certs.get()).ca,
        cleanSession: false,
      });
      assert.equal(connack.sessionPresent, true, "CONNACK session present [MQTT-3.2.2-2]");
      const m = await again.deliverMessage({ timeout: 5000 });
      assert.equal(text(m.payload), "while away");
      assert.equal(m.qos, 1);
    });

    test(`${on}: MQTT 3.1 (MQIsdp, level 3) QoS 1 round trip`, async () => {
      await using b = await peer.start();
      await using sub = await client(b.url(t), `c31-sub-${t}`, { protocolVersion: 3 });
      await sub.subscribe([{ topic: "cl/31", qos: 1 }]);
      await using pub = await client(b.url(t), `c31-pub-${t}`, { protocolVersion: 3 });
      await pub.publish("cl/31", "old protocol", { qos: 1 });
      const m = await sub.deliverMessage({ timeout: 5000 });
      assert.equal(text(m.payload), "old protocol");
      assert.equal(await b.levelOf(`c31-sub-${t}`), 3, `${peer.name} saw an MQTT 3.1 CONNECT`);
      assert.equal(await b.levelOf(`c31-pub-${t}`), 3);
    });
  }
}

test("client interop certificates are removed", async () => {
  const dir = (await certs.get()).dir;
  await certs.remove();
  await assert.rejects(Deno.stat(dir), Deno.errors.NotFound);
});

/**
 * Interop: the Eclipse Paho C sample clients `paho_c_pub` and `paho_c_sub` (Debian package
 * `paho.mqtt.c-examples`) against our broker over tcp, tls, ws and wss — QoS 0/1/2, retained
 * messages, wills, MQTT 3.1 and 3.1.1. (The samples always connect with a clean session, so
 * persistent sessions are covered by MQTT.js and mosquitto_sub instead.)
 *
 * @module
 */

import assert from "node:assert/strict";
import type { QoS } from "../../src/packet/constants.ts";
import { delay, waitFor } from "../_helpers/broker.ts";
import { SharedCerts } from "../_helpers/certs.ts";
import { runTool, Tool } from "../_helpers/peers.ts";
import {
  assertConnections,
  interopTest,
  type OurBroker,
  startOurBroker,
  type Transport,
  TRANSPORTS,
  whenSubscribed,
} from "./_peers.ts";

const certs = new SharedCerts();

const test = interopTest;

const PAHO_SCHEME: Record<Transport, string> = { tcp: "tcp", tls: "ssl", ws: "ws", wss: "wss" };

async function connection(b: OurBroker, t: Transport): Promise<string[]> {
  const path = t === "ws" || t === "wss" ? "/mqtt" : "";
  const url = `${PAHO_SCHEME[t]}://127.0.0.1:${b.port(t)}${path}`;
  return ["-c", url, "--cafile", (await certs.get()).caFile];
}

/** Starts paho_c_sub and waits until our broker holds its subscription. */
async function pahoSub(
  b: OurBroker,
  t: Transport,
  id: string,
  topic: string,
  extra: string[] = [],
): Promise<Tool> {
  const sub = new Tool("paho_c_sub", [
    ...(await connection(b, t)),
    "-i",
    id,
    "-t",
    topic,
    "-q",
    "2",
    ...extra,
  ]);
  await whenSubscribed(sub, b.broker, { clientId: id, ms: 5000 });
  assert.equal(sub.exited, false, "paho_c_sub exited early");
  return sub;
}

/** Stops paho_c_sub the way a user does (Ctrl-C: it disconnects) and returns its lines. */
async function stopSub(sub: Tool): Promise<string[]> {
  // The broker has written the message; give the sample a moment to read and print it.
  await delay(150);
  sub.kill("SIGINT");
  const r = await sub.result();
  assert.equal(r.timedOut, false, "paho_c_sub was killed at its deadline");
  return r.stdout.split("\n").filter((l) => l !== "");
}

async function pahoPub(
  b: OurBroker,
  t: Transport,
  id: string,
  topic: string,
  message: string,
  extra: string[] = [],
): Promise<void> {
  const r = await runTool("paho_c_pub", [
    ...(await connection(b, t)),
    "-i",
    id,
    "-t",
    topic,
    "-m",
    message,
    ...extra,
  ]);
  assert.equal(r.code, 0, `paho_c_pub failed: ${r.stderr}`);
}

for (const t of TRANSPORTS) {
  test(`paho.mqtt.c over ${t} -> amqtt: QoS 0, 1 and 2 publish and subscribe`, async () => {
    await using b = await startOurBroker(await certs.get());
    const seen: { topic: string; qos: QoS }[] = [];
    b.broker.on("message", (m) => seen.push({ topic: m.topic, qos: m.qos }));
    await using sub = await pahoSub(b, t, `paho-sub-${t}`, "paho/t");
    for (const qos of [0, 1, 2]) {
      await pahoPub(b, t, `paho-pub-${t}-${qos}`, "paho/t", `payload ${qos}`, ["-q", String(qos)]);
    }
    await waitFor(() => seen.length === 3, 3000, "three publishes");
    assert.deepEqual(seen.map((s) => s.qos), [0, 1, 2], "each QoS flow completed at its level");
    await waitFor(() => b.broker.stats.publishSent >= 3, 3000, "three deliveries");
    assert.deepEqual(await stopSub(sub), ["payload 0", "payload 1", "payload 2"]);
    assertConnections(b, t, 4);
  });

  // Over ws this needs one MQTT packet per WebSocket frame: paho_c_sub 1.3 drops a retained
  // PUBLISH that shares a frame with the SUBACK.
  test(`paho.mqtt.c over ${t} -> amqtt: retained message reaches a later subscriber [MQTT-3.3.1-6]`, async () => {
    await using b = await startOurBroker(await certs.get());
    await pahoPub(b, t, `paho-rpub-${t}`, "paho/retained", "kept", ["-q", "1", "-r"]);
    await using sub = await pahoSub(b, t, `paho-rsub-${t}`, "paho/retained");
    await waitFor(
      () => b.broker.stats.publishSent >= 1,
      3000,
      "the retained message to be sent",
    );
    assert.deepEqual(await stopSub(sub), ["kept"]);
    assertConnections(b, t, 4);
  });

  test(`paho.mqtt.c over ${t} -> amqtt: will is published when the client dies [MQTT-3.1.2-8]`, async () => {
    await using b = await startOurBroker(await certs.get());
    await using watcher = await pahoSub(b, t, `paho-watch-${t}`, "paho/will");
    await using dying = await pahoSub(b, t, `paho-dying-${t}`, "paho/other", [
      "--will-topic",
      "paho/will",
      "--will-payload",
      "gone",
      "--will-qos",
      "1",
    ]);
    dying.kill("SIGKILL"); // no DISCONNECT
    await dying.result();
    await waitFor(() => b.broker.stats.publishSent >= 1, 5000, "the will to be sent");
    assert.deepEqual(await stopSub(watcher), ["gone"]);
    assertConnections(b, t, 4);
  });

  test(`paho.mqtt.c over ${t} -> amqtt: MQTT 3.1 (-V 31) QoS 1 round trip`, async () => {
    await using b = await startOurBroker(await certs.get());
    await using sub = await pahoSub(b, t, `paho31-sub-${t}`, "paho/31", ["-V", "31"]);
    await pahoPub(b, t, `paho31-pub-${t}`, "paho/31", "old protocol", ["-q", "1", "-V", "31"]);
    await waitFor(() => b.broker.stats.publishSent >= 1, 3000, "the delivery");
    assert.deepEqual(await stopSub(sub), ["old protocol"]);
    assertConnections(b, t, 3);
  });
}

test("paho.mqtt.c interop certificates are removed", async () => {
  const dir = (await certs.get()).dir;
  await certs.remove();
  await assert.rejects(Deno.stat(dir), Deno.errors.NotFound);
});

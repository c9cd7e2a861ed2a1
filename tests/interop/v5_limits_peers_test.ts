/**
 * Interop at MQTT 5.0: Debian's `mosquitto_pub`/`mosquitto_sub -V mqttv5` read the limits our
 * broker announces with `maximum_qos: 1` and `retain_available: false` (CONNACK Maximum QoS and
 * Retain Available) and keep to them; so does our own `MQTTClient`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { MQTTClient } from "../../src/client/mqtt_client.ts";
import { startBroker, userRetained } from "../_helpers/broker.ts";
import { runTool, Tool } from "../_helpers/peers.ts";
import { interopTest, subscriberLines, whenSubscribed } from "./_peers.ts";

const test = (name: string, fn: () => Promise<void>) => interopTest(name, fn, { settleMs: 20 });

test("interop v5: mosquitto_pub/sub -V mqttv5 keep to maximum_qos 1 and retain_available false [MQTT-3.2.2-9] [MQTT-3.2.2-10]", async () => {
  await using b = await startBroker({ maximum_qos: 1, retain_available: false });
  const base = (id: string) => ["-h", "127.0.0.1", "-p", String(b.port), "-i", id, "-V", "mqttv5"];
  // -d prints the SUBACK's granted QoS: asked 2, granted 1.
  const sub = await whenSubscribed(
    new Tool("mosquitto_sub", [
      ...base("lsub"),
      "-t",
      "l/#",
      "-q",
      "2",
      "-C",
      "2",
      "-W",
      "6",
      "-d",
    ]),
    b.broker,
    { clientId: "lsub", topic: "l/#", ms: 4000 },
  );
  await using _sub = sub;
  assert.equal(b.broker.subscriptions().find((s) => s.clientId === "lsub")?.qos, 1);
  // QoS 2 above the announced Maximum QoS: mosquitto_pub refuses to send it.
  const high = await runTool("mosquitto_pub", [
    ...base("lpub2"),
    "-t",
    "l/2",
    "-q",
    "2",
    "-m",
    "x",
  ]);
  assert.match(high.stderr, /QoS not supported/);
  // RETAIN without Retain Available: libmosquitto sends the message without it.
  const kept = await runTool("mosquitto_pub", [
    ...base("lpubr"),
    "-t",
    "l/r",
    "-q",
    "1",
    "-r",
    "-m",
    "r",
  ]);
  assert.equal(kept.code, 0, kept.stderr);
  const q1 = await runTool("mosquitto_pub", [...base("lpub1"), "-t", "l/1", "-q", "1", "-m", "y"]);
  assert.equal(q1.code, 0, q1.stderr);
  const lines = await subscriberLines(sub);
  assert.ok(lines.includes("Subscribed (mid: 1): 1"), lines.join("\n"));
  assert.ok(
    lines.some((l) => /received PUBLISH \(d0, q1, r0, m\d+, 'l\/r'/.test(l)),
    lines.join("\n"),
  );
  assert.ok(
    lines.some((l) => /received PUBLISH \(d0, q1, r0, m\d+, 'l\/1'/.test(l)),
    lines.join("\n"),
  );
  assert.ok(!lines.some((l) => l.includes("'l/2'")), "the QoS 2 message was not sent");
  assert.equal(userRetained(b.broker).length, 0);
});

test("interop v5: our MQTTClient refuses to publish above the Maximum QoS or retained when the broker announces none [MQTT-3.2.2-9]", async () => {
  await using b = await startBroker({ maximum_qos: 1, retain_available: false });
  await using client = new MQTTClient({ clientId: "ours", config: { auto_reconnect: false } });
  await client.connect(`mqtt://127.0.0.1:${b.port}`, { protocolVersion: 5 });
  await assert.rejects(client.publish("l/x", "q2", { qos: 2 }), /Maximum QoS 1/);
  await assert.rejects(client.publish("l/x", "r", { qos: 1, retain: true }), /Retain Available 0/);
  // What the broker takes still goes through, and the connection stays open.
  await client.publish("l/x", "q1", { qos: 1 });
  assert.equal(b.broker.stats.clientsConnected, 1);
});

/**
 * Interop: our MQTTClient with `protocolVersion: 5` against Mosquitto in 5.0 mode, checked by an
 * independent decoder (mosquitto_sub -V mqttv5) and through Mosquitto's shared subscriptions. The
 * client's other 5.0 features against Mosquitto are in tests/client/v5_mosquitto_test.ts.
 *
 * @module
 */

import assert from "node:assert/strict";
import { MQTTClient } from "../../client.ts";
import { Mosquitto, runTool } from "../_helpers/peers.ts";

Deno.test("interop v5: what our client publishes with properties, mosquitto_sub -V mqttv5 prints through Mosquitto [MQTT-3.3.2-17] [MQTT-3.3.2-18]", async () => {
  await using broker = await Mosquitto.start();
  await using client = new MQTTClient({ clientId: "ours-pub", config: { auto_reconnect: false } });
  await client.connect(`mqtt://127.0.0.1:${broker.port}`, { protocolVersion: 5 });
  // Retained, so that the subscriber started afterwards gets it with its properties.
  await client.publish("iv5/props", "21.5", {
    qos: 1,
    retain: true,
    properties: {
      contentType: "text/plain",
      responseTopic: "iv5/reply",
      correlationData: new TextEncoder().encode("req-7"),
      payloadFormatIndicator: 1,
      userProperties: [["unit", "C"], ["site", "plant-3"], ["unit", "again"]],
    },
  });
  await client.disconnect();
  const sub = await runTool("mosquitto_sub", [
    "-p",
    String(broker.port),
    "-V",
    "mqttv5",
    "-t",
    "iv5/props",
    "-C",
    "1",
    "-F",
    "%P|%C|%D|%F|%R|%p",
  ]);
  assert.equal(sub.code, 0, sub.stderr);
  assert.equal(sub.stdout, "unit:C site:plant-3 unit:again|text/plain|req-7|1|iv5/reply|21.5\n");
});

Deno.test("interop v5: two of our clients in a Mosquitto shared subscription get each message once between them [MQTT-4.8.2-1]", async () => {
  await using broker = await Mosquitto.start();
  const url = `mqtt://127.0.0.1:${broker.port}`;
  const member = async (id: string) => {
    const c = new MQTTClient({ clientId: id, config: { auto_reconnect: false } });
    await c.connect(url, { protocolVersion: 5 });
    await c.subscribe([{ topic: "$share/g/iv5/share/#", qos: 1 }]);
    return c;
  };
  await using a = await member("member-a");
  await using b = await member("member-b");
  await using pub = new MQTTClient({ clientId: "share-pub", config: { auto_reconnect: false } });
  await pub.connect(url, { protocolVersion: 5 });
  for (let i = 0; i < 10; i++) await pub.publish(`iv5/share/${i}`, `m${i}`, { qos: 1 });
  const got: Record<string, string[]> = { a: [], b: [] };
  const all = new AbortController();
  const take = async (name: "a" | "b", c: MQTTClient) => {
    // Until the ten have arrived between the two (a guard of 20 s against a hang).
    while (!all.signal.aborted) {
      const m = await c.deliverMessage({ signal: all.signal, timeout: 20_000 }).catch((e) => {
        if (all.signal.aborted) return undefined;
        throw e;
      });
      if (m === undefined) return;
      got[name]!.push(new TextDecoder().decode(m.payload));
      if (got.a!.length + got.b!.length >= 10) all.abort();
    }
  };
  await Promise.all([take("a", a), take("b", b)]);
  // No eleventh (a duplicate): a ping round trip on each member's connection comes after
  // anything Mosquitto sent it before.
  await a.ping();
  await b.ping();
  const late = await Promise.all(
    [a, b].map((c) => c.deliverMessage({ signal: AbortSignal.abort() }).then(() => 1, () => 0)),
  );
  assert.deepEqual(late, [0, 0], "nothing more was delivered");
  assert.deepEqual(
    [...got.a!, ...got.b!].sort(),
    Array.from({ length: 10 }, (_, i) => `m${i}`).sort(),
    "every message once, none twice",
  );
  assert.ok(got.a!.length > 0 && got.b!.length > 0, JSON.stringify(got));
  assert.equal(a.connected && b.connected, true);
  await a.disconnect();
  await b.disconnect();
  await pub.disconnect();
});

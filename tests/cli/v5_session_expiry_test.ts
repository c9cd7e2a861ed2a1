/**
 * `amqtt_sub`/`amqtt_pub` `--session-expiry` (the long form of `-x`) with `-V mqttv5` and `-c`: the
 * Session Expiry Interval goes into CONNECT, and the broker keeps the session that long.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Broker } from "../../broker.ts";
import { PacketType } from "../../src/packet/constants.ts";
import type { ConnectPacket } from "../../src/packet/types.ts";
import { runCli } from "./_helpers.ts";

Deno.test("amqtt_sub -V mqttv5 --session-expiry 120 sends Session Expiry Interval 120 in CONNECT and the session outlives the connection [MQTT-3.1.2-23]", async () => {
  const connects: ConnectPacket[] = [];
  await using broker = new Broker({ listeners: { default: { bind: "127.0.0.1:0" } } }, {
    logger: { debug() {}, info() {}, warning() {}, error() {} },
    packetEvents: true,
    plugins: [{
      name: "connect_recorder",
      onMqttPacketReceived({ packet }) {
        if (packet.type === PacketType.CONNECT) connects.push(packet);
      },
    }],
  });
  await broker.start();
  const port = String(broker.listeners[0]!.port);
  const args = ["-p", port, "-V", "mqttv5", "-c", "-i", "se-long", "-q", "1", "-t", "se/long"];
  const first = await runCli("amqtt_sub.ts", [...args, "--session-expiry", "120", "-W", "1"]);
  assert.equal(first.code, 27, first.stderr);
  assert.equal(connects[0]?.protocolVersion, 5);
  assert.equal(connects[0]?.properties?.sessionExpiryInterval, 120);
  await broker.publish("se/long", "kept for you", { qos: 1 });
  const second = await runCli("amqtt_sub.ts", [...args, "--session-expiry", "120", "-C", "1"]);
  assert.equal(second.code, 0, second.stderr);
  assert.equal(second.text, "kept for you\n");
  const pub = await runCli("amqtt_pub.ts", [
    "-p",
    port,
    "-V",
    "mqttv5",
    "-i",
    "se-pub",
    "--session-expiry",
    "30",
    "-t",
    "se/x",
    "-m",
    "m",
  ]);
  assert.equal(pub.code, 0, pub.stderr);
  assert.equal(connects.at(-1)?.properties?.sessionExpiryInterval, 30);
});

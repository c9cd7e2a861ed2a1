import assert from "node:assert/strict";
import { EventLoggerPlugin } from "../../src/plugins/event_logger.ts";
import { describePacket, PacketLoggerPlugin } from "../../src/plugins/packet_logger.ts";
import { PluginHost } from "../../src/broker/plugin_host.ts";
import { context } from "./_helpers.ts";

const client = {
  clientId: "c1",
  username: "alice",
  remoteAddress: "127.0.0.1:5555",
  transport: "tcp" as const,
  protocolVersion: 5 as const,
  anonymous: false,
};

Deno.test("EventLoggerPlugin logs every event it receives through the host", async () => {
  const ctx = context();
  const host = new PluginHost(
    [new EventLoggerPlugin(), { name: "auth", authenticate: () => true }],
    {
      logger: ctx.logger,
    },
  );
  await host.init(ctx);
  const message = { topic: "a/b", payload: new Uint8Array(5), qos: 1 as const, retain: true };
  await host.emitAndWait("brokerPreStart");
  host.emit("brokerClientConnected", { clientId: "c1", client });
  host.emit("brokerClientSubscribed", { clientId: "c1", topic: "a/#", qos: 2 });
  host.emit("brokerClientUnsubscribed", { clientId: "c1", topic: "a/#" });
  host.emit("brokerMessageReceived", { clientId: "c1", message });
  host.emit("brokerMessageBroadcast", { clientId: "c1", message });
  host.emit("brokerRetainedMessage", { message });
  host.emit("brokerRetainedMessage", { clientId: "c2", message });
  host.emit("brokerClientDisconnected", { clientId: "c1", client });
  await host.emitAndWait("brokerPostShutdown");
  assert.deepEqual(ctx.lines, [
    "info: [event_logger] Event brokerPreStart",
    'info: [event_logger] Event brokerClientConnected: client c1 as "alice" from 127.0.0.1:5555 (tcp, level 5)',
    "debug: [event_logger] Event brokerClientSubscribed: client c1 subscribed to a/# (QoS 2)",
    "debug: [event_logger] Event brokerClientUnsubscribed: client c1 unsubscribed from a/#",
    "debug: [event_logger] Event brokerMessageReceived: from c1, topic a/b, QoS 1, retain true, 5 bytes",
    "debug: [event_logger] Event brokerMessageBroadcast: from c1, topic a/b, QoS 1, retain true, 5 bytes",
    "debug: [event_logger] Event brokerRetainedMessage: for topic, topic a/b, QoS 1, retain true, 5 bytes",
    "debug: [event_logger] Event brokerRetainedMessage: for offline session c2, topic a/b, QoS 1, retain true, 5 bytes",
    "info: [event_logger] Event brokerClientDisconnected: client c1",
    "info: [event_logger] Event brokerPostShutdown",
  ]);
  assert.equal(host.hasListeners("mqttPacketReceived"), false);
});

Deno.test("describePacket names the packet, shows byte fields as lengths and redacts passwords", () => {
  const connect = describePacket({
    type: 1,
    protocolName: "MQTT",
    protocolVersion: 4,
    clean: true,
    keepAlive: 60,
    clientId: "c1",
    username: "alice",
    password: new TextEncoder().encode("hunter2"),
    will: { topic: "w", payload: new Uint8Array(3), qos: 0, retain: false },
  });
  assert.equal(
    connect,
    'CONNECT {"protocolName":"MQTT","protocolVersion":4,"clean":true,"keepAlive":60,' +
      '"clientId":"c1","username":"alice","password":"<redacted>",' +
      '"will":{"topic":"w","payload":"<3 bytes>","qos":0,"retain":false}}',
  );
  assert.ok(!connect.includes("hunter2"));
  assert.equal(describePacket({ type: 13 }), "PINGRESP {}");
  assert.equal(describePacket({ type: 99 }), "type 99 {}");
});

Deno.test("PacketLoggerPlugin logs received and sent packets at debug level", async () => {
  const ctx = context();
  const plugin = new PacketLoggerPlugin();
  const host = new PluginHost([plugin], { logger: ctx.logger });
  await host.init(ctx);
  assert.equal(host.hasListeners("mqttPacketReceived"), true);
  assert.equal(host.hasListeners("mqttPacketSent"), true);
  host.emit("mqttPacketReceived", { packet: { type: 12 } });
  host.emit("mqttPacketSent", { clientId: "c1", packet: { type: 13 } });
  assert.deepEqual(ctx.lines.filter((l) => l.startsWith("debug")), [
    "debug: [packet_logger] (new client) <-in-- PINGREQ {}",
    "debug: [packet_logger] c1 -out-> PINGRESP {}",
  ]);
});

Deno.test("EventLoggerPlugin with messages: false has no per-message handlers, so the broker emits none", () => {
  const quiet = new PluginHost([new EventLoggerPlugin({ messages: false })], { logger: silent });
  assert.equal(quiet.hasListeners("brokerMessageReceived"), false);
  assert.equal(quiet.hasListeners("brokerMessageBroadcast"), false);
  assert.equal(quiet.hasListeners("brokerRetainedMessage"), false);
  assert.equal(quiet.hasListeners("brokerClientConnected"), true);
  const loud = new PluginHost([new EventLoggerPlugin()], { logger: silent });
  assert.equal(loud.hasListeners("brokerMessageReceived"), true);
  assert.equal(loud.hasListeners("brokerRetainedMessage"), true);
});

const silent = { debug() {}, info() {}, warning() {}, error() {} };

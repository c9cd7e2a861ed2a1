import assert from "node:assert/strict";
import { MemoryLogger, startBroker } from "../_helpers/broker.ts";
import { TestClient } from "../_helpers/test_client.ts";
import { EventLoggerPlugin } from "../../src/plugins/event_logger.ts";
import { PluginHost } from "../../src/broker/plugin_host.ts";

/** A memory logger that writes only warnings and errors (the broker's default levels). */
class QuietLogger extends MemoryLogger {
  enabled(level: "debug" | "info" | "warning" | "error"): boolean {
    return level === "warning" || level === "error";
  }
}

Deno.test("43 connection events: the event logger takes no connect or disconnect events when info lines are off", () => {
  const quiet = new PluginHost([new EventLoggerPlugin({ connections: false })], {
    logger: new QuietLogger(),
  });
  assert.equal(quiet.hasListeners("brokerClientConnected"), false);
  assert.equal(quiet.hasListeners("brokerClientDisconnected"), false);
  assert.equal(quiet.hasListeners("brokerClientSubscribed"), true);
  const loud = new PluginHost([new EventLoggerPlugin()], { logger: new QuietLogger() });
  assert.equal(loud.hasListeners("brokerClientConnected"), true);
  assert.equal(loud.hasListeners("brokerClientDisconnected"), true);
});

Deno.test("43 connection events: a broker whose logger leaves out info lines logs no connection events, and still serves and counts its clients", async () => {
  const log = new QuietLogger();
  await using b = await startBroker({}, { logger: log });
  const connected: string[] = [];
  const disconnected: string[] = [];
  const allGone = Promise.withResolvers<void>();
  b.broker.on("clientConnected", ({ clientId }) => void connected.push(clientId));
  b.broker.on("clientDisconnected", ({ clientId }) => {
    if (disconnected.push(clientId) === 20) allGone.resolve();
  });
  for (let i = 0; i < 20; i++) {
    const c = await TestClient.connect(b.port, { clientId: `quiet-${i}` });
    await c.disconnect();
  }
  // Every connection came and went: the broker's own handlers saw each, the log saw none.
  await allGone.promise;
  assert.equal(connected.length, 20);
  assert.equal(disconnected.length, 20);
  assert.equal(log.has("Event brokerClientConnected"), false);
  assert.equal(log.has("Event brokerClientDisconnected"), false);
  assert.deepEqual(b.broker.clients(), []);
});

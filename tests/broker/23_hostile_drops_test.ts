/**
 * Broker, area 23: dropped messages are visible. Each drop is counted by reason (outbound full,
 * queue full, not authorized, session expired), published under `$SYS` (Mosquitto's
 * `$SYS/broker/publish/messages/dropped`, plus one topic per reason) and logged as one summary
 * line per interval, by the embedded broker and by the `amqtt` CLI. A monitoring client that reads
 * everything keeps working beside the clients that cause the drops.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, PacketType } from "../../src/packet/mod.ts";
import type { Packet, PublishPacket, QoS } from "../../src/packet/mod.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import type { TestBroker } from "../_helpers/broker.ts";
import { connectPacket, publishPacket, TestClient, text } from "../_helpers/test_client.ts";
import { spawnCli, tempDir } from "../cli/_helpers.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const DROPPED = "$SYS/broker/publish/messages/dropped";

/** Connects and subscribes without ever reading. */
async function deaf(b: TestBroker, clientId: string, topic: string, qos: QoS) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: b.port });
  await conn.write(encodePacket(connectPacket({ clientId, clean: false }), 4));
  await conn.write(encodePacket({
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic, qos }],
  }, 4));
  await waitFor(() => b.broker.subscriptions().some((s) => s.clientId === clientId));
  return conn;
}

/** Reads `$SYS` PUBLISHes until `done` holds for the latest value of each topic. */
async function readSys(
  monitor: TestClient,
  done: (values: Map<string, string>) => boolean,
): Promise<Map<string, string>> {
  const values = new Map<string, string>();
  while (!done(values)) {
    const p: Packet = await monitor.receive(30_000);
    if (p.type === PacketType.PUBLISH) values.set(p.topic, text(p as PublishPacket));
    else if (p.type === PacketType.PUBACK) values.set(`PUBACK ${p.packetId}`, "");
  }
  return values;
}

test("23 drops: counted by reason and published in $SYS, with one summary log line per interval", async () => {
  await using b = await startBroker({
    sys_interval: 1,
    log_summary_interval: 1,
    max_outbound_bytes: 1024,
    max_queued_messages: 2,
    session_expiry_interval: 1,
  });
  await using monitor = await TestClient.connect(b.port, { clientId: "monitor" });
  await monitor.subscribe({ [DROPPED]: 0, [`${DROPPED}/+`]: 0 });

  // Outbound full: QoS 0 to a subscriber that never reads, past max_outbound_bytes.
  const q0 = await deaf(b, "deaf-q0", "drop/q0", 0);
  // Queue full: QoS 1 past its window (20) and queue (2).
  const q1 = await deaf(b, "deaf-q1", "drop/q1", 1);
  try {
    const payload = new Uint8Array(32 * 1024);
    for (let i = 0; i < 300; i++) b.broker.publish("drop/q0", payload);
    for (let i = 0; i < 30; i++) b.broker.publish("drop/q1", "x", { qos: 1 });
    // Not authorized: `$SYS` is read-only for clients; the QoS 1 flow still completes.
    await monitor.send(publishPacket("$SYS/forged", "no", { qos: 1, packetId: 5 }));
  } finally {
    q0.close();
    q1.close();
  }
  // Session expired: "deaf-q1" went offline with 22 messages waiting; its session expires in 1 s.
  await waitFor(
    () => !b.broker.clients().some((c) => c.clientId === "deaf-q1"),
    30_000,
    "the session to expire",
  );

  const by = b.broker.stats.droppedBy;
  assert.ok(by.outboundFull > 0, "QoS 0 past max_outbound_bytes");
  assert.equal(by.queueFull, 30 - 20 - 2);
  assert.equal(by.notAuthorized, 1);
  assert.equal(by.sessionExpired, 20 + 2);
  const total = by.outboundFull + by.queueFull + by.notAuthorized + by.sessionExpired;
  assert.equal(b.broker.stats.dropped, total);

  // $SYS shows the same numbers.
  const values = await readSys(
    monitor,
    (v) =>
      v.get(DROPPED) === String(total) && v.get(`${DROPPED}/session-expired`) === "22" &&
      v.has("PUBACK 5"),
  );
  assert.equal(values.get(DROPPED), String(total));
  assert.equal(values.get(`${DROPPED}/outbound-full`), String(by.outboundFull));
  assert.equal(values.get(`${DROPPED}/queue-full`), "8");
  assert.equal(values.get(`${DROPPED}/not-authorized`), "1");
  assert.equal(values.get(`${DROPPED}/session-expired`), "22");

  // Logged as summary lines: a few per interval, not one per drop.
  const summaries = () => b.log.lines.filter((l) => l.message.includes("messages dropped"));
  const reasons = ["outbound full", "queue full", "not authorized", "session expired"];
  await waitFor(
    () => reasons.every((r) => summaries().some((l) => new RegExp(`\\d+ ${r}`).test(l.message))),
    30_000,
    "the drop summaries",
  );
  const lines = summaries();
  assert.ok(lines.every((l) => l.level === "warning"));
  assert.ok(lines.length < total, `${lines.length} lines for ${total} drops`);
  const summed = lines.reduce(
    (n, l) => n + Number(l.message.match(/^(\d+) messages dropped/)![1]),
    0,
  );
  assert.equal(summed, total, "the summaries add up to the counters");

  // The monitor, which reads everything, got its PUBACK and is still connected and served.
  assert.equal(monitor.ended, false);
});

test("23 drops: the amqtt CLI publishes $SYS/broker/publish/messages/dropped and logs a summary", async () => {
  await using dir = await tempDir();
  const config = `${dir.path}/broker.yaml`;
  await Deno.writeTextFile(
    config,
    "listeners:\n  default:\n    bind: 127.0.0.1:0\nsys_interval: 1\nlog_summary_interval: 1\n",
  );
  await using broker = spawnCli("amqtt.ts", ["-c", config]);
  const [, port] = await broker.waitForStderr(/127\.0\.0\.1:(\d+)/);
  await broker.waitForStderr(/started/);
  await using client = await TestClient.connect(Number(port), { clientId: "forger" });
  await client.subscribe({ [`${DROPPED}/not-authorized`]: 0 });
  for (let i = 1; i <= 3; i++) {
    await client.send(publishPacket("$SYS/forged", "no", { qos: 1, packetId: i }));
  }
  const values = await readSys(
    client,
    (v) => v.get(`${DROPPED}/not-authorized`) === "3" && v.has("PUBACK 3"),
  );
  assert.equal(values.get(`${DROPPED}/not-authorized`), "3");
  assert.ok(values.has("PUBACK 1") && values.has("PUBACK 2"), "the QoS 1 flows completed");
  await broker.waitForStderr(/WARNING - 3 messages dropped in the last 1 s: 3 not authorized/);
  // One summary line, not a line per forged message.
  assert.doesNotMatch(broker.stderr(), /may not publish/);
  assert.equal(client.ended, false);
  await client.disconnect();
  broker.kill("SIGTERM");
  assert.equal((await broker.done).code, 0);
});

test("23 drops: the amqtt CLI logs the drops of its last interval when it stops, before the interval ends", async () => {
  await using dir = await tempDir();
  const config = `${dir.path}/broker.yaml`;
  // The default interval, 60 s: the broker stops long before its first summary line.
  await Deno.writeTextFile(config, "listeners:\n  default:\n    bind: 127.0.0.1:0\n");
  await using broker = spawnCli("amqtt.ts", ["-c", config]);
  const [, port] = await broker.waitForStderr(/127\.0\.0\.1:(\d+)/);
  await broker.waitForStderr(/started/);
  await using client = await TestClient.connect(Number(port), { clientId: "forger" });
  for (let i = 1; i <= 3; i++) {
    await client.send(publishPacket("$SYS/forged", "no", { qos: 1, packetId: i }));
  }
  // Each forged message is dropped (not authorized) and acknowledged [MQTT-3.3.5-2].
  for (let i = 1; i <= 3; i++) {
    const ack = await client.receive();
    assert.equal(ack.type, PacketType.PUBACK);
    assert.equal((ack as { packetId: number }).packetId, i);
  }
  assert.equal(client.ended, false);
  await client.disconnect();
  broker.kill("SIGTERM");
  assert.equal((await broker.done).code, 0);
  const log = broker.stderr();
  const summary = log.search(/WARNING - 3 messages dropped in the last \d+ s: 3 not authorized/);
  assert.ok(summary >= 0, `no summary of the drops in:\n${log}`);
  assert.ok(summary < log.indexOf("Broker stopped"), "told before the broker stopped");
});

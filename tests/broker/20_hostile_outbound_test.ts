/**
 * Broker, area 20: a hostile client that sends without reading. Every reply the broker owes it
 * (PUBACK, PUBREC, SUBACK, PINGRESP…) counts against `max_outbound_bytes`; past it the broker
 * stops decoding that connection until its output drains, and closes it after `drain_timeout`.
 * A well-behaved QoS 1 pair keeps working beside it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, PacketType } from "../../src/packet/mod.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import type { TestBroker } from "../_helpers/broker.ts";
import { connectPacket, publishPacket, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const LIMIT = 256 * 1024;
/** What the attacker tries to write: unbounded, its replies alone would be ~55 MB. */
const TARGET = 96 * 1024 * 1024;
const MB = 1024 * 1024;

/** A QoS 1 publisher and subscriber that acknowledge everything: the canary. */
async function canaryRound(sub: TestClient, pub: TestClient, n: number): Promise<void> {
  await pub.send(publishPacket("canary", `ping ${n}`, { qos: 1, packetId: n }));
  assert.equal((await pub.expect(PacketType.PUBACK)).packetId, n);
  const got = await sub.expect(PacketType.PUBLISH);
  assert.equal(text(got), `ping ${n}`);
  await sub.send({ type: PacketType.PUBACK, packetId: got.packetId! });
}

/** Packets of one kind, repeated into one buffer of about 1 MiB. */
function chunkOf(packet: Uint8Array): Uint8Array {
  const count = Math.floor(MB / packet.length);
  const chunk = new Uint8Array(count * packet.length);
  for (let i = 0; i < count; i++) chunk.set(packet, i * packet.length);
  return chunk;
}

/**
 * Connects without ever reading, then writes `chunk` repeatedly up to {@linkcode TARGET} bytes.
 * Resolves with the bytes written once the broker closes the connection (a write fails) or the
 * target is reached.
 */
async function deafFlood(
  b: TestBroker,
  clientId: string,
  chunk: Uint8Array,
): Promise<{ written: number; closed: Promise<number> }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: b.port });
  await conn.write(encodePacket(connectPacket({ clientId }), 4));
  await waitFor(() => b.broker.clients().some((c) => c.clientId === clientId && c.connected));
  const state = { written: 0, closed: Promise.resolve(0) };
  state.closed = (async () => {
    try {
      while (state.written < TARGET) {
        for (let at = 0; at < chunk.length;) {
          const n = await conn.write(chunk.subarray(at));
          at += n;
          state.written += n;
        }
      }
    } catch {
      // The broker closed the connection.
    } finally {
      conn.close();
    }
    return state.written;
  })();
  return state;
}

/**
 * This isolate's memory (JavaScript heap and buffers): unlike the process's RSS, it leaves out
 * test files that `--parallel` runs beside this one in the same process.
 */
function isolateMemory(): number {
  const m = Deno.memoryUsage();
  return m.heapUsed + m.external;
}

async function floodCase(clientId: string, chunk: Uint8Array): Promise<void> {
  await using b = await startBroker({ max_outbound_bytes: LIMIT, drain_timeout: 1 });
  const gone: string[] = [];
  b.broker.on("clientDisconnected", (e) => gone.push(e.clientId));
  await using sub = await TestClient.connect(b.port, { clientId: "canary-sub" });
  await sub.subscribe({ canary: 1 });
  await using pub = await TestClient.connect(b.port, { clientId: "canary-pub" });
  await canaryRound(sub, pub, 1);
  const before = isolateMemory();

  const attack = await deafFlood(b, clientId, chunk);
  // The broker stops reading at the bound: the attacker's output stays near it.
  let peak = 0;
  await waitFor(
    () => {
      const c = b.broker.clients().find((x) => x.clientId === clientId);
      if (c !== undefined) peak = Math.max(peak, c.outboundBytes);
      return peak > LIMIT || gone.includes(clientId);
    },
    30_000,
    "the attacker's output to reach max_outbound_bytes",
  );
  // Meanwhile the canary pair keeps flowing.
  for (let i = 2; i < 12; i++) await canaryRound(sub, pub, i);

  const written = await attack.closed;
  await waitFor(() => gone.includes(clientId), 30_000, "the attacker to be closed");
  assert.ok(written < TARGET, `the broker read all ${written} bytes instead of stopping`);
  assert.ok(
    b.broker.stats.bytesReceived < TARGET / 4,
    `the broker read ${b.broker.stats.bytesReceived} bytes`,
  );
  assert.ok(b.log.has("not read"), "the drain timeout closed it and said why");
  for (const c of b.broker.clients()) {
    assert.ok(c.outboundBytes <= LIMIT + 64 * 1024, `${c.clientId}: ${c.outboundBytes} pending`);
  }

  // The canary pair is still connected and working; memory is back near where it started.
  for (let i = 12; i < 22; i++) await canaryRound(sub, pub, i);
  assert.equal(sub.ended, false);
  assert.equal(pub.ended, false);
  const growth = isolateMemory() - before;
  assert.ok(growth < 64 * MB, `memory grew by ${(growth / MB).toFixed(1)} MB`);
}

test("20 hostile outbound: QoS 1 PUBLISHes without reading PUBACKs stop at max_outbound_bytes [MQTT-4.3.2-2]", async () => {
  const packet = encodePacket(publishPacket("a", "", { qos: 1, packetId: 7 }), 4);
  await floodCase("deaf-q1", chunkOf(packet));
});

test("20 hostile outbound: QoS 2 PUBLISHes without reading PUBRECs stop at max_outbound_bytes [MQTT-4.3.3-2]", async () => {
  // The same packet id over and over: each is answered with a PUBREC, never routed twice.
  const packet = encodePacket(publishPacket("a", "", { qos: 2, packetId: 9 }), 4);
  await floodCase("deaf-q2", chunkOf(packet));
});

test("20 hostile outbound: PINGREQs without reading PINGRESPs stop at max_outbound_bytes [MQTT-3.12.4-1]", async () => {
  await floodCase("deaf-ping", chunkOf(encodePacket({ type: PacketType.PINGREQ }, 4)));
});

test("20 hostile outbound: a slow reader resumes once its output drains below half the bound", async () => {
  await using b = await startBroker({ max_outbound_bytes: 4096, drain_timeout: 30 });
  await using slow = await TestClient.connect(b.port, { clientId: "slow" });
  // 5000 QoS 1 PUBLISHes in one write: 20000 bytes of PUBACKs, five times the bound.
  const packets = [];
  for (let i = 1; i <= 5000; i++) packets.push(publishPacket("s", "", { qos: 1, packetId: i }));
  await slow.send(...packets);
  // Every PUBACK arrives, in order: the connection paused and resumed, nothing was lost.
  for (let i = 1; i <= 5000; i++) {
    assert.equal((await slow.expect(PacketType.PUBACK)).packetId, i);
  }
  assert.equal(slow.ended, false);
});

test("20 hostile outbound: QoS 1 deliveries past max_outbound_bytes wait in the session, not in the output buffer", async () => {
  await using b = await startBroker({ max_outbound_bytes: 64 * 1024, drain_timeout: 30 });
  // A subscriber that never reads, with a full window (20) of 1 MiB messages: more than the
  // kernel's socket buffers take, so most of it would sit in the broker.
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: b.port });
  try {
    await conn.write(encodePacket(connectPacket({ clientId: "deaf-sub" }), 4));
    await conn.write(encodePacket({
      type: PacketType.SUBSCRIBE,
      packetId: 1,
      subscriptions: [{ topic: "big", qos: 1 }],
    }, 4));
    await waitFor(() => b.broker.subscriptions().some((s) => s.clientId === "deaf-sub"));
    await using canary = await TestClient.connect(b.port, { clientId: "canary" });
    await canary.subscribe({ big: 1 });
    const payload = new Uint8Array(MB);
    for (let i = 0; i < 20; i++) {
      b.broker.publish("big", payload, { qos: 1 });
      // The canary reads and acknowledges each one.
      const got = await canary.expect(PacketType.PUBLISH);
      assert.equal(got.payload.length, MB);
      await canary.send({ type: PacketType.PUBACK, packetId: got.packetId! });
    }
    const deaf = b.broker.clients().find((c) => c.clientId === "deaf-sub")!;
    assert.equal(deaf.inflight, 20, "the window is full");
    // At most the bound plus the one message that crossed it waits in the broker's buffer.
    assert.ok(deaf.outboundBytes <= 64 * 1024 + MB + 64, `${deaf.outboundBytes} bytes pending`);
    assert.equal(canary.ended, false);
  } finally {
    conn.close();
  }
});

test("20 hostile outbound: QoS 1 deliveries held back by a small bound all arrive, in order, once read [MQTT-4.6.0-6]", async () => {
  await using b = await startBroker({ max_outbound_bytes: 4096 });
  await using sub = await TestClient.connect(b.port, { clientId: "sub" });
  await sub.subscribe({ "o/#": 1 });
  const payload = "x".repeat(1000);
  // 300 messages at once: 20 in flight, the rest queued; the output holds only about 4 of them.
  for (let i = 0; i < 300; i++) b.broker.publish(`o/${i % 3}`, `${i} ${payload}`, { qos: 1 });
  for (let i = 0; i < 300; i++) {
    const got = await sub.expect(PacketType.PUBLISH);
    assert.equal(text(got).split(" ")[0], String(i), "in order, none missing");
    assert.equal(got.dup, false, "sent once, not re-sent");
    await sub.send({ type: PacketType.PUBACK, packetId: got.packetId! });
  }
  assert.equal(b.broker.stats.dropped, 0);
  assert.equal(sub.ended, false);
});

test("20 hostile outbound: a window resent on reconnect past a small bound arrives whole, with DUP [MQTT-4.4.0-1] [MQTT-3.3.1-1]", async () => {
  await using b = await startBroker({ max_outbound_bytes: 4096 });
  const first = await TestClient.connect(b.port, { clientId: "p", clean: false });
  await first.subscribe({ "r/#": 1 });
  const payload = "y".repeat(1000);
  for (let i = 0; i < 20; i++) b.broker.publish("r/x", `${i} ${payload}`, { qos: 1 });
  // Read all 20 but acknowledge none, then drop the connection.
  for (let i = 0; i < 20; i++) {
    assert.equal(text(await first.expect(PacketType.PUBLISH)).split(" ")[0], String(i));
  }
  await first.close();
  await waitFor(() => b.broker.clients().some((c) => c.clientId === "p" && !c.connected));
  await using again = await TestClient.connect(b.port, { clientId: "p", clean: false });
  for (let i = 0; i < 20; i++) {
    const got = await again.expect(PacketType.PUBLISH);
    assert.equal(text(got).split(" ")[0], String(i), "resent in order, none missing");
    assert.equal(got.dup, true, "a resend carries DUP");
    await again.send({ type: PacketType.PUBACK, packetId: got.packetId! });
  }
  assert.equal(again.ended, false);
});

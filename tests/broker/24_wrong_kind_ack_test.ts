/**
 * Broker, area 24: an acknowledgement of the wrong kind for a message in flight is a protocol
 * violation that closes the connection [MQTT-4.8.0-1]; one for an id not in flight is ignored.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import type { QoS } from "../../src/packet/mod.ts";
import { startBroker } from "../_helpers/broker.ts";
import { TestClient } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

type AckType = typeof PacketType.PUBACK | typeof PacketType.PUBREC | typeof PacketType.PUBCOMP;

/**
 * A broker and a subscriber that has received one message at `qos`, still unacknowledged.
 * The session is persistent, so the test can check that the message is resent afterwards.
 */
async function inFlight(qos: QoS) {
  const b = await startBroker();
  const sub = await TestClient.connect(b.port, { clientId: "s", clean: false });
  await sub.subscribe({ "w/k": qos });
  b.broker.publish("w/k", "m", { qos });
  const got = await sub.expect(PacketType.PUBLISH);
  assert.equal(got.qos, qos);
  return { b, sub, packetId: got.packetId! };
}

for (
  const [qos, ack, name] of [
    [1, PacketType.PUBREC, "PUBREC"],
    [1, PacketType.PUBCOMP, "PUBCOMP"],
    [2, PacketType.PUBACK, "PUBACK"],
    [2, PacketType.PUBCOMP, "PUBCOMP"],
  ] as [QoS, AckType, string][]
) {
  test(`24 wrong-kind ack: QoS ${qos} PUBLISH answered with ${name} closes the connection [MQTT-4.8.0-1]`, async () => {
    const { b, sub, packetId } = await inFlight(qos);
    await using _b = b;
    await using _sub = sub;
    await sub.send({ type: ack, packetId });
    await sub.expectClosed();
    // The flow was left as it was: the message is resent, DUP set, on the next connection.
    await using again = await TestClient.connect(b.port, { clientId: "s", clean: false });
    const resent = await again.expect(PacketType.PUBLISH);
    assert.equal(resent.packetId, packetId);
    assert.equal(resent.dup, true);
  });
}

test("24 wrong-kind ack: PUBACK after PUBREL closes the connection [MQTT-4.8.0-1]", async () => {
  const { b, sub, packetId } = await inFlight(2);
  await using _b = b;
  await using _sub = sub;
  await sub.send({ type: PacketType.PUBREC, packetId });
  assert.equal((await sub.expect(PacketType.PUBREL)).packetId, packetId);
  await sub.send({ type: PacketType.PUBACK, packetId });
  await sub.expectClosed();
  // The PUBREL is resent on the next connection [MQTT-4.4.0-1].
  await using again = await TestClient.connect(b.port, { clientId: "s", clean: false });
  assert.equal((await again.expect(PacketType.PUBREL)).packetId, packetId);
});

test("24 wrong-kind ack: acks for ids not in flight are ignored, the connection stays open", async () => {
  const { b, sub, packetId } = await inFlight(1);
  await using _b = b;
  await using _sub = sub;
  const stray = packetId === 999 ? 998 : 999;
  await sub.send({ type: PacketType.PUBACK, packetId: stray });
  await sub.send({ type: PacketType.PUBREC, packetId: stray });
  await sub.send({ type: PacketType.PUBCOMP, packetId: stray });
  await sub.send({ type: PacketType.PINGREQ });
  await sub.expect(PacketType.PINGRESP);
  assert.equal(b.broker.clients()[0].inflight, 1);
  // The real ack still completes the flow.
  await sub.send({ type: PacketType.PUBACK, packetId });
  // A duplicate PUBACK of a completed flow is a stray one too.
  await sub.send({ type: PacketType.PUBACK, packetId });
  await sub.send({ type: PacketType.PINGREQ });
  await sub.expect(PacketType.PINGRESP);
  assert.equal(b.broker.clients()[0].inflight, 0);
});

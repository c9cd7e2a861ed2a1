/**
 * Broker, area 33: malformed MQTT 5.0 packets and protocol errors close only that connection, after
 * a DISCONNECT with the reason code (0x81 malformed, 0x82 protocol error, 0x94 topic alias
 * invalid), byte by byte over TCP.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { startBroker } from "../_helpers/broker.ts";
import { TestClient } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const A = 0x61; // "a"

/**
 * Sends `bytes` after a level-5 CONNECT and expects a DISCONNECT with one of `codes`, then the
 * close; a bystander connection stays open.
 */
async function expectRefused(bytes: number[], codes: number[]): Promise<void> {
  await using b = await startBroker();
  await using bystander = await TestClient.connect(b.port, { clientId: "other" });
  await using c = await TestClient.connect(b.port, { protocolVersion: 5, clientId: "bad" });
  await c.sendBytes(bytes);
  const seen = await c.expectClosed(10_000, { allowPackets: true });
  const last = seen.at(-1);
  assert.equal(last?.type, PacketType.DISCONNECT, "DISCONNECT before the close");
  const code = last?.type === PacketType.DISCONNECT ? last.reasonCode ?? 0 : 0;
  assert.ok(codes.includes(code), `reason code 0x${code.toString(16)}`);
  await bystander.send({ type: PacketType.PINGREQ });
  await bystander.expect(PacketType.PINGRESP);
}

test("33 v5 malformed: PUBREL with fixed-header flags other than 0010 [MQTT-3.6.1-1]", async () => {
  await expectRefused([0x60, 0x02, 0x00, 0x01], [0x81]);
});

test("33 v5 malformed: SUBSCRIBE with fixed-header flags other than 0010 [MQTT-3.8.1-1]", async () => {
  await expectRefused([0x80, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, A, 0x00], [0x81]);
});

test("33 v5 malformed: UNSUBSCRIBE with fixed-header flags other than 0010 [MQTT-3.10.1-1]", async () => {
  await expectRefused([0xa0, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, A], [0x81]);
});

test("33 v5 malformed: SUBSCRIBE with reserved Subscription Options bits set [MQTT-3.8.3-5]", async () => {
  await expectRefused([0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, A, 0xc0], [0x81]);
});

test("33 v5 malformed: SUBSCRIBE without a Topic Filter [MQTT-3.8.3-2]", async () => {
  await expectRefused([0x82, 0x03, 0x00, 0x01, 0x00], [0x81, 0x82]);
});

test("33 v5 malformed: UNSUBSCRIBE without a Topic Filter [MQTT-3.10.3-2]", async () => {
  await expectRefused([0xa2, 0x03, 0x00, 0x01, 0x00], [0x81, 0x82]);
});

test("33 v5 malformed: DISCONNECT with reserved flags set gets DISCONNECT 0x81 [MQTT-3.14.1-1]", async () => {
  await expectRefused([0xe1, 0x00], [0x81]);
});

test("33 v5 malformed: AUTH with fixed-header flags other than 0 [MQTT-3.15.1-1]", async () => {
  await expectRefused([0xf1, 0x00], [0x81]);
});

test("33 v5 malformed: a PUBLISH topic with a wildcard [MQTT-3.3.2-2] [MQTT-4.7.0-1]", async () => {
  // Topic "a/+", no properties, payload "x".
  await expectRefused([0x30, 0x07, 0x00, 0x03, A, 0x2f, 0x2b, 0x00, 0x78], [0x81, 0x82, 0x90]);
});

test("33 v5 malformed: a PUBLISH with Topic Alias 0 gets DISCONNECT 0x94 [MQTT-3.3.2-8]", async () => {
  // Topic "a", properties: Topic Alias (0x23) 0, payload "x".
  await expectRefused([0x30, 0x08, 0x00, 0x01, A, 0x03, 0x23, 0x00, 0x00, 0x78], [0x94]);
});

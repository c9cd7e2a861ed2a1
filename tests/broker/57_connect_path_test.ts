/**
 * Broker, area 57: the connection path made with fewer objects per connection (one set of
 * connection options per listener, the protocol name of CONNECT compared as bytes, the failed-login
 * throttle keeping one source's whole budget instead of making and deleting it per login).
 *
 * @module
 */

import assert from "node:assert/strict";
import { decodePacket, MqttPacketError, PacketType } from "../../src/packet/mod.ts";
import { delay, startBroker, waitFor } from "../_helpers/broker.ts";
import { TestClient } from "../_helpers/test_client.ts";
import { LoginThrottle } from "../../src/broker/login_throttle.ts";

const test = (name: string, fn: () => void | Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

/** CONNECT with protocol name `name` (as given, or raw bytes), level, clean session, id "a". */
function connectBytes(name: string | number[], level: number): Uint8Array {
  const nameBytes = typeof name === "string" ? [...new TextEncoder().encode(name)] : name;
  const body = [0x00, nameBytes.length, ...nameBytes, level, 0x02, 0x00, 0x3c, 0x00, 0x01, 0x61];
  return new Uint8Array([0x10, body.length, ...body]);
}

test("57 connect: CONNECT named MQTT (levels 4, 5) or MQIsdp (level 3) decodes with that name [MQTT-3.1.2-1]", () => {
  for (const [name, level] of [["MQTT", 4], ["MQIsdp", 3]] as const) {
    const bytes = connectBytes(name, level);
    const decoded = decodePacket(bytes, { side: "server" });
    assert.ok(decoded !== undefined);
    assert.equal(decoded.packet.type === PacketType.CONNECT && decoded.packet.protocolName, name);
    assert.equal(decoded.packet.type === PacketType.CONNECT && decoded.packet.clientId, "a");
    assert.equal(decoded.length, bytes.length);
  }
  // Level 5: a property length (0) after the keepalive.
  const v5 = new Uint8Array([0x10, 14, 0, 4, 77, 81, 84, 84, 5, 0x02, 0, 60, 0, 0, 1, 0x61]);
  const decoded = decodePacket(v5, { side: "server" });
  assert.equal(decoded?.packet.type === PacketType.CONNECT && decoded.packet.protocolName, "MQTT");
});

test("57 connect: names that differ from MQTT or MQIsdp in one byte, or in length, are refused [MQTT-3.1.2-1] [MQTT-3.1.2-2]", () => {
  const cases: [string | number[], number][] = [
    ["MQTx", 4],
    ["mQTT", 4],
    ["MQT", 4],
    ["MQTTT", 4],
    ["MQIsdx", 3],
    ["MQIsd", 3],
    ["MQTT", 3], // the right name at the wrong level
    ["MQIsdp", 4],
    [[0x4d, 0x51, 0x54, 0x54, 0x00], 4], // "MQTT" and a U+0000
  ];
  for (const [name, level] of cases) {
    assert.throws(
      () => decodePacket(connectBytes(name, level), { side: "server" }),
      MqttPacketError,
      `name ${JSON.stringify(name)} at level ${level}`,
    );
  }
});

test("57 connect: a CONNECT cut inside its protocol name needs more bytes, not a wrong name", () => {
  const whole = connectBytes("MQIsdp", 3);
  // The fixed header says how long the packet is: a prefix is incomplete, never malformed.
  for (let end = 3; end < 10; end++) {
    assert.equal(decodePacket(whole.subarray(0, end), { side: "server" }), undefined);
  }
});

/** Connects `clientId` to `port`, again while the listener refuses it (its count not yet down). */
async function connectWhenAdmitted(port: number, clientId: string): Promise<TestClient> {
  for (let attempt = 0;; attempt++) {
    const c = await TestClient.open(port);
    try {
      await c.handshake({ clientId });
      return c;
    } catch (err) {
      await c.close();
      if (attempt >= 200) throw err;
      await delay(20);
    }
  }
}

test("57 connect: each listener's connections count against its own max-connections, after others were accepted on another listener", async () => {
  await using b = await startBroker({
    listeners: {
      default: { bind: "127.0.0.1:0", "max-connections": 1 },
      other: { bind: "127.0.0.1:0", "max-connections": 1 },
    },
  });
  const [portA, portB] = [b.broker.listeners[0]!.port, b.broker.listeners[1]!.port];
  const a1 = await TestClient.connect(portA, { clientId: "a1" });
  await using b1 = await TestClient.connect(portB, { clientId: "b1" });
  // Each listener is full: a second connection to either is refused.
  {
    await using extra = await TestClient.open(portA);
    await extra.expectClosed();
  }
  // When a1 leaves, its listener (not the other one) has room again.
  await a1.disconnect();
  await waitFor(() => !b.broker.clients().some((s) => s.clientId === "a1"), 10_000, "a1 gone");
  await using a2 = await connectWhenAdmitted(portA, "a2");
  await a2.send({ type: PacketType.PINGREQ });
  await a2.expect(PacketType.PINGRESP);
  // The other listener is still full with b1.
  {
    await using extra = await TestClient.open(portB);
    await extra.expectClosed();
  }
  await b1.send({ type: PacketType.PINGREQ });
  await b1.expect(PacketType.PINGRESP);
});

test("57 login throttle: successful logins one after another from one source leave no source counted; failures after them still spend", () => {
  const t = new LoginThrottle({ maxFailures: 2, window: 60 });
  for (let i = 0; i < 1000; i++) {
    assert.equal(t.admit("10.0.0.1", 0), true);
    t.settle("10.0.0.1", true, 0);
  }
  assert.equal(t.size, 0);
  // Two failures use the whole budget of two; a third login is not checked.
  assert.equal(t.admit("10.0.0.1", 0), true);
  t.settle("10.0.0.1", false, 0);
  assert.equal(t.size, 1);
  assert.equal(t.admit("10.0.0.1", 0), true);
  t.settle("10.0.0.1", false, 0);
  assert.equal(t.admit("10.0.0.1", 0), false);
});

test("57 login throttle: logins in progress from two sources alternating keep each budget apart", () => {
  const t = new LoginThrottle({ maxFailures: 2, window: 60 });
  for (let i = 0; i < 10; i++) {
    for (const source of ["a", "b"]) {
      assert.equal(t.admit(source, 0), true);
      t.settle(source, true, 0);
    }
  }
  assert.equal(t.size, 0);
  // Two logins of "a" in progress: "a" is out of budget, "b" is not.
  assert.equal(t.admit("a", 0), true);
  assert.equal(t.admit("a", 0), true);
  assert.equal(t.admit("a", 0), false);
  assert.equal(t.admit("b", 0), true);
  assert.equal(t.size, 2);
  // One of "a" succeeds: one unit back.
  t.settle("a", true, 0);
  assert.equal(t.admit("a", 0), true);
  assert.equal(t.admit("a", 0), false);
  // Everything whole again is forgotten by the sweep.
  t.sweep(3_600_000);
  assert.equal(t.size, 0);
  assert.equal(t.admit("a", 3_600_000), true);
});

/**
 * `packetOfItsOwn`: the packets handed to plugins by the packet events get binary fields of their
 * own, whatever the packet type, under one rule (`ownProperties` for binary properties).
 *
 * @module
 */

import assert from "node:assert/strict";
import { decodePacket, encodePacket, type Packet, PacketType } from "../../src/packet/mod.ts";
import { packetOfItsOwn } from "../../src/broker/_packet_of_its_own.ts";

/** Whether `bytes` is a buffer of its own, not a view into a larger one. */
function own(bytes: Uint8Array): boolean {
  return bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length;
}

/** `packet` as the decoder hands it out: its binary fields views into the bytes read. */
function decoded(packet: Packet): Packet {
  const bytes = encodePacket(packet, 5);
  const read = new Uint8Array(bytes.length + 64);
  read.set(bytes, 32);
  const result = decodePacket(read.subarray(32), { protocolVersion: 5 });
  assert.ok(result !== undefined);
  return result.packet;
}

const data = new Uint8Array([1, 2, 3, 4]);

Deno.test("packetOfItsOwn gives an AUTH's and a CONNACK's Authentication Data bytes of their own", () => {
  for (
    const packet of [
      decoded({
        type: PacketType.AUTH,
        reasonCode: 0x18,
        properties: { authenticationMethod: "m", authenticationData: data },
      }),
      decoded({
        type: PacketType.CONNACK,
        sessionPresent: false,
        reasonCode: 0,
        properties: { authenticationMethod: "m", authenticationData: data },
      }),
    ]
  ) {
    const view = (packet as { properties: { authenticationData: Uint8Array } }).properties
      .authenticationData;
    assert.equal(own(view), false);
    const copy = packetOfItsOwn(packet) as { properties: { authenticationData: Uint8Array } };
    assert.ok(own(copy.properties.authenticationData));
    assert.deepEqual([...copy.properties.authenticationData], [...data]);
    // The packet given is left as it was.
    assert.equal((packet as typeof copy).properties.authenticationData, view);
  }
});

Deno.test("packetOfItsOwn gives a CONNECT's password, will payload and binary properties bytes of their own", () => {
  const packet = decoded({
    type: PacketType.CONNECT,
    protocolName: "MQTT",
    protocolVersion: 5,
    clean: true,
    keepAlive: 0,
    clientId: "c",
    username: "u",
    password: data,
    will: {
      topic: "w",
      payload: data,
      qos: 0,
      retain: false,
      properties: { correlationData: data },
    },
    properties: { authenticationMethod: "m", authenticationData: data },
  });
  const copy = packetOfItsOwn(packet);
  assert.ok(copy.type === PacketType.CONNECT);
  for (
    const bytes of [
      copy.password!,
      copy.will!.payload,
      copy.will!.properties!.correlationData!,
      copy.properties!.authenticationData!,
    ]
  ) {
    assert.ok(own(bytes));
    assert.deepEqual([...bytes], [...data]);
  }
});

Deno.test("packetOfItsOwn gives a PUBLISH's payload and Correlation Data bytes of their own", () => {
  const packet = decoded({
    type: PacketType.PUBLISH,
    topic: "t",
    payload: data,
    qos: 0,
    retain: false,
    dup: false,
    properties: { correlationData: data },
  });
  const copy = packetOfItsOwn(packet);
  assert.ok(copy.type === PacketType.PUBLISH);
  assert.ok(own(copy.payload) && own(copy.properties!.correlationData!));
  assert.deepEqual([...copy.payload], [...data]);
});

Deno.test("packetOfItsOwn returns a packet without binary fields as it is", () => {
  const packet = decoded({ type: PacketType.PUBACK, packetId: 3, reasonCode: 0 });
  assert.equal(packetOfItsOwn(packet), packet);
  const sub = decoded({
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic: "t", qos: 0 }],
  });
  assert.equal(packetOfItsOwn(sub), sub);
});

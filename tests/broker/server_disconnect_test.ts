// serverDisconnect: the DISCONNECT the broker sends a 5.0 client.

import assert from "node:assert/strict";
import { serverDisconnect } from "../../src/broker/server_disconnect.ts";
import { decodePacket, encodePacket, PacketType, ReasonCode } from "../../src/packet/mod.ts";

Deno.test("serverDisconnect (MQTT 5) takes every reason code the broker closes with [MQTT-3.14.2-1]", () => {
  const closes = [
    ReasonCode.NORMAL_DISCONNECTION,
    ReasonCode.MALFORMED_PACKET,
    ReasonCode.PROTOCOL_ERROR,
    ReasonCode.NOT_AUTHORIZED,
    ReasonCode.SERVER_SHUTTING_DOWN,
    ReasonCode.KEEP_ALIVE_TIMEOUT,
    ReasonCode.SESSION_TAKEN_OVER,
    ReasonCode.RECEIVE_MAXIMUM_EXCEEDED,
    ReasonCode.TOPIC_ALIAS_INVALID,
    ReasonCode.PACKET_TOO_LARGE,
    ReasonCode.QUOTA_EXCEEDED,
    ReasonCode.ADMINISTRATIVE_ACTION,
    ReasonCode.PAYLOAD_FORMAT_INVALID,
    ReasonCode.QOS_NOT_SUPPORTED,
    ReasonCode.RETAIN_NOT_SUPPORTED,
  ];
  for (const code of closes) {
    const packet = serverDisconnect(code);
    const decoded = decodePacket(encodePacket(packet, 5), { protocolVersion: 5, side: "client" });
    assert.equal(decoded?.packet.type, PacketType.DISCONNECT);
    assert.equal(packet.reasonCode, code);
  }
  // Not DISCONNECT codes: success codes of other packets, CONNACK-only codes, the client's 0x04.
  for (const code of [0x01, 0x10, 0x84, 0x85, 0x86, 0x04]) {
    assert.throws(() => serverDisconnect(code), RangeError);
  }
});

Deno.test("serverDisconnect (MQTT 5) never carries a Session Expiry Interval [MQTT-3.14.2-2]", () => {
  const packet = serverDisconnect(ReasonCode.SERVER_SHUTTING_DOWN, {
    reasonString: "bye",
    userProperties: [["node", "a"]],
  });
  assert.deepEqual(packet.properties, { reasonString: "bye", userProperties: [["node", "a"]] });
});

Deno.test("serverDisconnect (MQTT 5) drops a Reason String or User Property past the client's Maximum Packet Size [MQTT-3.14.2-3] [MQTT-3.14.2-4]", () => {
  const info = { reasonString: "x".repeat(50), userProperties: [["k", "v".repeat(50)]] } as {
    reasonString: string;
    userProperties: [string, string][];
  };
  assert.equal(serverDisconnect(0x8e, info, { maximumPacketSize: 10 }).properties, undefined);
  const reasonOnly = serverDisconnect(0x8e, info, { maximumPacketSize: 60 });
  assert.equal(reasonOnly.properties?.reasonString, info.reasonString);
  assert.equal(reasonOnly.properties?.userProperties, undefined);
  assert.ok(encodePacket(reasonOnly, 5).length <= 60);
  const both = serverDisconnect(0x8e, info, { maximumPacketSize: 200 });
  assert.deepEqual(both.properties?.userProperties, info.userProperties);
  // Request Problem Information 0 still allows them on DISCONNECT [MQTT-3.1.2-29].
  assert.equal(
    serverDisconnect(0x8e, info, { requestProblemInformation: 0 }).properties?.reasonString,
    info.reasonString,
  );
});

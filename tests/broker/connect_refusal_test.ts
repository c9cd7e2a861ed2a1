// connectRefusalCode: one table of CONNECT refusals, answered per protocol level.

import assert from "node:assert/strict";
import { CONNECT_REFUSALS, connectRefusalCode } from "../../src/broker/connect_refusal.ts";
import { PacketType, REASON_CODE_PACKETS, reasonText } from "../../src/packet/mod.ts";

Deno.test("connectRefusalCode (MQTT 5) answers every refusal with a Connect Reason Code of 0x80 or more [MQTT-3.2.2-8]", () => {
  for (const refusal of CONNECT_REFUSALS) {
    const code = connectRefusalCode(refusal, 5)!;
    assert.ok(code >= 0x80, `${refusal}: 0x${code.toString(16)} refuses`);
    assert.ok(
      REASON_CODE_PACKETS[code]?.includes(PacketType.CONNACK),
      `${refusal}: 0x${code.toString(16)} is a Connect Reason Code`,
    );
    assert.match(
      reasonText(code, PacketType.CONNACK),
      /^0x[0-9A-F]{2} [A-Z]/,
      `${refusal} has a name`,
    );
  }
});

Deno.test("connectRefusalCode maps each refusal to its 3.1.1 return code and 5.0 reason code", () => {
  const table: [Parameters<typeof connectRefusalCode>[0], number | undefined, number][] = [
    ["unsupported_protocol_version", 1, 0x84],
    ["client_id_invalid", 2, 0x85],
    ["bad_credentials", 4, 0x86],
    ["not_authorized", 5, 0x87],
    ["login_unchecked", 3, 0x88],
    ["server_busy", 3, 0x89],
    ["banned", 5, 0x8a],
    ["bad_authentication_method", 5, 0x8c],
    ["quota_exceeded", 3, 0x97],
    ["packet_too_large", undefined, 0x95],
    ["payload_format_invalid", undefined, 0x99],
    ["retain_not_supported", undefined, 0x9a],
    ["qos_not_supported", undefined, 0x9b],
    ["topic_name_invalid", undefined, 0x90],
    ["protocol_error", undefined, 0x82],
    ["malformed", undefined, 0x81],
  ];
  assert.deepEqual(table.map(([r]) => r).sort(), [...CONNECT_REFUSALS].sort());
  for (const [refusal, v311, v5] of table) {
    assert.equal(connectRefusalCode(refusal, 4), v311, `${refusal} at 3.1.1`);
    assert.equal(connectRefusalCode(refusal, 3), v311, `${refusal} at 3.1`);
    assert.equal(connectRefusalCode(refusal, 5), v5, `${refusal} at 5.0`);
  }
});

Deno.test("connectRefusalCode (MQTT 5) refuses a will QoS or retain the broker lacks with 0x9B and 0x9A [MQTT-3.2.2-12] [MQTT-3.2.2-13]", () => {
  assert.equal(connectRefusalCode("qos_not_supported", 5), 0x9b);
  assert.equal(connectRefusalCode("retain_not_supported", 5), 0x9a);
});

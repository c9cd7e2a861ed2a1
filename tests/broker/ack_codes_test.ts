// The reason codes of the broker's acks to 5.0 clients, checked against the codec's table of the
// packets each code may go on.

import assert from "node:assert/strict";
import {
  grantedQos,
  PUBLISH_OUTCOMES,
  publishAckCode,
  SUBSCRIBE_REFUSALS,
  subscribeRefusalCode,
  unsubscribeCode,
} from "../../src/broker/ack_codes.ts";
import { PacketType, REASON_CODE_PACKETS } from "../../src/packet/mod.ts";

function allowedOn(code: number, type: number): boolean {
  return REASON_CODE_PACKETS[code]?.includes(type as never) ?? false;
}

Deno.test("subscribeRefusalCode (MQTT 5) gives a Subscribe Reason Code of 0x80 or more, 0x80 at 3.1.1 [MQTT-3.9.3-2]", () => {
  for (const refusal of SUBSCRIBE_REFUSALS) {
    const code = subscribeRefusalCode(refusal, 5);
    assert.ok(
      code >= 0x80 && allowedOn(code, PacketType.SUBACK),
      `${refusal}: 0x${code.toString(16)}`,
    );
    assert.equal(subscribeRefusalCode(refusal, 4), 0x80);
    assert.equal(subscribeRefusalCode(refusal, 3), 0x80);
  }
  assert.deepEqual(
    ["filter_invalid", "not_authorized", "quota_exceeded"].map((r) =>
      subscribeRefusalCode(r as "filter_invalid", 5)
    ),
    [0x8f, 0x87, 0x97],
  );
});

Deno.test("grantedQos (MQTT 5) grants at most the Maximum QoS and accepts any requested QoS [MQTT-3.2.2-10]", () => {
  assert.deepEqual([0, 1, 2].map((q) => grantedQos(q as 0 | 1 | 2, 0)), [0, 0, 0]);
  assert.deepEqual([0, 1, 2].map((q) => grantedQos(q as 0 | 1 | 2, 1)), [0, 1, 1]);
  assert.deepEqual([0, 1, 2].map((q) => grantedQos(q as 0 | 1 | 2)), [0, 1, 2]);
});

Deno.test("unsubscribeCode (MQTT 5) gives Success or No subscription existed, both UNSUBACK codes [MQTT-3.11.3-2]", () => {
  assert.equal(unsubscribeCode(true), 0x00);
  assert.equal(unsubscribeCode(false), 0x11);
  for (const existed of [true, false]) {
    assert.ok(allowedOn(unsubscribeCode(existed), PacketType.UNSUBACK));
  }
});

Deno.test("publishAckCode (MQTT 5) gives PUBACK and PUBREC reason codes [MQTT-3.4.2-1] [MQTT-3.5.2-1]", () => {
  for (const outcome of PUBLISH_OUTCOMES) {
    const code = publishAckCode(outcome);
    assert.ok(allowedOn(code, PacketType.PUBACK), `${outcome} on PUBACK`);
    assert.ok(allowedOn(code, PacketType.PUBREC), `${outcome} on PUBREC`);
  }
  assert.equal(publishAckCode("delivered"), 0x00);
  assert.equal(publishAckCode("no_subscribers"), 0x10);
  assert.ok(publishAckCode("quota_exceeded") >= 0x80);
});

// willDelayOf and willMessage: a 5.0 will as the broker keeps and publishes it.

import assert from "node:assert/strict";
import { willDelayOf, willMessage } from "../../src/broker/will_message.ts";
import { decodePacket, type PublishPacket } from "../../src/packet/mod.ts";
import type { Will } from "../../src/packet/types.ts";

const base: Will = { topic: "status/c", payload: new Uint8Array([1]), qos: 1, retain: false };

Deno.test("willDelayOf is the Will Delay Interval, 0 without one", () => {
  assert.equal(willDelayOf({ ...base, properties: { willDelayInterval: 0 } }), 0);
  assert.equal(willDelayOf({ ...base, properties: { willDelayInterval: 3600 } }), 3600);
  assert.equal(willDelayOf({ ...base, properties: { contentType: "x" } }), 0);
  assert.equal(willDelayOf(base), 0);
});

Deno.test("willMessage (MQTT 5) publishes the will with its RETAIN flag [MQTT-3.1.2-14] [MQTT-3.1.2-15]", () => {
  assert.equal(willMessage({ ...base, retain: false }, "c", 0).retain, false);
  const retained = willMessage({ ...base, retain: true }, "c", 0);
  assert.equal(retained.retain, true);
  assert.equal(retained.asRetained().retainOut, true);
});

Deno.test("willMessage (MQTT 5) forwards the will's User Properties in their order [MQTT-3.1.3-10]", () => {
  const userProperties: [string, string][] = [["z", "1"], ["a", "2"], ["z", "3"]];
  const m = willMessage(
    {
      ...base,
      properties: {
        willDelayInterval: 5,
        payloadFormatIndicator: 1,
        contentType: "application/json",
        responseTopic: "r/c",
        correlationData: new Uint8Array([4, 2]),
        userProperties,
      },
    },
    "c",
    0,
  );
  // As a subscriber gets it: the Will Delay Interval is not a PUBLISH property.
  const e = m.encoded5(1, {}, 0);
  const bytes = e.bytes.slice();
  bytes[e.packetIdOffset + 1] = 1;
  const p = decodePacket(bytes, { protocolVersion: 5, side: "client" })?.packet as PublishPacket;
  assert.deepEqual(p.properties, {
    payloadFormatIndicator: 1,
    contentType: "application/json",
    responseTopic: "r/c",
    correlationData: new Uint8Array([4, 2]),
    userProperties,
  });
});

Deno.test("willMessage (MQTT 5) counts the will's Message Expiry Interval from its publication", () => {
  const will = { ...base, properties: { willDelayInterval: 30, messageExpiryInterval: 10 } };
  const m = willMessage(will, "c", 50_000);
  assert.equal(m.expiresAt, 60_000);
  assert.equal(willMessage(base, "c", 50_000).expiresAt, undefined);
  assert.equal(willMessage(base, "c", 0).properties, undefined);
});

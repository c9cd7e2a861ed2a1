/**
 * BrokerMessage: its data as a serialisable record, apart from its cached encodings.
 *
 * @module
 */

import assert from "node:assert/strict";
import { BrokerMessage } from "../../src/broker/message.ts";
import { DUP_FLAG, RETAIN_FLAG } from "../../src/broker/publish_encoding.ts";

Deno.test("BrokerMessage.toRecord gives topic, payload, QoS, RETAIN and origin, JSON-safe properties", () => {
  const payload = new Uint8Array([1, 2, 3]);
  const message = new BrokerMessage("a/b", payload, {
    qos: 1,
    retain: true,
    senderId: "pub",
    properties: { contentType: "text/plain", userProperties: [["k", "v"]] },
  });
  const record = message.toRecord();
  assert.deepEqual(record, {
    topic: "a/b",
    payload,
    qos: 1,
    retain: true,
    origin: "pub",
    properties: { contentType: "text/plain", userProperties: [["k", "v"]] },
  });
  // Serialisable apart from the payload bytes.
  const { payload: _, ...rest } = record;
  assert.deepEqual(JSON.parse(JSON.stringify(rest)), rest);
  // A message from the host program has no origin, and no properties key when it has none.
  assert.deepEqual(
    new BrokerMessage("t", payload, { qos: 0, retain: false }).toRecord(),
    { topic: "t", payload, qos: 0, retain: false },
  );
});

Deno.test("BrokerMessage encodings carry no RETAIN or DUP: those are set per delivery", () => {
  const live = new BrokerMessage("r/t", new Uint8Array([7]), { qos: 1, retain: true });
  const stored = live.asRetained();
  assert.equal(stored.retainOut, true);
  for (const m of [live, stored]) {
    for (const qos of [0, 1, 2] as const) {
      assert.equal(m.encoded(4, qos)[0]! & (RETAIN_FLAG | DUP_FLAG), 0, `QoS ${qos}`);
    }
  }
  assert.deepEqual(stored.encoded(4, 1), live.encoded(4, 1));
});

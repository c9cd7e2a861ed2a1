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

Deno.test("BrokerMessage.copyOut copies a small payload into a shared slab, detach then into a buffer of its own", () => {
  // A QoS 1 PUBLISH to "t" as read (packet id 9), payload [1, 2].
  const read = new Uint8Array([0x32, 7, 0, 1, 0x74, 0, 9, 1, 2]);
  const messages = [0, 1].map(() =>
    new BrokerMessage("t", read.subarray(7), { qos: 1, retain: false, receivedAt: 4 })
  );
  for (const m of messages) m.copyOut();
  // The read buffer may now be read into again.
  read.fill(0xee);
  assert.deepEqual(messages.map((m) => [...m.payload]), [[1, 2], [1, 2]]);
  // Both copies are views into one slab, apart from the read buffer.
  assert.equal(messages[0]!.payload.buffer, messages[1]!.payload.buffer);
  assert.notEqual(messages[0]!.payload.buffer, read.buffer);
  // Its encoding is made from the copy, not looked for in the read buffer.
  assert.deepEqual([...messages[0]!.encoded(4, 1)], [0x32, 7, 0, 1, 0x74, 0, 1, 1, 2]);
  // A message to be kept long gets a buffer of exactly its payload.
  messages[0]!.detach();
  assert.equal(messages[0]!.payload.buffer.byteLength, 2);
  assert.deepEqual([...messages[0]!.payload], [1, 2]);
  assert.deepEqual([...messages[1]!.payload], [1, 2]);
});

Deno.test("BrokerMessage.copyOut gives a payload larger than a slab's share a buffer of its own", () => {
  const big = new Uint8Array(300).fill(7);
  const m = new BrokerMessage("t", big, { qos: 1, retain: false });
  m.copyOut();
  big.fill(0);
  assert.equal(m.payload.buffer.byteLength, 300);
  assert.ok(m.payload.every((b) => b === 7));
});

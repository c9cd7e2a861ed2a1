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

/**
 * Runs `body` in a child Deno with `--v8-flags=--expose-gc` (`BrokerMessage` and `gc` in scope),
 * after which the read buffer `read` (a WeakRef named `buffer`) must have been collected; returns
 * whether it was.
 */
async function readBufferCollected(body: string): Promise<boolean> {
  const module = new URL("../../src/broker/message.ts", import.meta.url).href;
  const script = `
    import { BrokerMessage } from ${JSON.stringify(module)};
    const kept = [];
    const buffer = (() => {
      // A 64 KiB read buffer holding a QoS 1 PUBLISH's payload.
      const read = new Uint8Array(65536);
      const message = new BrokerMessage("t", read.subarray(7, 9), { qos: 1, retain: false, receivedAt: 5 });
      ${body}
      return new WeakRef(read.buffer);
    })();
    for (let i = 0; i < 2; i++) {
      await new Promise((r) => setTimeout(r, 0));
      globalThis.gc();
    }
    console.log(JSON.stringify({ collected: buffer.deref() === undefined, kept: kept.length }));
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--v8-flags=--expose-gc", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const result = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.ok(result.kept > 0);
  return result.collected;
}

Deno.test("BrokerMessage: a 5.0 delivery's copy kept long (detached or copied out) does not keep the read buffer of the message it was made from [MQTT-3.3.4-3]", async () => {
  // Queued for an offline session: a payload of its own.
  assert.equal(
    await readBufferCollected(`
      const copy = message.forwarded(false, [7]);
      copy.detach();
      kept.push(copy);
    `),
    true,
    "a detached copy",
  );
  // Queued behind a connected session's window: a slab copy.
  assert.equal(
    await readBufferCollected(`
      const copy = message.forwarded(true, [7]);
      copy.copyOut();
      kept.push(copy);
    `),
    true,
    "a copied-out copy",
  );
  // In flight, then the session went offline before the message was copied out.
  assert.equal(
    await readBufferCollected(`
      const copy = message.forwarded(false, [7]);
      copy.keptInFlight();
      copy.detach();
      kept.push(copy);
    `),
    true,
    "a copy kept in flight, then detached",
  );
  // In flight and copied out with its message, as routed.
  assert.equal(
    await readBufferCollected(`
      const copy = message.forwarded(false, [7]);
      copy.keptInFlight();
      message.copyOut();
      kept.push(copy);
    `),
    true,
    "a copy copied out with its message",
  );
});

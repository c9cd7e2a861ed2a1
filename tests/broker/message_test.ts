/**
 * BrokerMessage: its data as a serialisable record, apart from its cached encodings.
 *
 * @module
 */

import assert from "node:assert/strict";
import { BrokerMessage, copyOutRecords, forgetRecords } from "../../src/broker/message.ts";
import { DUP_FLAG, RETAIN_FLAG } from "../../src/broker/publish_encoding.ts";
import { decodePacket, type PublishPacket } from "../../src/packet/mod.ts";

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
async function readBufferCollected(body: string, properties = "undefined"): Promise<boolean> {
  const module = new URL("../../src/broker/message.ts", import.meta.url).href;
  const script = `
    import { BrokerMessage } from ${JSON.stringify(module)};
    const kept = [];
    const buffer = (() => {
      // A 64 KiB read buffer holding a QoS 1 PUBLISH's payload.
      const read = new Uint8Array(65536);
      const message = new BrokerMessage("t", read.subarray(7, 9), {
        qos: 1, retain: false, receivedAt: 5, properties: ${properties},
      });
      ${body}
      return new WeakRef(read.buffer);
    })();
    // A macrotask before each collection: the frames and pending microtasks that still referred
    // to the objects are gone by then; nothing else is waited for (no I/O, no store).
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

Deno.test("BrokerMessage: a 5.0 message kept long or retained does not keep its read buffer through its Correlation Data", async () => {
  // The Correlation Data is a view into the read buffer, as the payload is (a PUBLISH with
  // properties keeps its chunk from being read into again: a new buffer, or idle slab slot, next).
  const properties = "{ correlationData: read.subarray(20, 30), userProperties: [['k', 'v']] }";
  // Queued for an offline session.
  assert.equal(
    await readBufferCollected(`message.detach(); kept.push(message);`, properties),
    true,
    "a detached message",
  );
  // A delivery's copy queued for an offline session, its message dropped.
  assert.equal(
    await readBufferCollected(
      `const copy = message.forwarded(false, [7]); copy.detach(); kept.push(copy);`,
      properties,
    ),
    true,
    "a detached copy",
  );
  // Waiting at the sweep: kept long.
  assert.equal(
    await readBufferCollected(`message.keptLong(); kept.push(message);`, properties),
    true,
    "a message kept long",
  );
  // Retained, for good.
  assert.equal(
    await readBufferCollected(`kept.push(message.asRetained());`, properties),
    true,
    "a retained copy",
  );
});

/** Whether a payload has a buffer of its own (neither a slab's view nor a read buffer's). */
function own(payload: Uint8Array): boolean {
  return payload.byteOffset === 0 && payload.buffer.byteLength === payload.length;
}

Deno.test("BrokerMessage.toRecord: a record kept long gets a payload of its own at release, one kept within the turn the message's copy", () => {
  // A QoS 1 PUBLISH to "t" as read (packet id 9), payload [1, 2].
  const read = new Uint8Array([0x32, 7, 0, 1, 0x74, 0, 9, 1, 2]);
  const message = new BrokerMessage("t", read.subarray(7), {
    qos: 1,
    retain: false,
    receivedAt: 4,
  });
  forgetRecords();
  const turn = message.toRecord();
  const long = message.toRecord("long");
  const encoded = message.toRecord(false);
  assert.equal(copyOutRecords(), 2);
  read.fill(0xee); // the read buffer read into again
  // The store's record shares the message's slab copy: no copy of its own on the hot path.
  assert.equal(turn.payload, message.payload);
  assert.equal(own(message.payload), false);
  // The one a moving session keeps (maybe for seconds) keeps no slab alive.
  assert.ok(own(long.payload));
  assert.deepEqual([...long.payload], [1, 2]);
  assert.deepEqual([...turn.payload], [1, 2]);
  // Encoded at once, never kept: not noted, left a view.
  assert.equal(encoded.payload.buffer, read.buffer);
  // Already in a slab (copied out while queued): a copy of its own at once.
  const late = message.toRecord("long");
  assert.ok(own(late.payload));
  assert.deepEqual([...late.payload], [1, 2]);
  assert.equal(copyOutRecords(), 0);
});

Deno.test("BrokerMessage.keptLong gives a buffer of its own to a payload given as a view, and to a 5.0 copy of a message already in a slab", () => {
  const bytes = new Uint8Array([5, 1, 2, 3, 5]);
  // A cluster node's message: a view into a read from Redis that holds other frames.
  const remote = new BrokerMessage("t", bytes.subarray(1, 4), {
    qos: 1,
    retain: false,
    view: true,
  });
  remote.keptLong();
  assert.ok(own(remote.payload));
  assert.deepEqual([...remote.payload], [1, 2, 3]);
  // A host program's payload of its own is left as it is.
  const host = new BrokerMessage("t", new Uint8Array([1]), { qos: 1, retain: false });
  const hostPayload = host.payload;
  host.keptLong();
  assert.equal(host.payload, hostPayload);
  // Queued for a first session (copied to a slab during the routing), then copied for a 5.0
  // delivery: that copy's payload is in the slab too.
  const read = new Uint8Array([0x32, 7, 0, 1, 0x74, 0, 9, 1, 2]);
  const m = new BrokerMessage("t", read.subarray(7), { qos: 1, retain: false, receivedAt: 4 });
  m.copyOut();
  const copy = m.forwarded(false, [3]);
  assert.equal(own(copy.payload), false);
  copy.keptLong();
  assert.ok(own(copy.payload));
  assert.deepEqual([...copy.payload], [1, 2]);
  // A copy made after the message got a buffer of its own shares it: nothing to copy.
  m.detach();
  const after = m.forwarded(false, [4]);
  after.keptLong();
  assert.equal(after.payload, m.payload);
});

/** The PUBLISH a connection writes from shared bytes: the packet id patched at `idOffset`. */
function patched(bytes: Uint8Array, idOffset: number, packetId: number): Uint8Array {
  const out = bytes.slice();
  out[idOffset] = packetId >> 8;
  out[idOffset + 1] = packetId & 0xff;
  return out;
}

Deno.test("BrokerMessage.writtenOut: a message let go of gives encodings that agree with its empty payload, none cached before with its bytes", () => {
  // Its payload a view into a read buffer that later PUBLISHes are read into.
  const buffer = new Uint8Array(64).fill(0x41);
  for (const level of [4, 5] as const) {
    const m = new BrokerMessage("t/x", buffer.subarray(8, 17), { qos: 1, retain: false });
    // Encoded during the routing for a second delivery of each shape: cached.
    const before = m.shared(level, 1);
    assert.equal(
      (decodePacket(patched(before, m.sharedIdOffset(level, before), 9), {
        protocolVersion: level,
      })!.packet as PublishPacket).payload.length,
      9,
    );
    assert.equal(m.writtenOut(), true);
    // A reader after the routing (one the rule missed) gets a PUBLISH whose packet id is where
    // the connection writes it, and no bytes: never part of the payload overwritten by the id.
    const bytes = m.shared(level, 1);
    const packet = decodePacket(patched(bytes, m.sharedIdOffset(level, bytes), 7), {
      protocolVersion: level,
    })!.packet as PublishPacket;
    assert.equal(packet.packetId, 7, `level ${level}: packet id`);
    assert.deepEqual([...packet.payload], [], `level ${level}: payload`);
    const at5 = m.encoded5(1, { subscriptionIdentifiers: [3] }, 0);
    const with5 = decodePacket(patched(at5.bytes, at5.packetIdOffset, 7), {
      protocolVersion: 5,
    })!.packet as PublishPacket;
    assert.equal(with5.packetId, 7);
    assert.deepEqual([...with5.payload], []);
  }
});

Deno.test("BrokerMessage.writtenOut: a 5.0 message let go of keeps no Correlation Data that views its read buffer", () => {
  const buffer = new Uint8Array(64).fill(0x41);
  const m = new BrokerMessage("t/x", buffer.subarray(8, 17), {
    qos: 1,
    retain: false,
    properties: { correlationData: buffer.subarray(20, 24), contentType: "c" },
    receivedAt: 5,
  });
  assert.equal(m.writtenOut(), true);
  // The read buffer is read into again by another client's PUBLISH.
  buffer.fill(0x42);
  const seen = m.properties?.correlationData;
  assert.ok(seen === undefined || !seen.includes(0x42), "another client's bytes");
  const at5 = m.encoded5(1, {}, 0);
  assert.ok(!at5.bytes.includes(0x42), "another client's bytes in an encoding");
});

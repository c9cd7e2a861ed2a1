// The binary message record encoding used by the Redis store and the cluster bus: golden bytes,
// round-trips of random records, and random or truncated bytes refused with a plain error.
import assert from "node:assert/strict";
import fc from "fast-check";
import type { MessageRecord } from "../../src/store/message_record.ts";
import {
  ByteReader,
  ByteWriter,
  decodeMessage,
  encodeMessage,
} from "../../src/store/record_codec.ts";

Deno.test("encodeMessage: golden bytes of a minimal and a full record", () => {
  const minimal: MessageRecord = {
    topic: "a",
    payload: new Uint8Array([0xff]),
    qos: 0,
    retain: false,
  };
  assert.deepEqual(encodeMessage(minimal), new Uint8Array([0x00, 1, 0x61, 0xff]));
  const full: MessageRecord = {
    topic: "t",
    payload: new Uint8Array([]),
    qos: 2,
    retain: true,
    origin: "c",
    properties: { contentType: "x" },
    expiresAt: 1,
  };
  const json = new TextEncoder().encode('{"contentType":"x"}');
  assert.deepEqual(
    encodeMessage(full),
    new Uint8Array([
      2 | 4 | 8 | 16 | 32,
      0x3f,
      0xf0,
      0,
      0,
      0,
      0,
      0,
      0, // 1.0 as float64
      1,
      0x74, // topic
      1,
      0x63, // origin
      json.length,
      ...json, // properties
    ]),
  );
  assert.deepEqual(decodeMessage(encodeMessage(full)), full);
});

const record = fc.record(
  {
    topic: fc.string({ unit: "grapheme", maxLength: 40 }),
    payload: fc.uint8Array({ maxLength: 300 }),
    qos: fc.constantFrom(0 as const, 1 as const, 2 as const),
    retain: fc.boolean(),
    origin: fc.string({ maxLength: 30 }),
    expiresAt: fc.integer({ min: 0, max: 2 ** 50 }),
    properties: fc.record({
      contentType: fc.string(),
      userProperties: fc.array(fc.tuple(fc.string(), fc.string()), { maxLength: 3 }),
    }, { requiredKeys: [] }),
  },
  { requiredKeys: ["topic", "payload", "qos", "retain"] },
);

Deno.test("decodeMessage(encodeMessage(m)) is m for random records", () => {
  fc.assert(fc.property(record, (m) => {
    assert.deepEqual(decodeMessage(encodeMessage(m as MessageRecord)), m);
  }));
});

Deno.test("decodeMessage refuses random and truncated bytes with a plain error, never anything else", () => {
  const plain = (e: unknown) =>
    e instanceof RangeError || e instanceof TypeError || e instanceof SyntaxError;
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
    try {
      decodeMessage(bytes);
    } catch (error) {
      assert.ok(plain(error), String(error));
    }
  }));
  const bytes = encodeMessage({
    topic: "topic",
    payload: new Uint8Array(),
    qos: 1,
    retain: false,
    origin: "o",
  });
  // Cut anywhere inside the header fields: refused (the payload runs to the end, so a cut there
  // only shortens the payload).
  for (let end = 0; end < bytes.length; end++) {
    assert.throws(() => decodeMessage(bytes.subarray(0, end)), RangeError);
  }
});

Deno.test("ByteWriter.text writes long and non-ASCII strings in place: the bytes of TextEncoder behind their length, read back by ByteReader", () => {
  const cases = [
    "",
    "a",
    "x".repeat(127),
    "x".repeat(128),
    "x".repeat(20_000),
    "é",
    "日本",
    "😀 emoji",
    "é" + "x".repeat(49), // room for a 2-byte length (3 × 50 ≥ 128), 1 byte used: moved up
    "日".repeat(43), // 129 bytes: a 2-byte length
    "日".repeat(10_000),
    "mixed ascii, ü, 日本, 😀 ".repeat(300),
  ];
  const writer = new ByteWriter();
  for (const value of cases) {
    // After something else, at varied offsets and with the buffer growing.
    writer.reset().u8(7).text(value).u8(9);
    const utf8 = new TextEncoder().encode(value);
    const expected = new ByteWriter().u8(7).varint(utf8.length).raw(utf8).u8(9).finish();
    assert.deepEqual(writer.finish(), expected, `bytes of a string of ${value.length}`);
    const reader = new ByteReader(writer.finish());
    assert.equal(reader.u8(), 7);
    assert.equal(reader.text(), value);
    assert.equal(reader.u8(), 9);
  }
  // A lone surrogate is written as TextEncoder writes it (U+FFFD).
  writer.reset().text("a\ud800b");
  assert.equal(new ByteReader(writer.finish()).text(), "a\ufffdb");
});

Deno.test("ByteWriter.text at the end of a full buffer keeps the bytes written before it", () => {
  for (let fill = 250; fill <= 260; fill++) {
    const writer = new ByteWriter().raw(new Uint8Array(fill).fill(1));
    writer.text("é");
    const out = writer.finish();
    assert.equal(out.length, fill + 3);
    assert.ok(out.subarray(0, fill).every((b) => b === 1));
    assert.deepEqual([...out.subarray(fill)], [2, 0xc3, 0xa9]);
  }
});

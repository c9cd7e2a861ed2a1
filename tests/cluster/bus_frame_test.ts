// The cluster bus frames: every frame type round-trips, and bad bytes are refused with a plain
// error (the bus counts and drops them).
import assert from "node:assert/strict";
import {
  type BusFrame,
  decodeFrame,
  decodeFrames,
  encodeBatch,
  encodeFrame,
  FrameBatch,
  type MessageFrame,
} from "../../src/cluster/bus_frame.ts";
import { TextCache } from "../../src/cluster/_text_cache.ts";

const FRAMES: BusFrame[] = [
  {
    type: "message",
    origin: "node-1",
    publisher: "",
    seq: 2 ** 40,
    message: {
      topic: "a/😀",
      payload: new Uint8Array([0, 10, 13, 255]),
      qos: 2,
      retain: true,
      properties: { correlationData: "AAE=", userProperties: [["k", "v"], ["k", "w"]] },
      expiresAt: 1_750_000_000_000,
      origin: "client",
    },
  },
  {
    type: "message",
    origin: "n",
    publisher: "p",
    seq: 1,
    shares: ["$share/g/a/#", "$share/h/+"],
    message: { topic: "a", payload: new Uint8Array(), qos: 1, retain: false },
  },
  {
    type: "message",
    origin: "n",
    publisher: "p",
    seq: 3,
    shares: ["$share/g/a/#"],
    only: true,
    order: 1_765_000_000_000_123,
    message: { topic: "a", payload: new Uint8Array([1]), qos: 0, retain: false },
  },
  { type: "takeover", origin: "node-2", clientId: "клиент" },
  { type: "handoff", origin: "node-1", clientId: "клиент" },
  { type: "handoff", origin: "node-1", clientId: "c", marks: { "node-1": 7, "node-3": 2 ** 50 } },
  { type: "fence", origin: "node-2", id: 12 },
  { type: "emptied", origin: "node-2" },
  {
    type: "subscribed",
    origin: "node-1",
    clientId: "клиент",
    subscriptions: [
      { topic: "a/#", qos: 1 },
      { topic: "b/+", qos: 2, noLocal: true, retainAsPublished: true, retainHandling: 2 },
      { topic: "c", qos: 0, identifier: 7 },
    ],
  },
  { type: "interest", origin: "n", add: true, filters: ["a/+", "$share/g/b/#"] },
  { type: "interest", origin: "n", add: false, filters: [] },
  { type: "sync", origin: "n", filters: ["#"] },
  { type: "left", origin: "a", node: "b", graceful: false, clients: ["x", "y"] },
];

Deno.test("decodeFrame(encodeFrame(f)) is f for every frame type", () => {
  for (const frame of FRAMES) assert.deepEqual(decodeFrame(encodeFrame(frame)), frame);
});

Deno.test(
  "a message frame passed on for its groups only says so with 1, as every version 5 node reads it; a pass count there from the release that wrote one reads as only",
  () => {
    const frame: MessageFrame = {
      type: "message",
      origin: "n",
      publisher: "p",
      seq: 4,
      shares: ["$share/g/a/#"],
      only: true,
      message: { topic: "a", payload: new Uint8Array([2]), qos: 1, retain: false },
    };
    // The byte "only" is the one that differs from the same frame without it.
    const only = encodeFrame(frame);
    const plain = encodeFrame({ ...frame, only: false });
    const at = only.findIndex((b, i) => b !== plain[i]);
    assert.equal(plain[at], 0);
    // However often it was passed on (a field the release that counted passes there read).
    assert.equal(encodeFrame({ ...frame, passes: 3 } as MessageFrame)[at], 1);
    assert.equal(only[at], 1);
    // That release wrote 2 and more after a second pass: still only here.
    const counted = only.slice();
    counted[at] = 3;
    assert.deepEqual(decodeFrame(counted), frame);
  },
);

Deno.test("decodeFrame refuses another version, an unknown type and truncated frames", () => {
  const bytes = encodeFrame(FRAMES[1]!);
  // Version 1 (before message frames named the shared groups their receiver serves).
  assert.throws(() => decodeFrame(new Uint8Array([1, ...bytes.subarray(1)])), /version 1/);
  assert.throws(() => decodeFrame(new Uint8Array([2, 1, 0])), /version 2/);
  // Version 3 (before message frames carried their origin's order).
  assert.throws(() => decodeFrame(new Uint8Array([3, 1, 0])), /version 3/);
  // Version 4 (before a batch's count was 4 bytes).
  assert.throws(() => decodeFrame(new Uint8Array([4, 1, 0])), /version 4/);
  assert.throws(() => decodeFrame(new Uint8Array([5, 99, 0])), /unknown type/);
  for (let end = 0; end < bytes.length; end++) {
    assert.throws(() => decodeFrame(bytes.subarray(0, end)), RangeError);
  }
});

Deno.test("decodeFrame refuses as malformed a topic or filter over 16383 characters, in every frame that carries one", () => {
  // An older release's node may write one; no map of this node may hold it (topic_length.ts).
  const framesOf = (t: string): BusFrame[] => {
    const message = { topic: t, payload: new Uint8Array([1]), qos: 1 as const, retain: true };
    return [
      { type: "message", origin: "n", publisher: "p", seq: 1, message },
      { type: "retained", origin: "n", topic: t },
      { type: "retained", origin: "n", topic: t, message },
      // A shared group's filter (any other is refused as such): of the same length.
      { type: "members", origin: "n", filter: `$share/g/${t.slice(9)}`, count: 1 },
      { type: "interest", origin: "n", add: true, filters: ["a", t] },
      { type: "sync", origin: "n", filters: [t] },
      { type: "subscribed", origin: "n", clientId: "c", subscriptions: [{ topic: t, qos: 0 }] },
    ];
  };
  for (const frame of framesOf("a".repeat(16384))) {
    assert.throws(() => decodeFrame(encodeFrame(frame)), RangeError, frame.type);
  }
  // The same frames at the limit are read.
  for (const frame of framesOf("a".repeat(16383))) {
    assert.deepEqual(decodeFrame(encodeFrame(frame)), frame, frame.type);
  }
});

Deno.test("decodeFrames unpacks a batch in order, and a single frame as one", () => {
  const encoded = FRAMES.map(encodeFrame);
  assert.deepEqual(decodeFrames(encodeBatch(encoded)), FRAMES);
  assert.deepEqual(decodeFrames(encoded[0]!), [FRAMES[0]]);
  assert.deepEqual(decodeFrames(encodeBatch([])), []);
  const batch = encodeBatch(encoded);
  for (let end = 2; end < batch.length; end += 7) {
    assert.throws(() => decodeFrames(batch.subarray(0, end)), RangeError);
  }
});

Deno.test("decodeFrames with a TextCache gives the same strings for bytes seen before, and new ones for others", () => {
  const long = "t/" + "x".repeat(100);
  const frames: BusFrame[] = [...FRAMES];
  for (let i = 0; i < 40; i++) {
    frames.push({
      type: "message",
      origin: "node-1",
      publisher: `pub-${i % 9}`,
      seq: i,
      message: {
        topic: i % 3 === 0 ? long : `a/${i % 5}/é`,
        payload: new Uint8Array([i]),
        qos: 0,
        retain: false,
      },
    });
  }
  const batch = new FrameBatch();
  for (const frame of frames) batch.add(encodeFrame(frame));
  const bytes = batch.finish();
  const texts = new TextCache();
  // Twice through one cache: the second pass reads every string from it.
  assert.deepEqual(decodeFrames(bytes, texts), frames);
  assert.deepEqual(decodeFrames(bytes, texts), frames);
  // A string of the same length but other bytes is not taken for a cached one.
  const other: BusFrame = { type: "takeover", origin: "node-9", clientId: "клиенц" };
  assert.deepEqual(decodeFrames(encodeFrame(other), texts), [other]);
  // Invalid UTF-8 is refused with a cache as without.
  const bad = encodeFrame({ type: "takeover", origin: "n", clientId: "ab" });
  bad[bad.length - 1] = 0xff;
  assert.throws(() => decodeFrames(bad, texts), TypeError);
});

Deno.test("decodeFrame refuses a subscribed frame whose subscriptions are malformed", async () => {
  const { ByteWriter } = await import("../../src/store/record_codec.ts");
  const VERSION = encodeFrame({ type: "emptied", origin: "n" })[0]!;
  const type = encodeFrame({
    type: "subscribed",
    origin: "n",
    clientId: "c",
    subscriptions: [],
  })[1]!;
  for (
    const json of [
      "{",
      "{}",
      '[{"topic":"a","qos":3}]',
      '[{"qos":1}]',
      '[{"topic":"a","qos":1,"identifier":0}]',
      // What the subscription tree refuses with an error, which the node merging them died of.
      '[{"topic":"a/#/b","qos":1}]',
      '[{"topic":"","qos":1}]',
      '[{"topic":"a","qos":1,"identifier":268435456}]',
    ]
  ) {
    const bytes = new ByteWriter().u8(VERSION).u8(type).text("n").text("c").text(json).finish();
    assert.throws(() => decodeFrame(bytes), RangeError, json);
  }
});

Deno.test("decodeFrame refuses frames whose topics, groups, properties or marks the core cannot take [MQTT-3.3.2-2] [MQTT-4.7.3-1] [MQTT-3.3.2-14]", () => {
  const message = (m: Partial<MessageFrame["message"]>, shares?: string[]): BusFrame => ({
    type: "message",
    origin: "n",
    publisher: "p",
    seq: 1,
    ...(shares === undefined ? {} : { shares }),
    message: { topic: "a/b", payload: new Uint8Array([1]), qos: 1, retain: false, ...m },
  });
  const bad = (v: unknown) => v as never;
  const refused: [string, BusFrame][] = [
    ["wildcard topic", message({ topic: "a/+" })],
    ["hash topic", message({ topic: "#" })],
    ["empty topic", message({ topic: "" })],
    ["NUL in topic", message({ topic: "a\u0000b" })],
    ["properties not an object", message({ properties: bad([1]) })],
    ["user properties", message({ properties: bad({ userProperties: 5 }) })],
    ["user property pair", message({ properties: bad({ userProperties: [["k"]] }) })],
    ["response topic", message({ properties: { responseTopic: "r/#" } })],
    ["correlation data", message({ properties: bad({ correlationData: "%%" }) })],
    ["payload format", message({ properties: bad({ payloadFormatIndicator: 7 }) })],
    ["identifier", message({ subscriptionIdentifiers: [0] })],
    ["identifier too large", message({ subscriptionIdentifiers: [268_435_456] })],
    ["expiry", message({ expiresAt: NaN })],
    ["group", message({}, ["g/a"])],
    ["group filter", message({}, ["$share/g/a/#/b"])],
    ["members group", { type: "members", origin: "n", filter: "a/b", count: 2 }],
    ["handoff mark", { type: "handoff", origin: "n", clientId: "c", marks: { m: NaN } }],
    ["retained topic", { type: "retained", origin: "n", topic: "a/+" }],
    ["retained message topic", {
      type: "retained",
      origin: "n",
      topic: "a/b",
      message: { topic: "a/c", payload: new Uint8Array(), qos: 0, retain: true },
    }],
    ["retained message", {
      type: "retained",
      origin: "n",
      topic: "a/b",
      message: {
        topic: "a/b",
        payload: new Uint8Array(),
        qos: 0,
        retain: true,
        properties: bad("x"),
      },
    }],
  ];
  for (const [what, frame] of refused) {
    assert.throws(() => decodeFrame(encodeFrame(frame)), RangeError, what);
    // In a batch, the whole batch is refused (the bus counts it once).
    assert.throws(
      () => decodeFrames(encodeBatch([encodeFrame(frame), encodeFrame(frame)])),
      RangeError,
    );
  }
  // Their valid neighbours pass.
  for (
    const frame of [
      message({ topic: "a/b", properties: { responseTopic: "r/1", payloadFormatIndicator: 1 } }),
      message({}, ["$share/g/a/#"]),
      { type: "members", origin: "n", filter: "$share/g/a/+", count: 2 },
      { type: "retained", origin: "n", topic: "a/b" },
    ] as BusFrame[]
  ) {
    assert.deepEqual(decodeFrame(encodeFrame(frame)), frame);
  }
});

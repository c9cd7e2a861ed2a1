import assert from "node:assert/strict";
import { validateTopicName } from "../../src/topic/validate_topic_name.ts";

Deno.test("validateTopicName accepts ordinary names from the spec §4.7", () => {
  for (
    const name of [
      "sport/tennis/player1",
      "sport/tennis/player1/ranking",
      "/finance",
      "/",
      "Accounts payable",
      "ACCOUNTS",
      "$SYS/broker/uptime",
      "a//b",
      "ünïcödé/日本/🎾",
    ]
  ) {
    assert.equal(validateTopicName(name), undefined, name);
  }
});

Deno.test("validateTopicName rejects the empty name [MQTT-4.7.3-1]", () => {
  assert.equal(validateTopicName(""), "Topic name is empty");
});

Deno.test("validateTopicName rejects wildcards in names [MQTT-4.7.1-1] (5.0 [MQTT-4.7.0-1])", () => {
  assert.equal(validateTopicName("sport/+"), 'Topic name contains wildcard "+"');
  assert.equal(validateTopicName("sport/#"), 'Topic name contains wildcard "#"');
  assert.equal(validateTopicName("#"), 'Topic name contains wildcard "#"');
  assert.equal(validateTopicName("a+b"), 'Topic name contains wildcard "+"');
});

Deno.test("validateTopicName rejects U+0000 [MQTT-4.7.3-2]", () => {
  assert.equal(validateTopicName("a\u0000b"), "Topic name contains the null character U+0000");
});

Deno.test("validateTopicName rejects a lone surrogate [MQTT-1.5.4-1]", () => {
  assert.equal(validateTopicName("a\ud800b"), "Topic name contains a lone surrogate");
  assert.equal(validateTopicName("a\udc00"), "Topic name contains a lone surrogate");
  assert.equal(validateTopicName("end\ud83c"), "Topic name contains a lone surrogate");
});

Deno.test("validateTopicName accepts 16383 UTF-16 code units and rejects more, within [MQTT-4.7.3-3]", () => {
  // V8 hashes longer strings by their length alone: such topics would share one Map bucket.
  assert.equal(validateTopicName("a".repeat(16383)), undefined);
  assert.equal(validateTopicName("a".repeat(16384)), "Topic name is longer than 16383 characters");
  // Each level short, the whole too long: the retained store keys whole topics.
  assert.equal(
    validateTopicName("abc/".repeat(4096)),
    "Topic name is longer than 16383 characters",
  );
  // Code units, not code points: 8191 pairs and one unit are 16383 units, 49,149 bytes at most.
  assert.equal(validateTopicName("🎾".repeat(8191) + "a"), undefined);
  assert.equal(validateTopicName("🎾".repeat(8192)), "Topic name is longer than 16383 characters");
  assert.equal(validateTopicName("€".repeat(16383)), undefined);
  assert.equal(validateTopicName("€".repeat(65536)), "Topic name is longer than 16383 characters");
});

Deno.test("validateTopicName never accepts more than 65535 UTF-8 bytes [MQTT-4.7.3-3]", () => {
  const encoder = new TextEncoder();
  for (const unit of ["a", "é", "€", "🎾"]) {
    for (const count of [16383, 21845, 65535]) {
      const name = unit.repeat(Math.floor(count / unit.length));
      if (validateTopicName(name) === undefined) {
        assert.ok(encoder.encode(name).length <= 65535, `${unit} x${count}`);
      }
    }
  }
});

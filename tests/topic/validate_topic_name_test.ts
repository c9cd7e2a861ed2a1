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

Deno.test("validateTopicName accepts exactly 65535 UTF-8 bytes and rejects more [MQTT-4.7.3-3]", () => {
  assert.equal(validateTopicName("a".repeat(65535)), undefined);
  assert.equal(validateTopicName("a".repeat(65536)), "Topic name is longer than 65535 bytes");
  // 21845 three-byte characters are 65535 bytes; one more byte is too many.
  assert.equal(validateTopicName("€".repeat(21845)), undefined);
  assert.equal(validateTopicName("€".repeat(21845) + "a"), "Topic name is longer than 65535 bytes");
  // Two-byte and four-byte characters are counted as such.
  assert.equal(validateTopicName("é".repeat(32767) + "a"), undefined);
  assert.equal(validateTopicName("é".repeat(32768)), "Topic name is longer than 65535 bytes");
  assert.equal(validateTopicName("🎾".repeat(16383) + "abc"), undefined);
  assert.equal(validateTopicName("🎾".repeat(16384)), "Topic name is longer than 65535 bytes");
});

Deno.test("validateTopicName agrees with TextEncoder on the byte length [MQTT-4.7.3-3]", () => {
  const encoder = new TextEncoder();
  for (const unit of ["a", "é", "€", "🎾"]) {
    for (const extra of [0, 1, 2, 3]) {
      const count = Math.floor(65535 / encoder.encode(unit).length);
      const name = unit.repeat(count) + "b".repeat(extra);
      const tooLong = encoder.encode(name).length > 65535;
      assert.equal(validateTopicName(name) !== undefined, tooLong, `${unit} x${count} + ${extra}`);
    }
  }
});

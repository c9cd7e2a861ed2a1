import assert from "node:assert/strict";
import { validateTopicFilter } from "../../src/topic/validate_topic_filter.ts";

Deno.test("validateTopicFilter accepts the valid filters of the spec §4.7", () => {
  for (
    const filter of [
      "#",
      "sport/tennis/#",
      "sport/tennis/player1/#",
      "+",
      "+/tennis/#",
      "sport/+/player1",
      "sport/+",
      "+/+",
      "/+",
      "/finance",
      "$SYS/#",
      "$SYS/monitor/+",
      "a//b",
      "/",
      "$share",
      "$shared/x",
    ]
  ) {
    assert.equal(validateTopicFilter(filter), undefined, filter);
  }
});

Deno.test("validateTopicFilter rejects the empty filter [MQTT-4.7.3-1]", () => {
  assert.equal(validateTopicFilter(""), "Topic filter is empty");
});

Deno.test('validateTopicFilter rejects "#" not alone in its level [MQTT-4.7.1-2] (5.0 [MQTT-4.7.1-1])', () => {
  assert.equal(validateTopicFilter("sport/tennis#"), 'Topic filter has "#" not alone in its level');
  assert.equal(validateTopicFilter("#sport"), 'Topic filter has "#" not alone in its level');
  assert.equal(validateTopicFilter("a/#b"), 'Topic filter has "#" not alone in its level');
  assert.equal(validateTopicFilter("+#"), 'Topic filter has "+" not alone in its level');
});

Deno.test('validateTopicFilter rejects "#" before the last level [MQTT-4.7.1-2] (5.0 [MQTT-4.7.1-1])', () => {
  assert.equal(
    validateTopicFilter("sport/tennis/#/ranking"),
    'Topic filter has "#" before its last level',
  );
  assert.equal(validateTopicFilter("#/"), 'Topic filter has "#" before its last level');
  assert.equal(validateTopicFilter("#/#"), 'Topic filter has "#" before its last level');
});

Deno.test('validateTopicFilter rejects "+" not alone in its level [MQTT-4.7.1-3] (5.0 [MQTT-4.7.1-2])', () => {
  assert.equal(validateTopicFilter("sport+"), 'Topic filter has "+" not alone in its level');
  assert.equal(validateTopicFilter("sport/+tennis"), 'Topic filter has "+" not alone in its level');
  assert.equal(validateTopicFilter("++"), 'Topic filter has "+" not alone in its level');
});

Deno.test("validateTopicFilter rejects U+0000 [MQTT-4.7.3-2]", () => {
  assert.equal(
    validateTopicFilter("sport/\u0000/#"),
    "Topic filter contains the null character U+0000",
  );
});

Deno.test("validateTopicFilter rejects more than 16383 UTF-16 code units, within [MQTT-4.7.3-3]", () => {
  assert.equal(validateTopicFilter("a/".repeat(8191) + "#"), undefined);
  assert.equal(
    validateTopicFilter("a/".repeat(8191) + "/#"),
    "Topic filter is longer than 16383 characters",
  );
  // A shared filter counts whole, `$share/{name}/` included.
  const inner = "a".repeat(16383 - "$share/g/".length);
  assert.equal(validateTopicFilter(`$share/g/${inner}`), undefined);
  assert.equal(
    validateTopicFilter(`$share/g/${inner}b`),
    "Topic filter is longer than 16383 characters",
  );
});

Deno.test("validateTopicFilter rejects a lone surrogate [MQTT-1.5.4-1]", () => {
  assert.equal(validateTopicFilter("a/\udfff/#"), "Topic filter contains a lone surrogate");
});

Deno.test("validateTopicFilter accepts well-formed shared filters [MQTT-4.8.2-1] [MQTT-4.8.2-2]", () => {
  for (
    const filter of [
      "$share/consumer1/sport/tennis/+",
      "$share/consumer2/sport/tennis/+",
      "$share/g/#",
      "$share/g//finance",
      "$share/g/$SYS/#",
    ]
  ) {
    assert.equal(validateTopicFilter(filter), undefined, filter);
  }
});

Deno.test("validateTopicFilter rejects an empty share name [MQTT-4.8.2-1]", () => {
  assert.equal(
    validateTopicFilter("$share//sport"),
    "Shared subscription has an empty share name",
  );
  assert.equal(validateTopicFilter("$share/"), "Shared subscription has an empty share name");
});

Deno.test('validateTopicFilter rejects "+" or "#" in the share name [MQTT-4.8.2-2]', () => {
  assert.equal(
    validateTopicFilter("$share/+/sport"),
    'Shared subscription share name contains "+"',
  );
  assert.equal(
    validateTopicFilter("$share/g#/sport"),
    'Shared subscription share name contains "#"',
  );
});

Deno.test("validateTopicFilter rejects a share name without a filter after it [MQTT-4.8.2-2]", () => {
  assert.equal(
    validateTopicFilter("$share/group"),
    "Shared subscription has no topic filter after its share name",
  );
  assert.equal(
    validateTopicFilter("$share/group/"),
    "Shared subscription has no topic filter after its share name",
  );
});

Deno.test("validateTopicFilter applies the §4.7 rules to a shared subscription's filter", () => {
  assert.equal(
    validateTopicFilter("$share/g/sport/tennis#"),
    'Topic filter has "#" not alone in its level',
  );
  assert.equal(
    validateTopicFilter("$share/g/#/x"),
    'Topic filter has "#" before its last level',
  );
});

// Flow control keys: documented defaults derived from max_queued_messages, checked where written.

import assert from "node:assert/strict";
import { ConfigError, parseBrokerConfigYaml, resolveBrokerConfig } from "../../src/config/mod.ts";

Deno.test("broker config: flow control defaults to a high water of half max_queued_messages, a low water of half that, 1 s", () => {
  const config = resolveBrokerConfig({});
  assert.equal(config.flowControlHighWater, 500);
  assert.equal(config.flowControlLowWater, 250);
  assert.equal(config.flowControlTimeout, 1);
  const small = resolveBrokerConfig({ max_queued_messages: 40 });
  assert.equal(small.flowControlHighWater, 20);
  assert.equal(small.flowControlLowWater, 10);
  // Unlimited queues: 500.
  assert.equal(resolveBrokerConfig({ max_queued_messages: 0 }).flowControlHighWater, 500);
});

Deno.test("broker config: flow control keys are read from YAML; the marks never pass the queue nor each other", () => {
  const config = parseBrokerConfigYaml(
    "flow_control_high_water: 300\nflow_control_low_water: 100\nflow_control_timeout: 2.5\n",
  );
  assert.deepEqual(
    [config.flowControlHighWater, config.flowControlLowWater, config.flowControlTimeout],
    [300, 100, 2.5],
  );
  assert.deepEqual(config.warnings, []);
  const clamped = resolveBrokerConfig({
    max_queued_messages: 100,
    flow_control_high_water: 5000,
    flow_control_low_water: 4000,
  });
  assert.equal(clamped.flowControlHighWater, 100);
  assert.equal(clamped.flowControlLowWater, 100);
  assert.equal(resolveBrokerConfig({ flow_control_high_water: 0 }).flowControlHighWater, 0);
});

Deno.test("broker config: a bad flow control value is a ConfigError naming the key", () => {
  for (
    const [yaml, key] of [
      ["flow_control_high_water: -1\n", "flow_control_high_water"],
      ["flow_control_low_water: 1.5\n", "flow_control_low_water"],
      ["flow_control_timeout: 0\n", "flow_control_timeout"],
      ["flow_control_timeout: soon\n", "flow_control_timeout"],
    ]
  ) {
    assert.throws(
      () => parseBrokerConfigYaml(yaml!),
      (error: unknown) => error instanceof ConfigError && error.message.includes(key!),
      yaml,
    );
  }
});

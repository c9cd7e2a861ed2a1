// The broker's MQTT 5.0 limits: top-level keys with documented defaults, checked where written.

import assert from "node:assert/strict";
import { ConfigError, parseBrokerConfigYaml, resolveBrokerConfig } from "../../src/config/mod.ts";

Deno.test("broker config: the MQTT 5.0 limits default to receive maximum 1024, 10 aliases, the client's keep alive, round robin", () => {
  const config = resolveBrokerConfig({});
  assert.equal(config.receiveMaximum, 1024);
  assert.equal(config.topicAliasMaximum, 10);
  assert.equal(config.serverKeepAlive, undefined);
  assert.equal(config.sharedSubscriptionStrategy, "round_robin");
  assert.equal(config.outboundTopicAliases, false);
  assert.equal(resolveBrokerConfig({ outbound_topic_aliases: true }).outboundTopicAliases, true);
});

Deno.test("broker config: maximum_qos defaults to 2 and retain_available to true; both are read from YAML", () => {
  const defaults = resolveBrokerConfig({});
  assert.equal(defaults.maximumQos, 2);
  assert.equal(defaults.retainAvailable, true);
  const config = parseBrokerConfigYaml("maximum_qos: 1\nretain_available: false\n");
  assert.equal(config.maximumQos, 1);
  assert.equal(config.retainAvailable, false);
  assert.deepEqual(config.warnings, []);
  assert.equal(defaults.serverReference, undefined);
  assert.equal(parseBrokerConfigYaml("server_reference: b:1883\n").serverReference, "b:1883");
});

Deno.test("broker config: the subscription features default to available and may be turned off", () => {
  const on = resolveBrokerConfig({});
  assert.deepEqual(
    [
      on.wildcardSubscriptionAvailable,
      on.subscriptionIdentifiersAvailable,
      on.sharedSubscriptionAvailable,
    ],
    [true, true, true],
  );
  const off = parseBrokerConfigYaml(
    "wildcard_subscription_available: false\nsubscription_identifiers_available: false\n" +
      "shared_subscription_available: false\n",
  );
  assert.deepEqual(
    [
      off.wildcardSubscriptionAvailable,
      off.subscriptionIdentifiersAvailable,
      off.sharedSubscriptionAvailable,
    ],
    [false, false, false],
  );
});

Deno.test("broker config: the MQTT 5.0 limits are read from YAML", () => {
  const config = parseBrokerConfigYaml(
    "receive_maximum: 20\ntopic_alias_maximum: 0\nserver_keep_alive: 30\n" +
      "shared_subscription_strategy: random\n",
  );
  assert.equal(config.receiveMaximum, 20);
  assert.equal(config.topicAliasMaximum, 0);
  assert.equal(config.serverKeepAlive, 30);
  assert.equal(config.sharedSubscriptionStrategy, "random");
  // The broker serves 5.0 clients: the limits are in effect, nothing to warn about.
  assert.deepEqual(config.warnings, []);
});

Deno.test("broker config: out-of-range MQTT 5.0 limits are refused with the key and line", () => {
  const cases: [string, RegExp][] = [
    ["receive_maximum: 0\n", /receive_maximum.*0 is out of range: expected in the range 1-65535/],
    ["topic_alias_maximum: 70000\n", /topic_alias_maximum.*in the range 0-65535/],
    ["server_keep_alive: -1\n", /server_keep_alive.*in the range 0-65535 seconds/],
    ["shared_subscription_strategy: sticky\n", /shared_subscription_strategy/],
    ["maximum_qos: 3\n", /maximum_qos.*in the range 0-2/],
    ["retain_available: maybe\n", /retain_available/],
    ["server_reference: ''\n", /server_reference/],
  ];
  for (const [yaml, message] of cases) {
    assert.throws(() => parseBrokerConfigYaml(yaml, "b.yaml"), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, message);
      assert.match(error.message, /line 1/);
      return true;
    });
  }
});

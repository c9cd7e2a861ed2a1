// The configuration keys for hostile clients: failed-login throttling and log summaries.
import assert from "node:assert/strict";
import { ConfigError, parseBrokerConfigYaml, resolveBrokerConfig } from "../../src/config/mod.ts";

Deno.test("resolveBrokerConfig: login throttle and summary interval defaults", () => {
  const c = resolveBrokerConfig({});
  assert.equal(c.maxLoginFailures, 20);
  assert.equal(c.loginFailureWindow, 60);
  assert.equal(c.logSummaryInterval, 60);
});

Deno.test("parseBrokerConfigYaml reads max_login_failures, login_failure_window and log_summary_interval", () => {
  const c = parseBrokerConfigYaml(
    "max_login_failures: 0\nlogin-failure-window: 600\nlog_summary_interval: 5\n",
  );
  assert.equal(c.maxLoginFailures, 0, "0 turns the throttle off");
  assert.equal(c.loginFailureWindow, 600);
  assert.equal(c.logSummaryInterval, 5);
});

Deno.test("resolveBrokerConfig rejects a negative or fractional max_login_failures and a zero window", () => {
  assert.throws(() => resolveBrokerConfig({ max_login_failures: -1 }), ConfigError);
  assert.throws(() => resolveBrokerConfig({ max_login_failures: 2.5 }), ConfigError);
  assert.throws(() => resolveBrokerConfig({ login_failure_window: 0 }), ConfigError);
  assert.throws(() => resolveBrokerConfig({ log_summary_interval: 0 }), ConfigError);
});

import assert from "node:assert/strict";
import { LoginThrottle, sourceOf } from "../../src/broker/login_throttle.ts";
import { LogSummary } from "../../src/broker/log_summary.ts";

Deno.test("LoginThrottle spends a unit per failure only and refills over the window", () => {
  const t = new LoginThrottle({ maxFailures: 3, window: 30 });
  // Logins in progress and successes spend nothing.
  for (let i = 0; i < 10; i++) assert.equal(t.admit("10.0.0.1", 0), true);
  t.settle("10.0.0.1", true, 0);
  assert.equal(t.size, 0);
  // Three failures use the whole budget: a fourth login is not checked.
  for (let i = 0; i < 3; i++) t.settle("10.0.0.1", false, 0);
  assert.equal(t.admit("10.0.0.1", 0), false);
  // Another source has its own budget.
  assert.equal(t.admit("10.0.0.2", 0), true);
  // One unit comes back every 10 s (3 per 30 s); a success gives nothing back.
  t.settle("10.0.0.1", true, 9_999);
  assert.equal(t.admit("10.0.0.1", 9_999), false);
  assert.equal(t.admit("10.0.0.1", 10_000), true);
  t.settle("10.0.0.1", false, 10_000);
  assert.equal(t.admit("10.0.0.1", 10_000), false);
  // Sources whose budget is whole again are forgotten.
  t.sweep(100_000);
  assert.equal(t.size, 0);
});

Deno.test("LoginThrottle ignores an earlier time reported by a late settle", () => {
  const t = new LoginThrottle({ maxFailures: 2, window: 20 });
  t.settle("a", false, 10_000);
  // A failure settled with an earlier time refills nothing and does not move the clock back.
  t.settle("a", false, 5_000);
  assert.equal(t.admit("a", 10_000), false);
  assert.equal(t.admit("a", 19_999), false);
  assert.equal(t.admit("a", 20_000), true);
});

Deno.test("LoginThrottle with maxFailures 0 admits everything and keeps no state", () => {
  const t = new LoginThrottle({ maxFailures: 0, window: 60 });
  for (let i = 0; i < 100; i++) assert.equal(t.admit("x", 0), true);
  assert.equal(t.size, 0);
});

Deno.test("LoginThrottle forgets the least recently failed source past maxSources", () => {
  const t = new LoginThrottle({ maxFailures: 1, window: 60, maxSources: 2 });
  t.settle("a", false, 0);
  t.settle("b", false, 0);
  t.settle("c", false, 0);
  assert.equal(t.size, 2);
  assert.equal(t.admit("a", 0), true, "a was forgotten: a fresh budget");
  assert.equal(t.admit("b", 0), false);
  assert.equal(t.admit("c", 0), false);
});

Deno.test("sourceOf keys IPv4 by address and IPv6 by its /64 network", () => {
  assert.equal(sourceOf("127.0.0.1:5000"), "127.0.0.1");
  assert.equal(sourceOf("[::1]:5000"), "0:0:0:0::/64");
  assert.equal(sourceOf("::1"), "0:0:0:0::/64");
  // Every address of one /64 is one source.
  assert.equal(sourceOf("[2001:db8:1:2::a]:1"), "2001:db8:1:2::/64");
  assert.equal(sourceOf("[2001:0db8:0001:0002:ffff:1:2:3]:1"), "2001:db8:1:2::/64");
  assert.equal(sourceOf("[2001:db8::]:1"), "2001:db8:0:0::/64");
  assert.equal(sourceOf("[::ffff:10.1.2.3]:7"), "10.1.2.3");
  assert.equal(sourceOf("[fe80::1%eth0]:7"), "fe80:0:0:0::/64");
  // Anything else is its own source.
  assert.equal(sourceOf("unix"), "unix");
  assert.equal(sourceOf("[not:an:address:::]:1"), "not:an:address:::");
});

Deno.test("LogSummary tells counts by reason and the top sources in one line, then starts over", () => {
  const s = new LogSummary("logins refused");
  assert.equal(s.take(60), undefined);
  s.add("bad password", "10.0.0.1", 5);
  s.add("not checked", "10.0.0.1");
  s.add("not checked", "10.0.0.2", 7);
  assert.equal(
    s.take(60),
    "13 logins refused in the last 60 s: 8 not checked, 5 bad password; 2 source(s), " +
      "most from 10.0.0.2 (7), 10.0.0.1 (6)",
  );
  assert.equal(s.total, 0);
  assert.equal(s.take(60), undefined);
});

Deno.test("LoginThrottle: failures of checks in flight together are owed until they refill", () => {
  const t = new LoginThrottle({ maxFailures: 3, window: 30 });
  // Ten guesses admitted at once (the budget is whole), all wrong: seven units owed.
  for (let i = 0; i < 10; i++) assert.equal(t.admit("10.0.0.1", 0), true);
  for (let i = 0; i < 10; i++) t.settle("10.0.0.1", false, 0);
  // One unit per 10 s: the first check again once eight have refilled (-7 → 1).
  assert.equal(t.admit("10.0.0.1", 79_999), false);
  assert.equal(t.admit("10.0.0.1", 80_000), true);
  t.sweep(80_000);
  assert.equal(t.size, 1, "not whole yet");
  t.sweep(100_000);
  assert.equal(t.size, 0);
});

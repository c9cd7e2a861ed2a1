import assert from "node:assert/strict";
import { LoginThrottle, sourceOf } from "../../src/broker/login_throttle.ts";
import { LogSummary } from "../../src/broker/log_summary.ts";

Deno.test("LoginThrottle spends a unit per login, refunds successes and refills over the window", () => {
  const t = new LoginThrottle({ maxFailures: 3, window: 30 });
  // Three logins in progress use the whole budget: a fourth is not checked.
  assert.equal(t.admit("10.0.0.1", 0), true);
  assert.equal(t.admit("10.0.0.1", 0), true);
  assert.equal(t.admit("10.0.0.1", 0), true);
  assert.equal(t.admit("10.0.0.1", 0), false);
  // Another source has its own budget.
  assert.equal(t.admit("10.0.0.2", 0), true);
  // A success gives its unit back.
  t.settle("10.0.0.1", true, 0);
  assert.equal(t.admit("10.0.0.1", 0), true);
  assert.equal(t.admit("10.0.0.1", 0), false);
  // One unit comes back every 10 s (3 per 30 s).
  assert.equal(t.admit("10.0.0.1", 9_999), false);
  assert.equal(t.admit("10.0.0.1", 10_000), true);
  assert.equal(t.admit("10.0.0.1", 10_000), false);
  // Sources whose budget is whole again are forgotten.
  t.sweep(100_000);
  assert.equal(t.size, 0);
});

Deno.test("LoginThrottle ignores an earlier time reported by a late settle", () => {
  const t = new LoginThrottle({ maxFailures: 2, window: 20 });
  assert.equal(t.admit("a", 10_000), true);
  // That login succeeds and is settled with an earlier time: its unit comes back whole.
  t.settle("a", true, 5_000);
  assert.equal(t.admit("a", 10_000), true);
  assert.equal(t.admit("a", 10_000), true);
  assert.equal(t.admit("a", 10_000), false);
});

Deno.test("LoginThrottle with maxFailures 0 admits everything and keeps no state", () => {
  const t = new LoginThrottle({ maxFailures: 0, window: 60 });
  for (let i = 0; i < 100; i++) assert.equal(t.admit("x", 0), true);
  assert.equal(t.size, 0);
});

Deno.test("LoginThrottle forgets the least recently seen source past maxSources", () => {
  const t = new LoginThrottle({ maxFailures: 1, window: 60, maxSources: 2 });
  assert.equal(t.admit("a", 0), true);
  assert.equal(t.admit("b", 0), true);
  assert.equal(t.admit("c", 0), true);
  assert.equal(t.size, 2);
  assert.equal(t.admit("a", 0), true, "a was forgotten: a fresh budget");
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

Deno.test("sourceOf gives a transport's bare host the source of its host:port address", () => {
  const cases: [string, string][] = [
    ["127.0.0.1:5000", "127.0.0.1"],
    ["[::1]:5000", "::1"],
    ["[2001:0db8:0001:0002:ffff:1:2:3]:1", "2001:0db8:0001:0002:ffff:1:2:3"],
    ["[::ffff:10.1.2.3]:7", "::ffff:10.1.2.3"],
    ["[fe80::1%eth0]:7", "fe80::1%eth0"],
    ["[not:an:address:::]:1", "not:an:address:::"],
  ];
  for (const [address, host] of cases) {
    const expected = sourceOf(address);
    // Asked in turns with another host, so that the one-entry cache answers neither from the
    // other's question.
    assert.equal(sourceOf(address, host), expected, host);
    assert.equal(sourceOf("192.0.2.1:1", "192.0.2.1"), "192.0.2.1");
    assert.equal(sourceOf(address, host), expected, host);
  }
  // The host decides: an address whose port part differs is the same source.
  assert.equal(sourceOf("10.0.0.7:1", "10.0.0.7"), "10.0.0.7");
  assert.equal(sourceOf("10.0.0.7:2", "10.0.0.7"), "10.0.0.7");
  assert.equal(sourceOf("10.0.0.8:2", "10.0.0.8"), "10.0.0.8");
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

Deno.test("LoginThrottle forgets a source once a success makes its budget whole again", () => {
  const t = new LoginThrottle({ maxFailures: 3, window: 30 });
  assert.equal(t.admit("10.0.0.1", 0), true);
  t.settle("10.0.0.1", true, 0);
  // A login that took its unit back leaves no entry behind.
  assert.equal(t.size, 0);
  // A failure is kept; a success later, with the unit refilled meanwhile, makes it whole.
  assert.equal(t.admit("10.0.0.1", 0), true);
  t.settle("10.0.0.1", false, 0);
  assert.equal(t.admit("10.0.0.1", 0), true);
  assert.equal(t.size, 1);
  t.settle("10.0.0.1", true, 10_000);
  assert.equal(t.size, 0);
  // While units are still missing, a success refunds one and the entry stays.
  assert.equal(t.admit("10.0.0.2", 0), true);
  assert.equal(t.admit("10.0.0.2", 0), true);
  t.settle("10.0.0.2", false, 0);
  t.settle("10.0.0.2", true, 0);
  assert.equal(t.size, 1);
  assert.equal(t.admit("10.0.0.2", 0), true);
  assert.equal(t.admit("10.0.0.2", 0), true);
  assert.equal(t.admit("10.0.0.2", 0), false);
});

Deno.test("LoginThrottle past maxSources forgets the whole budget a success left before a source that failed", () => {
  const t = new LoginThrottle({ maxFailures: 1, window: 60, maxSources: 2 });
  // "a" has spent its budget; "b" logged in and took its unit back (a whole budget: no source).
  assert.equal(t.admit("a", 0), true);
  t.settle("a", false, 0);
  assert.equal(t.admit("b", 0), true);
  t.settle("b", true, 0);
  assert.equal(t.size, 1);
  // A new source fits: what "b" left is forgotten, not "a"'s spent budget.
  assert.equal(t.admit("c", 0), true);
  assert.equal(t.size, 2);
  assert.equal(t.admit("a", 0), false, "a is still refused");
  assert.equal(t.admit("b", 0), true);
});

Deno.test("LoginThrottle tells whether a source has logins in progress, until each is settled", () => {
  const t = new LoginThrottle({ maxFailures: 2, window: 60 });
  assert.equal(t.inProgress("a"), false);
  assert.equal(t.admit("a", 0), true);
  assert.equal(t.admit("a", 0), true);
  assert.equal(t.admit("a", 0), false, "the budget is in use");
  assert.equal(t.inProgress("a"), true, "a login over the budget may wait");
  assert.equal(t.inProgress("b"), false);
  t.settle("a", false, 0);
  assert.equal(t.inProgress("a"), true);
  t.settle("a", false, 0);
  assert.equal(t.inProgress("a"), false, "spent by failures, nothing to wait for");
  assert.equal(t.admit("a", 0), false);
});

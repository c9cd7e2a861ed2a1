// ReceiveQuota: the broker's Receive Maximum over one connection's unacknowledged QoS 1/2 PUBLISH.

import assert from "node:assert/strict";
import { ReceiveQuota } from "../../src/broker/receive_quota.ts";

Deno.test("ReceiveQuota (MQTT 5) admits up to Receive Maximum unacknowledged PUBLISH, then says exceeded", () => {
  const quota = new ReceiveQuota(3);
  assert.deepEqual([1, 2, 3].map((id) => quota.admit(id)), ["new", "new", "new"]);
  assert.equal(quota.admit(4), "exceeded");
  assert.equal(quota.count, 3, "an exceeding PUBLISH is not counted");
  assert.equal(quota.settle(2), true);
  assert.equal(quota.admit(4), "new");
  assert.equal(quota.admit(5), "exceeded");
});

Deno.test("ReceiveQuota counts a resent packet id once", () => {
  const quota = new ReceiveQuota(1);
  assert.equal(quota.admit(9), "new");
  assert.equal(quota.admit(9), "duplicate");
  assert.equal(quota.count, 1);
});

Deno.test("ReceiveQuota ignores the settling of an id it did not count", () => {
  const quota = new ReceiveQuota(2);
  assert.equal(quota.settle(5), false);
  assert.equal(quota.count, 0);
  quota.admit(1);
  assert.equal(quota.settle(1), true);
  assert.equal(quota.settle(1), false);
});

Deno.test("ReceiveQuota refuses a Receive Maximum outside 1-65535", () => {
  for (const bad of [0, 65536, 1.5, -1]) assert.throws(() => new ReceiveQuota(bad), RangeError);
  assert.equal(new ReceiveQuota(65535).maximum, 65535);
});

Deno.test("ReceiveQuota keeps counting, duplicates and settling right past a few dozen ids and back", () => {
  const quota = new ReceiveQuota(100);
  for (let id = 1; id <= 100; id++) assert.equal(quota.admit(id), "new");
  assert.equal(quota.count, 100);
  for (const id of [1, 32, 33, 100]) assert.equal(quota.admit(id), "duplicate");
  assert.equal(quota.admit(101), "exceeded");
  assert.equal(quota.settle(50), true);
  assert.equal(quota.settle(50), false);
  assert.equal(quota.admit(101), "new");
  for (let id = 1; id <= 101; id++) if (id !== 50) assert.equal(quota.settle(id), true);
  assert.equal(quota.count, 0);
  // Settled ids count again as new ones, whatever order they come back in.
  for (const id of [7, 3, 7]) quota.admit(id);
  assert.equal(quota.count, 2);
  assert.equal(quota.settle(3), true);
  assert.equal(quota.admit(7), "duplicate");
  assert.equal(quota.count, 1);
});

/**
 * LossSignal: the cluster's commits waited for end when Redis is lost, and a wait that settled
 * leaves nothing behind (a race with one long-lived promise kept a reaction per commit).
 */

import assert from "node:assert/strict";
import { LossSignal } from "../../src/broker/_loss_signal.ts";

Deno.test("LossSignal keeps nothing of a wait once its promise has settled, fulfilled or rejected", async () => {
  const signal = new LossSignal();
  const waits = [];
  for (let i = 0; i < 1000; i++) waits.push(signal.wait(Promise.resolve(i)));
  const failed = signal.wait(Promise.reject(new Error("write failed")));
  assert.equal(signal.waiting, 1001);
  assert.deepEqual((await Promise.all(waits)).slice(0, 3), [0, 1, 2]);
  await assert.rejects(failed, /write failed/);
  assert.equal(signal.waiting, 0);
});

Deno.test("LossSignal ends every pending wait at a loss, and later ones at once until back", async () => {
  const signal = new LossSignal();
  const never = new Promise<number>(() => {});
  const pending = [signal.wait(never), signal.wait(never)];
  assert.equal(signal.waiting, 2);
  signal.lose();
  assert.deepEqual(await Promise.all(pending), [undefined, undefined]);
  assert.equal(await signal.wait(never), undefined);
  signal.back();
  let settled = false;
  const after = signal.wait(never).then(() => settled = true);
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(settled, false, "a wait after back() lasts until its promise settles");
  signal.lose();
  await after;
  assert.equal(settled, true);
});

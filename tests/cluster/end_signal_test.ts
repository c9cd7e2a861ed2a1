/**
 * EndSignal: a cluster node's store writes and the commits its connections wait for end when
 * Redis's connection closes or is lost, and a wait that settled leaves nothing behind (a race
 * with one long-lived promise kept a reaction per write until then).
 */

import assert from "node:assert/strict";
import { EndSignal } from "../../src/cluster/_end_signal.ts";

Deno.test("EndSignal keeps nothing of a wait once its promise has settled, fulfilled or rejected", async () => {
  const signal = new EndSignal();
  const waits = [];
  for (let i = 0; i < 1000; i++) waits.push(signal.wait(Promise.resolve(i)));
  const failed = signal.wait(Promise.reject(new Error("write failed")));
  assert.equal(signal.waiting, 1001);
  assert.deepEqual((await Promise.all(waits)).slice(0, 3), [0, 1, 2]);
  await assert.rejects(failed, /write failed/);
  assert.equal(signal.waiting, 0);
});

Deno.test("EndSignal ends every pending wait at the end, and later ones at once until renewed", async () => {
  const signal = new EndSignal();
  const never = new Promise<number>(() => {});
  const pending = [signal.wait(never), signal.wait(never)];
  assert.equal(signal.waiting, 2);
  signal.end();
  assert.deepEqual(await Promise.all(pending), [undefined, undefined]);
  assert.equal(await signal.wait(never), undefined);
  signal.renew();
  let settled = false;
  const after = signal.wait(never).then(() => settled = true);
  // One macrotask: a wait that ended would settle in microtasks, all run before it.
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(settled, false, "a wait after renew() lasts until its promise settles");
  signal.end();
  await after;
  assert.equal(settled, true);
});

Deno.test("EndSignal rejects the pending waits with the end's error, later ones too until renewed", async () => {
  const signal = new EndSignal();
  const never = new Promise<number>(() => {});
  const pending = signal.wait(never);
  signal.end(new Error("the connection to Redis closed"));
  await assert.rejects(pending, /connection to Redis closed/);
  await assert.rejects(signal.wait(never), /connection to Redis closed/);
  signal.renew();
  assert.deepEqual(await signal.wait(Promise.resolve([1, 2])), [1, 2]);
  assert.equal(signal.waiting, 0);
});

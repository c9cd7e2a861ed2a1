/**
 * `HeldPubrecs`: the PUBRECs a connection holds while the store is not written again after an
 * outage. Only PUBRECs are taken out of the writes, and they go out in the order of their
 * PUBLISHes [MQTT-4.6.0-3], also those of a write that began before the hold ended.
 *
 * @module
 */

import assert from "node:assert/strict";
import { HeldPubrecs } from "../../src/broker/held_pubrecs.ts";

const pubrec = (id: number) => [0x50, 2, 0, id];
const PINGRESP = [0xd0, 0];
const puback = (id: number) => [0x40, 2, 0, id];

function setup() {
  const sent: number[] = [];
  const failed: unknown[] = [];
  const held = new HeldPubrecs((bytes) => sent.push(...bytes), (error) => failed.push(error));
  return { sent, failed, held };
}

Deno.test("HeldPubrecs takes only PUBRECs out of writes while held and sends them in order once the wait settles [MQTT-4.6.0-3]", async () => {
  const { sent, held } = setup();
  const stored = Promise.withResolvers<void>();
  held.until(stored.promise);
  assert.equal(held.holding, true);
  const first = held.take(new Uint8Array([...pubrec(1), ...PINGRESP, ...puback(2)]));
  assert.deepEqual([...first], [...PINGRESP, ...puback(2)], "the rest goes on");
  const second = held.take(new Uint8Array([...pubrec(3), ...puback(4)]));
  assert.deepEqual([...second], puback(4));
  const none = new Uint8Array(PINGRESP);
  assert.equal(held.take(none), none, "a write without PUBRECs is left as it is");
  assert.deepEqual(sent, [], "nothing sent before the store is written");
  stored.resolve();
  await stored.promise;
  await Promise.resolve();
  assert.equal(held.holding, false);
  assert.deepEqual(sent, [...pubrec(1), ...pubrec(3)], "in order");
});

Deno.test("HeldPubrecs puts the PUBRECs it releases at the front of a write begun meanwhile or of the next one when output is queued [MQTT-4.6.0-3]", async () => {
  const sent: number[] = [];
  let queued = false;
  const held = new HeldPubrecs((bytes) => sent.push(...bytes), () => {}, () => queued);
  const stored = Promise.withResolvers<void>();
  held.until(stored.promise);
  held.take(new Uint8Array(pubrec(1)));
  // A write that began while held, its commit still pending when the store is written again.
  const commit = Promise.withResolvers<void>();
  const late = held.takeAfter(commit.promise, new Uint8Array([...pubrec(5), ...PINGRESP]));
  stored.resolve();
  await stored.promise;
  await Promise.resolve();
  assert.deepEqual(sent, [], "not after output that may hold later PUBRECs");
  assert.equal(held.holding, true);
  commit.resolve();
  assert.deepEqual([...await late], [...pubrec(1), ...pubrec(5), ...PINGRESP]);
  assert.equal(held.holding, false);
  // Output queued when the store is written again: the next write takes them first.
  const again = Promise.withResolvers<void>();
  held.until(again.promise);
  held.take(new Uint8Array(pubrec(6)));
  queued = true;
  again.resolve();
  await again.promise;
  await Promise.resolve();
  assert.deepEqual(sent, []);
  assert.deepEqual([...held.take(new Uint8Array([...pubrec(7), ...PINGRESP]))], [
    ...pubrec(6),
    ...pubrec(7),
    ...PINGRESP,
  ]);
  assert.equal(held.holding, false);
});

Deno.test("HeldPubrecs waits for every wait given, and a rejected wait drops the PUBRECs and reports it", async () => {
  const { sent, failed, held } = setup();
  const a = Promise.withResolvers<void>();
  const b = Promise.withResolvers<void>();
  held.until(a.promise);
  held.take(new Uint8Array(pubrec(1)));
  held.until(b.promise);
  a.resolve();
  await a.promise;
  await Promise.resolve();
  assert.equal(held.holding, true, "still waiting for the second");
  assert.deepEqual(sent, []);
  b.reject(new Error("the broker closed"));
  await b.promise.catch(() => {});
  // One macrotask: the drop follows the rejection through promise reactions alone (microtasks,
  // all run before the next macrotask); nothing here waits for I/O or a timer.
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(held.holding, false);
  assert.deepEqual(sent, [], "dropped");
  assert.equal(failed.length, 1);
});

/**
 * The deadline heap the broker core expires offline sessions from.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ExpiryQueue } from "../../src/broker/expiry_queue.ts";
import type { Expiry } from "../../src/broker/expiry_queue.ts";

function random(seed: number): () => number {
  return () => (seed = (seed * 1103515245 + 12345) % 2147483648);
}

Deno.test("ExpiryQueue pops deadlines earliest first, whatever the push order", () => {
  const q = new ExpiryQueue<number>();
  const next = random(7);
  const ats: number[] = [];
  for (let i = 0; i < 500; i++) {
    const at = next() % 1000;
    ats.push(at);
    q.push(at, i);
  }
  assert.equal(q.size, 500);
  const out: number[] = [];
  for (let e = q.pop(); e !== undefined; e = q.pop()) out.push(e.at);
  assert.deepEqual(out, ats.sort((a, b) => a - b));
  assert.equal(q.pop(), undefined);
  assert.equal(q.peek(), undefined);
});

Deno.test("ExpiryQueue.remove takes out any entry and keeps the order of the rest", () => {
  const q = new ExpiryQueue<number>();
  const next = random(11);
  const entries: Expiry<number>[] = [];
  for (let i = 0; i < 300; i++) entries.push(q.push(next() % 500, i));
  const kept: number[] = [];
  for (const e of entries) {
    if (e.item % 3 === 0) assert.equal(q.remove(e), true);
    else kept.push(e.at);
  }
  assert.equal(q.size, kept.length);
  assert.equal(q.remove(entries[0]!), false, "removed twice");
  const out: number[] = [];
  for (let e = q.pop(); e !== undefined; e = q.pop()) {
    assert.equal(e.index, -1);
    out.push(e.at);
  }
  assert.deepEqual(out, kept.sort((a, b) => a - b));
});

import assert from "node:assert/strict";
import { hashOf, SessionTable } from "../../src/broker/_session_table.ts";

const s = (clientId: string) => ({ clientId });

/** Two client ids whose hashes are equal (a birthday search over a few tens of thousands). */
function collidingIds(): [string, string] {
  const seen = new Map<number, string>();
  for (let i = 0;; i++) {
    const id = `client-${i}`;
    const other = seen.get(hashOf(id));
    if (other !== undefined) return [other, id];
    seen.set(hashOf(id), id);
  }
}

Deno.test("SessionTable keeps, replaces and removes sessions by client id, like a Map", () => {
  const table = new SessionTable<{ clientId: string }>();
  const map = new Map<string, { clientId: string }>();
  const a = s("a"), b = s("b"), a2 = s("a");
  for (const [id, v] of [["a", a], ["b", b], ["a", a2]] as const) {
    table.set(id, v);
    map.set(id, v);
  }
  assert.equal(table.size, 2);
  assert.equal(table.get("a"), a2);
  assert.equal(table.has("b"), true);
  assert.equal(table.has("c"), false);
  assert.equal(table.get(""), undefined);
  assert.deepEqual([...table.keys()], [...map.keys()]);
  assert.deepEqual([...table.values()], [...map.values()]);
  assert.deepEqual([...table], [...map]);
  assert.equal(table.delete("a"), true);
  assert.equal(table.delete("a"), false);
  assert.deepEqual([...table.entries()], [["b", b]]);
  const seen: string[] = [];
  table.forEach((v, k, t) => seen.push(`${k}=${v.clientId}:${t === table}`));
  assert.deepEqual(seen, ["b=b:true"]);
  table.clear();
  assert.equal(table.size, 0);
  assert.throws(() => table.set("x", s("y")), RangeError);
});

Deno.test("SessionTable keeps client ids whose hashes collide apart", () => {
  const [first, second] = collidingIds();
  assert.notEqual(first, second);
  assert.equal(hashOf(first), hashOf(second));
  const table = new SessionTable<{ clientId: string }>();
  const one = s(first), two = s(second);
  table.set(first, one).set(second, two);
  assert.equal(table.size, 2);
  assert.equal(table.get(first), one);
  assert.equal(table.get(second), two);
  // The first leaves: the second is still found, replaced in place, and removed.
  assert.equal(table.delete(first), true);
  assert.equal(table.get(first), undefined);
  assert.equal(table.get(second), two);
  const two2 = s(second);
  table.set(second, two2);
  assert.equal(table.size, 1);
  assert.equal(table.get(second), two2);
  // The first comes back while the second sits among the others: both found, each once.
  const one2 = s(first);
  table.set(first, one2);
  assert.equal(table.size, 2);
  assert.deepEqual(new Set(table.values()), new Set([one2, two2]));
  assert.equal(table.delete(second), true);
  assert.equal(table.has(second), false);
  assert.equal(table.get(first), one2);
  assert.equal(table.size, 1);
});

Deno.test("SessionTable gives every hash as a small non-negative integer", () => {
  for (const id of ["", "a", "é", "x".repeat(1000), "lg-123-r0-1"]) {
    const h = hashOf(id);
    assert.equal(Number.isInteger(h) && h >= 0 && h < 2 ** 30, true, id);
  }
});

import assert from "node:assert/strict";
import { hashOf, SessionTable } from "../../src/broker/_session_table.ts";
import { collidingIds, idsCollidingWith } from "./_colliding_ids.ts";

const s = (clientId: string) => ({ clientId });

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

Deno.test("SessionTable keeps hundreds of ids made to collide with one apart, each found once", () => {
  // An attacker who knows the hash makes ids that all take the victim's: they go to the second
  // map, keyed by the id itself (a Map: O(1) as before), and none is ever taken for another.
  const victim = "sensor-1";
  const evil = idsCollidingWith(victim, 300, "evil-");
  assert.equal(new Set(evil).size, 300);
  for (const id of evil) assert.equal(hashOf(id), hashOf(victim), id);
  const table = new SessionTable<{ clientId: string }>();
  const map = new Map<string, { clientId: string }>();
  const put = (id: string) => {
    const v = s(id);
    table.set(id, v);
    map.set(id, v);
  };
  put(evil[0]!);
  put(victim);
  for (const id of evil.slice(1)) put(id);
  assert.equal(table.size, 301);
  for (const id of [victim, ...evil]) assert.equal(table.get(id), map.get(id), id);
  // Every other one leaves, the first holder of the hash among them; the rest is still found.
  for (let i = 0; i < evil.length; i += 2) {
    assert.equal(table.delete(evil[i]!), true);
    map.delete(evil[i]!);
  }
  assert.equal(table.get(evil[0]!), undefined);
  assert.equal(table.size, map.size);
  for (const id of [victim, ...evil]) assert.equal(table.get(id), map.get(id), id);
  // The victim comes back, replaced: one session of it, the new one.
  put(victim);
  put(evil[0]!);
  assert.equal(table.size, map.size);
  assert.deepEqual(new Set(table.values()), new Set(map.values()));
  assert.deepEqual(new Set(table.keys()), new Set(map.keys()));
  for (const [id, v] of table) assert.equal(v.clientId, id);
  // Deleting while iterating, as a shutdown does: every session visited once, none left.
  const visited: string[] = [];
  for (const v of table.values()) {
    visited.push(v.clientId);
    table.delete(v.clientId);
  }
  assert.equal(visited.length, map.size);
  assert.equal(new Set(visited).size, map.size);
  assert.equal(table.size, 0);
});

Deno.test("SessionTable keeps long ids (65535 code units) and ids with lone surrogates apart", () => {
  const [long1, long2] = collidingIds("x".repeat(65529));
  assert.equal(hashOf(long1), hashOf(long2));
  assert.equal(long1.length <= 65535 && long2.length <= 65535, true);
  // Lone surrogates cannot come from the wire (the decoder refuses them [MQTT-1.5.3-1]) but a
  // program may name them: each is its own id, told apart from the character they would pair to.
  const odd = ["\ud800", "\udc00", "\ud800\udc00", "\u{10000}".slice(0, 1), "", "\0"];
  const table = new SessionTable<{ clientId: string }>();
  const all = [long1, long2, ...new Set(odd)];
  for (const id of all) table.set(id, s(id));
  assert.equal(table.size, all.length);
  for (const id of all) assert.equal(table.get(id)?.clientId, id);
  assert.equal(table.delete(long1), true);
  assert.equal(table.get(long2)?.clientId, long2);
  assert.equal(table.get(long1), undefined);
});

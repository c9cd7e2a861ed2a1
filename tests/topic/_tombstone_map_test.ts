import assert from "node:assert/strict";
import fc from "fast-check";
import { TombstoneMap } from "../../src/topic/_tombstone_map.ts";

Deno.test("TombstoneMap behaves like a Map for get, has, set, delete, size and iteration", () => {
  const map = new TombstoneMap<string, number>();
  assert.equal(map.size, 0);
  map.set("a", 1);
  map.set("b", 2);
  map.set("a", 3);
  assert.equal(map.size, 2);
  assert.equal(map.get("a"), 3);
  assert.equal(map.delete("a"), true);
  assert.equal(map.delete("a"), false);
  assert.equal(map.has("a"), false);
  assert.equal(map.get("a"), undefined);
  assert.equal(map.size, 1);
  assert.deepEqual([...map.entries()], [["b", 2]]);
  map.set("a", 4); // over the tombstone
  assert.equal(map.size, 2);
  assert.deepEqual([...map.values()].sort(), [2, 4]);
  map.clear();
  assert.equal(map.size, 0);
  assert.deepEqual([...map.entries()], []);
});

Deno.test("TombstoneMap keeps its entries across compactions", () => {
  const map = new TombstoneMap<number, string>();
  for (let i = 0; i < 1000; i++) map.set(i, `v${i}`);
  for (let i = 0; i < 1000; i += 2) map.delete(i); // 500 tombstones, 500 live: no compaction yet
  for (let i = 1; i < 900; i += 2) map.delete(i); // more tombstones than live: compacts
  assert.equal(map.size, 50);
  assert.deepEqual(
    [...map.entries()].map(([k]) => k),
    Array.from({ length: 50 }, (_, i) => 901 + 2 * i),
  );
  for (let i = 0; i < 10; i++) map.set(i, "again");
  assert.equal(map.size, 60);
  assert.equal(map.get(3), "again");
});

Deno.test("TombstoneMap agrees with Map on random operations", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.boolean(), fc.nat(200), fc.nat()), { maxLength: 2000 }),
      (ops) => {
        const model = new Map<number, number>();
        const map = new TombstoneMap<number, number>();
        for (const [add, key, value] of ops) {
          if (add) {
            model.set(key, value);
            map.set(key, value);
          } else {
            assert.equal(map.delete(key), model.delete(key));
          }
          assert.equal(map.size, model.size);
          assert.equal(map.get(key), model.get(key));
        }
        assert.deepEqual(
          [...map.entries()].sort(([a], [b]) => a - b),
          [...model.entries()].sort(([a], [b]) => a - b),
        );
      },
    ),
    { numRuns: 200 },
  );
});

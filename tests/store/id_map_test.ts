// IdMap, the store model's table for ids: the same entries as a Map after any sequence of sets,
// deletes and clears, including ids past 2^32 and tables that fill with deleted marks.
import assert from "node:assert/strict";
import fc from "fast-check";
import { IdMap } from "../../src/store/id_map.ts";

type Op = { op: "set"; key: number; value: number } | { op: "delete"; key: number } | {
  op: "clear";
};

const key = fc.oneof(
  fc.integer({ min: 0, max: 40 }),
  fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  fc.integer({ min: 2 ** 32 - 8, max: 2 ** 32 + 8 }),
);
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ op: fc.constant("set" as const), key, value: fc.integer() }),
  },
  { weight: 5, arbitrary: fc.record({ op: fc.constant("delete" as const), key }) },
  { weight: 1, arbitrary: fc.constant({ op: "clear" as const }) },
);

function same(m: IdMap<number>, ref: Map<number, number>): void {
  assert.equal(m.size, ref.size);
  const sorted = (e: Iterable<[number, number]>) => [...e].sort((a, b) => a[0] - b[0]);
  assert.deepEqual(sorted(m.entries()), sorted(ref.entries()));
  assert.deepEqual([...m.keys()].sort((a, b) => a - b), [...ref.keys()].sort((a, b) => a - b));
  assert.deepEqual([...m.values()].sort((a, b) => a - b), [...ref.values()].sort((a, b) => a - b));
  for (const k of ref.keys()) {
    assert.equal(m.get(k), ref.get(k));
    assert.equal(m.has(k), true);
  }
}

Deno.test("IdMap holds the same entries as a Map after random sets, deletes and clears", () => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 400 }), (ops) => {
      const m = new IdMap<number>();
      const ref = new Map<number, number>();
      for (const o of ops) {
        if (o.op === "set") {
          m.set(o.key, o.value);
          ref.set(o.key, o.value);
        } else if (o.op === "delete") {
          assert.equal(m.delete(o.key), ref.delete(o.key));
          assert.equal(m.get(o.key), undefined);
          assert.equal(m.has(o.key), false);
        } else {
          m.clear();
          ref.clear();
        }
      }
      same(m, ref);
    }),
    { numRuns: 300 },
  );
});

Deno.test("IdMap keeps working as ids come and go in a stream (deleted marks fill the table)", () => {
  const m = new IdMap<number>();
  const ref = new Map<number, number>();
  for (let id = 1; id <= 100_000; id++) {
    m.set(id, id);
    ref.set(id, id);
    // A window of 20 in flight, acknowledged out of order now and then.
    const gone = id % 7 === 0 ? id - 3 : id - 20;
    if (gone > 0 && ref.has(gone)) {
      assert.equal(m.delete(gone), true);
      ref.delete(gone);
    }
  }
  same(m, ref);
  for (const k of [...ref.keys()]) m.delete(k);
  assert.equal(m.size, 0);
  assert.deepEqual([...m], []);
});

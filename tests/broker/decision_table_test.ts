// DecisionTable: a Map of pending decisions with its newest entry kept aside.

import assert from "node:assert/strict";
import { DecisionTable } from "../../src/broker/_decision_table.ts";

Deno.test("DecisionTable answers like a Map whatever the order of set, get, has and delete", () => {
  // Random operations on ids 1..6 against a Map: the entry kept aside must never show.
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let run = 0; run < 200; run++) {
    const table = new DecisionTable<string>();
    const map = new Map<number, string>();
    for (let step = 0; step < 40; step++) {
      const id = 1 + Math.floor(random() * 6);
      const op = random();
      if (op < 0.45) {
        const value = `${run}.${step}`;
        table.set(id, value);
        map.set(id, value);
      } else if (op < 0.8) {
        assert.equal(table.delete(id), map.delete(id), `run ${run} step ${step}: delete ${id}`);
      }
      for (let k = 0; k <= 7; k++) {
        assert.equal(table.get(k), map.get(k), `run ${run} step ${step}: get ${k}`);
        assert.equal(table.has(k), map.has(k), `run ${run} step ${step}: has ${k}`);
      }
      assert.equal(table.size, map.size, `run ${run} step ${step}: size`);
    }
  }
});

Deno.test("DecisionTable lets go of a deleted entry kept aside", () => {
  const table = new DecisionTable<{ link: object }>();
  table.set(1, { link: {} });
  assert.equal(table.delete(1), true);
  assert.equal(table.get(1), undefined);
  assert.equal(table.delete(1), false);
  assert.equal(table.size, 0);
});

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

Deno.test("DecisionTable answers like a Map with ids given in increasing order and answered in any order, up to hundreds waiting", () => {
  // The core's pattern: each decision takes the next id; answers come in any order, some twice
  // (a late answer), and how many wait at once swings from none to hundreds.
  let seed = 11;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const table = new DecisionTable<number>();
  const map = new Map<number, number>();
  let next = 0;
  let answered = 0;
  for (let step = 0; step < 20_000; step++) {
    // Phases: mostly asking, then mostly answering.
    const asking = Math.floor(step / 2_000) % 2 === 0 ? 0.7 : 0.3;
    if (random() < asking || map.size === 0) {
      const id = ++next;
      table.set(id, id * 10);
      map.set(id, id * 10);
    } else {
      const ids = [...map.keys()];
      const id = random() < 0.1
        ? 1 + Math.floor(random() * next)
        : ids[Math.floor(random() * ids.length)]!;
      assert.equal(table.get(id), map.get(id), `step ${step}: get ${id}`);
      assert.equal(table.delete(id), map.delete(id), `step ${step}: delete ${id}`);
      answered++;
    }
    assert.equal(table.size, map.size, `step ${step}: size`);
    assert.equal(table.has(next), map.has(next), `step ${step}: has the newest`);
  }
  for (let id = 0; id <= next + 1; id++) assert.equal(table.get(id), map.get(id), `get ${id}`);
  assert.ok(answered > 5_000);
});

// LogBudget: lines a client can cause at will are capped per interval and the rest counted.
import assert from "node:assert/strict";
import { LogBudget } from "../../src/broker/_log_budget.ts";

Deno.test("LogBudget writes the first lines of an interval, counts the rest, reports them once", () => {
  const budget = new LogBudget({ lines: 2, intervalMs: 1000 });
  assert.deepEqual(budget.take(0), { write: true, suppressed: 0 });
  assert.deepEqual(budget.take(10), { write: true, suppressed: 0 });
  assert.deepEqual(budget.take(20), { write: false, suppressed: 0 });
  assert.deepEqual(budget.take(999), { write: false, suppressed: 0 });
  assert.deepEqual(budget.take(1000), { write: true, suppressed: 2 }, "the next interval tells");
  assert.deepEqual(budget.take(1001), { write: true, suppressed: 0 });
  assert.deepEqual(budget.take(5000), { write: true, suppressed: 0 });
});

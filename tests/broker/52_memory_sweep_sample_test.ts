/**
 * Broker, area 52 (latency): the sweep reads the process memory for `max_memory` only as often as
 * a decision can depend on it. Reading it costs the main thread 0.2–1 ms, which every message
 * arriving meanwhile waits: far below the limit the sweep samples every tenth time, within half
 * of the limit every time, and input still samples every 16 MiB.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  MemoryBudget,
  SAMPLE_EVERY_BYTES,
  SWEEPS_PER_SAMPLE,
} from "../../src/broker/memory_budget.ts";

const MAX = 64 * 1024 * 1024;

/** A budget over a probe that returns `memory.used` and counts its calls. */
function budget(max = MAX) {
  const memory = { used: 0, reads: 0 };
  const b = new MemoryBudget(max, () => 0, () => {
    memory.reads++;
    return memory.used;
  });
  return { b, memory };
}

Deno.test("52 memory budget: far below the limit the sweep samples on its first run, then every tenth", () => {
  const { b, memory } = budget();
  b.sweep();
  assert.equal(memory.reads, 1, "the first sweep samples");
  for (let i = 1; i < SWEEPS_PER_SAMPLE; i++) b.sweep();
  assert.equal(memory.reads, 1, "nothing read for the next nine sweeps");
  b.sweep();
  assert.equal(memory.reads, 2);
});

Deno.test("52 memory budget: a jump past the limit is seen by a later sweep and refuses, then its end too", () => {
  const { b, memory } = budget();
  b.sweep();
  memory.used = MAX + 1;
  let sweeps = 0;
  while (!b.exceeded) {
    b.sweep();
    assert.ok(++sweeps <= SWEEPS_PER_SAMPLE, "seen within SWEEPS_PER_SAMPLE sweeps");
  }
  // Over half the limit: every sweep samples, so coming back under is seen at once.
  memory.used = 0;
  const reads = memory.reads;
  b.sweep();
  assert.equal(memory.reads, reads + 1);
  assert.equal(b.exceeded, false);
});

Deno.test("52 memory budget: within half of the limit every sweep samples", () => {
  const { b, memory } = budget();
  memory.used = MAX / 2 + 1;
  b.sweep();
  for (let i = 0; i < 5; i++) b.sweep();
  assert.equal(memory.reads, 6);
  assert.equal(b.exceeded, false, "within half of the limit, not over it");
});

Deno.test("52 memory budget: input samples every 16 MiB and restarts the sweep's count", () => {
  const { b, memory } = budget();
  b.sweep();
  for (let i = 1; i < SWEEPS_PER_SAMPLE - 1; i++) b.sweep();
  b.noteInput(SAMPLE_EVERY_BYTES);
  assert.equal(memory.reads, 2, "16 MiB read: sampled");
  b.sweep();
  assert.equal(memory.reads, 2, "the sweep counts from the input's sample");
  b.noteInput(SAMPLE_EVERY_BYTES + 1024);
  assert.equal(memory.reads, 2, "less than 16 MiB more: not sampled");
});

Deno.test("52 memory budget: without a limit the probe is never read", () => {
  const { b, memory } = budget(0);
  for (let i = 0; i < 2 * SWEEPS_PER_SAMPLE; i++) b.sweep();
  b.noteInput(4 * SAMPLE_EVERY_BYTES);
  assert.equal(memory.reads, 0);
  assert.equal(b.exceeded, false);
});

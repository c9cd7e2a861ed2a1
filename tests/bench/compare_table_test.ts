// The comparison table: medians with ranges, generator CPU beside every figure, generator-bound
// and busy-machine marks, losses flagged, ratios from medians.
import assert from "node:assert/strict";
import { formatNumber, otherWork, resultsTable } from "../../bench/_compare_table.ts";
import { SCENARIOS } from "../../bench/_compare_scenarios.ts";
import type { LoadgenReport } from "../../bench/loadgen/run.ts";

function run(msgPerSecond: number, extra: Partial<LoadgenReport> = {}): LoadgenReport {
  return {
    mode: "pubsub",
    seconds: 5,
    msgPerSecond,
    windowReceived: msgPerSecond * 5,
    brokerCpu: 5,
    genCpu: 1,
    machineCpu: 6,
    lost: 0,
    duplicates: 0,
    ...extra,
  };
}

function rowCells(table: string, figure: string): string[] {
  const line = table.split("\n").find((l) => l.includes(`| ${figure} |`));
  assert.ok(line, `no row ${figure} in\n${table}`);
  return line.split("|").slice(1, -1).map((c) => c.trim());
}

Deno.test("table: median with range, generator CPU, ratio of medians", () => {
  const fanin = SCENARIOS.filter((s) => s.key === "fanin");
  const results = new Map([[
    "fanin",
    new Map([["amqtt", [run(300), run(100), run(200)]], [
      "mosquitto",
      [run(100), run(50), run(150)],
    ]]),
  ]]);
  const cells = rowCells(resultsTable(fanin, results, ["amqtt", "mosquitto"]), "throughput");
  assert.deepEqual(cells.slice(3), [
    "200 (100–300) · gen 20%",
    "100 (50.0–150) · gen 20%",
    "2.00×",
  ]);
});

Deno.test("table: a run with the generator at ≥ 90% of a core marks the figure gen-bound", () => {
  const fanin = SCENARIOS.filter((s) => s.key === "fanin");
  const results = new Map([["fanin", new Map([["amqtt", [run(100), run(100, { genCpu: 4.6 })]]])]]);
  const [cell] = rowCells(resultsTable(fanin, results, ["amqtt"]), "throughput").slice(3);
  assert.match(cell, /⚠ gen-bound/);
});

Deno.test("table: other work on the machine marks the figure busy; losses are flagged", () => {
  const fanin = SCENARIOS.filter((s) => s.key === "fanin");
  const busy = run(100, { machineCpu: 6 + 2, lost: 3, duplicates: 1 });
  assert.equal(otherWork(busy), 0.4);
  const results = new Map([["fanin", new Map([["amqtt", [busy]]])]]);
  const [cell] = rowCells(resultsTable(fanin, results, ["amqtt"]), "throughput").slice(3);
  assert.equal(cell, "100 · gen 20% ⚠ busy · lost 3 · dup 1");
});

Deno.test("table: a failed run is counted and left out of the median", () => {
  const fanin = SCENARIOS.filter((s) => s.key === "fanin");
  const results = new Map([["fanin", new Map([["amqtt", [run(100), undefined, run(300)]]])]]);
  const [cell] = rowCells(resultsTable(fanin, results, ["amqtt"]), "throughput").slice(3);
  assert.equal(cell, "200 (100–300) · gen 20% · 1 run(s) failed");
});

Deno.test("formatNumber keeps three significant digits", () => {
  assert.deepEqual(
    [1234567, 45678, 1234, 12.345, 0.0123, 0].map(formatNumber),
    ["1.23M", "45.7k", "1234", "12.3", "0.012", "0"],
  );
});

/**
 * Turns the runs of bench/compare.ts into one markdown table: per row and broker the median of
 * the repetitions with their range, the generator's CPU beside it, and amqtt's median as a ratio
 * to each peer's.
 *
 * @module
 */

import type { LoadgenReport } from "./loadgen/run.ts";
import type { Metric, Scenario } from "./_compare_scenarios.ts";

/** Generator CPU (fraction of one core) at or above which a figure is marked generator-bound. */
export const GENERATOR_BOUND = 0.9;

/** Reports of one scenario against one broker, one per repetition (undefined: the run failed). */
export type Runs = (LoadgenReport | undefined)[];

/** scenario key → broker name → runs. */
export type Results = Map<string, Map<string, Runs>>;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Three significant digits, with k / M for large numbers. */
export function formatNumber(n: number): string {
  const a = Math.abs(n);
  if (a >= 1e6) return `${(n / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${(n / 1e3).toPrecision(3)}k`;
  if (a >= 100) return Math.round(n).toString();
  if (a >= 1) return n.toPrecision(3);
  if (a === 0) return "0";
  return n.toPrecision(2);
}

/** Generator CPU of one run as a fraction of one core. */
function generatorLoad(r: LoadgenReport): number | undefined {
  const cpu = r.genCpu, secs = r.seconds;
  return typeof cpu === "number" && typeof secs === "number" && secs > 0 ? cpu / secs : undefined;
}

/** Other work on the machine at or above which (in cores) a figure is marked busy. */
export const OTHER_WORK_BOUND = 0.25;

/**
 * CPU the rest of the machine used during one run's measured phase, in cores: busy time from
 * /proc/stat minus the broker's and the generator's own.
 *
 * @param r one run's report
 * @returns cores, or undefined when the report lacks the readings
 */
export function otherWork(r: LoadgenReport): number | undefined {
  const { machineCpu: m, brokerCpu: b, genCpu: g, seconds: s } = r;
  if (typeof m !== "number" || typeof b !== "number" || typeof g !== "number") return undefined;
  if (typeof s !== "number" || s <= 0 || m < 0 || b < 0) return undefined;
  return Math.max(0, m - b - g) / s;
}

function values(runs: Runs, metric: Metric): number[] {
  return runs.flatMap((r) => {
    const v = r === undefined ? undefined : metric.value(r);
    return v === undefined ? [] : [v];
  });
}

function cell(runs: Runs | undefined, metric: Metric, scenario: Scenario): string {
  if (runs === undefined || runs.length === 0) return "—";
  const vs = values(runs, metric);
  const ok = runs.filter((r) => r !== undefined) as LoadgenReport[];
  const failed = runs.length - ok.length;
  if (vs.length === 0) return failed > 0 ? `failed ×${failed}` : "—";
  let text = formatNumber(median(vs));
  if (vs.length > 1) {
    text += ` (${formatNumber(Math.min(...vs))}–${formatNumber(Math.max(...vs))})`;
  }
  const loads = ok.map(generatorLoad).filter((x) => x !== undefined) as number[];
  if (loads.length > 0) {
    text += ` · gen ${Math.round(100 * median(loads))}%`;
    if (Math.max(...loads) >= GENERATOR_BOUND) text += " ⚠ gen-bound";
  }
  const others = ok.map(otherWork).filter((x) => x !== undefined) as number[];
  if (others.length > 0 && Math.max(...others) >= OTHER_WORK_BOUND) text += " ⚠ busy";
  if (scenario.flagLoss) {
    const lost = ok.reduce((n, r) => n + (r.lost as number), 0);
    const dups = ok.reduce((n, r) => n + (r.duplicates as number), 0);
    if (lost > 0) text += ` · lost ${lost}`;
    if (dups > 0) text += ` · dup ${dups}`;
    const corrupt = ok.reduce((n, r) => n + ((r.corrupt as number) ?? 0), 0);
    if (corrupt > 0) text += ` · corrupt ${corrupt}`;
  }
  if (failed > 0) text += ` · ${failed} run(s) failed`;
  return text;
}

function ratio(ours: Runs | undefined, theirs: Runs | undefined, metric: Metric): string {
  if (ours === undefined || theirs === undefined) return "—";
  const a = values(ours, metric), b = values(theirs, metric);
  if (a.length === 0 || b.length === 0) return "—";
  const m = median(b);
  return m === 0 ? "—" : `${(median(a) / m).toFixed(2)}×`;
}

/**
 * The results table.
 *
 * @param scenarios the scenarios that ran, in order
 * @param results their runs
 * @param brokers the broker columns, in order
 * @returns markdown
 */
export function resultsTable(scenarios: Scenario[], results: Results, brokers: string[]): string {
  const peers = brokers.filter((b) => b !== "amqtt" && b !== "forwarder");
  const withRatios = brokers.includes("amqtt") ? peers : [];
  const head = ["scenario", "figure", "unit", ...brokers, ...withRatios.map((p) => `amqtt ÷ ${p}`)];
  const lines = [`| ${head.join(" | ")} |`, `|${head.map(() => " --- ").join("|")}|`];
  for (const scenario of scenarios) {
    const byBroker = results.get(scenario.key);
    if (byBroker === undefined) continue;
    for (const metric of scenario.metrics) {
      const unit = metric.unit + (metric.lowerIsBetter ? " (lower is better)" : "");
      const cells = brokers.map((b) => cell(byBroker.get(b), metric, scenario));
      const ratios = withRatios.map((p) => ratio(byBroker.get("amqtt"), byBroker.get(p), metric));
      lines.push(`| ${[scenario.title, metric.label, unit, ...cells, ...ratios].join(" | ")} |`);
    }
  }
  return lines.join("\n");
}

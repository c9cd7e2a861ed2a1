/**
 * A writer for the Prometheus text exposition format (version 0.0.4): one `# HELP` and one
 * `# TYPE` line per metric family, then its samples. Internal to the metrics endpoint.
 *
 * @module
 */

/** Labels of one sample. Values are escaped here; names must match `[a-zA-Z_][a-zA-Z0-9_]*`. */
export type Labels = Readonly<Record<string, string>>;

/** One sample of a counter or gauge family. */
export interface Sample {
  labels?: Labels;
  value: number;
}

/** One labelled series of a histogram: cumulative counts per upper bound. */
export interface HistogramSeries {
  labels?: Labels;
  /** Upper bounds in ascending order, without `+Inf`. */
  bounds: readonly number[];
  /** Observations at or below each bound (cumulative), same length as `bounds`. */
  cumulative: readonly number[];
  /** Every observation, for the `+Inf` bucket and `_count`. */
  count: number;
  /** The sum of the observations. */
  sum: number;
}

/** The content type of the format. */
export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Collects metric families and renders them as text. */
export class Exposition {
  #lines: string[] = [];
  #names = new Set<string>();

  /**
   * Adds a counter or gauge family. A family without samples is still declared.
   *
   * @param name the metric name (counters end in `_total`)
   * @param type `counter` or `gauge`
   * @param help one line saying what it counts, with its unit
   * @param samples the samples
   */
  family(name: string, type: "counter" | "gauge", help: string, samples: Iterable<Sample>): void {
    this.#head(name, type, help);
    for (const s of samples) this.#lines.push(`${name}${labelText(s.labels)} ${number(s.value)}`);
  }

  /**
   * Adds one sample family with a single unlabelled value.
   *
   * @param name the metric name
   * @param type `counter` or `gauge`
   * @param help what it measures
   * @param value the value
   */
  single(name: string, type: "counter" | "gauge", help: string, value: number): void {
    this.family(name, type, help, [{ value }]);
  }

  /**
   * Adds a histogram family (`_bucket`, `_sum`, `_count` samples).
   *
   * @param name the base name (ends with its unit, e.g. `_seconds`)
   * @param help what it measures
   * @param series one entry per label set
   */
  histogram(name: string, help: string, series: Iterable<HistogramSeries>): void {
    this.#head(name, "histogram", help);
    for (const s of series) {
      for (let i = 0; i < s.bounds.length; i++) {
        const le = { ...s.labels, le: number(s.bounds[i]!) };
        this.#lines.push(`${name}_bucket${labelText(le)} ${s.cumulative[i]}`);
      }
      this.#lines.push(`${name}_bucket${labelText({ ...s.labels, le: "+Inf" })} ${s.count}`);
      this.#lines.push(`${name}_sum${labelText(s.labels)} ${number(s.sum)}`);
      this.#lines.push(`${name}_count${labelText(s.labels)} ${s.count}`);
    }
  }

  /** @returns the exposition, ending with a newline */
  text(): string {
    return this.#lines.join("\n") + "\n";
  }

  #head(name: string, type: string, help: string): void {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) throw new TypeError(`Bad metric name "${name}"`);
    if (this.#names.has(name)) throw new TypeError(`Metric "${name}" declared twice`);
    this.#names.add(name);
    this.#lines.push(`# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`);
    this.#lines.push(`# TYPE ${name} ${type}`);
  }
}

function labelText(labels: Labels | undefined): string {
  if (labels === undefined) return "";
  const parts: string[] = [];
  for (const [k, v] of Object.entries(labels)) {
    parts.push(`${k}="${v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"')}"`);
  }
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

function number(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return String(n);
}

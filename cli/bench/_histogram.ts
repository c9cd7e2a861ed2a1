/**
 * A latency histogram with about three significant digits over microseconds to hours, in fixed
 * memory: recording is an index computation and an increment, so a subscriber can record every
 * message without sorting or keeping samples.
 *
 * @module
 */

/** Values below this are recorded exactly (one bucket per microsecond). */
const LINEAR = 2048;
/** Buckets per power of two above {@linkcode LINEAR}. */
const SUB = 1024;
/** Powers of two covered above {@linkcode LINEAR}: up to 2^(11+26) µs, about 38 hours. */
const OCTAVES = 26;

/** Latencies in microseconds, bucketed with a relative error below 0.1%. */
export class LatencyHistogram {
  readonly #counts = new Float64Array(LINEAR + OCTAVES * SUB);
  #count = 0;
  #sum = 0;
  #max = 0;

  /** How many values were recorded. */
  get count(): number {
    return this.#count;
  }

  /** The largest value recorded (µs), 0 when empty. */
  get max(): number {
    return this.#max;
  }

  /** The mean (µs), 0 when empty. */
  get mean(): number {
    return this.#count === 0 ? 0 : this.#sum / this.#count;
  }

  /**
   * Records one value.
   *
   * @param micros a latency in microseconds; negative values (clock skew) count as 0
   */
  record(micros: number): void {
    const v = micros > 0 ? Math.floor(micros) : 0;
    this.#counts[indexOf(v)]++;
    this.#count++;
    this.#sum += v;
    if (v > this.#max) this.#max = v;
  }

  /**
   * Adds every value of another histogram.
   *
   * @param other the histogram to add
   */
  merge(other: LatencyHistogram): void {
    const src = other.#counts;
    for (let i = 0; i < src.length; i++) if (src[i] !== 0) this.#counts[i] += src[i];
    this.#count += other.#count;
    this.#sum += other.#sum;
    if (other.#max > this.#max) this.#max = other.#max;
  }

  /**
   * The value below which a fraction of the recorded values fall.
   *
   * @param fraction between 0 and 1 (0.5 for the median, 0.99 for p99)
   * @returns microseconds (the upper edge of the bucket, capped by the maximum), 0 when empty
   */
  percentile(fraction: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.max(1, Math.ceil(fraction * this.#count));
    let seen = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i];
      if (seen >= rank) return Math.min(upperEdge(i), this.#max);
    }
    return this.#max;
  }
}

function indexOf(v: number): number {
  if (v < LINEAR) return v;
  // v >> shift lands in [SUB, 2 * SUB): the top 11 bits of v.
  const shift = Math.min(31 - Math.clz32(Math.min(v, 0x7fffffff)) - 10, OCTAVES);
  const top = Math.min(Math.floor(v / 2 ** shift), 2 * SUB - 1);
  return LINEAR + (shift - 1) * SUB + (top - SUB);
}

function upperEdge(index: number): number {
  if (index < LINEAR) return index;
  const k = index - LINEAR;
  const shift = Math.floor(k / SUB) + 1;
  const top = (k % SUB) + SUB;
  return (top + 1) * 2 ** shift - 1;
}

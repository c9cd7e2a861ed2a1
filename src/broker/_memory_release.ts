/**
 * Giving memory back after many connections have gone. V8 returns the heap of closed connections
 * to the system only when its memory reducer runs, 15–30 s or more after allocation slows down:
 * 19,000 idle connections closed left a broker's heap at 134 MB used (11.5 MB before they came)
 * for more than 5 s, and 100,000 closed over six workers left 357 MB 30 s later. The broker's
 * sweep tells {@linkcode MemoryRelease} how many connections it has; once a large share of them
 * has gone and the count has stopped falling, it asks V8 for one full collection, which frees
 * the heap of the connections and shrinks it, then asks glibc to give back the free pages of its
 * arenas, where the runtime kept its sockets' state (`_malloc_trim.ts`; 25 MB of the RSS still kept
 * after 8,000 idle connections had gone).
 *
 * @module
 */

import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { mallocTrim } from "./_malloc_trim.ts";

/** Connections that must have gone (at least half of the peak too) before a collection. */
export const RELEASE_MIN_DROP = 1000;
/** The least time between two collections, in ms. */
export const RELEASE_MIN_INTERVAL_MS = 10_000;

/** Options of {@linkcode MemoryRelease}. */
export interface MemoryReleaseOptions {
  /** Runs a full collection; by default V8's `gc` (see {@linkcode exposedGc}). */
  collect?: () => void;
  /**
   * Gives the C allocator's free pages back, after each collection; by default glibc's
   * `malloc_trim` where the program may call it (`_malloc_trim.ts`), and none when `collect` is
   * given. Timed apart ({@linkcode MemoryRelease.lastTrimMs}): it runs on the main thread and its
   * pause grows with what it gives back (by hand, 35 ms for 106 MB, 389 ms for 546 MB, 870 ms for
   * 1.6 GB; bench/RESULTS.md, branch `revidle`).
   */
  trim?: () => unknown;
  /** Connections that must have gone; default {@linkcode RELEASE_MIN_DROP}. */
  minDrop?: number;
  /** The least time between two collections (ms); default {@linkcode RELEASE_MIN_INTERVAL_MS}. */
  minInterval?: number;
}

/**
 * Decides when a drop in the number of connections is worth a full collection: at least
 * `minDrop` connections and half of the most held since the last collection have gone, the count
 * did not fall since the previous sweep (the closing is over: one collection for a whole storm of
 * closes), and the last collection is `minInterval` ms ago. A collection pauses the broker for
 * about 5 ms per 1,000 connections' worth of heap, once per such drop.
 */
export class MemoryRelease {
  #collect: (() => void) | undefined;
  // Made on first use, as the collector (see exposedGc): "default" until then.
  #trim: (() => unknown) | "default" | undefined;
  #trimMs: number | undefined;
  #minDrop: number;
  #minInterval: number;
  #peak = 0;
  #last = 0;
  #lastAt = -Infinity;

  /**
   * @param options the collector and thresholds
   */
  constructor(options: MemoryReleaseOptions = {}) {
    this.#collect = options.collect;
    this.#trim = options.trim ?? (options.collect === undefined ? "default" : undefined);
    this.#minDrop = options.minDrop ?? RELEASE_MIN_DROP;
    this.#minInterval = options.minInterval ?? RELEASE_MIN_INTERVAL_MS;
  }

  /**
   * Called by each sweep with the connections held now.
   *
   * @param count connections held now
   * @param now the clock (ms)
   * @returns whether a collection was run
   */
  observe(count: number, now: number): boolean {
    const previous = this.#last;
    this.#last = count;
    if (count > this.#peak) this.#peak = count;
    const gone = this.#peak - count;
    if (gone < this.#minDrop || gone * 2 < this.#peak || count < previous) return false;
    if (now - this.#lastAt < this.#minInterval) return false;
    this.#lastAt = now;
    this.#peak = count;
    (this.#collect ??= exposedGc() ?? (() => {}))();
    // After the collection: V8 has freed the sockets' objects, and with them (their finalizers)
    // the runtime's native state of each, whose chunks the trim then gives back.
    if (this.#trim === "default") this.#trim = mallocTrim();
    if (this.#trim !== undefined) {
      const started = performance.now();
      this.#trim();
      this.#trimMs = performance.now() - started;
    }
    return true;
  }

  /**
   * How long the C allocator's trim after the last collection took (ms), to be told apart from the
   * collection in the broker's log; `undefined` when there is no trim here.
   */
  get lastTrimMs(): number | undefined {
    return this.#trimMs;
  }
}

/** What V8's `gc` takes: a full collection that also gives the freed memory back. */
const GIVE_BACK = { type: "major", flavor: "last-resort" } as const;

/**
 * V8's full collection that gives memory back to the system, as a function: `globalThis.gc` when
 * the program runs with `--v8-flags=--expose-gc`, else the one a new context gets once the flag is
 * set at run time (made on first use only: the context costs memory).
 *
 * Asked for with `{ type: "major", flavor: "last-resort" }`: V8's plain `gc()` (what the flag given
 * at start exposes) frees the garbage but keeps the heap's pages, so the process's RSS does not go
 * down at all (a heap of 255 MB with 16 MB live: 297 MB committed after it, against 18 MB after the
 * last-resort collection; bench/RESULTS.md, branch `idle4`). In Deno 2.9.6 the function a new
 * context gets once the flag is set at run time ignores its argument and collects that way anyway
 * (V8's low-memory notification).
 *
 * @returns the collector, or `undefined` when the runtime offers none
 */
export function exposedGc(): (() => void) | undefined {
  let gc = (globalThis as { gc?: unknown }).gc;
  try {
    if (typeof gc !== "function") {
      setFlagsFromString("--expose-gc");
      gc = runInNewContext("gc");
    }
  } catch {
    return undefined;
  }
  if (typeof gc !== "function") return undefined;
  const collect = gc as (options: typeof GIVE_BACK) => void;
  return () => collect(GIVE_BACK);
}

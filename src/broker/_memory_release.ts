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
/**
 * The longest a trim waits for a quiet sweep after its collection, in ms: then it runs anyway, so
 * that a broker that is never quiet still gives the memory back within a minute.
 */
export const TRIM_WAIT_MAX_MS = 60_000;

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
  /** How long a trim waits for a quiet sweep (ms); default {@linkcode TRIM_WAIT_MAX_MS}. */
  trimWaitMax?: number;
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
 *
 * The C allocator's trim after it waits for a quiet sweep (no packet in or out since the one
 * before), at most `trimWaitMax` ms: glibc's `malloc_trim` holds each arena's lock while it gives
 * that arena's free pages back, so every allocation of the main thread waits for it, 0.3–0.7 ms
 * per MB given back (317 ms after 10,000 connections that had each read a 256 KiB burst; on a
 * thread of its own it stalled the main thread as long: bench/trim_pause.ts). glibc has no trim
 * in steps. Its free pages are not lost meanwhile: the traffic's allocations take them again.
 */
export class MemoryRelease {
  #collect: (() => void) | undefined;
  // Made on first use, as the collector (see exposedGc): "default" until then.
  #trim: (() => unknown) | "default" | undefined;
  #trimMs: number | undefined;
  #trimWaitMax: number;
  /** When the trim after the last collection became due; `undefined` when none is. */
  #trimDue: number | undefined;
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
    this.#trimWaitMax = options.trimWaitMax ?? TRIM_WAIT_MAX_MS;
  }

  /**
   * Called by each sweep with the connections held now.
   *
   * @param count connections held now
   * @param now the clock (ms)
   * @param quiet whether no packet came in or went out since the previous sweep (see the class)
   * @returns whether a collection was run
   */
  observe(count: number, now: number, quiet = true): boolean {
    this.#trimMs = undefined;
    const previous = this.#last;
    this.#last = count;
    if (count > this.#peak) this.#peak = count;
    const gone = this.#peak - count;
    let collected = false;
    if (
      gone >= this.#minDrop && gone * 2 >= this.#peak && count >= previous &&
      now - this.#lastAt >= this.#minInterval
    ) {
      this.#lastAt = now;
      this.#peak = count;
      (this.#collect ??= exposedGc() ?? (() => {}))();
      collected = true;
      // After the collection: V8 has freed the sockets' objects, and with them (their
      // finalizers) the runtime's native state of each, whose chunks the trim then gives back.
      if (this.#trim === "default") this.#trim = mallocTrim();
      // A trim already waiting keeps its time: collections every minInterval on a broker never
      // quiet would otherwise put it off for good (the bound counts from the first).
      if (this.#trim !== undefined) this.#trimDue ??= now;
    }
    const due = this.#trimDue;
    if (due !== undefined && (quiet || now - due >= this.#trimWaitMax)) {
      this.#trimDue = undefined;
      const started = performance.now();
      (this.#trim as () => unknown)();
      this.#trimMs = performance.now() - started;
    }
    return collected;
  }

  /**
   * How long the C allocator's trim run by the last {@linkcode observe} took (ms), to be told apart
   * from the collection in the broker's log; `undefined` when that call ran none (none here, none
   * due, or waiting for a quiet sweep: {@linkcode trimWaiting}).
   */
  get lastTrimMs(): number | undefined {
    return this.#trimMs;
  }

  /** Whether a trim after a collection waits for a quiet sweep. */
  get trimWaiting(): boolean {
    return this.#trimDue !== undefined;
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

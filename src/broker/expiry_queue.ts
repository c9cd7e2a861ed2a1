/**
 * A min-heap of deadlines: what expires next, in O(log n) per insertion and removal. The broker
 * core keeps offline sessions in one, since each session has its own expiry interval and the
 * order of disconnects is not the order of expiry. An entry is removed as soon as its deadline
 * no longer applies (the session came back, or was discarded), so the heap holds nothing else.
 *
 * @module
 */

/** One deadline, as returned by {@linkcode ExpiryQueue.push}: the handle to remove it. */
export interface Expiry<T> {
  /** When, ms since epoch. */
  readonly at: number;
  /** What expires then. */
  readonly item: T;
  /** Its place in the heap; -1 once popped or removed. */
  index: number;
}

/**
 * Deadlines, earliest first.
 *
 * @example
 * ```ts
 * import { ExpiryQueue } from "./expiry_queue.ts";
 * import assert from "node:assert/strict";
 *
 * const q = new ExpiryQueue<string>();
 * q.push(30, "c");
 * const a = q.push(10, "a");
 * q.push(20, "b");
 * q.remove(a);
 * assert.equal(q.pop()?.item, "b");
 * assert.equal(q.peek()?.at, 30);
 * ```
 */
export class ExpiryQueue<T> {
  #heap: Expiry<T>[] = [];

  /** Deadlines held. */
  get size(): number {
    return this.#heap.length;
  }

  /**
   * Adds a deadline.
   *
   * @param at when, ms since epoch
   * @param item what expires then
   * @returns the entry, to {@linkcode remove} it
   */
  push(at: number, item: T): Expiry<T> {
    const entry: Expiry<T> = { at, item, index: this.#heap.length };
    this.#heap.push(entry);
    this.#up(entry.index);
    return entry;
  }

  /**
   * The earliest deadline, left in place.
   *
   * @returns the entry, or undefined when empty
   */
  peek(): Expiry<T> | undefined {
    return this.#heap[0];
  }

  /**
   * Removes the earliest deadline.
   *
   * @returns the entry, or undefined when empty
   */
  pop(): Expiry<T> | undefined {
    const top = this.#heap[0];
    if (top !== undefined) this.remove(top);
    return top;
  }

  /**
   * Removes a deadline that no longer applies.
   *
   * @param entry the entry {@linkcode push} returned
   * @returns false when it was no longer held
   */
  remove(entry: Expiry<T>): boolean {
    const heap = this.#heap;
    const i = entry.index;
    if (i < 0 || heap[i] !== entry) return false;
    entry.index = -1;
    const last = heap.pop()!;
    if (last !== entry) {
      heap[i] = last;
      last.index = i;
      this.#down(i);
      this.#up(last.index);
    }
    return true;
  }

  #up(i: number): void {
    const heap = this.#heap;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.at <= heap[i]!.at) break;
      this.#swap(i, parent);
      i = parent;
    }
  }

  #down(i: number): void {
    const heap = this.#heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let min = i;
      if (l < heap.length && heap[l]!.at < heap[min]!.at) min = l;
      if (r < heap.length && heap[r]!.at < heap[min]!.at) min = r;
      if (min === i) return;
      this.#swap(i, min);
      i = min;
    }
  }

  #swap(a: number, b: number): void {
    const heap = this.#heap;
    const x = heap[a]!;
    const y = heap[b]!;
    heap[a] = y;
    heap[b] = x;
    x.index = b;
    y.index = a;
  }
}

/**
 * A batch too large for one write, written as several pieces that are atomic as a whole (the
 * rewrite after a store outage: `SqliteStore.rewrite`). Each piece starts with a mark, a
 * `setCounter` of a name no broker counter has, whose value names the group (an id never given
 * before in the file: `GROUP_COUNTER`) and how many pieces follow. A reader keeps the pieces of a group until the one
 * with none following, and only then applies them, as one batch; a group cut short (a crash or a
 * failed write in the middle) is dropped, so the state before it stays whole. Internal to
 * src/store.
 *
 * @module
 */

import type { StoreMutation } from "./mutation.ts";

/** The mark's counter name: never a broker counter, never applied. */
export const PIECE_MARK = "$amqtt/piece";
/**
 * The counter of the last group id given (`SqliteStore.rewrite`): kept in the store's counters,
 * so that group ids are never given twice in a file's life, whatever the log rows' ids (they
 * start again at 1 once a fold has emptied the log). Never a broker counter; `load` leaves it out.
 */
export const GROUP_COUNTER = "$amqtt/piece-group";
/** Pieces in one group at most: the mark's value is `group * PIECES + following`. */
const PIECES = 65_536;

/** Bytes a mutation takes in a piece, roughly: its payloads and names, plus a fixed part. */
function sizeOf(m: StoreMutation): number {
  switch (m.type) {
    case "putMessage":
    case "putRetained":
      return 64 + m.message.topic.length + m.message.payload.length;
    case "putSession":
      return 128 + (m.session.will?.message.payload.length ?? 0);
    default:
      return 48;
  }
}

/**
 * Splits a batch into marked pieces of about `maxBytes` each (a mutation larger than that is a
 * piece of its own).
 *
 * @param batch the mutations, in order
 * @param maxBytes the size a piece stays under when it can
 * @param group the group's id: a non-negative integer below 2^36 no earlier group had
 * @returns the pieces, each starting with its mark
 * @throws {RangeError} If the batch needs more than 65,536 pieces.
 *
 * @example
 * ```ts
 * import { PieceReader, splitPieces } from "./_rewrite_pieces.ts";
 * import assert from "node:assert/strict";
 *
 * const batch = [1, 2, 3].map((value) => ({ type: "setCounter", name: "n", value }) as const);
 * const pieces = splitPieces(batch, 60, 9);
 * assert.equal(pieces.length, 3);
 * const reader = new PieceReader();
 * const applied = [];
 * for (const piece of pieces) applied.push(...reader.read([piece]));
 * assert.deepEqual(applied, [batch]);
 * ```
 */
export function splitPieces(
  batch: readonly StoreMutation[],
  maxBytes: number,
  group: number,
): StoreMutation[][] {
  const bodies: StoreMutation[][] = [];
  let body: StoreMutation[] = [];
  let bytes = 0;
  for (const m of batch) {
    const size = sizeOf(m);
    if (body.length > 0 && bytes + size > maxBytes) {
      bodies.push(body);
      body = [];
      bytes = 0;
    }
    body.push(m);
    bytes += size;
  }
  bodies.push(body);
  if (bodies.length > PIECES) {
    throw new RangeError(`Cannot split a batch into more than ${PIECES} pieces`);
  }
  return bodies.map((piece, i) => [
    { type: "setCounter", name: PIECE_MARK, value: group * PIECES + (bodies.length - 1 - i) },
    ...piece,
  ]);
}

/** The mark of a piece: its group and how many pieces follow; `undefined` when not a piece. */
function markOf(batches: readonly (readonly StoreMutation[])[]): [number, number] | undefined {
  const first = batches[0]?.[0];
  if (first?.type !== "setCounter" || first.name !== PIECE_MARK) return undefined;
  return [Math.floor(first.value / PIECES), first.value % PIECES];
}

/**
 * Reads rows in order and says which batches to apply: a row that is not a piece at once, the
 * pieces of a group once its last one is read, as one batch without their marks.
 */
export class PieceReader {
  #group = -1;
  #following = 0;
  #held: StoreMutation[] = [];
  #highest = 0;

  /** The highest group id read (0: none), groups cut short included. */
  get highestGroup(): number {
    return this.#highest;
  }

  /** Whether a group was started and not finished (at the end of the rows: cut short). */
  get open(): boolean {
    return this.#group >= 0;
  }

  /**
   * Takes one row's batches.
   *
   * @param batches the row's batches, in order
   * @returns the batches to apply now, in order
   */
  read(batches: readonly (readonly StoreMutation[])[]): (readonly StoreMutation[])[] {
    const mark = markOf(batches);
    if (
      this.#group >= 0 && (mark === undefined || mark[0] !== this.#group ||
        mark[1] !== this.#following - 1)
    ) {
      // Cut short: the pieces read so far are dropped.
      this.#group = -1;
      this.#held = [];
    }
    if (mark === undefined) return [...batches];
    if (mark[0] > this.#highest) this.#highest = mark[0];
    this.#group = mark[0];
    this.#following = mark[1];
    for (const batch of batches) {
      for (const m of batch) {
        if (m.type !== "setCounter" || m.name !== PIECE_MARK) this.#held.push(m);
      }
    }
    if (mark[1] > 0) return [];
    const whole = this.#held;
    this.#group = -1;
    this.#held = [];
    return [whole];
  }
}

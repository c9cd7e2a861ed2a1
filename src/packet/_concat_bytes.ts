/**
 * Byte arrays joined into one: the one copy of this loop for the broker, the CLIs and the tests.
 *
 * @module
 */

/**
 * The parts copied into one new array, in order: always a copy, so views into a buffer that is
 * reused later may be passed.
 *
 * @example
 * ```ts
 * import { concatBytes } from "./_concat_bytes.ts";
 * import assert from "node:assert/strict";
 *
 * const joined = concatBytes([new Uint8Array([1, 2]), new Uint8Array([3])]);
 * assert.deepEqual(joined, new Uint8Array([1, 2, 3]));
 * ```
 */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const part of parts) size += part.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

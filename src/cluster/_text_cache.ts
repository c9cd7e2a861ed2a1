/**
 * The strings a bus node decoded last, to give back when the same bytes come again: one node's
 * forwarded messages repeat the origin node, their publishers and their topics, and decoding a
 * string costs more than comparing its bytes with those of one decoded before.
 *
 * @module
 */

import { type TextSource, utf8Text } from "../store/record_codec.ts";

/** Texts longer than this are decoded each time. */
const MAX_BYTES = 64;
/** Strings kept: enough for the origin, a few publishers and topics of a batch. */
const SLOTS = 32;

/** A {@linkcode TextSource} that keeps the last {@linkcode SLOTS} short strings it decoded. */
export class TextCache implements TextSource {
  readonly #bytes: Uint8Array[] = [];
  readonly #texts: string[] = [];
  /** The slot the next new string takes (in turn). */
  #next = 0;

  text(bytes: Uint8Array, start: number, end: number): string {
    const n = end - start;
    if (n > MAX_BYTES) return utf8Text(bytes, start, end);
    const kept = this.#bytes;
    for (let s = 0; s < kept.length; s++) {
      const k = kept[s]!;
      if (k.length !== n) continue;
      let i = 0;
      while (i < n && k[i] === bytes[start + i]) i++;
      if (i === n) return this.#texts[s]!;
    }
    const text = utf8Text(bytes, start, end);
    const slot = this.#next;
    this.#next = (slot + 1) % SLOTS;
    kept[slot] = bytes.slice(start, end);
    this.#texts[slot] = text;
    return text;
  }
}

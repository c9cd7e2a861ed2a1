/**
 * Client ids whose `SessionTable` hashes are equal, for the tests of sessions kept by hash: a
 * birthday search for a pair, and ids made on purpose to collide with a given one, as an attacker
 * who knows the hash (32-bit FNV-1a, public in the source) can make as many as he likes. The
 * hash is computed here again (from a prefix's state, for long ids): the tests check it against
 * `hashOf`.
 *
 * @module
 */

const PRIME = 0x01000193;
const OFFSET = 0x811c9dc5;

/** The inverse of the FNV prime modulo 2^32 (Newton's iteration: each step doubles the bits). */
const PRIME_INVERSE = (() => {
  let inv = PRIME;
  for (let i = 0; i < 5; i++) inv = Math.imul(inv, 2 - Math.imul(PRIME, inv));
  return inv >>> 0;
})();

/** The full 32-bit FNV-1a state after `text`, from `state`. */
function fnv(text: string, state = OFFSET): number {
  let h = state;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), PRIME);
  return h >>> 0;
}

/**
 * Two client ids whose hashes are equal (a birthday search over a few tens of thousands).
 *
 * @param prefix what both ids start with
 * @returns the ids, in the order the search found them
 */
export function collidingIds(prefix = "client-"): [string, string] {
  // The prefix's state once: a long prefix (a 65535-byte id) is not hashed again for each try.
  const start = fnv(prefix);
  const seen = new Map<number, string>();
  for (let i = 0;; i++) {
    const suffix = String(i);
    const hash = fnv(suffix, start) >>> 2;
    const other = seen.get(hash);
    if (other !== undefined) return [prefix + other, prefix + suffix];
    seen.set(hash, suffix);
  }
}

/** Code units a client id may carry on the wire: printable, no surrogate [MQTT-1.5.3-1]. */
function wireSafe(c: number): boolean {
  return (c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c < 0xd800) || (c >= 0xe000 && c <= 0xfffd);
}

/**
 * `count` client ids of one length, each unlike `target`, whose 32-bit FNV-1a states (hence `hashOf`) equal
 * `target`'s: `prefix`, a counter, and two code units solved for. The last code unit reaches the
 * low 16 bits of the state before the last multiplication; the one before it is searched for the
 * high 16 bits.
 *
 * @param target the id to collide with
 * @param count how many ids
 * @param prefix what every id starts with
 * @returns the ids
 */
export function idsCollidingWith(target: string, count: number, prefix = ""): string[] {
  const want = Math.imul(fnv(target), PRIME_INVERSE) >>> 0;
  const start = fnv(prefix);
  const out: string[] = [];
  for (let k = 0; out.length < count; k++) {
    const middle = `${String(k).padStart(6, "0")}.`;
    const s = fnv(middle, start);
    for (let c1 = 0x21; c1 <= 0xfffd && out.length < count; c1++) {
      if (!wireSafe(c1)) continue;
      const s1 = Math.imul(s ^ c1, PRIME) >>> 0;
      if (s1 >>> 16 !== want >>> 16) continue;
      const c2 = (s1 ^ want) & 0xffff;
      if (!wireSafe(c2)) continue;
      const id = prefix + middle + String.fromCharCode(c1, c2);
      if (id !== target) out.push(id);
    }
  }
  return out;
}

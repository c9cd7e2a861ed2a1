/**
 * SHA-crypt (`$5$` sha256-crypt and `$6$` sha512-crypt), as specified by Ulrich Drepper's
 * "Unix crypt using SHA-256 and SHA-512" and implemented by glibc `crypt(3)`, `openssl passwd -5/-6`
 * and `mkpasswd -m sha-256/sha-512`. Internal: callers go through `password_hash.ts`.
 *
 * @module
 */

import { createHash } from "node:crypto";

/** The two SHA-crypt variants. */
export type ShaCryptVariant = "sha256" | "sha512";

/** Rounds when a hash does not say `rounds=N$` (the specification's default). */
export const SHA_CRYPT_DEFAULT_ROUNDS = 5000;
/** The specification clamps requested rounds into this range. */
export const SHA_CRYPT_MIN_ROUNDS = 1000;
/** The specification clamps requested rounds into this range. */
export const SHA_CRYPT_MAX_ROUNDS = 999_999_999;
/** At most this many salt characters are used; the rest are ignored. */
export const SHA_CRYPT_MAX_SALT = 16;

/** The crypt base-64 alphabet (not RFC 4648: it starts with `./` and digits). */
export const CRYPT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** A parsed `$5$` or `$6$` hash string. */
export interface ShaCryptHash {
  variant: ShaCryptVariant;
  /** Rounds after clamping. */
  rounds: number;
  /** Whether the string spelled out `rounds=N$` (then the output repeats it). */
  explicitRounds: boolean;
  /** Salt characters (at most 16). */
  salt: string;
  /** The encoded digest (43 characters for sha256, 86 for sha512). */
  digest: string;
}

const DIGEST_CHARS = { sha256: 43, sha512: 86 } as const;
const PREFIX = { sha256: "$5$", sha512: "$6$" } as const;

// Byte order of the final encoding: triples (b2, b1, b0) turned into 4 characters each, then the
// tail. The tables come from the specification's encoding step.
const SHA512_ORDER = [
  [0, 21, 42],
  [22, 43, 1],
  [44, 2, 23],
  [3, 24, 45],
  [25, 46, 4],
  [47, 5, 26],
  [6, 27, 48],
  [28, 49, 7],
  [50, 8, 29],
  [9, 30, 51],
  [31, 52, 10],
  [53, 11, 32],
  [12, 33, 54],
  [34, 55, 13],
  [56, 14, 35],
  [15, 36, 57],
  [37, 58, 16],
  [59, 17, 38],
  [18, 39, 60],
  [40, 61, 19],
  [62, 20, 41],
] as const;
const SHA256_ORDER = [
  [0, 10, 20],
  [21, 1, 11],
  [12, 22, 2],
  [3, 13, 23],
  [24, 4, 14],
  [15, 25, 5],
  [6, 16, 26],
  [27, 7, 17],
  [18, 28, 8],
  [9, 19, 29],
] as const;

const HASH_RE = /^\$([56])\$(?:rounds=([0-9]{1,10})\$)?([^$]{0,16})[^$]*\$([./0-9A-Za-z]+)$/;

/**
 * Parses a `$5$` / `$6$` hash string.
 *
 * @param hash The stored hash.
 * @returns The parts, or `undefined` when the string is not a well-formed SHA-crypt hash.
 */
export function parseShaCrypt(hash: string): ShaCryptHash | undefined {
  const m = HASH_RE.exec(hash);
  if (m === null) return undefined;
  const variant: ShaCryptVariant = m[1] === "5" ? "sha256" : "sha512";
  const digest = m[4];
  if (digest.length !== DIGEST_CHARS[variant]) return undefined;
  const explicitRounds = m[2] !== undefined;
  const rounds = explicitRounds ? clampRounds(Number(m[2])) : SHA_CRYPT_DEFAULT_ROUNDS;
  return { variant, rounds, explicitRounds, salt: m[3], digest };
}

/**
 * Clamps a rounds count into the range the specification allows.
 *
 * @param rounds Requested rounds.
 * @returns The rounds that will actually be used.
 */
export function clampRounds(rounds: number): number {
  return Math.min(SHA_CRYPT_MAX_ROUNDS, Math.max(SHA_CRYPT_MIN_ROUNDS, Math.floor(rounds)));
}

/**
 * Computes the encoded SHA-crypt digest of `password`.
 *
 * @param variant `sha256` (`$5$`) or `sha512` (`$6$`).
 * @param password The password bytes.
 * @param salt Salt characters; only the first 16 are used.
 * @param rounds Rounds, clamped to 1000..999999999.
 * @returns The digest in crypt base-64 (43 or 86 characters), without prefix or salt.
 */
export function shaCryptDigest(
  variant: ShaCryptVariant,
  password: Uint8Array,
  salt: string,
  rounds: number,
): string {
  const alg = variant;
  const hashLen = variant === "sha512" ? 64 : 32;
  const p = password;
  const s = new TextEncoder().encode(salt.slice(0, SHA_CRYPT_MAX_SALT));
  const h = () => createHash(alg);

  // Digest B = H(P S P).
  const b = h().update(p).update(s).update(p).digest();

  // Digest A = H(P S, then B repeated over len(P) bytes, then per bit of len(P): B or P).
  const ha = h().update(p).update(s);
  let n = p.length;
  for (; n > hashLen; n -= hashLen) ha.update(b);
  ha.update(b.subarray(0, n));
  for (let bits = p.length; bits > 0; bits >>= 1) ha.update(bits & 1 ? b : p);
  let a: Uint8Array = ha.digest();

  // DP = H(P repeated len(P) times); the P sequence is len(P) bytes of DP repeated.
  const hdp = h();
  for (let i = 0; i < p.length; i++) hdp.update(p);
  const dp = hdp.digest();
  const pSeq = repeatTo(dp, p.length);

  // DS = H(S repeated 16 + A[0] times); the S sequence is len(S) bytes of DS.
  const hds = h();
  for (let i = 0; i < 16 + a[0]; i++) hds.update(s);
  const sSeq = repeatTo(hds.digest(), s.length);

  // The rounds loop: one buffer per round, built in place, hashed with a single update.
  const buf = new Uint8Array(hashLen * 2 + sSeq.length + pSeq.length * 2);
  const r = clampRounds(rounds);
  for (let i = 0; i < r; i++) {
    let off = 0;
    if (i & 1) {
      buf.set(pSeq, off);
      off += pSeq.length;
    } else {
      buf.set(a, off);
      off += hashLen;
    }
    if (i % 3 !== 0) {
      buf.set(sSeq, off);
      off += sSeq.length;
    }
    if (i % 7 !== 0) {
      buf.set(pSeq, off);
      off += pSeq.length;
    }
    if (i & 1) {
      buf.set(a, off);
      off += hashLen;
    } else {
      buf.set(pSeq, off);
      off += pSeq.length;
    }
    a = h().update(buf.subarray(0, off)).digest();
  }
  return encodeDigest(variant, a);
}

/**
 * Formats a complete SHA-crypt hash string.
 *
 * @param variant `sha256` or `sha512`.
 * @param password The password bytes.
 * @param salt Salt characters from {@linkcode CRYPT_ALPHABET} (at most 16 are used).
 * @param rounds Rounds, or `undefined` for the implicit default (5000, not written out).
 * @returns `$6$[rounds=N$]salt$digest` (or `$5$...`).
 */
export function shaCrypt(
  variant: ShaCryptVariant,
  password: Uint8Array,
  salt: string,
  rounds?: number,
): string {
  const s = salt.slice(0, SHA_CRYPT_MAX_SALT);
  const r = rounds === undefined ? SHA_CRYPT_DEFAULT_ROUNDS : clampRounds(rounds);
  const roundsPart = rounds === undefined ? "" : `rounds=${r}$`;
  return `${PREFIX[variant]}${roundsPart}${s}$${shaCryptDigest(variant, password, s, r)}`;
}

function repeatTo(block: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let off = 0; off < length; off += block.length) {
    out.set(block.subarray(0, Math.min(block.length, length - off)), off);
  }
  return out;
}

function encodeDigest(variant: ShaCryptVariant, d: Uint8Array): string {
  let out = "";
  const put = (b2: number, b1: number, b0: number, chars: number) => {
    let w = (b2 << 16) | (b1 << 8) | b0;
    for (let i = 0; i < chars; i++) {
      out += CRYPT_ALPHABET[w & 0x3f];
      w >>= 6;
    }
  };
  if (variant === "sha512") {
    for (const [x, y, z] of SHA512_ORDER) put(d[x], d[y], d[z], 4);
    put(0, 0, d[63], 2);
  } else {
    for (const [x, y, z] of SHA256_ORDER) put(d[x], d[y], d[z], 4);
    put(0, d[31], d[30], 3);
  }
  return out;
}

/**
 * Password hashes for the password file: verification of every format found in aMQTT, hbmqtt and
 * Mosquitto password files, and hashing for the `amqtt passwd` tool.
 *
 * | Prefix | Scheme | Produced by |
 * |---|---|---|
 * | `$6$[rounds=N$]salt$hash` | sha512-crypt | `mkpasswd -m sha-512`, `openssl passwd -6`, passlib (aMQTT ≤ 0.11) |
 * | `$5$[rounds=N$]salt$hash` | sha256-crypt | `mkpasswd -m sha-256`, `openssl passwd -5` |
 * | `$argon2id$`, `$argon2i$`, `$argon2d$` (v=19) | argon2 | argon2-cffi (aMQTT 0.12), `argon2` CLI |
 * | `$2a$`, `$2b$`, `$2y$` | bcrypt | `htpasswd -B`, most web frameworks |
 * | `$7$iterations$salt$hash` | PBKDF2-HMAC-SHA512 | `mosquitto_passwd` (Mosquitto 2.x default) |
 * | `$6$base64salt$base64hash==` | SHA-512(password + salt) | `mosquitto_passwd -H sha512` |
 * | `SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey` | SCRAM-SHA-256 (RFC 5803 form) | `amqtt passwd -H scram-sha-256`, PostgreSQL, Dovecot |
 *
 * The last two are Mosquitto's own formats; Mosquitto's `$6$` is told apart from sha512-crypt by its
 * base-64 digest (88 characters ending in `==`; sha512-crypt's is 86 crypt characters).
 *
 * Every comparison of a computed digest with a stored one is constant-time.
 *
 * Cost: verification runs on the broker's thread for the crypt, argon2 and bcrypt formats (about
 * 15 ms for sha512-crypt at 5000 rounds, 40-50 ms for argon2id at m=19456,t=2); PBKDF2 runs on a
 * worker thread.
 *
 * @module
 */

import { createHash, pbkdf2, timingSafeEqual } from "node:crypto";
import { argon2d, argon2i, argon2id, bcryptVerify } from "hash-wasm";
import type { Logger } from "./types.ts";
import { CRYPT_ALPHABET, parseShaCrypt, shaCrypt, shaCryptDigest } from "./_sha_crypt.ts";
import { scramCredentials } from "./scram_secret.ts";
import {
  formatScramSecret,
  parseScramSecret,
  SCRAM_MAX_ITERATIONS,
  SCRAM_SHA_256_PREFIX,
  verifyScramPassword,
} from "./scram_secret.ts";

/** A hash format {@linkcode verifyPassword} understands. */
export type PasswordScheme =
  | "sha512-crypt"
  | "sha256-crypt"
  | "argon2id"
  | "argon2i"
  | "argon2d"
  | "bcrypt"
  | "pbkdf2-sha512"
  | "mosquitto-sha512"
  | "scram-sha-256";

/** A scheme {@linkcode hashPassword} can produce. */
export type HashScheme = "sha512-crypt" | "argon2id" | "pbkdf2-sha512" | "scram-sha-256";

/**
 * Longest password accepted for the sha-crypt formats. Their cost grows with the password length
 * on every round (a 64 KiB MQTT password would cost about a second at 5000 rounds), so longer
 * passwords are refused rather than hashed.
 */
export const SHA_CRYPT_MAX_PASSWORD_BYTES = 1024;

/** Default sha512-crypt rounds of {@linkcode hashPassword}: glibc's and `mkpasswd`'s default. */
export const DEFAULT_SHA512_CRYPT_ROUNDS = 5000;
/** Default PBKDF2-HMAC-SHA512 iterations of {@linkcode hashPassword} (OWASP 2023). */
export const DEFAULT_PBKDF2_ITERATIONS = 210_000;
/** Default argon2id parameters of {@linkcode hashPassword} (OWASP: 19 MiB, 2 passes, 1 lane). */
export const DEFAULT_ARGON2ID = { memorySize: 19456, iterations: 2, parallelism: 1 } as const;

const encoder = new TextEncoder();

const MOSQUITTO_SHA512_RE = /^\$6\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]{86}==)$/;
const MOSQUITTO_PBKDF2_RE = /^\$7\$([0-9]{1,10})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;
const ARGON2_RE =
  /^\$(argon2id|argon2i|argon2d)\$(?:v=([0-9]+)\$)?m=([0-9]{1,10}),t=([0-9]{1,10}),p=([0-9]{1,3})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;
const BCRYPT_RE = /^\$2[aby]\$([0-9]{2})\$[./A-Za-z0-9]{53}$/;

/**
 * Names the format of a stored hash, without checking that its fields are valid.
 *
 * @param hash A stored hash string.
 * @returns The scheme, or `undefined` when the format is not supported.
 *
 * @example
 * ```ts
 * import { identifyHash } from "./password_hash.ts";
 * import assert from "node:assert/strict";
 * assert.equal(identifyHash("$7$101$c2FsdA==$aGFzaA=="), "pbkdf2-sha512");
 * assert.equal(identifyHash("plain-text"), undefined);
 * ```
 */
export function identifyHash(hash: string): PasswordScheme | undefined {
  if (hash.startsWith("$6$")) {
    return MOSQUITTO_SHA512_RE.test(hash) ? "mosquitto-sha512" : "sha512-crypt";
  }
  if (hash.startsWith("$5$")) return "sha256-crypt";
  if (hash.startsWith("$7$")) return "pbkdf2-sha512";
  if (hash.startsWith("$argon2id$")) return "argon2id";
  if (hash.startsWith("$argon2i$")) return "argon2i";
  if (hash.startsWith("$argon2d$")) return "argon2d";
  if (/^\$2[aby]\$/.test(hash)) return "bcrypt";
  if (hash.startsWith(SCRAM_SHA_256_PREFIX)) return "scram-sha-256";
  return undefined;
}

/** Options for {@linkcode verifyPassword}. */
export interface VerifyPasswordOptions {
  /** Receives the reason when a hash is unsupported or malformed (at warning level). */
  logger?: Logger;
}

/**
 * Checks a password against a stored hash of any supported format.
 *
 * Never throws: an unsupported or malformed hash, or a password the format cannot take, gives
 * `false`, and the reason goes to `options.logger`. Specifics:
 * - bcrypt uses the first 72 bytes of the password, like every bcrypt; an empty password is
 *   refused. `$2x$` (the buggy pre-2011 variant) is not supported.
 * - sha-crypt refuses passwords longer than {@linkcode SHA_CRYPT_MAX_PASSWORD_BYTES}.
 * - argon2 supports version 19 (`v=19`) only, without a secret key.
 *
 * @param password The password: bytes as sent in CONNECT, or a string (encoded as UTF-8).
 * @param hash The stored hash.
 * @param options A logger for the reason of a refusal that is not a plain mismatch.
 * @returns Whether the password matches.
 *
 * @example
 * ```ts
 * import { verifyPassword } from "./password_hash.ts";
 * import assert from "node:assert/strict";
 * // openssl passwd -6 -salt abc hello
 * const hash = "$6$abc$34O8oRzThM7onc3iRQAcdWBv2H/sMGJlnsnG6uIkasTEvQkG9apXR/oBhPpqIepkul8wg.bf4wxoel67eJND./";
 * assert.equal(await verifyPassword("hello", hash), true);
 * assert.equal(await verifyPassword("Hello", hash), false);
 * ```
 */
export async function verifyPassword(
  password: string | Uint8Array,
  hash: string,
  options: VerifyPasswordOptions = {},
): Promise<boolean> {
  const pw = typeof password === "string" ? encoder.encode(password) : password;
  const reject = (reason: string): false => {
    options.logger?.warning(`Cannot verify password: ${reason}`);
    return false;
  };
  const scheme = identifyHash(hash);
  try {
    switch (scheme) {
      case "sha512-crypt":
      case "sha256-crypt":
        return verifyShaCrypt(pw, hash, reject);
      case "mosquitto-sha512":
        return verifyMosquittoSha512(pw, hash, reject);
      case "pbkdf2-sha512":
        return await verifyPbkdf2(pw, hash, reject);
      case "argon2id":
      case "argon2i":
      case "argon2d":
        return await verifyArgon2(pw, hash, reject);
      case "bcrypt":
        return await verifyBcrypt(pw, hash, reject);
      case "scram-sha-256": {
        const credentials = parseScramSecret(hash);
        if (typeof credentials === "string") return reject(credentials);
        return await verifyScramPassword(pw, credentials);
      }
      case undefined: {
        const prefix = describePrefix(hash);
        // Debian's `mkpasswd` defaults to yescrypt: say how to make a hash that works.
        const hint = prefix === "$y$"
          ? " (yescrypt; create the hash with mkpasswd -m sha-512)"
          : "";
        return reject(`unsupported hash format "${prefix}"${hint}`);
      }
    }
  } catch (error) {
    // hash-wasm and node:crypto throw on parameters they reject (memory too small, cost out of
    // range): that is a malformed entry, never a match.
    return reject(`${scheme} hash rejected: ${error instanceof Error ? error.message : error}`);
  }
}

/** Options for {@linkcode hashPassword}. */
export interface HashPasswordOptions {
  /**
   * The scheme; default `"sha512-crypt"`, which every aMQTT and hbmqtt version reads (passlib in
   * ≤ 0.11, `crypt` in 0.12), as do Mosquitto-free tools like `mkpasswd`. `"argon2id"` is what
   * aMQTT 0.12 writes; `"pbkdf2-sha512"` writes Mosquitto's `$7$` format, which Mosquitto reads;
   * `"scram-sha-256"` writes RFC 5803's `SCRAM-SHA-256$…`, which serves SCRAM-SHA-256 enhanced
   * authentication (`ScramAuthPlugin`) as well as passwords in CONNECT.
   */
  scheme?: HashScheme;
  /**
   * Work factor: sha512-crypt rounds (default 5000, written as `rounds=5000$`), PBKDF2
   * iterations (default 210000), argon2id passes (default 2) or SCRAM-SHA-256 iterations
   * (default 4096, RFC 7677's minimum).
   */
  rounds?: number;
}

/**
 * Hashes a password for a password file, with a fresh random salt.
 *
 * The default output is `$6$rounds=5000$<16 salt chars>$<86 chars>`: sha512-crypt at glibc's
 * default cost, exactly what `mkpasswd -m sha-512 -R 5000` writes. aMQTT 0.11 (passlib) and 0.12
 * (`crypt`) both read it.
 *
 * @param password The password (a string is encoded as UTF-8).
 * @param options Scheme and work factor.
 * @returns The hash string for a `user:hash` line.
 * @throws {RangeError} If `rounds` is not a positive integer, or the password is longer than
 * {@linkcode SHA_CRYPT_MAX_PASSWORD_BYTES} for sha512-crypt.
 *
 * @example
 * ```ts
 * import { hashPassword, verifyPassword } from "./password_hash.ts";
 * import assert from "node:assert/strict";
 * const hash = await hashPassword("s3cret");
 * assert.match(hash, /^\$6\$rounds=5000\$/);
 * assert.equal(await verifyPassword("s3cret", hash), true);
 * ```
 */
export async function hashPassword(
  password: string | Uint8Array,
  options: HashPasswordOptions = {},
): Promise<string> {
  const pw = typeof password === "string" ? encoder.encode(password) : password;
  const scheme = options.scheme ?? "sha512-crypt";
  const rounds = options.rounds;
  if (rounds !== undefined && (!Number.isSafeInteger(rounds) || rounds < 1)) {
    throw new RangeError(`Cannot hash password: rounds must be a positive integer, got ${rounds}`);
  }
  switch (scheme) {
    case "sha512-crypt": {
      if (pw.length > SHA_CRYPT_MAX_PASSWORD_BYTES) {
        throw new RangeError(
          `Cannot hash password: sha512-crypt takes at most ${SHA_CRYPT_MAX_PASSWORD_BYTES} bytes`,
        );
      }
      return shaCrypt("sha512", pw, randomCryptSalt(16), rounds ?? DEFAULT_SHA512_CRYPT_ROUNDS);
    }
    case "argon2id":
      return await argon2id({
        password: pw,
        salt: crypto.getRandomValues(new Uint8Array(16)),
        ...DEFAULT_ARGON2ID,
        iterations: rounds ?? DEFAULT_ARGON2ID.iterations,
        hashLength: 32,
        outputType: "encoded",
      });
    case "pbkdf2-sha512": {
      const iterations = rounds ?? DEFAULT_PBKDF2_ITERATIONS;
      // Mosquitto's layout: 12 salt bytes, 64 digest bytes, both in padded standard base-64.
      const salt = crypto.getRandomValues(new Uint8Array(12));
      const digest = await pbkdf2Async(pw, salt, iterations, 64);
      return `$7$${iterations}$${toBase64(salt)}$${toBase64(digest)}`;
    }
    case "scram-sha-256": {
      if (rounds !== undefined && rounds > SCRAM_MAX_ITERATIONS) {
        throw new RangeError(
          `Cannot hash password: SCRAM-SHA-256 takes at most ${SCRAM_MAX_ITERATIONS} iterations`,
        );
      }
      return formatScramSecret(await scramCredentials(pw, { iterations: rounds ?? 4096 }));
    }
    default:
      throw new TypeError(`Cannot hash password: unknown scheme "${scheme}"`);
  }
}

type Reject = (reason: string) => false;

function verifyShaCrypt(pw: Uint8Array, hash: string, reject: Reject): boolean {
  const parsed = parseShaCrypt(hash);
  if (parsed === undefined) return reject("malformed sha-crypt hash");
  if (pw.length > SHA_CRYPT_MAX_PASSWORD_BYTES) {
    return reject(`password longer than ${SHA_CRYPT_MAX_PASSWORD_BYTES} bytes for sha-crypt`);
  }
  const digest = shaCryptDigest(parsed.variant, pw, parsed.salt, parsed.rounds);
  return equalBytes(encoder.encode(digest), encoder.encode(parsed.digest));
}

function verifyMosquittoSha512(pw: Uint8Array, hash: string, reject: Reject): boolean {
  const m = MOSQUITTO_SHA512_RE.exec(hash);
  if (m === null) return reject("malformed Mosquitto sha512 hash");
  const salt = fromBase64(m[1]);
  const stored = fromBase64(m[2]);
  if (salt === undefined || stored === undefined) return reject("bad base-64 in Mosquitto hash");
  const digest = createHash("sha512").update(pw).update(salt).digest();
  return equalBytes(digest, stored);
}

async function verifyPbkdf2(pw: Uint8Array, hash: string, reject: Reject): Promise<boolean> {
  const m = MOSQUITTO_PBKDF2_RE.exec(hash);
  if (m === null) return reject("malformed $7$ (PBKDF2-SHA512) hash");
  const iterations = Number(m[1]);
  const salt = fromBase64(m[2]);
  const stored = fromBase64(m[3]);
  if (salt === undefined || stored === undefined) return reject("bad base-64 in $7$ hash");
  if (iterations < 1 || stored.length === 0) return reject("$7$ hash has no iterations or digest");
  const digest = await pbkdf2Async(pw, salt, iterations, stored.length);
  return equalBytes(digest, stored);
}

async function verifyArgon2(pw: Uint8Array, hash: string, reject: Reject): Promise<boolean> {
  const m = ARGON2_RE.exec(hash);
  if (m === null) return reject("malformed argon2 hash");
  const [, type, version, mem, t, p, saltB64, hashB64] = m;
  // hash-wasm implements version 0x13 only; version 0x10 (no `v=` field) computes differently.
  if (version !== "19") return reject(`argon2 version ${version ?? "16"} is not supported`);
  const salt = fromBase64(saltB64);
  const stored = fromBase64(hashB64);
  if (salt === undefined || stored === undefined) return reject("bad base-64 in argon2 hash");
  const fn = type === "argon2id" ? argon2id : type === "argon2i" ? argon2i : argon2d;
  const digest = await fn({
    password: pw,
    salt,
    memorySize: Number(mem),
    iterations: Number(t),
    parallelism: Number(p),
    hashLength: stored.length,
    outputType: "binary",
  });
  return equalBytes(digest, stored);
}

async function verifyBcrypt(pw: Uint8Array, hash: string, reject: Reject): Promise<boolean> {
  const m = BCRYPT_RE.exec(hash);
  if (m === null) return reject("malformed bcrypt hash");
  const cost = Number(m[1]);
  if (cost < 4 || cost > 31) return reject(`bcrypt cost ${cost} is outside 4..31`);
  // bcrypt keys on at most 72 bytes; hash-wasm refuses longer input instead of truncating.
  const key = pw.slice(0, 72);
  if (key.length === 0) return reject("bcrypt cannot verify an empty password");
  // bcryptVerify, not bcrypt(): it honours the minor version ($2a$ differs from $2b$/$2y$ for
  // bytes >= 0x80 in crypt_blowfish), and compares all 31 digest characters without early exit.
  return await bcryptVerify({ password: key, hash });
}

function pbkdf2Async(
  pw: Uint8Array,
  salt: Uint8Array,
  iterations: number,
  length: number,
): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    pbkdf2(pw, salt, iterations, length, "sha512", (err, key) => {
      if (err) reject(err);
      else resolve(new Uint8Array(key.buffer, key.byteOffset, key.byteLength));
    });
  });
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  // timingSafeEqual requires equal lengths; lengths are fixed by each format, not secret.
  return a.length === b.length && timingSafeEqual(a, b);
}

function fromBase64(text: string): Uint8Array | undefined {
  const padded = text.length % 4 === 0 ? text : text + "=".repeat(4 - (text.length % 4));
  try {
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function randomCryptSalt(length: number): string {
  // 64 symbols: a byte masked to 6 bits picks one uniformly.
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  let salt = "";
  for (const b of bytes) salt += CRYPT_ALPHABET[b & 0x3f];
  return salt;
}

function describePrefix(hash: string): string {
  // Name the format for the log without echoing the hash itself.
  const m = /^\$[^$]{0,16}\$/.exec(hash);
  return m ? m[0] : hash.length === 0 ? "(empty)" : "(no $id$ prefix)";
}

/**
 * SCRAM-SHA-256 credentials as one line of text, in the form of RFC 5803 §3 that Dovecot and
 * PostgreSQL store: `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, each binary field
 * in standard base-64. In a password file the line is `user:SCRAM-SHA-256$…`: `ScramAuthPlugin`
 * runs SCRAM over it, and `FileAuthPlugin` checks a CONNECT password against it (the derivation
 * needs only the salt and the iteration count), so one file serves 3.1.1 and 5.0 clients.
 *
 * @module
 */

import { decodeBase64, encodeBase64, hmacSha256, saltedPassword, sha256 } from "./_scram_math.ts";

/** The salted keys of one user (RFC 5802 §3): what the broker stores instead of a password. */
export interface ScramCredentials {
  /** The salt. */
  salt: Uint8Array;
  /** The PBKDF2 iteration count. */
  iterations: number;
  /** H(HMAC(SaltedPassword, "Client Key")). */
  storedKey: Uint8Array;
  /** HMAC(SaltedPassword, "Server Key"). */
  serverKey: Uint8Array;
}

/**
 * Derives a user's SCRAM-SHA-256 credentials from a password (PBKDF2-HMAC-SHA-256).
 *
 * @param password the password, prepared with SASLprep (RFC 5802 §2.2), then UTF-8; one SASLprep
 *   refuses, or bytes that are not UTF-8, as they are
 * @param options the salt (default 16 random bytes) and iteration count (default 4096)
 * @returns the credentials, for `ScramAuthPlugin` or {@linkcode formatScramSecret}
 *
 * @example
 * ```ts
 * import { scramCredentials } from "./scram_secret.ts";
 * import assert from "node:assert/strict";
 * const credentials = await scramCredentials("pencil");
 * assert.equal(credentials.iterations, 4096);
 * assert.equal(credentials.storedKey.length, 32);
 * ```
 */
export async function scramCredentials(
  password: string | Uint8Array,
  options: { salt?: Uint8Array; iterations?: number } = {},
): Promise<ScramCredentials> {
  const salt = options.salt ?? crypto.getRandomValues(new Uint8Array(16));
  const iterations = options.iterations ?? 4096;
  const salted = await saltedPassword(password, salt, iterations);
  return {
    salt,
    iterations,
    storedKey: await sha256(await hmacSha256(salted, "Client Key")),
    serverKey: await hmacSha256(salted, "Server Key"),
  };
}

/** The prefix of a SCRAM-SHA-256 secret. */
export const SCRAM_SHA_256_PREFIX = "SCRAM-SHA-256$";

/** Highest iteration count accepted in a secret: more would stall every login check. */
export const SCRAM_MAX_ITERATIONS = 10_000_000;

const SECRET_RE =
  /^SCRAM-SHA-256\$([0-9]{1,10}):([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2}):([A-Za-z0-9+/]+={0,2})$/;

function fromBase64(text: string): Uint8Array | undefined {
  try {
    return decodeBase64(text);
  } catch {
    return undefined;
  }
}

/**
 * Writes credentials as a SCRAM-SHA-256 secret (RFC 5803 form).
 *
 * @param credentials the salted keys, e.g. from {@linkcode scramCredentials}
 * @returns `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`
 *
 * @example
 * ```ts
 * import { formatScramSecret } from "./scram_secret.ts";
 * import { scramCredentials } from "./scram_secret.ts";
 * import assert from "node:assert/strict";
 * const secret = formatScramSecret(await scramCredentials("pencil"));
 * assert.match(secret, /^SCRAM-SHA-256\$4096:/);
 * ```
 */
export function formatScramSecret(credentials: ScramCredentials): string {
  return `${SCRAM_SHA_256_PREFIX}${credentials.iterations}:${encodeBase64(credentials.salt)}$` +
    `${encodeBase64(credentials.storedKey)}:${encodeBase64(credentials.serverKey)}`;
}

/**
 * Reads a SCRAM-SHA-256 secret (RFC 5803 form).
 *
 * @param secret the text after `user:` in a password file
 * @returns the credentials, or a string saying what is wrong (without echoing the secret)
 *
 * @example
 * ```ts
 * import { parseScramSecret } from "./scram_secret.ts";
 * import assert from "node:assert/strict";
 * // RFC 7677's example user ("pencil").
 * const parsed = parseScramSecret(
 *   "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$" +
 *     "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
 * );
 * assert.equal(typeof parsed === "object" && parsed.iterations, 4096);
 * assert.equal(parseScramSecret("SCRAM-SHA-256$0:c2FsdA==$a:b"), "iteration count 0 is outside 1 to 10000000");
 * ```
 */
export function parseScramSecret(secret: string): ScramCredentials | string {
  const m = SECRET_RE.exec(secret);
  if (m === null) {
    return "malformed SCRAM-SHA-256 secret (expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)";
  }
  const iterations = Number(m[1]);
  if (iterations < 1 || iterations > SCRAM_MAX_ITERATIONS) {
    return `iteration count ${iterations} is outside 1 to ${SCRAM_MAX_ITERATIONS}`;
  }
  const salt = fromBase64(m[2]!);
  const storedKey = fromBase64(m[3]!);
  const serverKey = fromBase64(m[4]!);
  if (salt === undefined || storedKey === undefined || serverKey === undefined) {
    return "bad base-64 in SCRAM-SHA-256 secret";
  }
  if (salt.length === 0) return "empty salt in SCRAM-SHA-256 secret";
  if (storedKey.length !== 32 || serverKey.length !== 32) {
    return "StoredKey and ServerKey of a SCRAM-SHA-256 secret are 32 bytes each";
  }
  return { iterations, salt, storedKey, serverKey };
}

/**
 * Checks a password (as a CONNECT carries it) against a SCRAM-SHA-256 secret: derives the keys
 * with the secret's salt and iteration count and compares the StoredKey in constant time.
 *
 * @param password the password
 * @param credentials the parsed secret
 * @returns whether the password matches
 *
 * @example
 * ```ts
 * import { verifyScramPassword } from "./scram_secret.ts";
 * import { scramCredentials } from "./scram_secret.ts";
 * import assert from "node:assert/strict";
 * const credentials = await scramCredentials("pencil", { iterations: 1000 });
 * assert.equal(await verifyScramPassword("pencil", credentials), true);
 * assert.equal(await verifyScramPassword("pen", credentials), false);
 * ```
 */
export async function verifyScramPassword(
  password: string | Uint8Array,
  credentials: ScramCredentials,
): Promise<boolean> {
  const derived = await scramCredentials(password, {
    salt: credentials.salt,
    iterations: credentials.iterations,
  });
  let diff = derived.storedKey.length ^ credentials.storedKey.length;
  for (let i = 0; i < derived.storedKey.length; i++) {
    diff |= derived.storedKey[i]! ^ (credentials.storedKey[i] ?? 0);
  }
  return diff === 0;
}

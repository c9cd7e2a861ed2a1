/**
 * The SCRAM-SHA-256 primitives (RFC 5802 §3), shared by the broker's `ScramAuthPlugin` and the
 * client's `scramSha256Auth`: PBKDF2 salting, HMAC, SHA-256, the SCRAM attribute syntax and
 * base-64. It imports only SASLprep, so the client takes none of the broker's plugins with it.
 *
 * @module
 */

import { preparedPassword } from "./_saslprep.ts";

const encoder = new TextEncoder();

/** The base-64 of bytes. */
export function encodeBase64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/** The bytes of base-64 text. @throws {DOMException} on text that is not base-64 */
export function decodeBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** HMAC-SHA-256(key, data); a string is UTF-8. */
export async function hmacSha256(key: Uint8Array, data: Uint8Array | string): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey(
    "raw",
    key as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, bytes as Uint8Array<ArrayBuffer>));
}

/** SHA-256(data). */
export async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
}

/**
 * SaltedPassword := Hi(Normalize(password), salt, i), i.e. PBKDF2-HMAC-SHA-256 of the password
 * prepared with SASLprep (RFC 5802 §2.2; see `preparedPassword`), as UTF-8.
 */
export async function saltedPassword(
  password: string | Uint8Array,
  salt: Uint8Array,
  iterations: number,
): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey(
    "raw",
    preparedPassword(password) as Uint8Array<ArrayBuffer>,
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  return new Uint8Array(
    await crypto.subtle.deriveBits(
      { name: "PBKDF2", hash: "SHA-256", salt: salt as Uint8Array<ArrayBuffer>, iterations },
      key,
      256,
    ),
  );
}

/** The `k=v` attributes of a SCRAM message. */
export function scramAttributes(message: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of message.split(",")) {
    if (part.length >= 2 && part[1] === "=") out.set(part[0]!, part.slice(2));
  }
  return out;
}

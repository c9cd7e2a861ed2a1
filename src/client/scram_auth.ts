/**
 * The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as an MQTT 5.0 enhanced authentication
 * method, for the `auth` option of `MQTTClient.connect`: the password never leaves the client, and
 * the client checks the server's signature, so it knows the server holds the user's keys.
 *
 * @module
 */

import {
  decodeBase64,
  encodeBase64,
  hmacSha256,
  saltedPassword,
  scramAttributes,
  sha256,
} from "../plugins/_scram_math.ts";
import { saslprep } from "../plugins/_saslprep.ts";
import type { EnhancedAuth } from "./v5_options.ts";

/** Options for {@linkcode scramSha256Auth}. */
export interface ScramSha256AuthOptions {
  /**
   * The highest iteration count the client accepts from a server: more would let a server make
   * the client spend long on PBKDF2.
   *
   * @default {10000000}
   */
  maxIterations?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** RFC 5802 §5.1: `=` and `,` in a user name are written `=3D` and `=2C`. */
function saslName(user: string): string {
  return user.replaceAll("=", "=3D").replaceAll(",", "=2C");
}

/**
 * Makes the `auth` option for a SCRAM-SHA-256 login (Authentication Method `SCRAM-SHA-256`),
 * as the broker's `auth_scram` plugin runs it. Each connection attempt and each
 * `reauthenticate()` runs a fresh exchange. A server whose final message does not carry the
 * right signature fails the connect (the client closes with DISCONNECT 0x80).
 *
 * Send the same user name as the CONNECT's User Name too (`username` in the connect options),
 * or none: the broker refuses a User Name that differs from the SCRAM user.
 *
 * @param username the user (prepared with SASLprep, RFC 4013)
 * @param password the password (prepared with SASLprep, then UTF-8; one SASLprep refuses is
 *   used as it is, as the broker does too)
 * @param options the iteration bound
 * @returns the `auth` option
 * @throws {TypeError} when the user name is empty, before or after SASLprep, or SASLprep refuses it
 *
 * @example
 * ```ts
 * import { scramSha256Auth } from "@amqtt/amqtt/client";
 * import assert from "node:assert/strict";
 *
 * const auth = scramSha256Auth("alice", "s3cret");
 * assert.equal(auth.method, "SCRAM-SHA-256");
 * const first = new TextDecoder().decode(await auth.initial?.(false));
 * assert.match(first, /^n,,n=alice,r=/);
 * ```
 */
export function scramSha256Auth(
  username: string,
  password: string,
  options: ScramSha256AuthOptions = {},
): EnhancedAuth {
  if (typeof username !== "string" || username === "") {
    throw new TypeError("Cannot use SCRAM-SHA-256: the user name is empty");
  }
  // The user name goes out prepared with SASLprep; if that fails or leaves nothing, the exchange
  // is not started (RFC 5802 §5.1).
  let user: string;
  try {
    user = saslprep(username);
  } catch (error) {
    throw new TypeError(
      `Cannot use SCRAM-SHA-256 with this user name: ${(error as Error).message}`,
    );
  }
  if (user === "") throw new TypeError("Cannot use SCRAM-SHA-256: the user name is empty");
  const maxIterations = options.maxIterations ?? 10_000_000;
  let clientFirstBare = "";
  let clientNonce = "";
  let expected: string | undefined;
  return {
    method: "SCRAM-SHA-256",
    initial: () => {
      clientNonce = encodeBase64(crypto.getRandomValues(new Uint8Array(18)));
      clientFirstBare = `n=${saslName(user)},r=${clientNonce}`;
      expected = undefined;
      return encoder.encode(`n,,${clientFirstBare}`);
    },
    challenge: async (data) => {
      if (expected !== undefined) throw new Error("SCRAM-SHA-256: unexpected second challenge");
      const serverFirst = decoder.decode(data);
      const attrs = scramAttributes(serverFirst);
      const nonce = attrs.get("r");
      const salt = attrs.get("s");
      const iterations = Number(attrs.get("i"));
      if (nonce === undefined || !nonce.startsWith(clientNonce) || nonce === clientNonce) {
        throw new Error("SCRAM-SHA-256: the server's nonce does not extend the client's");
      }
      if (salt === undefined || salt === "") throw new Error("SCRAM-SHA-256: no salt");
      if (!Number.isSafeInteger(iterations) || iterations < 1 || iterations > maxIterations) {
        throw new Error(`SCRAM-SHA-256: iteration count ${attrs.get("i")} refused`);
      }
      const salted = await saltedPassword(password, decodeBase64(salt), iterations);
      const clientKey = await hmacSha256(salted, "Client Key");
      const withoutProof = `c=biws,r=${nonce}`;
      const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
      const signature = await hmacSha256(await sha256(clientKey), authMessage);
      const proof = clientKey.map((b, i) => b ^ signature[i]!);
      expected = `v=${
        encodeBase64(await hmacSha256(await hmacSha256(salted, "Server Key"), authMessage))
      }`;
      return encoder.encode(`${withoutProof},p=${encodeBase64(proof)}`);
    },
    done: (data) => {
      // The server-final message proves the server holds the keys (RFC 5802 §3).
      if (expected === undefined || data === undefined || decoder.decode(data) !== expected) {
        throw new Error("SCRAM-SHA-256: the server's signature is missing or wrong");
      }
    },
  };
}

/**
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) as an MQTT 5.0 enhanced authentication method: the broker
 * keeps only salted keys (StoredKey, ServerKey), never the password, and the client proves it knows
 * the password without sending it. No channel binding (a GS2 header of `n,,` or `y,,`).
 *
 * The exchange: CONNECT carries the method `SCRAM-SHA-256` and the client-first message
 * (`n,,n=user,r=nonce`); the broker answers AUTH 0x18 with the server-first message
 * (`r=nonce+server nonce,s=salt,i=iterations`); the client answers AUTH 0x18 with the client-final
 * message (`c=biws,r=…,p=proof`); the broker accepts with CONNACK 0x00 carrying the server-final
 * message (`v=signature`, which the client checks) or refuses with 0x86. A re-authentication runs
 * the same exchange.
 *
 * @module
 */

import type { BrokerPlugin, EnhancedAuthAnswer, EnhancedAuthRequest } from "./types.ts";

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

/** Options for {@linkcode ScramAuthPlugin}. */
export interface ScramAuthPluginOptions {
  /** Each user's credentials, by user name (see {@linkcode scramCredentials}). */
  users: Readonly<Record<string, ScramCredentials>>;
  /**
   * Makes the server's nonce (printable ASCII without `,`).
   *
   * @default {24 random bytes in base64}
   */
  nonce?: () => string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const BAD_USER_NAME_OR_PASSWORD = 0x86;
const METHOD = "SCRAM-SHA-256";

function encodeBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

/** @throws {DOMException} on input that is not base64 */
function decodeBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

async function hmac(key: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey(
    "raw",
    key as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, data as Uint8Array<ArrayBuffer>));
}

async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
}

/**
 * Derives a user's SCRAM-SHA-256 credentials from a password (PBKDF2-HMAC-SHA-256).
 *
 * @param password the password (used as UTF-8; no SASLprep)
 * @param options the salt (default 16 random bytes) and iteration count (default 4096)
 * @returns the credentials to give {@linkcode ScramAuthPlugin}
 *
 * @example
 * ```ts
 * import { scramCredentials } from "./scram_auth.ts";
 * import assert from "node:assert/strict";
 * const credentials = await scramCredentials("pencil");
 * assert.equal(credentials.iterations, 4096);
 * assert.equal(credentials.storedKey.length, 32);
 * ```
 */
export async function scramCredentials(
  password: string,
  options: { salt?: Uint8Array; iterations?: number } = {},
): Promise<ScramCredentials> {
  const salt = options.salt ?? crypto.getRandomValues(new Uint8Array(16));
  const iterations = options.iterations ?? 4096;
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(password),
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  const salted = new Uint8Array(
    await crypto.subtle.deriveBits(
      { name: "PBKDF2", hash: "SHA-256", salt: salt as Uint8Array<ArrayBuffer>, iterations },
      key,
      256,
    ),
  );
  return {
    salt,
    iterations,
    storedKey: await sha256(await hmac(salted, encoder.encode("Client Key"))),
    serverKey: await hmac(salted, encoder.encode("Server Key")),
  };
}

/** The `k=v` attributes of a SCRAM message. */
function attributes(message: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of message.split(",")) {
    if (part.length >= 2 && part[1] === "=") out.set(part[0]!, part.slice(2));
  }
  return out;
}

interface ScramState {
  user: string;
  clientFirstBare: string;
  serverFirst: string;
  nonce: string;
}

const REFUSED: EnhancedAuthAnswer = {
  refuse: BAD_USER_NAME_OR_PASSWORD,
  reasonString: "SCRAM authentication failed",
};

/**
 * SCRAM-SHA-256 enhanced authentication for MQTT 5.0 clients (see the module docs). A user it does
 * not know gets a server-first message like any other and is refused at the proof.
 *
 * @example
 * ```ts
 * import { ScramAuthPlugin, scramCredentials } from "./scram_auth.ts";
 * import assert from "node:assert/strict";
 * const plugin = new ScramAuthPlugin({ users: { user: await scramCredentials("pencil") } });
 * assert.deepEqual(plugin.authenticationMethods, ["SCRAM-SHA-256"]);
 * ```
 */
export class ScramAuthPlugin implements BrokerPlugin {
  /** The plugin's short id. */
  readonly name = "auth_scram";
  /** The one method it runs. */
  readonly authenticationMethods: readonly string[] = [METHOD];
  readonly #users: ReadonlyMap<string, ScramCredentials>;
  readonly #nonce: () => string;
  /** Made-up credentials for users it does not know, made when first needed. */
  #unknown: Promise<ScramCredentials> | undefined;

  /**
   * Creates the plugin.
   *
   * @param options the users' credentials
   */
  constructor(options: ScramAuthPluginOptions) {
    this.#users = new Map(Object.entries(options.users));
    this.#nonce = options.nonce ??
      (() => encodeBase64(crypto.getRandomValues(new Uint8Array(24))));
  }

  /** Credentials for a user it does not know, so that it is refused like a wrong password. */
  #madeUp(): Promise<ScramCredentials> {
    return this.#unknown ??= scramCredentials(crypto.randomUUID());
  }

  /**
   * One step: step 0 takes the client-first message, step 1 checks the client's proof.
   *
   * @param request the step
   * @returns the server-first message, success with the server-final message, or 0x86
   */
  async authenticateEnhanced(request: EnhancedAuthRequest): Promise<EnhancedAuthAnswer> {
    const message = request.data === undefined ? "" : decoder.decode(request.data);
    if (request.step === 0) {
      // GS2 header: no channel binding ("n" or "y"), no authorization identity.
      const match = /^[ny],,(.*)$/s.exec(message);
      if (match === null) return REFUSED;
      const clientFirstBare = match[1]!;
      const attrs = attributes(clientFirstBare);
      const user = attrs.get("n")?.replaceAll("=2C", ",").replaceAll("=3D", "=");
      const clientNonce = attrs.get("r");
      if (user === undefined || clientNonce === undefined || clientNonce === "") return REFUSED;
      const credentials = this.#users.get(user) ?? await this.#madeUp();
      const nonce = clientNonce + this.#nonce();
      const serverFirst = `r=${nonce},s=${
        encodeBase64(credentials.salt)
      },i=${credentials.iterations}`;
      const state: ScramState = { user, clientFirstBare, serverFirst, nonce };
      return { continue: encoder.encode(serverFirst), state };
    }
    const state = request.state as ScramState | undefined;
    if (request.step !== 1 || state === undefined) return REFUSED;
    const attrs = attributes(message);
    const proof = attrs.get("p");
    const binding = attrs.get("c");
    if (attrs.get("r") !== state.nonce || proof === undefined || binding === undefined) {
      return REFUSED;
    }
    if (binding !== "biws" && binding !== "eSws") return REFUSED; // base64 of "n,," and "y,,"
    const withoutProof = message.slice(0, message.lastIndexOf(",p="));
    const authMessage = encoder.encode(
      `${state.clientFirstBare},${state.serverFirst},${withoutProof}`,
    );
    const known = this.#users.get(state.user);
    const credentials = known ?? await this.#madeUp();
    const signature = await hmac(credentials.storedKey, authMessage);
    let clientProof: Uint8Array;
    try {
      clientProof = decodeBase64(proof);
    } catch {
      return REFUSED;
    }
    if (clientProof.length !== signature.length) return REFUSED;
    const clientKey = clientProof.map((b, i) => b ^ signature[i]!);
    const stored = await sha256(clientKey);
    let diff = 0;
    for (let i = 0; i < stored.length; i++) diff |= stored[i]! ^ credentials.storedKey[i]!;
    if (diff !== 0 || known === undefined) return REFUSED;
    const serverSignature = await hmac(credentials.serverKey, authMessage);
    return { success: true, data: encoder.encode(`v=${encodeBase64(serverSignature)}`) };
  }
}

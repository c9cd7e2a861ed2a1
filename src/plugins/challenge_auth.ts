/**
 * A small MQTT 5.0 enhanced authentication method (§4.12): HMAC-SHA-256 challenge/response over a
 * shared secret per user, `x-hmac-sha256`. An example of the `authenticateEnhanced` hook, and a
 * method a deployment can use where both sides hold the secret; it is not SCRAM (the broker holds
 * the secret itself, not a salted verifier).
 *
 * The exchange: CONNECT carries the method and the user name as Authentication Data; the broker
 * answers AUTH 0x18 with a fresh random 32-byte nonce; the client answers AUTH 0x18 with
 * HMAC-SHA-256(secret, nonce); the broker accepts (CONNACK 0x00) or refuses with 0x86 bad user
 * name or password. A re-authentication (AUTH 0x19) runs the same exchange. A CONNECT that carries
 * a User Name must name the same user (topic ACLs go by the User Name).
 *
 * The secrets come from the `secrets` option or a secrets file (`secretsFile`, the
 * `auth_challenge` plugin's `secrets_file` in YAML): one `user:secret` line per user, split at the
 * first `:`, blank lines and `#` comments ignored, read in `init` and again on `reload` (SIGHUP).
 *
 * @module
 */

import { UsersFile } from "./_users_file.ts";
import type {
  BrokerPlugin,
  EnhancedAuthAnswer,
  EnhancedAuthRequest,
  Logger,
  PluginContext,
} from "./types.ts";

/** Options for {@linkcode ChallengeAuthPlugin}. */
export interface ChallengeAuthPluginOptions {
  /**
   * The Authentication Method name.
   *
   * @default {"x-hmac-sha256"}
   */
  method?: string;
  /** The shared secret of each user, by user name. */
  secrets?: Readonly<Record<string, string>>;
  /** A file of `user:secret` lines; its users come before those of `secrets`. */
  secretsFile?: string;
}

const encoder = new TextEncoder();
const BAD_USER_NAME_OR_PASSWORD = 0x86;
const UNKNOWN_USER_KEY = crypto.randomUUID();

/**
 * Computes HMAC-SHA-256(secret, nonce): the client's answer to the broker's challenge.
 *
 * @param secret the user's shared secret
 * @param nonce the broker's challenge
 * @returns the 32-byte answer
 *
 * @example
 * ```ts
 * import { challengeResponse } from "./challenge_auth.ts";
 * import assert from "node:assert/strict";
 * const answer = await challengeResponse("s3cret", new Uint8Array(32));
 * assert.equal(answer.length, 32);
 * ```
 */
export async function challengeResponse(secret: string, nonce: Uint8Array): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, nonce as Uint8Array<ArrayBuffer>));
}

/** Compares in time independent of where the bytes differ. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/**
 * HMAC-SHA-256 challenge/response authentication for MQTT 5.0 clients (see the module docs for
 * the exchange). A user it does not know is refused only after the challenge, like a wrong
 * answer, so that the exchange does not tell which user names exist.
 *
 * @example
 * ```ts
 * import { ChallengeAuthPlugin, challengeResponse } from "./challenge_auth.ts";
 * import assert from "node:assert/strict";
 *
 * const plugin = new ChallengeAuthPlugin({ secrets: { alice: "s3cret" } });
 * const client = {
 *   clientId: "c", remoteAddress: "127.0.0.1:1", transport: "tcp" as const,
 *   protocolVersion: 5 as const, anonymous: true,
 * };
 * const base = { method: "x-hmac-sha256", client, reauthenticate: false };
 * const first = await plugin.authenticateEnhanced({
 *   ...base, step: 0, data: new TextEncoder().encode("alice"),
 * });
 * if (!("continue" in first)) throw new Error("expected a challenge");
 * const answer = await challengeResponse("s3cret", first.continue);
 * const last = await plugin.authenticateEnhanced({
 *   ...base, step: 1, data: answer, state: first.state,
 * });
 * assert.deepEqual(last, { success: true });
 * ```
 */
export class ChallengeAuthPlugin implements BrokerPlugin {
  /** The plugin's short id. */
  readonly name = "auth_challenge";
  /** The one method it runs. */
  readonly authenticationMethods: readonly string[];
  readonly #file: UsersFile<string>;

  /**
   * Creates the plugin.
   *
   * @param options the method name and the users' secrets, or the file to read them from
   * @throws {TypeError} when a secret is empty (HMAC-SHA-256 here needs a key of 1 byte or more),
   *   or `secretsFile` is not a non-empty string
   */
  constructor(options: ChallengeAuthPluginOptions) {
    this.authenticationMethods = [options.method ?? "x-hmac-sha256"];
    const given = new Map(Object.entries(options.secrets ?? {}));
    for (const [user, secret] of given) {
      if (typeof secret !== "string" || secret === "") {
        throw new TypeError(`Cannot create ChallengeAuthPlugin: the secret of "${user}" is empty`);
      }
    }
    this.#file = new UsersFile({
      plugin: "auth_challenge",
      option: "secretsFile",
      kind: "secrets file",
      path: options.secretsFile,
      given,
      parse: secretLines,
    });
  }

  /**
   * Reads the secrets file, if one is configured.
   *
   * @param context the plugin's logger
   * @throws {Error} when the file cannot be read
   */
  async init(context: PluginContext): Promise<void> {
    await this.#file.init(context.logger);
  }

  /**
   * Reads the secrets file again (SIGHUP); when it cannot be read, the secrets loaded before stay
   * and the error is logged. Never rejects.
   */
  reload(): Promise<void> {
    return this.#file.reload();
  }

  /** The secrets file, when configured. */
  get secretsFile(): string | undefined {
    return this.#file.path;
  }

  /**
   * One step: step 0 takes the user name and sends a nonce, step 1 checks the answer.
   *
   * @param request the step
   * @returns a challenge, success, or a refusal with 0x86
   */
  async authenticateEnhanced(request: EnhancedAuthRequest): Promise<EnhancedAuthAnswer> {
    if (request.step === 0) {
      const user = request.data === undefined
        ? request.client.username
        : new TextDecoder().decode(request.data);
      const named = request.client.username;
      if (named !== undefined && named !== "" && user !== named) {
        // ACLs go by the CONNECT's User Name: it must be the user who answers the challenge.
        return {
          refuse: BAD_USER_NAME_OR_PASSWORD,
          reasonString: "user name is not the user answering",
        };
      }
      const nonce = crypto.getRandomValues(new Uint8Array(32));
      return { continue: nonce, state: { user, nonce } };
    }
    const { user, nonce = new Uint8Array(32) } = (request.state ?? {}) as {
      user?: string;
      nonce?: Uint8Array;
    };
    const secret = user === undefined ? undefined : this.#file.users.get(user);
    // An unknown user costs the same HMAC as a known one (with a key nobody holds).
    const expected = await challengeResponse(secret ?? UNKNOWN_USER_KEY, nonce);
    if (
      request.step !== 1 || secret === undefined || request.data === undefined ||
      !sameBytes(request.data, expected)
    ) {
      return { refuse: BAD_USER_NAME_OR_PASSWORD, reasonString: "challenge answer refused" };
    }
    return { success: true };
  }
}

/** A secrets file's `user:secret` lines; a malformed line is skipped with a warning. */
function secretLines(text: string, path: string, logger: Logger | undefined): Map<string, string> {
  const out = new Map<string, string>();
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    const colon = line.indexOf(":");
    if (colon <= 0 || colon === line.length - 1) {
      logger?.warning(
        `Secrets file "${path}" line ${i + 1}: expected user:secret, skipped`,
      );
      continue;
    }
    out.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return out;
}

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
 * The credentials come from the `users` option or from a password file (`passwordFile`, the
 * `auth_scram` plugin's `password_file` in YAML) whose lines are `user:SCRAM-SHA-256$…` in the form
 * of RFC 5803 (see `scram_secret.ts`; `amqtt passwd -H scram-sha-256` writes them). A CONNECT that
 * carries a User Name must name the same user as the SCRAM exchange (`n=`): topic ACLs go by the
 * User Name, so a client must not log in as one user and be checked as another.
 *
 * @module
 */

import { decodeBase64, encodeBase64, hmacSha256, scramAttributes, sha256 } from "./_scram_math.ts";
import { saslprep } from "./_saslprep.ts";
import { parsePasswordFile } from "./file_auth.ts";
import { UsersFile } from "./_users_file.ts";
import { identifyHash } from "./password_hash.ts";
import { parseScramSecret, type ScramCredentials, scramCredentials } from "./scram_secret.ts";
import type {
  BrokerPlugin,
  EnhancedAuthAnswer,
  EnhancedAuthRequest,
  Logger,
  PluginContext,
} from "./types.ts";

// Kept importable from here, where they were first.
export { type ScramCredentials, scramCredentials } from "./scram_secret.ts";

/** Options for {@linkcode ScramAuthPlugin}. */
export interface ScramAuthPluginOptions {
  /** Each user's credentials, by user name (see {@linkcode scramCredentials}). */
  users?: Readonly<Record<string, ScramCredentials>>;
  /**
   * A password file with `user:SCRAM-SHA-256$…` lines, read in `init` and again on `reload`
   * (SIGHUP). Its users come before those of `users`. Lines with other hash formats are skipped
   * with a warning: SCRAM cannot use them.
   */
  passwordFile?: string;
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
  readonly #file: UsersFile<ScramCredentials>;
  readonly #nonce: () => string;
  /** Made-up credentials for users it does not know, made when first needed. */
  #unknown: Promise<ScramCredentials> | undefined;
  /** Key of the salts made up for unknown users: the same user always gets the same salt. */
  readonly #saltKey = crypto.getRandomValues(new Uint8Array(32));

  /**
   * Creates the plugin.
   *
   * @param options the users' credentials, or the password file to read them from
   * @throws {TypeError} when `passwordFile` is given but is not a non-empty string
   */
  constructor(options: ScramAuthPluginOptions) {
    this.#file = new UsersFile({
      plugin: "auth_scram",
      option: "passwordFile",
      kind: "password file",
      noun: "SCRAM-SHA-256 user(s)",
      path: options.passwordFile,
      given: new Map(
        Object.entries(options.users ?? {}).map(([user, c]) => [prepared(user) ?? user, c]),
      ),
      parse: scramUsers,
    });
    this.#nonce = options.nonce ??
      (() => encodeBase64(crypto.getRandomValues(new Uint8Array(24))));
  }

  /** The password file, when configured. */
  get passwordFile(): string | undefined {
    return this.#file.path;
  }

  /** The number of users it knows. */
  get userCount(): number {
    return this.#file.users.size;
  }

  /**
   * Reads the password file, if one is configured.
   *
   * @param context the plugin's logger
   * @throws {Error} when the file cannot be read
   */
  async init(context: PluginContext): Promise<void> {
    await this.#file.init(context.logger);
  }

  /**
   * Reads the password file again (the broker calls it on SIGHUP). When it cannot be read, the
   * users loaded before stay and the error is logged. Never rejects.
   */
  reload(): Promise<void> {
    return this.#file.reload();
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
      const attrs = scramAttributes(clientFirstBare);
      // The user name as SASLprep prepares it (RFC 5802 §5.1): one it refuses is refused here.
      const user = prepared(attrs.get("n")?.replaceAll("=2C", ",").replaceAll("=3D", "="));
      const clientNonce = attrs.get("r");
      if (user === undefined || clientNonce === undefined || clientNonce === "") return REFUSED;
      const named = request.client.username;
      if (named !== undefined && named !== "" && prepared(named) !== user) {
        // ACLs go by the CONNECT's User Name: it must be the user SCRAM authenticates.
        return {
          refuse: BAD_USER_NAME_OR_PASSWORD,
          reasonString: "user name is not the SCRAM user",
        };
      }
      // An unknown user gets a salt of its own, stable across attempts (RFC 5802 §9): a salt
      // shared by all unknown users, or a new one each time, would tell them from known ones.
      const credentials = this.#file.users.get(user) ??
        { ...await this.#madeUp(), salt: (await hmacSha256(this.#saltKey, user)).slice(0, 16) };
      const nonce = clientNonce + this.#nonce();
      const serverFirst = `r=${nonce},s=${
        encodeBase64(credentials.salt)
      },i=${credentials.iterations}`;
      const state: ScramState = { user, clientFirstBare, serverFirst, nonce };
      return { continue: encoder.encode(serverFirst), state };
    }
    const state = request.state as ScramState | undefined;
    if (request.step !== 1 || state === undefined) return REFUSED;
    const attrs = scramAttributes(message);
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
    const known = this.#file.users.get(state.user);
    const credentials = known ?? await this.#madeUp();
    const signature = await hmacSha256(credentials.storedKey, authMessage);
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
    const serverSignature = await hmacSha256(credentials.serverKey, authMessage);
    return { success: true, data: encoder.encode(`v=${encodeBase64(serverSignature)}`) };
  }
}

/** A user name prepared with SASLprep; undefined when there is none or SASLprep refuses it. */
function prepared(name: string | undefined): string | undefined {
  if (name === undefined || name === "") return undefined;
  try {
    return saslprep(name);
  } catch {
    return undefined;
  }
}

/**
 * The SCRAM-SHA-256 entries of a password file, by user name as SASLprep prepares it (what a
 * client sends); other hashes are named in one warning.
 */
function scramUsers(
  text: string,
  path: string,
  logger: Logger | undefined,
): Map<string, ScramCredentials> {
  const { users, issues } = parsePasswordFile(text);
  for (const issue of issues) {
    logger?.warning(`Password file "${path}" line ${issue.line}: ${issue.message}`);
  }
  const out = new Map<string, ScramCredentials>();
  const unusable: string[] = [];
  for (const [user, hash] of users) {
    const credentials = parseScramSecret(hash);
    if (typeof credentials === "string") unusable.push(`${user} (${identifyHash(hash)})`);
    else out.set(prepared(user) ?? user, credentials);
  }
  if (unusable.length > 0) {
    logger?.warning(
      `Password file "${path}": SCRAM-SHA-256 cannot use the hashes of ${unusable.join(", ")}; ` +
        "set their passwords with amqtt passwd -H scram-sha-256",
    );
  }
  return out;
}

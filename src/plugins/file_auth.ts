/**
 * aMQTT's `FileAuthPlugin` (short id `auth_file`): users and password hashes from a file.
 *
 * @module
 */

import { identifyHash } from "./password_hash.ts";
import { PasswordVerifier } from "./_verifier.ts";
import { UsersFile } from "./_users_file.ts";
import { parseScramSecret } from "./scram_secret.ts";
import type { BrokerPlugin, ClientInfo, Decision, Logger, PluginContext } from "./types.ts";

/** Options for {@linkcode FileAuthPlugin} (aMQTT's `password_file` / `password-file`). */
export interface FileAuthPluginOptions {
  /** Path of the password file. Without it the plugin abstains on every client. */
  passwordFile?: string;
}

/** A problem found while parsing a password file. */
export interface PasswordFileIssue {
  /** 1-based line number. */
  line: number;
  /** What is wrong, without echoing the hash. */
  message: string;
}

/** The result of {@linkcode parsePasswordFile}. */
export interface ParsedPasswordFile {
  /** Username -> hash, for every well-formed line (the last line wins for a repeated user). */
  users: Map<string, string>;
  /** Lines that were skipped or overridden, with reasons. */
  issues: PasswordFileIssue[];
}

/**
 * Parses password-file text: one `user:hash` per line, split at the first `:`; blank lines and
 * lines starting with `#` are ignored; surrounding white space is trimmed. A line without `:`,
 * with an empty username or hash, with a hash format {@linkcode verifyPassword} does not know, or
 * with a malformed SCRAM-SHA-256 secret, is reported and skipped. Never throws.
 *
 * @param text The file's contents.
 * @returns The users and the issues found.
 *
 * @example
 * ```ts
 * import { parsePasswordFile } from "./file_auth.ts";
 * import assert from "node:assert/strict";
 * const { users, issues } = parsePasswordFile("# users\nalice:$6$salt$...\nbroken line\n");
 * assert.deepEqual([...users.keys()], ["alice"]);
 * assert.equal(issues[0].line, 3);
 * ```
 */
export function parsePasswordFile(text: string): ParsedPasswordFile {
  const users = new Map<string, string>();
  const issues: PasswordFileIssue[] = [];
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "" || line.startsWith("#")) continue;
    const colon = line.indexOf(":");
    if (colon < 0) {
      issues.push({ line: i + 1, message: "no ':' between username and hash" });
      continue;
    }
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (user === "") {
      issues.push({ line: i + 1, message: "empty username" });
      continue;
    }
    if (hash === "") {
      issues.push({ line: i + 1, message: `empty hash for user "${user}"` });
      continue;
    }
    const scheme = identifyHash(hash);
    if (scheme === undefined) {
      issues.push({ line: i + 1, message: `unsupported hash format for user "${user}"` });
      continue;
    }
    const scram = scheme === "scram-sha-256" ? parseScramSecret(hash) : undefined;
    if (typeof scram === "string") {
      issues.push({ line: i + 1, message: `${scram} for user "${user}"` });
      continue;
    }
    if (users.has(user)) {
      issues.push({
        line: i + 1,
        message: `user "${user}" repeated; this line replaces the earlier`,
      });
    }
    users.set(user, hash);
  }
  return { users, issues };
}

// Verified for unknown users when the file has no user whose hash could stand in (see
// authenticate). sha512-crypt, 5000 rounds, of a random password.
const DUMMY_HASH =
  "$6$AmqttDummySalt00$hr0CUNpae7IwNPg9/jpfuToOCoIjxaJVPssjA6T1d1zXXPuHY.kxh3N2YeFLA/uOKjgTSXp/ngSyBxgQ43oyl.";

/**
 * Authenticates users against a password file (see {@linkcode parsePasswordFile} for the format
 * and password_hash.ts for the hash formats: sha512-crypt, sha256-crypt, argon2, bcrypt and
 * Mosquitto's `$7$` and `$6$`).
 *
 * Decisions:
 * - no username (or an empty one): abstain, leaving anonymous clients to other plugins;
 * - unknown user, missing password or wrong password: `false`;
 * - matching password: `true`.
 * - without `passwordFile`: abstain on everyone (a warning is logged at start).
 *
 * The file is read in `init` (a missing or unreadable file stops the broker from starting) and
 * again on {@linkcode reload} (a failed reload keeps the previous users and logs the error).
 * Malformed lines are logged with their line numbers and skipped.
 *
 * Hashing runs on a worker thread, one check at a time (an argon2id check with aMQTT 0.12's
 * parameters takes about 220 ms: on the broker's thread it would stall every client), and at most
 * 256 checks wait; more are not checked: `authenticate` rejects with `AuthUnavailableError`, which
 * the broker answers with "server unavailable" (return code 3) rather than "bad user name or
 * password". An unknown user's password is checked against
 * another user's hash and refused, so that a refusal costs the same time whether or not the user
 * exists. {@linkcode close} stops the worker.
 *
 * @example
 * ```ts
 * import { FileAuthPlugin } from "./file_auth.ts";
 * import assert from "node:assert/strict";
 * const path = await Deno.makeTempFile();
 * // openssl passwd -6 -salt abc hello
 * await Deno.writeTextFile(path,
 *   "alice:$6$abc$34O8oRzThM7onc3iRQAcdWBv2H/sMGJlnsnG6uIkasTEvQkG9apXR/oBhPpqIepkul8wg.bf4wxoel67eJND./\n");
 * const plugin = new FileAuthPlugin({ passwordFile: path });
 * const logger = { debug() {}, info() {}, warning() {}, error() {} };
 * await plugin.init({ logger, publish: () => Promise.resolve() });
 * const client = {
 *   clientId: "c", username: "alice", password: new TextEncoder().encode("hello"),
 *   remoteAddress: "127.0.0.1:1", transport: "tcp" as const, protocolVersion: 4 as const,
 *   anonymous: false,
 * };
 * assert.equal(await plugin.authenticate(client), true);
 * plugin.close();
 * await Deno.remove(path);
 * ```
 */
export class FileAuthPlugin implements BrokerPlugin {
  /** The plugin's short id. */
  readonly name = "auth_file";
  readonly #file: UsersFile<string>;
  #logger: Logger | undefined;
  #verifier: PasswordVerifier | undefined;

  /**
   * Configures the plugin; the file is read later, in {@linkcode init}.
   *
   * @param options The password file path.
   * @throws {TypeError} If `passwordFile` is given but is not a non-empty string.
   */
  constructor(options: FileAuthPluginOptions = {}) {
    this.#file = new UsersFile({
      plugin: "auth_file",
      option: "passwordFile",
      kind: "password file",
      path: options.passwordFile,
      parse: passwordLines,
    });
  }

  /** The password file path, when configured. */
  get passwordFile(): string | undefined {
    return this.#file.path;
  }

  /** The number of users currently loaded. */
  get userCount(): number {
    return this.#file.users.size;
  }

  /**
   * Reads the password file and starts the verification worker (the first logins then do not
   * wait for it to load).
   *
   * @param context The plugin's logger.
   * @throws {Error} If the file cannot be read.
   */
  async init(context: PluginContext): Promise<void> {
    this.#logger = context.logger;
    if (this.passwordFile === undefined) {
      context.logger.warning("No password file configured: auth_file abstains on every client");
      return;
    }
    await this.#file.init(context.logger);
    this.#verifier ??= new PasswordVerifier(this.#logger);
    await this.#verifier.ready();
  }

  /** Stops the verification worker; later checks refuse. */
  close(): void {
    this.#verifier?.close();
  }

  /**
   * Re-reads the password file (the broker calls it on SIGHUP). When the file cannot be read,
   * the previous users stay in effect and the error is logged. Never rejects.
   */
  reload(): Promise<void> {
    return this.#file.reload();
  }

  /**
   * Checks the client's username and password against the file.
   *
   * @param client The connecting client.
   * @returns `undefined` without username or password file, `true` for a match, else `false`.
   * @throws {AuthUnavailableError} (as a rejection) when too many checks are waiting already.
   */
  async authenticate(client: ClientInfo): Promise<Decision> {
    if (this.passwordFile === undefined) return undefined;
    const username = client.username;
    if (username === undefined || username === "") return undefined;
    const hash = this.#file.users.get(username);
    const password = client.password ?? new Uint8Array(0);
    this.#verifier ??= new PasswordVerifier(this.#logger);
    if (hash === undefined || client.password === undefined) {
      // The answer is discarded: this only makes the refusal take a real check's time.
      // A loaded user's hash, so that unknown users cost what known users cost.
      const decoy = this.#file.users.values().next().value ?? DUMMY_HASH;
      await this.#verifier.verify(password, decoy);
      const reason = hash === undefined ? "unknown user" : "no password sent";
      this.#logger?.debug(`Refused "${username}": ${reason}`);
      return false;
    }
    const ok = await this.#verifier.verify(password, hash, this.#logger);
    if (!ok) this.#logger?.debug(`Refused "${username}": wrong password`);
    return ok;
  }
}

/** A password file's users; a malformed line is skipped with a warning. */
function passwordLines(
  text: string,
  path: string,
  logger: Logger | undefined,
): Map<string, string> {
  const { users, issues } = parsePasswordFile(text);
  for (const issue of issues) {
    logger?.warning(`Password file "${path}" line ${issue.line}: ${issue.message}`);
  }
  return users;
}

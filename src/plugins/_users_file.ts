/**
 * A plugin's file of users (a password file, a secrets file): read at start-up and again on
 * SIGHUP. A reload that fails keeps the users loaded before and logs why.
 *
 * @module
 */

import type { Logger } from "./types.ts";

/** What {@linkcode UsersFile} needs to know about its plugin and its file. */
export interface UsersFileOptions<T> {
  /** The plugin's id, for errors: `auth_file`. */
  plugin: string;
  /** The option that names the file, for errors: `passwordFile`. */
  option: string;
  /** What the file is, for the log: `password file`. */
  kind: string;
  /** What one entry is, for the log: `user(s)`. */
  noun?: string;
  /** The option's value as given (checked here). */
  path: unknown;
  /** The users given in code; those of the file are added to them. */
  given?: ReadonlyMap<string, T>;
  /** Reads the file's text into users; `logger` reports the lines it skipped. */
  parse: (text: string, path: string, logger: Logger | undefined) => Map<string, T>;
}

/**
 * The users of a plugin: the ones given in code plus, when a file is configured, the file's.
 *
 * @example
 * ```ts
 * import { UsersFile } from "./_users_file.ts";
 * import assert from "node:assert/strict";
 *
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "alice:s3cret\n");
 * const file = new UsersFile<string>({
 *   plugin: "auth_demo",
 *   option: "secretsFile",
 *   kind: "secrets file",
 *   path,
 *   parse: (text) => new Map(text.trim().split("\n").map((l) => l.split(":") as [string, string])),
 * });
 * await file.init(undefined);
 * assert.equal(file.users.get("alice"), "s3cret");
 * await Deno.remove(path);
 * await file.reload(); // unreadable now: alice stays
 * assert.equal(file.users.size, 1);
 * ```
 */
export class UsersFile<T> {
  /** The file, when one is configured. */
  readonly path: string | undefined;
  readonly #options: UsersFileOptions<T>;
  readonly #given: ReadonlyMap<string, T>;
  #users: ReadonlyMap<string, T>;
  #logger: Logger | undefined;

  /**
   * @param options the plugin, the file and how to read it
   * @throws {TypeError} when the path is given but is not a non-empty string
   */
  constructor(options: UsersFileOptions<T>) {
    const path = options.path;
    if (path !== undefined && (typeof path !== "string" || path === "")) {
      throw new TypeError(
        `Cannot create ${options.plugin}: ${options.option} must be a non-empty string`,
      );
    }
    this.path = path;
    this.#options = options;
    this.#given = options.given ?? new Map();
    this.#users = this.#given;
  }

  /** The users now in effect. */
  get users(): ReadonlyMap<string, T> {
    return this.#users;
  }

  /**
   * Reads the file, if one is configured.
   *
   * @param logger the plugin's logger, also used by later reloads
   * @throws {Error} when the file cannot be read
   */
  async init(logger: Logger | undefined): Promise<void> {
    this.#logger = logger;
    if (this.path !== undefined) this.#users = await this.#load(this.path);
  }

  /** Reads the file again; when it cannot be read, the users loaded before stay. Never rejects. */
  async reload(): Promise<void> {
    if (this.path === undefined) return;
    try {
      this.#users = await this.#load(this.path);
    } catch (error) {
      this.#logger?.error(
        `${(error as Error).message}; keeping the ${this.#users.size} ${this.#noun} loaded before`,
      );
    }
  }

  get #noun(): string {
    return this.#options.noun ?? "user(s)";
  }

  async #load(path: string): Promise<Map<string, T>> {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      throw new Error(
        `Cannot read ${this.#options.kind} "${path}": ${
          error instanceof Error ? error.message : error
        }`,
        { cause: error },
      );
    }
    const users = new Map(this.#given);
    for (const [user, value] of this.#options.parse(text, path, this.#logger)) {
      users.set(user, value);
    }
    this.#logger?.info(`${users.size} ${this.#noun} loaded from "${path}"`);
    return users;
  }
}

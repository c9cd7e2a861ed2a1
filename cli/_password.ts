/**
 * Where the tools' password comes from: `-P` on the command line (visible in `ps`), the first
 * line of a `--pw-file`, or the `AMQTT_PASSWORD` environment variable.
 *
 * @module
 */

import { CliError, usageError } from "./_program.ts";

/** The environment variable the password is read from when no flag gives one. */
export const PASSWORD_ENV = "AMQTT_PASSWORD";

/** The places a password may come from, as the flags gave them. */
export interface PasswordSources {
  /** `-P/--password`. */
  password?: string;
  /** `--pw-file`. */
  pwFile?: string;
  /** The user name, if any: the environment is read only when there is one. */
  username?: string;
  /** Whether the broker URL carries a password already (it wins over the environment). */
  inUrl?: boolean;
}

/**
 * The password: `-P`, else the first line of `--pw-file`, else `$AMQTT_PASSWORD` when a user name
 * is given and the URL has no password.
 *
 * @param sources what the flags and the URL give
 * @returns the password, or undefined for none
 * @throws {CliError} a usage error when both `-P` and `--pw-file` are given; exit code 1 when the
 *   file cannot be read
 */
export async function resolvePassword(sources: PasswordSources): Promise<string | undefined> {
  if (sources.password !== undefined && sources.pwFile !== undefined) {
    throw usageError("Options -P/--password and --pw-file cannot be used together");
  }
  if (sources.password !== undefined) return sources.password;
  if (sources.pwFile !== undefined) return await readPasswordFile(sources.pwFile);
  if (sources.username !== undefined && sources.inUrl !== true) return envPassword();
  return undefined;
}

async function readPasswordFile(path: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "it does not exist"
      : (error as Error).message;
    throw new CliError(`Cannot read --pw-file "${path}": ${reason}`, { cause: error });
  }
  return text.split(/\r?\n/, 1)[0];
}

function envPassword(): string | undefined {
  try {
    return Deno.env.get(PASSWORD_ENV);
  } catch {
    return undefined; // without --allow-env
  }
}

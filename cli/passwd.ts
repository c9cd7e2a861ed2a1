/**
 * `amqtt passwd`: create and edit password files for the broker's `auth_file` plugin, like
 * `mosquitto_passwd` (aMQTT ships no such tool).
 *
 * Entries are `user:hash` lines with a sha512-crypt hash (`$6$rounds=5000$…`), which this broker,
 * aMQTT 0.11 (passlib) and aMQTT 0.12 (`crypt`) all read. `-H scram-sha-256` writes a
 * `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` secret instead (RFC 5803, as
 * PostgreSQL and Dovecot store it), which serves both the `auth_scram` plugin (MQTT 5.0 enhanced
 * authentication) and `auth_file` (a password in CONNECT); `-H argon2id` and `-H pbkdf2-sha512`
 * write what aMQTT 0.12 and Mosquitto write. Other lines, comments and blank lines are kept as
 * they are. The file is replaced atomically (a temporary file renamed over it), keeps
 * its permissions, and is created with mode 0600.
 *
 * ```sh
 * amqtt passwd -c passwd alice          # create the file; prompts for the password twice
 * amqtt passwd -b passwd bob s3cret     # add or change a user, password on the command line
 * amqtt passwd -H scram-sha-256 -b passwd carol pw # a SCRAM-SHA-256 secret (auth_scram)
 * echo s3cret | amqtt passwd passwd bob # not a terminal: the password is the first stdin line
 * amqtt passwd -D passwd bob            # delete a user
 * ```
 *
 * Exit code 0 done, 1 when the file cannot be read or written, the user to delete is missing or
 * the passwords differ, 2 for wrong or conflicting flags.
 *
 * @example
 * ```ts
 * import { runPasswd } from "./passwd.ts";
 * import assert from "node:assert/strict";
 *
 * const file = await Deno.makeTempFile();
 * assert.equal(await runPasswd(["-c", "-b", file, "alice", "s3cret"]), 0);
 * assert.match(await Deno.readTextFile(file), /^alice:\$6\$rounds=5000\$/);
 * await Deno.remove(file);
 * ```
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { Option } from "commander";
import { hashPassword, type HashScheme, VERSION } from "./_deps.ts";
import { CliError, type CommandOptions, newProgram, runCommand, usageError } from "./_program.ts";

export type { CommandOptions } from "./_program.ts";

/** The hash formats `-H` writes; the first is the default. */
const HASH_SCHEMES: readonly HashScheme[] = [
  "sha512-crypt",
  "scram-sha-256",
  "argon2id",
  "pbkdf2-sha512",
];

interface PasswdFlags {
  hash?: HashScheme;
  batch?: boolean;
  delete?: boolean;
  create?: boolean;
}

/** Mode of a password file the tool creates: hashes are secrets too. */
const NEW_FILE_MODE = 0o600;
const encoder = new TextEncoder();

/**
 * Runs `amqtt passwd` with `args` (the arguments after `passwd`).
 *
 * @param args the command-line arguments: flags, FILE, USER and, with `-b`, PASSWORD
 * @param options the program name for usage lines and messages (default `amqtt passwd`)
 * @returns the exit code: 0 done, 1 failed, 2 wrong flags
 *
 * @example
 * ```ts
 * import { runPasswd } from "./passwd.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(await runPasswd(["-D", "-c", "passwd", "alice"]), 2); // -c and -D conflict
 * ```
 */
export async function runPasswd(args: string[], options: CommandOptions = {}): Promise<number> {
  const program = newProgram(options.name ?? "amqtt passwd", VERSION)
    .description(
      "Add, change or delete a user in a password file (user:hash lines, sha512-crypt by default).\n" +
        "Without -b the password is asked twice on a terminal, or read as the first line of stdin.",
    )
    .argument("<file>", "the password file")
    .argument("<user>", "the user name")
    .argument("[password]", "the password, with -b only")
    .addOption(
      new Option("-b, --batch", "take the password from the command line").conflicts("delete"),
    )
    .addOption(new Option("-D, --delete", "delete the user").conflicts("create"))
    .option("-c, --create", "create the file, or overwrite it if it exists")
    .addOption(
      new Option(
        "-H, --hash <scheme>",
        "hash format: scram-sha-256 also serves MQTT 5.0 SCRAM logins (auth_scram)",
      ).choices(HASH_SCHEMES).default(HASH_SCHEMES[0]).conflicts("delete"),
    );
  return await runCommand<PasswdFlags>(program, args, passwd);
}

async function passwd(flags: PasswdFlags, operands: string[]): Promise<number> {
  const [file, user, password] = operands as [string, string, string | undefined];
  checkUser(user);
  if (flags.batch === true && password === undefined) {
    throw usageError("Option -b needs the password after the user name");
  }
  if (flags.batch !== true && password !== undefined) {
    throw usageError("A password on the command line needs -b");
  }

  if (flags.delete === true) {
    const { text, mode, target } = await readPasswordFile(file);
    const edit = editUser(text, user, undefined);
    if (edit.matches === 0) throw new CliError(`User "${user}" is not in ${file}`);
    await writeAtomically(target, edit.text, mode);
    return 0;
  }

  // Read the file first: a missing file should fail before anyone types a password.
  const existing = flags.create === true ? undefined : await readPasswordFile(file);
  const secret = password ?? await readPassword();
  if (secret === "") throw new CliError("Cannot set an empty password");
  let hash: string;
  try {
    hash = await hashPassword(secret, { scheme: flags.hash });
  } catch (error) {
    throw new CliError(`Cannot hash the password: ${(error as Error).message}`, { cause: error });
  }
  if (existing === undefined) {
    const target = await resolveTarget(file);
    await writeAtomically(target, `${user}:${hash}\n`, await modeOf(target));
  } else {
    const edit = editUser(existing.text, user, `${user}:${hash}`);
    await writeAtomically(existing.target, edit.text, existing.mode);
  }
  return 0;
}

/** The broker splits at the first `:` and trims; `#` starts a comment line. */
function checkUser(user: string): void {
  if (user === "") throw usageError("The user name is empty");
  if (user.includes(":")) throw usageError(`The user name "${user}" contains ":"`);
  if (user.startsWith("#")) throw usageError(`The user name "${user}" starts with "#"`);
  if (user.trim() !== user) {
    throw usageError(`The user name "${user}" starts or ends with white space`);
  }
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(user)) {
    throw usageError("The user name contains a control character");
  }
  if (encoder.encode(user).length > 65535) {
    throw usageError("The user name is longer than 65535 bytes (the MQTT limit)");
  }
}

/**
 * Replaces the user's line with `entry` (or deletes it when `entry` is undefined), keeping every
 * other line byte for byte; appends `entry` when the user has no line. A user listed twice keeps
 * one line: the broker would use the last, which is confusing to leave behind.
 */
function editUser(
  text: string,
  user: string,
  entry: string | undefined,
): { text: string; matches: number } {
  const eol = text.includes("\r\n") ? "\r\n" : "\n";
  const lines = text === "" ? [] : text.split(/(?<=\n)/);
  const out: string[] = [];
  let matches = 0;
  for (const line of lines) {
    const content = line.trim();
    const colon = content.indexOf(":");
    const isUser = !content.startsWith("#") && colon > 0 && content.slice(0, colon) === user;
    if (!isUser) {
      out.push(line);
      continue;
    }
    matches++;
    if (entry !== undefined && matches === 1) out.push(entry + (line.endsWith("\n") ? eol : ""));
  }
  if (entry !== undefined && matches === 0) {
    if (out.length > 0 && !out[out.length - 1].endsWith("\n")) out.push(eol);
    out.push(entry + eol);
  }
  return { text: out.join(""), matches };
}

interface PasswordFile {
  text: string;
  /** Permission bits to keep, when the system has them. */
  mode: number | undefined;
  /** The file to replace: the target of a symbolic link, so that the link stays. */
  target: string;
}

async function readPasswordFile(file: string): Promise<PasswordFile> {
  try {
    const target = await Deno.realPath(file);
    const text = await Deno.readTextFile(target);
    return { text, mode: await modeOf(target), target };
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "it does not exist (use -c to create it)"
      : (error as Error).message;
    throw new CliError(`Cannot read the password file "${file}": ${reason}`, { cause: error });
  }
}

async function resolveTarget(file: string): Promise<string> {
  try {
    return await Deno.realPath(file);
  } catch {
    return file; // does not exist yet
  }
}

async function modeOf(path: string): Promise<number | undefined> {
  try {
    const mode = (await Deno.stat(path)).mode;
    return mode === null ? undefined : mode & 0o7777;
  } catch {
    return undefined;
  }
}

/** Writes a temporary file beside `path`, flushes it and renames it over `path`. */
async function writeAtomically(
  path: string,
  text: string,
  mode: number | undefined,
): Promise<void> {
  const random = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
  const temp = join(dirname(path), `.${basename(path)}.${random}.tmp`);
  try {
    const file = await Deno.open(temp, {
      write: true,
      createNew: true,
      mode: mode ?? NEW_FILE_MODE,
    });
    try {
      let bytes = encoder.encode(text);
      while (bytes.length > 0) bytes = bytes.subarray(await file.write(bytes));
      // The umask may have narrowed the mode at creation: set exactly the one to keep.
      if (Deno.build.os !== "windows") await Deno.chmod(temp, mode ?? NEW_FILE_MODE);
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw new CliError(`Cannot write the password file "${path}": ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** The password: typed twice on a terminal, else the first line of stdin. */
async function readPassword(): Promise<string> {
  if (!Deno.stdin.isTerminal()) {
    const line = await readFirstLine(Deno.stdin.readable);
    if (line === undefined) throw new CliError("No password on stdin");
    return line;
  }
  const first = await readHidden("Password: ");
  const second = await readHidden("Reenter password: ");
  if (first !== second) throw new CliError("The passwords do not match");
  return first;
}

async function readFirstLine(stream: ReadableStream<Uint8Array>): Promise<string | undefined> {
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  let seen = false;
  for await (const chunk of stream) {
    seen = true;
    const nl = chunk.indexOf(10);
    if (nl >= 0) {
      chunks.push(chunk.slice(0, nl));
      break; // leaves the rest unread; the stream is cancelled
    }
    chunks.push(chunk.slice());
  }
  if (!seen) return undefined;
  return new TextDecoder().decode(await new Blob(chunks).bytes()).replace(/\r$/, "");
}

/** Reads a line from the terminal without echo. Ctrl-C or Ctrl-D on an empty line cancel. */
async function readHidden(prompt: string): Promise<string> {
  Deno.stderr.writeSync(encoder.encode(prompt));
  const bytes: number[] = [];
  const buffer = new Uint8Array(64);
  Deno.stdin.setRaw(true);
  try {
    for (;;) {
      const n = await Deno.stdin.read(buffer);
      if (n === null) throw new CliError("Cancelled");
      for (const b of buffer.subarray(0, n)) {
        if (b === 13 || b === 10) return new TextDecoder().decode(new Uint8Array(bytes));
        if (b === 3 || (b === 4 && bytes.length === 0)) throw new CliError("Cancelled");
        if (b === 127 || b === 8) {
          // Remove one UTF-8 character: its continuation bytes, then its lead byte.
          while (bytes.length > 0 && (bytes[bytes.length - 1] & 0xc0) === 0x80) bytes.pop();
          bytes.pop();
        } else if (b >= 32 || b === 9) {
          bytes.push(b);
        }
      }
    }
  } finally {
    Deno.stdin.setRaw(false);
    Deno.stderr.writeSync(encoder.encode("\n"));
  }
}

if (import.meta.main) Deno.exit(await runPasswd(Deno.args));

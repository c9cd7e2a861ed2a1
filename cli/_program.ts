/**
 * What every tool shares: running a `commander` program, turning every failure into one line on
 * stderr and an exit code, and stop signals.
 *
 * Exit codes: 0 success (and `--help`, `--version`), 1 a failure at run time (unreachable broker,
 * refused connection, unreadable file, bad configuration file), 2 wrong or conflicting flags.
 *
 * @module
 */

import { Command, CommanderError, type OptionValues } from "commander";
import { ConfigError } from "./_deps.ts";

/** Exit code of a run-time failure. */
export const EXIT_FAILURE = 1;
/** Exit code of wrong or conflicting flags. */
export const EXIT_USAGE = 2;

/** Options of the tools' entry functions (`runBroker`, `runPub`, `runSub`, `runPasswd`). */
export interface CommandOptions {
  /** The program name shown in usage lines and error messages, e.g. `amqtt broker`. */
  name?: string;
}

/** Options of {@linkcode CliError}. */
export interface CliErrorOptions {
  /** Default {@linkcode EXIT_FAILURE}. */
  exitCode?: number;
  cause?: unknown;
}

/** A failure the tool reports as one line, with the exit code to use. */
export class CliError extends Error {
  /** The process exit code. */
  readonly exitCode: number;

  /**
   * @param message what failed and why, one line
   * @param options exit code and cause
   */
  constructor(message: string, options: CliErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = "CliError";
    this.exitCode = options.exitCode ?? EXIT_FAILURE;
  }
}

/**
 * A usage error (exit code 2).
 *
 * @param message what is wrong with the flags
 * @returns the error to throw
 */
export function usageError(message: string): CliError {
  return new CliError(message, { exitCode: EXIT_USAGE });
}

/** Options of {@linkcode newProgram}. */
export interface NewProgramOptions {
  /**
   * Whether `-h` is help as well as `--help`. `amqtt_pub`/`amqtt_sub` turn it off: there `-h` is
   * the broker host, as in mosquitto_pub/mosquitto_sub. Default true.
   */
  shortHelp?: boolean;
}

/**
 * Creates a program whose help and version go to stdout and whose errors are thrown, not
 * printed, so that {@linkcode runCommand} prints them as one line.
 *
 * @param name the name shown in usage lines and error messages
 * @param version the version `--version` prints
 * @param options whether `-h` is help
 * @returns the program, to add options to
 */
export function newProgram(
  name: string,
  version: string,
  options: NewProgramOptions = {},
): Command {
  return new Command(name)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => writeSync(Deno.stdout, s),
      writeErr: (s) => writeSync(Deno.stderr, s),
      outputError: () => {},
    })
    .version(version, "--version", "show the version and exit")
    .helpOption(
      options.shortHelp === false ? "--help" : "-h, --help",
      "show this help and exit",
    );
}

/**
 * Parses `args` with `program` and runs `action` with the options and operands.
 *
 * @param program the program with its options
 * @param args the command-line arguments, without the program name
 * @param action the tool's work; returns the exit code or throws
 * @returns the exit code; the failure, if any, was printed as one line on stderr
 */
export async function runCommand<T extends OptionValues>(
  program: Command,
  args: string[],
  action: (options: T, operands: string[]) => Promise<number>,
): Promise<number> {
  let code = 0;
  program.action(async () => {
    code = await action(program.opts<T>(), program.args);
  });
  try {
    await program.parseAsync(args, { from: "user" });
    return code;
  } catch (error) {
    return reportError(program.name(), error, program.opts().debug === true);
  }
}

/**
 * Prints a failure as one line on stderr, `<program>: <message>`.
 *
 * @param name the program name
 * @param error what was thrown
 * @param debug print the stack of unexpected errors as well
 * @returns the exit code for it
 */
export function reportError(name: string, error: unknown, debug = false): number {
  if (error instanceof CommanderError) {
    if (error.exitCode === 0) return 0; // --help or --version, already printed
    writeStderr(`${name}: ${commanderMessage(error.message)} (see --help)\n`);
    return EXIT_USAGE;
  }
  if (error instanceof CliError || error instanceof ConfigError) {
    writeStderr(`${name}: ${oneLine(error.message)}\n`);
    return error instanceof CliError ? error.exitCode : EXIT_FAILURE;
  }
  const message = error instanceof Error ? error.message : String(error);
  writeStderr(`${name}: ${oneLine(message)}\n`);
  if (debug && error instanceof Error && error.stack !== undefined) writeStderr(`${error.stack}\n`);
  return EXIT_FAILURE;
}

/** `error: option '-q' argument '3' is invalid.` -> `Option '-q' argument '3' is invalid` */
function commanderMessage(message: string): string {
  const text = oneLine(message).replace(/^error: /, "").replace(/\.$/, "");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function oneLine(text: string): string {
  return text.replace(/\s*\r?\n\s*/g, " ").trim();
}

/**
 * Calls `handler` once on SIGINT or SIGTERM (SIGINT only where SIGTERM cannot be listened to).
 *
 * @param handler called with the signal name
 * @returns a function that removes the listeners
 */
export function onStopSignal(handler: (signal: Deno.Signal) => void): () => void {
  const removers: (() => void)[] = [];
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const listener = () => handler(signal);
    try {
      Deno.addSignalListener(signal, listener);
      removers.push(() => Deno.removeSignalListener(signal, listener));
    } catch {
      // Windows listens to SIGINT and SIGBREAK only.
    }
  }
  return () => {
    for (const remove of removers) remove();
  };
}

const encoder = new TextEncoder();

/**
 * Writes all of `data` to stdout.
 *
 * @param data text (UTF-8) or bytes
 * @returns when written
 */
export async function writeStdout(data: string | Uint8Array): Promise<void> {
  let bytes = typeof data === "string" ? encoder.encode(data) : data;
  while (bytes.length > 0) bytes = bytes.subarray(await Deno.stdout.write(bytes));
}

function writeStderr(text: string): void {
  writeSync(Deno.stderr, text);
}

function writeSync(stream: typeof Deno.stdout | typeof Deno.stderr, text: string): void {
  let bytes = encoder.encode(text);
  while (bytes.length > 0) bytes = bytes.subarray(stream.writeSync(bytes));
}

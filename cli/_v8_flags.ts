/**
 * The V8 flags the `amqtt` broker runs with: `--max-semi-space-size=2` caps V8's young generation
 * at 2 MB a half. Without it the young generation grows to 32 MB a half while thousands of
 * long-lived connections arrive and stays that size for 10–25 s: 9.1 KB of RSS per idle
 * connection against 5.4 KB with the cap, with no cost seen in latency or throughput
 * (bench/RESULTS.md, branch `lattail`).
 *
 * V8 sizes its heap when the process starts: `node:v8`'s `setFlagsFromString` afterwards changes
 * nothing. So a broker started as `deno run -A jsr:@amqtt/cli broker` (or `cli/amqtt.ts`) starts
 * itself again, in the same process (`execve`, same pid, same arguments, same standard streams),
 * with the flags in `DENO_V8_FLAGS`, before it reads its configuration or opens anything. It does
 * so only when that costs nothing to ask for: on Linux, with the `ffi`, `env` and `read`
 * permissions it already has (`-A`; queried, never requested), not in a `deno compile` binary
 * (`deno task compile` passes `--v8-flags` itself), and only when the user chose no V8 flags:
 * `DENO_V8_FLAGS` set to anything (`DENO_V8_FLAGS= amqtt` for V8's defaults) or `--v8-flags` on
 * the command line leave the process as it is. A program that embeds the broker sets its own
 * flags (README).
 *
 * @module
 */

/** The V8 flags of the `amqtt` broker, unless the user chose their own. */
export const BROKER_V8_FLAGS = "--max-semi-space-size=2";

/** The environment variable Deno takes V8 flags from, before those of `--v8-flags`. */
const ENV = "DENO_V8_FLAGS";

/**
 * Starts this program again with {@linkcode BROKER_V8_FLAGS}, replacing the process, when it runs
 * under `deno run` on Linux with the permissions for it and no V8 flags of the user's. Call it
 * first thing in a program's main module, never from a library function: it does not return when
 * it replaces the process.
 *
 * @returns why the process was left as it is (when it was)
 */
export function execWithBrokerV8Flags(): string {
  try {
    const argv = ownCommandLine();
    if (typeof argv === "string") return argv;
    const env = Deno.env.toObject();
    env[ENV] = BROKER_V8_FLAGS;
    return exec(Deno.execPath(), argv, env);
  } catch (error) {
    // A permission narrower than asked (the path of `deno` itself unreadable): V8's defaults.
    return `not started again: ${(error as Error).message}`;
  }
}

/** This process's arguments as it was started, or why it must not be started again. */
function ownCommandLine(): string[] | string {
  if (Deno.build.os !== "linux") return "not Linux";
  if (Deno.build.standalone) return "a compiled binary (its flags are compiled in)";
  const cmdline = "/proc/self/cmdline";
  const granted = (d: Deno.PermissionDescriptor) => {
    try {
      return Deno.permissions.querySync(d).state === "granted";
    } catch {
      return false;
    }
  };
  if (
    !granted({ name: "ffi" }) || !granted({ name: "env" }) ||
    !granted({ name: "read", path: cmdline })
  ) return "no ffi, env or read permission";
  if (Deno.env.get(ENV) !== undefined) return `${ENV} is set`;
  // A program read from standard input or given as text cannot be started again.
  if (!/^(file|https?|jsr|npm):/.test(Deno.mainModule)) return "no main module to start again";
  let argv: string[];
  try {
    argv = Deno.readTextFileSync(cmdline).split("\0");
  } catch {
    return `${cmdline} unreadable`;
  }
  if (argv.at(-1) === "") argv.pop();
  // `deno run [Deno's flags] SCRIPT [Deno.args]`: `--v8-flags` among Deno's flags is the user's
  // choice; among the script's arguments it is not Deno's.
  const denoFlags = argv.slice(0, argv.length - Deno.args.length);
  if (denoFlags.some((a) => a.startsWith("--v8-flags"))) return "--v8-flags given";
  return argv;
}

/** `execve(path, argv, env)`: returns only when it failed, saying why. */
function exec(path: string, argv: string[], env: Record<string, string>): string {
  const encoder = new TextEncoder();
  // The strings must stay reachable until execve has read them: `kept` holds them.
  const kept: Uint8Array[] = [];
  const cString = (s: string) => {
    const bytes = encoder.encode(`${s}\0`);
    kept.push(bytes);
    return bytes;
  };
  const pointers = (strings: string[]) => {
    const array = new BigUint64Array(strings.length + 1);
    strings.forEach((s, i) =>
      array[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(cString(s))))
    );
    return array;
  };
  let lib: Deno.DynamicLibrary<
    { execve: { parameters: ["buffer", "buffer", "buffer"]; result: "i32" } }
  >;
  try {
    lib = Deno.dlopen("libc.so.6", {
      execve: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },
    });
  } catch {
    return "no C library to call execve from";
  }
  try {
    const envp = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    lib.symbols.execve(cString(path), pointers(argv), pointers(envp));
    return "execve failed";
  } finally {
    lib.close();
  }
}

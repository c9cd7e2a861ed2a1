/**
 * Runs the C load generator once and returns the JSON object it prints.
 *
 * @module
 */

/** What one generator run printed: numbers, and `mode` as a string. */
export type LoadgenReport = Record<string, number | string>;

/** Options of {@linkcode runLoadgen}. */
export interface RunLoadgenOptions {
  /** Kill the generator after this long (default 300 s). */
  timeoutMs?: number;
  /** Prefix of the generator's command line, e.g. `["taskset", "-c", "1"]` (`_pinning.ts`). */
  prefix?: string[];
}

/**
 * Runs `loadgen ...args` and parses its one line of JSON.
 *
 * @param loadgen path of the built generator (see build.ts)
 * @param args mode and flags, e.g. `["pubsub", "--port", "1883", "--messages", "100"]`
 * @param options timeout and command prefix
 * @returns the report
 */
export async function runLoadgen(
  loadgen: string,
  args: string[],
  options: RunLoadgenOptions = {},
): Promise<LoadgenReport> {
  const prefix = options.prefix ?? [];
  const child = new Deno.Command(prefix.length > 0 ? prefix[0]! : loadgen, {
    args: prefix.length > 0 ? [...prefix.slice(1), loadgen, ...args] : args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, options.timeoutMs ?? 300_000);
  try {
    const out = await child.output();
    const stdout = new TextDecoder().decode(out.stdout).trim();
    const stderr = new TextDecoder().decode(out.stderr).trim();
    if (!out.success || stdout === "") {
      throw new Error(
        `loadgen ${args[0]} failed (exit ${out.code}${out.signal ? `, ${out.signal}` : ""})` +
          (stderr ? `: ${stderr}` : ""),
      );
    }
    return JSON.parse(stdout.split("\n").at(-1)!) as LoadgenReport;
  } finally {
    clearTimeout(timer);
  }
}

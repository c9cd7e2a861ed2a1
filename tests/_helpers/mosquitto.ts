/**
 * Runs Debian's `mosquitto_pub` / `mosquitto_sub` (package `mosquitto-clients`) from tests, always
 * with a deadline so a hung tool cannot hang the suite.
 *
 * @module
 */

/** The command-line clients the interop tests drive. */
export type MosquittoTool = "mosquitto_pub" | "mosquitto_sub";

/** How a tool run ended. */
export interface ToolResult {
  /** Exit code; with a signal, 128 + its number as the shell reports it. */
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
  /** True when the deadline killed it. */
  timedOut: boolean;
}

/** A running tool. Dispose it to kill it (if still running) and reap it. */
export class ToolProcess implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #result: Promise<ToolResult>;
  #exited = false;
  #timedOut = false;

  private constructor(tool: MosquittoTool, args: string[], timeoutMs: number) {
    try {
      this.#child = new Deno.Command(tool, {
        args,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new Error(
          `Cannot run ${tool}: it is not installed (apt-get install mosquitto-clients)`,
        );
      }
      throw err;
    }
    const timer = setTimeout(() => {
      this.#timedOut = true;
      this.kill("SIGKILL");
    }, timeoutMs);
    this.#result = this.#child.output().then((out) => {
      clearTimeout(timer);
      this.#exited = true;
      const decoder = new TextDecoder();
      return {
        code: out.code,
        signal: out.signal,
        stdout: decoder.decode(out.stdout),
        stderr: decoder.decode(out.stderr),
        timedOut: this.#timedOut,
      };
    });
  }

  /**
   * Starts a tool.
   *
   * @param tool which client
   * @param args its arguments
   * @param timeoutMs killed with SIGKILL after this long (default 8000)
   * @returns the running process
   * @throws {Error} when the tool is not installed
   */
  static spawn(tool: MosquittoTool, args: string[], timeoutMs = 8000): ToolProcess {
    return new ToolProcess(tool, args, timeoutMs);
  }

  /** Whether the process has exited (and its output been collected). */
  get exited(): boolean {
    return this.#exited;
  }

  /** The process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /**
   * Sends a signal, unless the process has exited.
   *
   * @param signal the signal (default SIGTERM)
   */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    if (this.#exited) return;
    try {
      this.#child.kill(signal);
    } catch {
      // It exited between the check and the kill.
    }
  }

  /**
   * Waits for the exit.
   *
   * @returns exit status and output
   */
  result(): Promise<ToolResult> {
    return this.#result;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.kill("SIGKILL");
    await this.#result;
  }
}

/**
 * Runs a tool to completion.
 *
 * @param tool which client
 * @param args its arguments
 * @param timeoutMs killed with SIGKILL after this long (default 8000)
 * @returns exit status and output
 */
export function runTool(
  tool: MosquittoTool,
  args: string[],
  timeoutMs = 8000,
): Promise<ToolResult> {
  return ToolProcess.spawn(tool, args, timeoutMs).result();
}

/**
 * The broker of `memory_broker.ts` in a child process, for memory measurements: a full garbage
 * collection can be forced there, and the test's own allocations do not count.
 *
 * @module
 */

import assert from "node:assert/strict";

/** One measurement: the broker's heap and buffers after full collections, and its counts. */
export interface Measure {
  heapUsed: number;
  /** The heap V8 has committed (used or not). */
  heapTotal: number;
  external: number;
  /** The process's resident set. */
  rss: number;
  /** Collections the broker ran after many connections closed (`_memory_release.ts`). */
  releases: number;
  sessions: number;
  /** Sessions with a connection. */
  connected: number;
  subscriptions: number;
  retained: number;
  refusedTopicLevels: number;
}

/** The broker of `tests/_helpers/memory_broker.ts`, in a child process. */
export class BrokerProcess implements AsyncDisposable {
  port = 0;
  #child: Deno.ChildProcess;
  #lines: ReadableStreamDefaultReader<string>;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #buffer = "";

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#stdin = child.stdin.getWriter();
  }

  /**
   * Starts the broker process.
   *
   * @param config the broker's configuration
   * @param options `memoryStore`: state kept in a `MemoryStore` given to the broker
   * @returns the process, its broker listening on `port`
   */
  static async start(
    config: Record<string, unknown>,
    options: { memoryStore?: boolean } = {},
  ): Promise<BrokerProcess> {
    const script = new URL("./memory_broker.ts", import.meta.url).pathname;
    const args = ["run", "-A", "--v8-flags=--expose-gc", script, JSON.stringify(config)];
    if (options.memoryStore === true) args.push("memory-store");
    const child = new Deno.Command(Deno.execPath(), {
      args,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const process = new BrokerProcess(child);
    process.port = JSON.parse(await process.#line()).port;
    return process;
  }

  /**
   * Measures the broker.
   *
   * @param compact collect with compaction (V8's last-resort collection) rather than plainly
   * @returns the figures
   */
  async measure(compact = false): Promise<Measure> {
    await this.#stdin.write(new TextEncoder().encode(compact ? "measure compact\n" : "measure\n"));
    return JSON.parse(await this.#line());
  }

  async #line(): Promise<string> {
    for (;;) {
      const newline = this.#buffer.indexOf("\n");
      if (newline >= 0) {
        const line = this.#buffer.slice(0, newline);
        this.#buffer = this.#buffer.slice(newline + 1);
        return line;
      }
      const { value, done } = await this.#lines.read();
      if (done) throw new Error("The broker process ended");
      this.#buffer += value;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode("quit\n")).catch(() => {});
    await this.#stdin.close().catch(() => {});
    const status = await this.#child.status;
    await this.#lines.cancel();
    assert.equal(status.code, 0, "the broker process exits cleanly");
  }
}

/**
 * `--rt` of the benchmarks: shuts the machine's other work out of a run, for a like-for-like
 * figure on a busy machine. The program's main thread runs SCHED_FIFO 20 and its other threads
 * (V8's compiler and GC workers, the runtime's) SCHED_FIFO 10, and the generator SCHED_FIFO 20
 * (`chrt`, root); the kernel's RT throttling still leaves other work 5% of each CPU.
 *
 * @module
 */

/**
 * Main thread SCHED_FIFO 20, every other thread of the process SCHED_FIFO 10.
 *
 * @param pid the program's process
 * @throws {Error} when `chrt` fails (not root)
 */
export async function toRealtime(pid: number): Promise<void> {
  for (const entry of Deno.readDirSync(`/proc/${pid}/task`)) {
    const tid = Number(entry.name);
    const args = ["--fifo", "-p", tid === pid ? "20" : "10", String(tid)];
    const r = await new Deno.Command("chrt", { args, stderr: "null" }).output();
    if (!r.success) throw new Error(`chrt ${args.join(" ")} failed (--rt needs root)`);
  }
}

/** The generator's command prefix under `--rt`. */
export const REALTIME_PREFIX: readonly string[] = ["chrt", "--fifo", "20"];

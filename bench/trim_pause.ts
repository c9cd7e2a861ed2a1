/**
 * How long glibc's `malloc_trim(0)` stalls the main thread after a burst's native memory was
 * freed, called as the broker calls it (`src/broker/_malloc_trim.ts`, on the main thread) against
 * the same call made on a thread of Deno's FFI (`nonblocking: true`), while the main thread goes on
 * allocating native buffers as a broker serving traffic does. The heap is built like the one
 * `bench/idle_close.ts --burst 262144` leaves: `--n` connections' worth of a 64 KiB read buffer and
 * a few small native buffers each, one connection in 200 kept, the rest dropped and collected
 * (V8's last-resort collection) before the trim. Each way runs in a fresh child process, `--reps`
 * times, interleaved. Reported per run: the trim's own time, the longest gap between the main
 * thread's ticks (1 ms timers, each allocating two 400-byte buffers) from the trim's start to its
 * end, and the RSS before and after.
 *
 * Usage: deno run -A bench/trim_pause.ts [--n 10000] [--reps 3]
 *
 * @module
 */

import { exposedGc } from "../src/broker/_memory_release.ts";

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1]! : fallback;
}

const n = Number(flag("--n", "10000"));
const child = Deno.args.indexOf("--child");
if (child >= 0) {
  console.log(JSON.stringify(await measure(Deno.args[child + 1]!, n)));
} else {
  const reps = Number(flag("--reps", "3"));
  console.log(`${n} connections' worth freed; load average ${Deno.loadavg().join(" ")}`);
  console.log(
    "| way | trim ms | longest main-thread gap ms | RSS before → after MB | allocation ms |",
  );
  console.log("| --- | --- | --- | --- | --- |");
  for (let rep = 0; rep < reps; rep++) {
    for (const way of ["main", "thread", "mmap"]) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", import.meta.filename!, "--child", way, "--n", String(n)],
        stdout: "piped",
        stderr: "inherit",
      }).output();
      const r = JSON.parse(new TextDecoder().decode(out.stdout));
      const mb = (x: number) => (x / 2 ** 20).toFixed(0);
      console.log(
        `| ${way} | ${r.trimMs.toFixed(0)} | ${r.gapMs.toFixed(0)} | ${mb(r.before)} → ${
          mb(r.after)
        } | ${r.allocMs.toFixed(0)} |`,
      );
    }
  }
}

async function measure(
  way: string,
  count: number,
): Promise<{ trimMs: number; gapMs: number; before: number; after: number; allocMs: number }> {
  const thread = way === "thread";
  if (way === "mmap") {
    // M_MMAP_THRESHOLD (-3): 64 KiB buffers mmapped, given back at free.
    const libc = Deno.dlopen("libc.so.6", {
      mallopt: { parameters: ["i32", "i32"], result: "i32" },
    });
    libc.symbols.mallopt(-3, 60 * 1024);
    libc.close();
  }
  const t0 = performance.now();
  let held: Uint8Array[][] | undefined = [];
  for (let i = 0; i < count; i++) {
    held.push([new Uint8Array(65536), new Uint8Array(400), new Uint8Array(2048)]);
  }
  const allocMs = performance.now() - t0;
  const kept = held.filter((_, i) => i % 200 === 0);
  held = undefined;
  exposedGc()!();
  await new Promise((r) => setTimeout(r, 100));
  const before = Deno.memoryUsage().rss;
  const lib = Deno.dlopen("libc.so.6", {
    malloc_trim: { parameters: ["usize"], result: "i32", nonblocking: thread },
  });
  // The main thread's ticks: each allocates native memory, as a broker's reads and writes do.
  let last = performance.now();
  let gap = 0;
  let ticking = true;
  const sink: Uint8Array[] = [];
  const tick = () => {
    const now = performance.now();
    if (now - last > gap) gap = now - last;
    last = now;
    sink.push(new Uint8Array(400), new Uint8Array(400));
    if (sink.length > 1000) sink.length = 0;
    if (ticking) setTimeout(tick, 1);
  };
  await new Promise((r) => setTimeout(r, 20));
  setTimeout(tick, 1);
  await new Promise((r) => setTimeout(r, 20));
  gap = 0;
  last = performance.now();
  const started = performance.now();
  const result = lib.symbols.malloc_trim(0n);
  if (result instanceof Promise) await result;
  const trimMs = performance.now() - started;
  // The gap that ends with the trim (a blocked thread ticks again only after it).
  await new Promise((r) => setTimeout(r, 20));
  ticking = false;
  lib.close();
  const after = Deno.memoryUsage().rss;
  if (kept.length === 0) throw new Error("nothing kept");
  return { trimMs, gapMs: gap, before, after, allocMs };
}

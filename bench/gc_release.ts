/**
 * What each of the full collections a Deno program can ask for costs, and what it gives back, on a
 * heap like the one 19,000 closed idle connections leave: 19,000 groups of 40 small objects (about
 * 255 MB), one group in 20 still referenced (the survivors spread over the heap's pages, as the
 * broker's own state and the connections still open are), the rest dropped at once. Each way runs
 * in a fresh child process, `--reps` times, interleaved:
 *
 * - `context`: the `gc` a new `node:vm` context gets after `setFlagsFromString("--expose-gc")` at
 *   run time, what the broker uses when started without V8 flags (`_memory_release.ts`);
 * - `plain`: `globalThis.gc()` of a program started with `--v8-flags=--expose-gc` (V8's own);
 * - `last-resort`: the same with `{ type: "major", flavor: "last-resort" }` (what the broker asks
 *   for since branch `idle4`).
 *
 * Reported per run: the pause of the call, the heap used and committed and the RSS just after and
 * 3 s later.
 *
 * Usage: deno run -A bench/gc_release.ts [--reps 2] [--groups 19000]
 *
 * @module
 */

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1]! : fallback;
}

const child = Deno.args.indexOf("--child");
if (child >= 0) {
  await measure(Deno.args[child + 1]!, Number(flag("--groups", "19000")));
} else {
  const reps = Number(flag("--reps", "2"));
  const groups = flag("--groups", "19000");
  console.log(
    "| way | pause ms | heap used / committed MB after | RSS MB after | 3 s later: committed / RSS MB |",
  );
  console.log("| --- | --- | --- | --- | --- |");
  for (let rep = 0; rep < reps; rep++) {
    for (const way of ["context", "plain", "last-resort"]) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          ...(way === "context" ? [] : ["--v8-flags=--expose-gc"]),
          new URL(import.meta.url).pathname,
          "--child",
          way,
          "--groups",
          groups,
        ],
        stdout: "piped",
        stderr: "inherit",
      }).output();
      console.log(new TextDecoder().decode(out.stdout).trim());
    }
  }
}

async function measure(way: string, groups: number): Promise<void> {
  let gc: (options?: unknown) => void;
  if (way === "context") {
    const { setFlagsFromString } = await import("node:v8");
    const { runInNewContext } = await import("node:vm");
    setFlagsFromString("--expose-gc");
    gc = runInNewContext("gc");
  } else {
    gc = (globalThis as { gc?: (options?: unknown) => void }).gc!;
  }
  let garbage: unknown[] | undefined = [];
  const kept: unknown[] = [];
  for (let i = 0; i < groups; i++) {
    const group: unknown[] = [];
    for (let k = 0; k < 40; k++) group.push({ a: k, b: [k], c: "x" + k, d: new Uint8Array(0) });
    garbage.push(group);
    if (i % 20 === 0) kept.push(group);
  }
  await new Promise((r) => setTimeout(r, 500));
  garbage = undefined;
  const t0 = performance.now();
  if (way === "last-resort") gc({ type: "major", flavor: "last-resort" });
  else gc();
  const pause = performance.now() - t0;
  const mb = (x: number) => (x / 2 ** 20).toFixed(0);
  const u = Deno.memoryUsage();
  await new Promise((r) => setTimeout(r, 3000));
  const later = Deno.memoryUsage();
  console.log(
    `| ${way} | ${pause.toFixed(0)} | ${mb(u.heapUsed)} / ${mb(u.heapTotal)} | ${mb(u.rss)} | ` +
      `${mb(later.heapTotal)} / ${mb(later.rss)} |`,
  );
  if (kept.length === 0) throw new Error("unreachable");
}

/**
 * Builds the C load generator (loadgen.c), the baseline forwarder (forwarder.c), the system
 * call cost probe (syscall_cost.c) and the idle-connection holder (holder.c) with the
 * machine's C compiler (`cc`, else `gcc`) into a temporary directory named after a hash of the
 * sources, so an unchanged build is reused and nothing lands in the work tree.
 *
 * @module
 */

/** Paths of the built programs. */
export interface LoadgenBinaries {
  /** The load generator: `loadgen pubsub|connect|idle --port P …`, one JSON line on stdout. */
  loadgen: string;
  /** The baseline forwarder: prints `port N` once it listens on 127.0.0.1. */
  forwarder: string;
  /** The system call cost probe: one JSON line `{"null_ns":N,"pipe_ns":N}`. */
  syscallCost: string;
  /** Holds idle connections on command (`holder.c`, for `bench/idle_scale.ts`). */
  holder: string;
}

const SOURCES = ["mqtt.h", "loadgen.c", "forwarder.c", "syscall_cost.c", "holder.c"];

async function sourceHash(dir: URL): Promise<string> {
  const parts = await Promise.all(SOURCES.map((f) => Deno.readFile(new URL(f, dir))));
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return [...digest.slice(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function compile(compiler: string, source: string, out: string): Promise<void> {
  const r = await new Deno.Command(compiler, {
    args: ["-O2", "-Wall", "-o", out, source],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) {
    throw new Error(`Cannot compile ${source}: ${new TextDecoder().decode(r.stderr).trim()}`);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function findCompiler(): Promise<string> {
  for (const cc of ["cc", "gcc"]) {
    try {
      const r = await new Deno.Command(cc, { args: ["--version"], stdout: "null", stderr: "null" })
        .output();
      if (r.success) return cc;
    } catch { /* not installed */ }
  }
  throw new Error("No C compiler: install one (Debian: apt-get install gcc)");
}

/**
 * Compiles the generator, the forwarder and the probe unless this version of the sources is built
 * already.
 *
 * @returns the paths of the programs
 */
export async function buildLoadgen(): Promise<LoadgenBinaries> {
  const src = new URL("./", import.meta.url);
  const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
  const dir = `${tmp}/amqtt-loadgen-${await sourceHash(src)}`;
  const bins = {
    loadgen: `${dir}/loadgen`,
    forwarder: `${dir}/forwarder`,
    syscallCost: `${dir}/syscall_cost`,
    holder: `${dir}/holder`,
  };
  if (
    await exists(bins.loadgen) && await exists(bins.forwarder) && await exists(bins.syscallCost) &&
    await exists(bins.holder)
  ) {
    return bins;
  }
  const compiler = await findCompiler();
  // Build into a fresh directory, then rename: concurrent builds never see half-written files.
  const work = await Deno.makeTempDir({ dir: tmp, prefix: "amqtt-loadgen-build-" });
  try {
    await compile(compiler, new URL("loadgen.c", src).pathname, `${work}/loadgen`);
    await compile(compiler, new URL("forwarder.c", src).pathname, `${work}/forwarder`);
    await compile(compiler, new URL("syscall_cost.c", src).pathname, `${work}/syscall_cost`);
    await compile(compiler, new URL("holder.c", src).pathname, `${work}/holder`);
    await Deno.rename(work, dir).catch(async (err) => {
      if (!(await exists(bins.loadgen))) throw err; // someone else's build won the race
    });
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
  return bins;
}

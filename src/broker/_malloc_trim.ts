/**
 * Giving the C allocator's free memory back to the system. V8's heap is not all a Deno process
 * keeps per connection: the runtime's own state of each socket (its resource, the tokio socket,
 * the pending read's op) lives in glibc's malloc arenas, and glibc gives a freed chunk back only
 * when it lies at the top of the main arena. After 8,000 idle connections closed and V8's heap
 * was collected, a broker kept 25 MB more than before them, nearly all of it freed chunks that
 * glibc held (bench/RESULTS.md, branch `idle5`). `malloc_trim(0)` hands every free page of every
 * arena back (`madvise(MADV_DONTNEED)`); Deno reaches it through its foreign function interface.
 *
 * Only where that costs nothing to ask for: on Linux, and when the program already has the `ffi`
 * permission (`-A` or `--allow-ffi`; it is queried, never requested, so nobody is prompted).
 * Elsewhere, or on a C library without `malloc_trim` (musl), {@linkcode mallocTrim} is
 * `undefined` and the broker does without.
 *
 * @module
 */

let trim: (() => number) | null | undefined = undefined;

/**
 * glibc's `malloc_trim(0)`, when this process may call it.
 *
 * @returns a function that trims every arena and says whether memory was given back (1) or not
 *   (0), or `undefined` when the platform or the permissions do not allow it
 */
export function mallocTrim(): (() => number) | undefined {
  if (trim === undefined) trim = allowed() ? trimOnce : null;
  return trim ?? undefined;
}

function allowed(): boolean {
  try {
    return Deno.build.os === "linux" &&
      Deno.permissions.querySync({ name: "ffi" }).state === "granted";
  } catch {
    return false;
  }
}

/**
 * Opens the C library, trims and closes it again: a trim runs once per mass close, and a library
 * left open is a resource the program (and a test's sanitizer) would have to account for.
 */
function trimOnce(): number {
  // A caller may keep this function after a failed open: the library is not looked for again.
  if (trim === null) return 0;
  let lib: Deno.DynamicLibrary<{ malloc_trim: { parameters: ["usize"]; result: "i32" } }>;
  try {
    lib = Deno.dlopen("libc.so.6", { malloc_trim: { parameters: ["usize"], result: "i32" } });
  } catch {
    // No glibc (musl has no malloc_trim), or no FFI in this runtime: not asked again.
    trim = null;
    return 0;
  }
  try {
    return lib.symbols.malloc_trim(0n);
  } finally {
    lib.close();
  }
}

/**
 * A temporary directory for one test, removed with all it holds when disposed: `await using dir =
 * await tempDir();` in place of `makeTempDir` and a `remove` in `finally`.
 *
 * @module
 */

/** A temporary directory; dispose it to remove it and what it holds. */
export interface TempDir extends AsyncDisposable {
  /** Its absolute path. */
  readonly path: string;
}

/**
 * Makes a temporary directory, removed (recursively) on dispose.
 *
 * @param prefix the start of its name, which tells whose it is when one is left behind
 * @returns the directory
 */
export async function tempDir(prefix = "amqtt_test_"): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true }).catch((error) => {
        // Removed by the test itself is fine; anything else is reported.
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
    },
  };
}

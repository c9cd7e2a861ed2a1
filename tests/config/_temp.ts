/**
 * Temporary files for configuration tests, removed when the test body ends.
 *
 * @module
 */

/** Creates temporary files and directories that {@linkcode withTemp} removes afterwards. */
export interface TempFiles {
  /** A new temporary file holding `content`. */
  file(content?: string, suffix?: string): Promise<string>;
  /** A new empty temporary directory. */
  dir(): Promise<string>;
}

/** Runs `body` with a {@linkcode TempFiles} and removes everything it created. */
export async function withTemp<T>(body: (temp: TempFiles) => Promise<T> | T): Promise<T> {
  const created: string[] = [];
  const temp: TempFiles = {
    async file(content = "", suffix = ".tmp") {
      const path = await Deno.makeTempFile({ prefix: "amqtt_config_", suffix });
      created.push(path);
      await Deno.writeTextFile(path, content);
      return path;
    },
    async dir() {
      const path = await Deno.makeTempDir({ prefix: "amqtt_config_" });
      created.push(path);
      return path;
    },
  };
  try {
    return await body(temp);
  } finally {
    for (const path of created.reverse()) {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    }
  }
}

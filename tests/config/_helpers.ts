/**
 * Helpers for the configuration tests: temporary files removed when the test body ends, and an
 * assertion on the `ConfigError` a bad configuration throws.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ConfigError } from "../../src/config/mod.ts";

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

/**
 * Asserts that `fn` throws a ConfigError with this path (and line and message when given).
 *
 * @param fn the call that must fail
 * @param expected the key path, and the line and message (exact text or a pattern) if given
 * @returns the error, for further checks
 */
export function assertConfigError(
  fn: () => unknown,
  expected: { path: string; line?: number; message?: string | RegExp },
): ConfigError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${caught}`);
  assert.equal(caught.name, "ConfigError");
  assert.equal(caught.path, expected.path, caught.message);
  if ("line" in expected) assert.equal(caught.line, expected.line, caught.message);
  if (typeof expected.message === "string") assert.equal(caught.message, expected.message);
  else if (expected.message) assert.match(caught.message, expected.message);
  return caught;
}

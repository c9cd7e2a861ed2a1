/**
 * The one error class thrown by configuration loading and validation.
 *
 * @module
 */

/** Options for {@linkcode ConfigError}. */
export interface ConfigErrorOptions {
  /** Dotted key path of the offending value, e.g. `listeners.ws-1.bind`; `""` for the whole file. */
  path?: string;
  /** 1-based line in the YAML source, when the configuration came from YAML. */
  line?: number;
  /** Where the configuration came from (a file path), for the message. */
  source?: string;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * A configuration value is missing, unknown, of the wrong type or out of range, a file it names
 * does not exist, or the YAML text cannot be parsed.
 *
 * The message reads `path: reason (line N)`, for example
 * `listeners.default.bind: port 70000 is out of range 0-65535 (line 4)`; with a source file it
 * reads `(broker.yaml line 4)`.
 *
 * @example Catching a configuration error
 * ```ts
 * import { ConfigError, resolveBrokerConfig } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * try {
 *   resolveBrokerConfig({ listeners: { default: { bind: ":70000" } } });
 *   assert.fail("expected a ConfigError");
 * } catch (error) {
 *   assert.ok(error instanceof ConfigError);
 *   assert.equal(error.path, "listeners.default.bind");
 * }
 * ```
 */
export class ConfigError extends Error {
  /** Dotted key path of the offending value; `""` when the error concerns the whole input. */
  readonly path: string;
  /** 1-based YAML line of the offending key, or `undefined` when not known. */
  readonly line: number | undefined;
  /** The file or other source the configuration came from, when known. */
  readonly source: string | undefined;
  /** The reason alone, without path and line. */
  readonly reason: string;

  /**
   * Creates a configuration error.
   *
   * @param reason What is wrong, in sentence case without a trailing period.
   * @param options Key path, line, source and cause.
   */
  constructor(reason: string, options: ConfigErrorOptions = {}) {
    const path = options.path ?? "";
    super(formatMessage(reason, path, options.line, options.source), {
      cause: options.cause,
    });
    this.name = "ConfigError";
    this.path = path;
    this.line = options.line;
    this.source = options.source;
    this.reason = reason;
  }
}

function formatMessage(
  reason: string,
  path: string,
  line: number | undefined,
  source: string | undefined,
): string {
  let message = path === "" ? reason : `${path}: ${reason}`;
  if (line !== undefined) {
    message += source === undefined ? ` (line ${line})` : ` (${source} line ${line})`;
  } else if (source !== undefined) {
    message += ` (${source})`;
  }
  return message;
}

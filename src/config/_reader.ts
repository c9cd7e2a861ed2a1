/**
 * Strict, path-aware readers for plain configuration values (from YAML or from code).
 *
 * @module
 */

import { ConfigError } from "./config_error.ts";
import type { LineLookup, PathSegment } from "./_yaml.ts";

/** Key path: raw map keys as written, and sequence indexes. */
export type Path = readonly PathSegment[];

/** Where the input came from, and what was noticed while reading it. */
export class ReadContext {
  readonly source: string | undefined;
  readonly lineOf: LineLookup | undefined;
  readonly warnings: string[] = [];

  constructor(source?: string, lineOf?: LineLookup) {
    this.source = source;
    this.lineOf = lineOf;
  }

  /** Builds the error for `path`, with its line when known. */
  error(path: Path, reason: string, cause?: unknown): ConfigError {
    return new ConfigError(reason, {
      path: formatPath(path),
      line: this.lineOf?.(path),
      source: this.source,
      cause,
    });
  }

  /** Records a warning about `path`, with its line when known. */
  warn(path: Path, message: string): void {
    const line = this.lineOf?.(path);
    const where = path.length === 0 ? "" : `${formatPath(path)}: `;
    this.warnings.push(
      line === undefined ? `${where}${message}` : `${where}${message} (line ${line})`,
    );
  }
}

const PLAIN_SEGMENT = /^[A-Za-z0-9_\-$/+#]+$/;

/**
 * Formats a key path: `listeners.ws-1.bind`, `plugins[0]`, and `plugins["a.b.C"].x` for keys
 * that contain dots or other characters that would make the path ambiguous.
 */
export function formatPath(path: Path): string {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (PLAIN_SEGMENT.test(segment)) out += out === "" ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

/**
 * Turns a schema key into its canonical snake_case form: `max-connections`, `max_connections`
 * and `maxConnections` all become `max_connections`.
 */
export function normalizeKey(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").replace(/-/g, "_").toLowerCase();
}

/** A value read from a map, with the path it was found at. */
export interface Entry {
  value: unknown;
  path: Path;
}

/** Describes a value for error messages: `a string`, `a list`, `null`... */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (value instanceof Date) return "a date";
  if (typeof value === "object") return "a map";
  if (typeof value === "string") return `the string ${JSON.stringify(value)}`;
  return `${typeof value} ${String(value)}`;
}

/** True for a plain object usable as a map. */
export function isPlainMap(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Checks that `value` is a map and returns its entries in order (null counts as empty). */
export function readAnyMap(ctx: ReadContext, value: unknown, path: Path): Entry[] {
  if (value === null || value === undefined) return [];
  if (!isPlainMap(value)) throw ctx.error(path, `expected a map, got ${describe(value)}`);
  return Object.keys(value).map((key) => ({ value: value[key], path: [...path, key] }));
}

/**
 * Reads a map with a fixed set of keys (given in snake_case). Keys may be written with `-`, `_`
 * or in camelCase; unknown keys and the same key written twice are errors. Entries whose value is
 * `null` are treated as absent.
 */
export function readSchemaMap(
  ctx: ReadContext,
  value: unknown,
  path: Path,
  allowed: readonly string[],
): Map<string, Entry> {
  const entries = readAnyMap(ctx, value, path);
  const out = new Map<string, Entry>();
  const written = new Map<string, string>();
  for (const entry of entries) {
    const raw = entry.path[entry.path.length - 1] as string;
    const key = normalizeKey(raw);
    if (!allowed.includes(key)) {
      const expected = allowed.length === 0
        ? "no options are accepted here"
        : `expected one of: ${allowed.join(", ")}`;
      throw ctx.error(entry.path, `unknown key ${JSON.stringify(raw)}; ${expected}`);
    }
    const earlier = written.get(key);
    if (earlier !== undefined) {
      throw ctx.error(
        entry.path,
        `duplicate key: ${JSON.stringify(earlier)} and ${JSON.stringify(raw)} are the same key`,
      );
    }
    written.set(key, raw);
    if (entry.value !== null && entry.value !== undefined) out.set(key, entry);
  }
  return out;
}

/** Reads a boolean. YAML 1.1 words (`on`, `off`, `yes`, `no`) are accepted as strings too. */
export function readBool(ctx: ReadContext, entry: Entry): boolean {
  const { value, path } = entry;
  if (typeof value === "boolean") return value;
  if (typeof value === "string") {
    const word = value.trim().toLowerCase();
    if (["on", "yes", "true"].includes(word)) return true;
    if (["off", "no", "false"].includes(word)) return false;
  }
  throw ctx.error(path, `expected a boolean (true/false, on/off, yes/no), got ${describe(value)}`);
}

/** Reads a string (numbers are not converted: quote them in YAML). */
export function readString(ctx: ReadContext, entry: Entry, what = "a string"): string {
  if (typeof entry.value === "string") return entry.value;
  throw ctx.error(entry.path, `expected ${what}, got ${describe(entry.value)}`);
}

/** Reads a non-empty string. */
export function readNonEmptyString(ctx: ReadContext, entry: Entry, what = "a string"): string {
  const value = readString(ctx, entry, what);
  if (value === "") throw ctx.error(entry.path, `expected ${what}, got an empty string`);
  return value;
}

/** Reads a finite number within `[min, max]`, optionally an integer. */
export function readNumber(
  ctx: ReadContext,
  entry: Entry,
  options: { min: number; max?: number; integer?: boolean; unit?: string; positive?: boolean },
): number {
  const { value, path } = entry;
  const integer = options.integer ?? false;
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw ctx.error(
      path,
      `expected ${integer ? "an integer" : "a number"}, got ${describe(value)}`,
    );
  }
  if (integer && !Number.isInteger(value)) {
    throw ctx.error(path, `expected an integer, got ${value}`);
  }
  if (options.positive && value <= 0) {
    const unit = options.unit === undefined ? "" : ` of ${options.unit}`;
    throw ctx.error(path, `${value} is out of range: expected a positive number${unit}`);
  }
  const max = options.max ?? Number.MAX_SAFE_INTEGER;
  if (value < options.min || value > max) {
    const unit = options.unit === undefined ? "" : ` ${options.unit}`;
    const range = options.max === undefined
      ? `at least ${options.min}${unit}`
      : `in the range ${options.min}-${options.max}${unit}`;
    throw ctx.error(path, `${value} is out of range: expected ${range}`);
  }
  return value;
}

/** Reads one of a fixed set of strings. */
export function readEnum<T extends string>(
  ctx: ReadContext,
  entry: Entry,
  choices: readonly T[],
): T {
  const { value, path } = entry;
  if (typeof value === "string" && (choices as readonly string[]).includes(value)) {
    return value as T;
  }
  throw ctx.error(
    path,
    `expected one of ${choices.map((c) => JSON.stringify(c)).join(", ")}, got ${describe(value)}`,
  );
}

/** Reads a QoS level, 0, 1 or 2. */
export function readQos(ctx: ReadContext, entry: Entry): 0 | 1 | 2 {
  const { value, path } = entry;
  if (value === 0 || value === 1 || value === 2) return value;
  throw ctx.error(path, `expected a QoS of 0, 1 or 2, got ${describe(value)}`);
}

/**
 * Reads a path that must exist when the configuration is resolved, so a typo fails at start-up
 * with the key's name rather than at the first TLS handshake.
 */
export function readExistingPath(
  ctx: ReadContext,
  entry: Entry,
  kind: "file" | "directory",
): string {
  const path = readNonEmptyString(ctx, entry, `a ${kind} path`);
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw ctx.error(entry.path, `${kind} ${JSON.stringify(path)} does not exist`, error);
    }
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      throw ctx.error(
        entry.path,
        `cannot check ${kind} ${JSON.stringify(path)}: read permission denied`,
        error,
      );
    }
    throw ctx.error(
      entry.path,
      `cannot check ${kind} ${JSON.stringify(path)}: ${(error as Error).message}`,
      error,
    );
  }
  if (kind === "file" && !info.isFile) {
    throw ctx.error(entry.path, `${JSON.stringify(path)} is not a file`);
  }
  if (kind === "directory" && !info.isDirectory) {
    throw ctx.error(entry.path, `${JSON.stringify(path)} is not a directory`);
  }
  return path;
}

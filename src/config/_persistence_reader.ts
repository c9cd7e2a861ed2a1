/**
 * Reads the `persistence` section and aMQTT's `SessionDBPlugin` options into one
 * {@linkcode PersistenceConfig}.
 *
 * @module
 */

import {
  DEFAULT_PERSISTENCE_PATH,
  type PersistenceConfig,
  SESSION_DB_PLUGIN_CLASSES,
} from "./persistence_config.ts";
import { dirname } from "node:path";
import {
  type Entry,
  isPlainMap,
  readBool,
  type ReadContext,
  readEnum,
  readNonEmptyString,
  readSchemaMap,
} from "./_reader.ts";

const SYNC_MODES = ["full", "normal"] as const;
const DEFAULT_CONNECTION = `sqlite+aiosqlite:///${DEFAULT_PERSISTENCE_PATH}`;

/** Whether a `plugins` entry names aMQTT's SessionDBPlugin (`a.b.C` or `a.b:C`). */
export function isSessionDbPlugin(name: string): boolean {
  return SESSION_DB_PLUGIN_CLASSES.includes(name.replace(":", "."));
}

/**
 * The settings before any key is read. Only two defaults depend on where persistence is
 * configured: whether it is on, and `clear_on_shutdown` (aMQTT's SessionDBPlugin clears).
 */
function defaults(
  { enabled, clearOnShutdown }: Pick<PersistenceConfig, "enabled" | "clearOnShutdown">,
): PersistenceConfig {
  return { enabled, path: DEFAULT_PERSISTENCE_PATH, sync: "full", clearOnShutdown };
}

/** `undefined`: an in-memory database, which persists nothing. */
function pathFromConnection(ctx: ReadContext, entry: Entry): string | undefined {
  const url = readNonEmptyString(ctx, entry, "a connection URL such as " + DEFAULT_CONNECTION);
  const match = /^([A-Za-z0-9]+)(\+[A-Za-z0-9_]+)?:\/\/(.*)$/.exec(url);
  if (match === null) {
    throw ctx.error(
      entry.path,
      `expected a connection URL such as ${DEFAULT_CONNECTION}, got ${JSON.stringify(url)}`,
    );
  }
  const [, dialect, , rest] = match as unknown as [string, string, string, string];
  if (dialect.toLowerCase() !== "sqlite") {
    throw ctx.error(
      entry.path,
      `only SQLite connection URLs are supported (sqlite:///path), got a ${dialect} URL`,
    );
  }
  if (rest.includes("?")) {
    throw ctx.error(entry.path, "connection URL parameters (after ?) are not supported");
  }
  // SQLAlchemy: sqlite:// and sqlite:///:memory: are in memory; sqlite:///rel.db is relative,
  // sqlite:////abs.db absolute.
  if (rest === "" || rest === "/:memory:") return undefined;
  if (!rest.startsWith("/") || rest === "/") {
    throw ctx.error(
      entry.path,
      `expected sqlite:///relative/path.db or sqlite:////absolute/path.db, got ${
        JSON.stringify(url)
      }`,
    );
  }
  return rest.slice(1);
}

function checkDirectory(ctx: ReadContext, path: string, where: Entry["path"]): void {
  const dir = dirname(path);
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(dir);
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "does not exist"
      : `cannot be checked: ${(error as Error).message}`;
    throw ctx.error(
      where,
      `the directory ${JSON.stringify(dir)} of the store file ${reason}`,
      error,
    );
  }
  if (!info.isDirectory) {
    throw ctx.error(
      where,
      `${JSON.stringify(dir)} (the store file's directory) is not a directory`,
    );
  }
  try {
    if (Deno.statSync(path).isDirectory) {
      throw ctx.error(where, `the store file ${JSON.stringify(path)} is a directory`);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

function readSection(ctx: ReadContext, entry: Entry): PersistenceConfig {
  const out = defaults({ enabled: true, clearOnShutdown: false });
  if (!isPlainMap(entry.value)) {
    // `persistence: on` turns it on with the defaults.
    out.enabled = readBool(ctx, entry);
    return out;
  }
  const fields = readSchemaMap(ctx, entry.value, entry.path, [
    "enabled",
    "path",
    "file",
    "sync",
    "clear_on_shutdown",
  ]);
  const enabled = fields.get("enabled");
  if (enabled !== undefined) out.enabled = readBool(ctx, enabled);
  const path = fields.get("path");
  const file = fields.get("file");
  if (path !== undefined && file !== undefined) {
    throw ctx.error(file.path, 'give the store file as "path" or as "file", not both');
  }
  const where = path ?? file;
  if (where !== undefined) out.path = readNonEmptyString(ctx, where, "a file path");
  const sync = fields.get("sync");
  if (sync !== undefined) out.sync = readEnum(ctx, sync, SYNC_MODES);
  const clear = fields.get("clear_on_shutdown");
  if (clear !== undefined) out.clearOnShutdown = readBool(ctx, clear);
  if (out.enabled) checkDirectory(ctx, out.path, where?.path ?? entry.path);
  return out;
}

function readPlugin(ctx: ReadContext, entry: Entry): PersistenceConfig {
  const out = defaults({ enabled: true, clearOnShutdown: true });
  const fields = readSchemaMap(ctx, entry.value, entry.path, [
    "connection",
    "file",
    "clear_on_shutdown",
  ]);
  const connection = fields.get("connection");
  const file = fields.get("file");
  if (connection !== undefined && file !== undefined) {
    throw ctx.error(file.path, 'give the database as "connection" or as "file", not both');
  }
  if (connection !== undefined) {
    const path = pathFromConnection(ctx, connection);
    if (path === undefined) {
      out.enabled = false;
      ctx.warn(
        connection.path,
        "the connection names an in-memory database: state is kept in memory only",
      );
    } else out.path = path;
  } else if (file !== undefined) {
    // aMQTT 0.11 named the file directly.
    out.path = readNonEmptyString(ctx, file, "a file path");
  }
  const clear = fields.get("clear_on_shutdown");
  if (clear !== undefined) out.clearOnShutdown = readBool(ctx, clear);
  if (out.enabled) checkDirectory(ctx, out.path, (connection ?? file ?? entry).path);
  return out;
}

/**
 * Resolves persistence from the `persistence` section and a `SessionDBPlugin` entry of
 * `plugins` (at most one of the two).
 *
 * @param ctx the read context
 * @param section the `persistence` entry, if written
 * @param plugin the SessionDBPlugin entry, if listed
 * @returns the persistence settings, defaulted
 */
export function readPersistence(
  ctx: ReadContext,
  section: Entry | undefined,
  plugin: Entry | undefined,
): PersistenceConfig {
  if (section !== undefined && plugin !== undefined) {
    throw ctx.error(
      plugin.path,
      "persistence is configured twice: keep either the persistence section or SessionDBPlugin",
    );
  }
  if (section !== undefined) return readSection(ctx, section);
  if (plugin !== undefined) return readPlugin(ctx, plugin);
  return defaults({ enabled: false, clearOnShutdown: false });
}

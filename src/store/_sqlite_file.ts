/**
 * Opening a SQLite store file: creating a new one atomically, refusing a bad one before anything
 * is written to it, migrating an older schema, and turning SQLite's errors into StoreErrors.
 *
 * @module
 */

import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { StoreError, type StoreErrorKind } from "./store_error.ts";
import { APPLICATION_ID, MIGRATIONS, SCHEMA_OBJECTS, SCHEMA_VERSION } from "./_sqlite_schema.ts";

/** Throws the StoreError of a failed open. */
export type OpenFailure = (kind: StoreErrorKind, what: string, cause?: unknown) => never;

function sqliteCode(error: unknown): number | undefined {
  const code = (error as { errcode?: unknown })?.errcode;
  return typeof code === "number" ? code & 0xff : undefined;
}

/** Kind and text of an error SQLite raised while opening or reading a store. */
export function describeOpenError(error: unknown): { kind: StoreErrorKind; what: string } {
  switch (sqliteCode(error)) {
    case 5: // SQLITE_BUSY
    case 6: // SQLITE_LOCKED
      return { kind: "locked", what: "it is locked by another process (is a broker using it?)" };
    case 11: // SQLITE_CORRUPT
      return { kind: "corrupt", what: "the file is damaged (truncated or overwritten)" };
    case 26: // SQLITE_NOTADB
      return {
        kind: "corrupt",
        what: "the file is not a SQLite database (corrupt or not a store file)",
      };
    default:
      return { kind: "io", what: (error as Error)?.message ?? String(error) };
  }
}

/** The StoreError of a failed commit. */
export function writeError(path: string, error: unknown): StoreError {
  const code = sqliteCode(error);
  const what = code === 13 // SQLITE_FULL
    ? "the disk or the store's size limit is full"
    : (error as Error)?.message ?? String(error);
  return new StoreError(
    `Cannot write store ${JSON.stringify(path)}: ${what}; earlier commits are intact`,
    { kind: "write", path, cause: error },
  );
}

/**
 * Makes sure `path` is a file to open: creates a new store when there is none; refuses a missing
 * directory, a directory and an empty file.
 */
export function ensureStoreFile(path: string, fail: OpenFailure): void {
  let info: Deno.FileInfo | undefined;
  try {
    info = Deno.statSync(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) fail("io", (error as Error).message, error);
  }
  if (info === undefined) {
    const dir = dirname(path);
    try {
      if (!Deno.statSync(dir).isDirectory) {
        fail("io", `${JSON.stringify(dir)} is not a directory`);
      }
    } catch (error) {
      if (error instanceof StoreError) throw error;
      if (error instanceof Deno.errors.NotFound) fail("io", "its directory does not exist");
      fail("io", (error as Error).message, error);
    }
    createStoreFile(path, fail);
  } else if (!info.isFile) {
    fail("io", "it is not a regular file");
  } else if (info.size === 0) {
    // SQLite would take an empty file for a new database: a store file cut to nothing must
    // not start the broker with no state.
    fail("corrupt", "the file is empty (truncated?); remove it to start with no state");
  }
}

/** Creates a new store file atomically: a crash half-way leaves no file, not an empty one. */
function createStoreFile(
  path: string,
  fail: OpenFailure,
): void {
  const temp = `${path}.new-${crypto.randomUUID().slice(0, 8)}`;
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(temp);
    db.exec("PRAGMA auto_vacuum = INCREMENTAL");
    db.exec("PRAGMA journal_mode = WAL");
    db.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
    migrate(db, 0);
    db.close();
    db = undefined;
    // It holds message payloads and user names: readable by the broker's user only (the WAL
    // file SQLite creates beside it takes the same mode).
    if (Deno.build.os !== "windows") Deno.chmodSync(temp, 0o600);
    // link, not rename: fails rather than replace a file another process created meanwhile.
    try {
      Deno.linkSync(temp, path);
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists || error instanceof Deno.errors.NotFound) {
        throw error;
      }
      // A file system without hard links: rename, after a last check that the name is free.
      if (existsSync(path)) return;
      Deno.renameSync(temp, path);
    }
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) return;
    const message = error instanceof Deno.errors.NotFound
      ? "its directory does not exist"
      : `cannot create it: ${(error as Error).message}`;
    fail("io", message, error);
  } finally {
    try {
      db?.close();
    } catch {
      // Closing after a failure: nothing more to do.
    }
    for (const leftover of [temp, `${temp}-wal`, `${temp}-shm`]) {
      try {
        Deno.removeSync(leftover);
      } catch {
        // Not there.
      }
    }
  }
}

function existsSync(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Runs the migrations from `version` to the current schema in one transaction. */
function migrate(db: DatabaseSync, version: number): void {
  db.exec("BEGIN IMMEDIATE");
  try {
    for (let v = version; v < SCHEMA_VERSION; v++) MIGRATIONS[v]!(db);
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    db.exec("COMMIT");
  } catch (error) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw error;
  }
}

/**
 * Checks an existing file before anything is written to it: a SQLite database, ours, not newer
 * than this code, undamaged. Then migrates an older schema.
 */
export function checkFile(
  db: DatabaseSync,
  fail: OpenFailure,
): void {
  const get = (pragma: string) => Object.values(db.prepare(`PRAGMA ${pragma}`).get()!)[0];
  const appId = get("application_id") as number;
  const version = get("user_version") as number;
  const tables = db.prepare("SELECT count(*) AS n FROM sqlite_schema").get()!.n as number;
  if (appId !== APPLICATION_ID && (appId !== 0 || tables > 0 || version > 0)) {
    fail("not-a-store", "it is a SQLite database of another program, not an amqtt store");
  }
  if (version > SCHEMA_VERSION) {
    fail(
      "newer-schema",
      `it was written by a newer amqtt (schema version ${version}; this version reads up to ` +
        `${SCHEMA_VERSION})`,
    );
  }
  const problems = db.prepare("PRAGMA quick_check(3)").all().map((row) =>
    Object.values(row)[0] as string
  );
  if (problems.length !== 1 || problems[0] !== "ok") {
    fail("corrupt", `the file is damaged (truncated or overwritten): ${problems.join("; ")}`);
  }
  if (version === SCHEMA_VERSION) {
    const present = new Set(
      db.prepare("SELECT name FROM sqlite_schema").all().map((row) => row.name as string),
    );
    const missing = SCHEMA_OBJECTS.filter((name) => !present.has(name));
    if (missing.length > 0) {
      fail("corrupt", `the store's schema is damaged: ${missing.join(", ")} missing`);
    }
  }
  if (db.prepare("PRAGMA journal_mode").get()!.journal_mode !== "wal") {
    db.exec("PRAGMA journal_mode = WAL");
  }
  if (version < SCHEMA_VERSION) {
    if (version === 0) {
      // An empty database: take it over as a new store.
      db.exec("PRAGMA auto_vacuum = INCREMENTAL");
      db.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
    }
    migrate(db, version);
  }
}

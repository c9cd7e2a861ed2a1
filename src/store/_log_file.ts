/**
 * The SQLite store's log as a plain append-only file beside the database (`<path>-log`): one
 * record per commit, the log row `_log_codec.ts` encodes, after a header with its length. An
 * append is one `write` of the row's own bytes; a row in a SQLite table cost several times that
 * in CPU (the B-tree, a whole page written to the WAL at every commit and again at checkpoints).
 *
 * Layout: a 16-byte header (the magic `AMQTTLOG`, the format as a 32-bit number, and the file's
 * generation, both little-endian), then records, each an 8-byte header and that many bytes. The
 * record header is the body's length as a 32-bit little-endian number followed by its bitwise
 * complement, so that a damaged length is told from a last record cut short. Format 1, written
 * earlier in this release's development, had the length alone: such a file is still read (and
 * appended to) the old way, until the file starts again in format 2 (at the fold after opening).
 * The generation tells whether the records were folded into the tables already: a fold writes
 * the generation it folded into the tables (in its own transaction) and only then starts the
 * file again, empty, with the next generation, so a crash between the two leaves records that
 * are skipped, never applied twice.
 *
 * A crash may leave the last record cut short (a header cut short, a whole header whose length
 * runs past the end of the file, or bytes that fail the row's checksum, possibly followed by
 * zeros the file grew by): reading stops there and the next append writes over it. Damage
 * before the last record is not a crash's doing: the store refuses the file. A record header
 * whose length fails its check, with bytes after it that are not all zeros, is such damage.
 *
 * @module
 */

import type { StoreMutation } from "./mutation.ts";
import { decodeLogRow, LogRowError } from "./_log_codec.ts";

const MAGIC = "AMQTTLOG";
/** Bytes of the header: a file this long holds no record. */
export const LOG_HEADER_BYTES = 16;
const HEADER_BYTES = LOG_HEADER_BYTES;
/** The file format this code writes; a higher one was written by a newer amqtt. */
export const LOG_FILE_FORMAT = 2;
/** Bytes of a record's header in the current format: the length and its complement. */
const RECORD_HEADER_BYTES = 8;

/** Why a log file cannot be read. */
export class LogFileError extends Error {
  /** Whether the file was written by a newer format rather than damaged. */
  readonly newer: boolean;
  /** Whether a record's header is damaged (rather than the file's header). */
  readonly damaged: boolean;

  /**
   * @param message what is wrong
   * @param newer whether it is a newer format
   * @param damaged whether a record's header is damaged
   */
  constructor(message: string, newer = false, damaged = false) {
    super(message);
    this.name = "LogFileError";
    this.newer = newer;
    this.damaged = damaged;
  }
}

/** A commit refused because the store's size limit leaves no room for its record. */
export class LogFullError extends Error {
  /** @param message what did not fit */
  constructor(message: string) {
    super(message);
    this.name = "LogFullError";
  }
}

/** One record replayed: its batches, and the bytes of its row. */
export interface ReplayedRecord {
  batches: StoreMutation[][];
  bytes: number;
}

/** One record read back: its body, and where it starts and ends in the file. */
export interface LogRecord {
  body: Uint8Array;
  start: number;
  end: number;
}

/**
 * The log file of one store: read once at open, then appended to, and started again after each
 * fold.
 */
export class LogFile {
  readonly path: string;
  readonly #file: Deno.FsFile;
  readonly #sync: boolean;
  #generation = 0;
  /** Where the next record goes: the end of the last whole record. */
  #end = 0;
  /** The file's size when read, and the file offset now (-1: unknown). */
  #size = 0;
  #position = -1;
  /** Bytes the file may reach (the store's size limit less what the tables take). */
  limit = Infinity;
  #buffer = new Uint8Array(4096);
  /** The format of the records in the file: 1 (a length only) until it starts again. */
  #format = LOG_FILE_FORMAT;

  /**
   * Opens (or creates) the file. Nothing is written until {@linkcode read} or {@linkcode reset}.
   *
   * @param path the file
   * @param sync whether every append is flushed to the disk (`fdatasync`) before it returns
   */
  constructor(path: string, sync: boolean) {
    this.path = path;
    this.#sync = sync;
    // Readable by its owner only, as the database.
    this.#file = Deno.openSync(path, { read: true, write: true, create: true, mode: 0o600 });
    if (sync) syncDirectory(path);
  }

  /** The generation of the records the file holds. */
  get generation(): number {
    return this.#generation;
  }

  /** Bytes of the file in use: its header and whole records. */
  get bytes(): number {
    return this.#end;
  }

  /**
   * Reads the header and the records. An empty file (a crash before its header was written) has
   * generation 0 and no record.
   *
   * @returns the records in order, the last one possibly cut short (the caller checks it)
   * @throws {LogFileError} If the header is foreign or newer, or a record's length fails its
   *   check with bytes other than zeros after it.
   */
  read(): LogRecord[] {
    const size = this.#size = this.#file.statSync().size;
    const bytes = new Uint8Array(size);
    this.#position = -1;
    this.#file.seekSync(0, Deno.SeekMode.Start);
    for (let at = 0; at < size;) {
      const n = this.#file.readSync(bytes.subarray(at));
      if (n === null) throw new LogFileError(`it ends at byte ${at} of ${size}`);
      at += n;
    }
    const records: LogRecord[] = [];
    // Zeros only (a power loss after the file started again and grew, before its pages were
    // written) are nothing appended either: whatever was appended to it never reached the disk.
    if (size < HEADER_BYTES || bytes.every((b) => b === 0)) {
      // Cut short before its header was whole: nothing was appended to it.
      if (bytes.some((b) => b !== 0) && !MAGIC.startsWith(ascii(bytes.subarray(0, 8)))) {
        throw new LogFileError("it does not start with the log file's mark");
      }
      this.#generation = 0;
      this.#end = 0;
      this.#format = LOG_FILE_FORMAT;
      return records;
    }
    const view = new DataView(bytes.buffer);
    if (ascii(bytes.subarray(0, 8)) !== MAGIC) {
      throw new LogFileError("it does not start with the log file's mark");
    }
    const format = view.getUint32(8, true);
    if (format > LOG_FILE_FORMAT) {
      throw new LogFileError(`its format ${format} is newer than ${LOG_FILE_FORMAT}`, true);
    }
    this.#generation = view.getUint32(12, true);
    this.#format = format;
    let at = HEADER_BYTES;
    while (at < size) {
      const record = format === 1 ? readV1(view, at, size) : readRecord(bytes, view, at, size);
      if (record === undefined) {
        // A record cut short by a crash: only ever the last one, followed by nothing.
        break;
      }
      if (record === "damaged") {
        throw new LogFileError(
          `record ${records.length + 1}'s length at byte ${at} fails its check`,
          false,
          true,
        );
      }
      records.push(record);
      at = record.end;
    }
    this.#end = records.length === 0 ? HEADER_BYTES : records[records.length - 1]!.end;
    return records;
  }

  /**
   * Reads the file at open: the records to replay, decoded, unless a fold took them already (its
   * generation is not above `folded`). A last record cut short by a crash is cut off the file.
   *
   * @param folded the last generation the tables hold
   * @returns the records to replay, in order
   * @throws {LogFileError} If the file is foreign or newer, or a record before the last one cannot
   *   be read; its message says so, naming the file. Nothing is written then.
   */
  replay(folded: number): ReplayedRecord[] {
    const where = `its log ${JSON.stringify(this.path)}`;
    let records;
    try {
      records = this.read();
    } catch (error) {
      const e = error as Error;
      const newer = error instanceof LogFileError && error.newer;
      const damaged = error instanceof LogFileError && error.damaged;
      throw new LogFileError(
        newer
          ? `${where} was written by a newer amqtt (${e.message})`
          : damaged
          ? `${where} is damaged: ${e.message}`
          : `${where} cannot be read (${e.message})`,
        newer,
        damaged,
      );
    }
    const out: ReplayedRecord[] = [];
    let end: number | undefined;
    for (let i = 0; this.#generation > folded && i < records.length; i++) {
      const { body, start } = records[i]!;
      try {
        out.push({ batches: decodeLogRow(body), bytes: body.length });
      } catch (error) {
        const why = (error as Error).message;
        if (error instanceof LogRowError && error.newer) {
          throw new LogFileError(
            `it was written by a newer amqtt (log record ${i + 1}: ${why})`,
            true,
          );
        }
        // Records after it that are all empty are zeros, not records (a length is never 0): what
        // a file system may leave of the last appends' pages after a power loss.
        if (records.slice(i + 1).some((r) => r.body.length > 0)) {
          throw new LogFileError(`${where} is damaged: record ${i + 1} cannot be read (${why})`);
        }
        // The last record, cut short by a crash: it was never acknowledged.
        end = start;
        break;
      }
    }
    this.dropFrom(end);
    return out;
  }

  /**
   * Cuts off the bytes from `start` on (a last record cut short), so that the next append
   * follows whole records only.
   *
   * @param start where the bytes dropped start (default: after the last whole record read)
   */
  dropFrom(start: number = this.#end): void {
    this.#end = Math.max(HEADER_BYTES, start);
    if (this.#size > this.#end) this.#file.truncateSync(this.#end);
    this.#size = this.#end;
  }

  /**
   * Appends one record.
   *
   * @param row its bytes
   * @throws {LogFullError} If the record would take the file past {@linkcode limit}.
   * @throws {Error} The file system's error (e.g. a full disk); the file is as before.
   */
  append(row: Uint8Array): void {
    const head = this.#format === 1 ? 4 : RECORD_HEADER_BYTES;
    const total = head + row.length;
    if (this.#end + total > this.limit) {
      throw new LogFullError("the disk or the store's size limit is full");
    }
    if (this.#buffer.length < total) {
      this.#buffer = new Uint8Array(Math.max(total, this.#buffer.length * 2));
    }
    const out = this.#buffer;
    out[0] = row.length & 0xff;
    out[1] = (row.length >>> 8) & 0xff;
    out[2] = (row.length >>> 16) & 0xff;
    out[3] = row.length >>> 24;
    if (head === RECORD_HEADER_BYTES) {
      const check = ~row.length;
      out[4] = check & 0xff;
      out[5] = (check >>> 8) & 0xff;
      out[6] = (check >>> 16) & 0xff;
      out[7] = (check >>> 24) & 0xff;
    }
    out.set(row, head);
    try {
      this.#writeAt(out.subarray(0, total), this.#end);
      if (this.#sync) this.#file.syncDataSync();
    } catch (error) {
      // What was written of it must not stay: a later record would follow damage.
      this.#position = -1;
      try {
        this.#file.truncateSync(this.#end);
      } catch {
        // The next open stops at the damage, as after a crash.
      }
      throw error;
    }
    this.#end += total;
    this.#size = this.#end;
    // One huge record must not keep a huge buffer for the rest of the process.
    if (total > 1 << 20) this.#buffer = new Uint8Array(4096);
  }

  /**
   * Starts the file again, empty, for the records after a fold.
   *
   * @param generation the new records' generation: above every one folded
   */
  reset(generation: number): void {
    this.#file.truncateSync(0);
    this.#size = 0;
    const header = new Uint8Array(HEADER_BYTES);
    for (let i = 0; i < 8; i++) header[i] = MAGIC.charCodeAt(i);
    const view = new DataView(header.buffer);
    view.setUint32(8, LOG_FILE_FORMAT, true);
    view.setUint32(12, generation, true);
    this.#writeAt(header, 0);
    if (this.#sync) this.#file.syncSync();
    this.#generation = generation;
    this.#format = LOG_FILE_FORMAT;
    this.#end = this.#size = HEADER_BYTES;
  }

  /**
   * Closes the file.
   *
   * @param remove also deletes it (its records are all folded)
   */
  close(remove = false): void {
    this.#file.close();
    if (remove) {
      try {
        Deno.removeSync(this.path);
      } catch {
        // An empty generation is read as one folded: the file may stay.
      }
    }
  }

  #writeAt(bytes: Uint8Array, at: number): void {
    if (this.#position !== at) {
      this.#position = -1;
      this.#file.seekSync(at, Deno.SeekMode.Start);
    }
    for (let done = 0; done < bytes.length;) {
      done += this.#file.writeSync(bytes.subarray(done));
    }
    this.#position = at + bytes.length;
  }
}

/** Makes the file's directory entry durable (a new file), as far as the platform allows. */
function syncDirectory(path: string): void {
  const slash = path.lastIndexOf("/");
  try {
    using dir = Deno.openSync(slash <= 0 ? (slash === 0 ? "/" : ".") : path.slice(0, slash));
    dir.syncSync();
  } catch {
    // Not every platform opens directories: the file's own syncs still hold its records.
  }
}

/**
 * Reads the record at `at` (format 2): undefined for a last record cut short (its header cut
 * short, its length past the end of the file, or zeros to the end), "damaged" for a length that
 * fails its check with other bytes after it.
 */
function readRecord(
  bytes: Uint8Array,
  view: DataView,
  at: number,
  size: number,
): LogRecord | "damaged" | undefined {
  if (size - at < RECORD_HEADER_BYTES) return undefined;
  const length = view.getUint32(at, true);
  if (((view.getUint32(at + 4, true) ^ length) >>> 0) !== 0xffffffff) {
    // Zeros to the end: pages the file grew by that a power loss left unwritten.
    return bytes.subarray(at).every((b) => b === 0) ? undefined : "damaged";
  }
  const end = at + RECORD_HEADER_BYTES + length;
  if (end > size) return undefined;
  return { body: bytes.subarray(at + RECORD_HEADER_BYTES, end), start: at, end };
}

/** Reads the record at `at` of a format 1 file (a length alone): undefined if cut short. */
function readV1(view: DataView, at: number, size: number): LogRecord | undefined {
  const length = size - at >= 4 ? view.getUint32(at, true) : Infinity;
  const end = at + 4 + length;
  if (end > size) return undefined;
  return { body: new Uint8Array(view.buffer, at + 4, length), start: at, end };
}

function ascii(bytes: Uint8Array): string {
  return String.fromCharCode(...bytes);
}

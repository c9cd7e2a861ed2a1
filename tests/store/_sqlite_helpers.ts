/**
 * Helpers for the SQLite store tests: temporary directories, and the kill -9 writer child.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { StoredState } from "../../src/store/stored_state.ts";

/** Runs `body` with a fresh temporary directory, removed afterwards. */
export async function withDir(body: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "amqtt_store_" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Copies a store file and its WAL while the store is open and idle: the copy is the file as a
 * crash at that moment leaves it (what was committed, log rows not yet folded included).
 */
export async function copyAsCrashed(path: string, to: string): Promise<void> {
  await Deno.copyFile(path, to);
  try {
    await Deno.copyFile(`${path}-wal`, `${to}-wal`);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/** Runs the writer child until it has printed at least `atLeast` commits, then kills it. */
export async function killWriterAfter(
  path: string,
  sync: string,
  atLeast: number,
  worker = false,
): Promise<number> {
  const script = new URL("./_sqlite_writer_child.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, path, sync, ...(worker ? ["worker"] : [])],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let last = 0;
  let buffered = "";
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    while (last < atLeast) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the writer exited early");
      buffered += value;
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) last = Number(line);
    }
    child.kill("SIGKILL");
    // Anything printed before the kill was committed too.
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += value;
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) last = Number(line);
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const status = await child.status;
  assert.equal(status.signal, "SIGKILL");
  return last;
}

/**
 * Asserts what the writer child leaves after a kill: its counter covers the last commit it saw
 * resolve, and exactly the 50 entries behind the last committed one are there, in order.
 */
export function assertWriterCommits(state: StoredState, last: number): void {
  const seqs = state.sessions[0]!.outbound.map((e) => e.seq);
  const stored = state.counters.get("last")!;
  assert.ok(stored >= last, `counter ${stored} covers the last resolved commit ${last}`);
  const expected = [];
  for (let i = Math.max(1, stored - 49); i <= stored; i++) expected.push(i);
  assert.deepEqual(seqs, expected);
  assert.deepEqual([...state.messages.keys()].sort((a, b) => a - b), expected);
  assert.equal(state.messages.get(stored)?.payload.length, 512);
}

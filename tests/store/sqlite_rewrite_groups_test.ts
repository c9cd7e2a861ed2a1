/**
 * The group ids of `SqliteStore.rewrite` (`_rewrite_pieces.ts`): each rewrite's log rows are
 * marked with its group id, and replay glues together the pieces of one group, so an id must never
 * be given twice in a file's life. Log row ids start again at 1 once a fold has emptied the log,
 * so ids taken from them repeated (`lastRow + 1`) between back-to-back rewrites with a fold in
 * between. A real SQLite file; what a crash would leave is read from a copy of the file, its
 * WAL and its log taken while the store is open.
 *
 * @module
 */

import assert from "node:assert/strict";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { decodeLogRow } from "../../src/store/_log_codec.ts";
import { GROUP_COUNTER, PIECE_MARK } from "../../src/store/_rewrite_pieces.ts";
import { generation, generationSummary, summary } from "./_rewrite_states.ts";
import { copyAsCrashed, logBodies } from "./_sqlite_helpers.ts";

const PIECES = 65_536;

/** The group ids marking the log rows of the file at `path` as they are now. */
async function groupsInLog(path: string, dir: string): Promise<number[]> {
  const copy = `${dir}/copy.db`;
  await Deno.remove(copy).catch(() => {});
  await Deno.remove(`${copy}-wal`).catch(() => {});
  await Deno.remove(`${copy}-log`).catch(() => {});
  await copyAsCrashed(path, copy);
  const groups = new Set<number>();
  for (const body of logBodies(copy)) {
    const mark = decodeLogRow(body)[0]?.[0];
    if (mark?.type === "setCounter" && mark.name === PIECE_MARK) {
      groups.add(Math.floor(mark.value / PIECES));
    }
  }
  return [...groups];
}

Deno.test("SqliteStore.rewrite: back-to-back rewrites, each folding the log of the one before, never give a group id twice, nor after a reopen", async () => {
  const dir = await Deno.makeTempDir({ prefix: "amqtt-groups-" });
  const path = `${dir}/state.db`;
  try {
    const given: number[] = [];
    {
      await using store = SqliteStore.open(path, { sync: "normal", pieceBytes: 8192 });
      for (let g = 1; g <= 4; g++) {
        await store.rewrite(generation(g));
        const groups = await groupsInLog(path, dir);
        assert.equal(groups.length, 1, `rewrite ${g} is one group in the log (${groups})`);
        given.push(groups[0]!);
      }
      assert.deepEqual(summary(await store.load(0)), generationSummary(4));
      assert.equal((await store.load(0)).counters.has(GROUP_COUNTER), false, "internal counter");
    }
    {
      await using store = SqliteStore.open(path, { sync: "normal", pieceBytes: 8192 });
      await store.rewrite(generation(5));
      given.push(...await groupsInLog(path, dir));
      assert.deepEqual(summary(await store.load(0)), generationSummary(5));
    }
    assert.equal(new Set(given).size, given.length, `group ids ${given} are all different`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

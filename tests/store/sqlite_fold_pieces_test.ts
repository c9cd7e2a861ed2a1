/**
 * The fold of a log much larger than usual (after `SqliteStore.rewrite`) runs in pieces of about
 * `pieceBytes` (`_sqlite_staged_fold.ts`): its table writes are staged, then the log rows are
 * switched for the stage, then the stage is applied a piece per transaction. A kill -9 at any
 * point of it leaves a file that opens to one whole generation: a stage cut short is dropped
 * (the log rows are still there), a stage switched in is applied at open. A real SQLite file.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { copyAsCrashed, withDir } from "./_sqlite_helpers.ts";
import { generation, generationSummary, summary } from "./_rewrite_states.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

/** The rows of the fold stage in the file as a crash left it: whether marked, and how many. */
async function stageOf(path: string, dir: string): Promise<{ marked: boolean; rows: number }> {
  const copy = `${dir}/stage-copy.db`;
  await Deno.remove(copy).catch(() => {});
  await Deno.remove(`${copy}-wal`).catch(() => {});
  await copyAsCrashed(path, copy);
  const db = new DatabaseSync(copy);
  try {
    const seqs = db.prepare("SELECT seq FROM fold_stage ORDER BY seq").all().map((r) => r.seq);
    return { marked: seqs[0] === 0, rows: seqs.length };
  } finally {
    db.close();
  }
}

test("SqliteStore: the fold after a large rewrite runs in pieces; the store goes on and a reopen reads the same state", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    const options = { sync: "normal", compactBytes: 16 * 1024, pieceBytes: 4096 } as const;
    {
      await using store = SqliteStore.open(path, options);
      for (let g = 1; g <= 3; g++) await store.rewrite(generation(g));
      assert.deepEqual(summary(await store.load(0)), generationSummary(3));
      assert.deepEqual(await stageOf(path, dir), { marked: false, rows: 0 }, "no stage left");
    }
    {
      await using store = SqliteStore.open(path, options);
      assert.deepEqual(summary(await store.load(0)), generationSummary(3));
    }
    // A stage never switched in (a crash while it was written) is dropped at open: the log rows
    // it came from were still the truth.
    const db = new DatabaseSync(path);
    db.prepare("INSERT INTO fold_stage (seq, body) VALUES (1, ?)").run(new Uint8Array([0xff]));
    db.close();
    await using store = SqliteStore.open(path, options);
    assert.deepEqual(summary(await store.load(0)), generationSummary(3));
    await store.close();
    assert.deepEqual(await stageOf(path, dir), { marked: false, rows: 0 }, "the stage was dropped");
  });
});

test("SqliteStore: a kill -9 in the middle of a fold in pieces (stage written or switched in) leaves a file that opens to one whole generation", async () => {
  await withDir(async (dir) => {
    const script = new URL("./_sqlite_fold_child.ts", import.meta.url).pathname;
    let switched = 0;
    let staged = 0;
    // The switch-to-apply window is narrow: rounds go on (up to 200) until a kill has landed in it.
    for (let round = 0; round < 200 && (switched === 0 || round < 6); round++) {
      const path = `${dir}/state-${round}.db`;
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", script, path],
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      let last = 0;
      let buffered = "";
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const read = async () => {
        const { value, done } = await reader.read();
        if (done) return false;
        buffered += value;
        const lines = buffered.split("\n");
        buffered = lines.pop()!;
        for (const line of lines) last = Number(line);
        return true;
      };
      try {
        while (last < 2) assert.ok(await read(), "the child runs");
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 20));
        child.kill("SIGKILL");
        while (await read());
      } finally {
        await reader.cancel().catch(() => {});
      }
      assert.equal((await child.status).signal, "SIGKILL");
      const stage = await stageOf(path, dir);
      if (stage.marked) switched++;
      else if (stage.rows > 0) staged++;
      await using store = SqliteStore.open(path);
      const got = summary(await store.load(0));
      const g = Number(got.retained[0]?.slice("r/g".length));
      assert.ok(g === last || g === last + 1, `generation ${g} after ${last} resolved`);
      assert.deepEqual(
        got,
        generationSummary(g),
        `one whole generation (stage ${JSON.stringify(stage)})`,
      );
    }
    assert.ok(
      switched > 0,
      `a kill landed after the switch, before the stage was applied (${staged} before it)`,
    );
  });
});

// The SQLite store keeps a committed message as a range of the log row of its turn; a message, a
// retained message or a will still held at a fold gets a payload of its own when that row (or
// the log file read at start-up) is much larger than it, so a small one that waits does not keep
// the large payloads written beside it alive (`ownPayload` in src/store/_row_message.ts).
import assert from "node:assert/strict";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import type { StoredState } from "../../src/store/stored_state.ts";
import { ownPayload, RowMessage } from "../../src/store/_row_message.ts";
import { message, session } from "./_conformance.ts";
import { copyAsCrashed, withDir } from "./_sqlite_helpers.ts";

const NOW = 1_750_000_000_000;
const BIG = 8_000;

/**
 * One turn: a session "w" with a small will, a small message queued for "a", a small retained
 * one, and a large message queued for "b"; then (another turn) "b" acknowledges the large one.
 */
async function smallBesideLarge(store: SqliteStore): Promise<void> {
  const turn: StoreMutation[] = [
    { type: "putSession", session: session("a") },
    { type: "putSession", session: session("b") },
    {
      type: "putSession",
      session: session("w", { will: { message: message("will", "w-small"), delayInterval: 0 } }),
    },
    { type: "putMessage", id: 1, message: message("t", "a-small") },
    { type: "queueOutbound", clientId: "a", seq: 1, messageId: 1, qos: 1 },
    { type: "putRetained", message: message("r", "r-small", { retain: true }) },
    { type: "putMessage", id: 2, message: { ...message("t", ""), payload: new Uint8Array(BIG) } },
    { type: "queueOutbound", clientId: "b", seq: 1, messageId: 2, qos: 1, packetId: 1 },
  ];
  store.apply(turn);
  await store.commit();
  store.apply([{ type: "deleteOutbound", clientId: "b", seq: 1 }]);
  await store.commit();
}

/**
 * The buffers the small message and retained message of {@linkcode smallBesideLarge} keep alive,
 * in bytes (the will is read as a copy: measured by `_sqlite_will_child.ts`).
 */
function held(state: StoredState): number[] {
  const will = state.sessions.find((s) => s.session.clientId === "w")!.session.will!.message;
  const text = (p: Uint8Array) => new TextDecoder().decode(p);
  assert.equal(text(will.payload), "w-small");
  const small = [state.messages.get(1)!.payload, state.retained[0]!.payload];
  assert.deepEqual(small.map(text), ["a-small", "r-small"]);
  assert.equal(state.messages.size, 1);
  return small.map((p) => p.buffer.byteLength);
}

Deno.test("SqliteStore own payloads: a small message and retained message held at a fold keep their bytes, not their turn's row", async () => {
  await withDir(async (dir) => {
    // Every commit folds.
    await using store = SqliteStore.open(`${dir}/state.db`, { sync: "normal", compactBytes: 1 });
    await smallBesideLarge(store);
    assert.deepEqual(held(await store.load(NOW)), [7, 7]);
  });
});

Deno.test("SqliteStore own payloads: until a fold a small message keeps the range of its row", async () => {
  await withDir(async (dir) => {
    await using store = SqliteStore.open(`${dir}/state.db`, {
      sync: "normal",
      compactBytes: 1e9,
    });
    await smallBesideLarge(store);
    // No copy before a fold: the bound is the log rows since the last one.
    for (const bytes of held(await store.load(NOW))) assert.ok(bytes > BIG, `${bytes}`);
  });
});

Deno.test("SqliteStore own payloads: small messages replayed from the log file at open keep their bytes, not the file read", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/state.db`;
    const copy = `${dir}/copy.db`;
    await using store = SqliteStore.open(path, { sync: "normal", compactBytes: 1e9 });
    await smallBesideLarge(store);
    await copyAsCrashed(path, copy);
    await using replayed = SqliteStore.open(copy, { sync: "normal" });
    assert.deepEqual(held(await replayed.load(NOW)), [7, 7]);
  });
});

Deno.test("ownPayload: a payload that is most of its buffer stays where it is", () => {
  const row = new Uint8Array(1_000);
  const m = new RowMessage(
    { topic: "t", payload: row.subarray(10, 900), qos: 1, retain: false },
    row,
    10,
  );
  assert.equal(ownPayload(m), m);
  const plain = message("t", "x");
  assert.equal(ownPayload(plain), plain);
});

Deno.test("SqliteStore own payloads: small wills held at a fold keep their bytes, not their turn's row (measured in a process of its own)", async () => {
  await withDir(async (dir) => {
    const script = new URL("./_sqlite_will_child.ts", import.meta.url).pathname;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--v8-flags=--expose-gc", script, `${dir}/state.db`],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    assert.equal(out.code, 0);
    const { perSession } = JSON.parse(new TextDecoder().decode(out.stdout));
    console.log(`per session with a will: ${perSession.toFixed(0)} B of buffers`);
    // A 7-byte will: about its bytes, never the 8,000-byte row of its turn.
    assert.ok(perSession < 1_000, `${perSession} bytes of buffers per session`);
  });
});

// A process that measures the buffers a SQLite store keeps alive for small wills: N sessions, each
// put with a 7-byte will in a turn with an 8,000-byte message another session acknowledges in the
// next turn, every commit folded. Prints the external bytes held per session after forced
// collections (the will of a session the store holds is only readable as a copy, at load).
//
// Usage: deno run -A --v8-flags=--expose-gc _sqlite_will_child.ts <path>
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { message, session } from "./_conformance.ts";

const N = 300;
const gc = (globalThis as unknown as { gc: () => void }).gc;

await using store = SqliteStore.open(Deno.args[0]!, { sync: "normal", compactBytes: 1 });
store.apply([{ type: "putSession", session: session("b") }]);
await store.commit();
async function turns(from: number, n: number): Promise<void> {
  for (let i = from; i < from + n; i++) {
    const will = { message: message("will", "w-small"), delayInterval: 0 };
    store.apply([
      { type: "putSession", session: session(`w-${i}`, { will }) },
      {
        type: "putMessage",
        id: i,
        message: { ...message("t", ""), payload: new Uint8Array(8_000) },
      },
      { type: "queueOutbound", clientId: "b", seq: i, messageId: i, qos: 1, packetId: 1 },
    ]);
    await store.commit();
    store.apply([{ type: "deleteOutbound", clientId: "b", seq: i }]);
    await store.commit();
  }
}
/** External bytes after collections. */
function external(): number {
  for (let i = 0; i < 5; i++) gc();
  return Deno.memoryUsage().external;
}
// Once through first (buffers grown), sessions deleted again.
await turns(1, 50);
for (let i = 1; i <= 50; i++) store.apply([{ type: "deleteSession", clientId: `w-${i}` }]);
await store.commit();
const before = external();
await turns(100, N);
const after = external();
const state = await store.load(Date.now());
if (state.sessions.length !== N + 1) throw new Error(`${state.sessions.length} sessions`);
console.log(JSON.stringify({ perSession: (after - before) / N }));

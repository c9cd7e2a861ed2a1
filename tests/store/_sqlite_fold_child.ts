// A process that rewrites a SQLite store again and again (generation 1, 2, …, see
// `_rewrite_states.ts`) with a small `compactBytes`, so that each rewrite's log is folded in
// pieces (`_sqlite_staged_fold.ts`), and prints each generation once its rewrite resolved, until
// it is killed. Used by the kill -9 test of the fold in pieces.
//
// Usage: deno run -A _sqlite_fold_child.ts <path>
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { generation } from "./_rewrite_states.ts";

const store = SqliteStore.open(Deno.args[0]!, {
  sync: "normal",
  compactBytes: 16 * 1024,
  pieceBytes: 4096,
});
const encoder = new TextEncoder();
for (let g = 1;; g++) {
  await store.rewrite(generation(g));
  Deno.stdout.writeSync(encoder.encode(`${g}\n`));
  // Another turn, so that the parent's kill may land between two rewrites too.
  await new Promise((resolve) => setTimeout(resolve, 0));
}

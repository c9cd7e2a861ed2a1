// The group commit every store shares: a write that failed while no commit() waited for it (a
// turn whose deliveries no connection waits for, such as messages queued for an offline session)
// is reported by the next commit(), not hidden by a later write that worked: else the writer
// counts the lost batches as committed, and no outage rewrites them from memory.
import assert from "node:assert/strict";
import { GroupCommitStore } from "../../src/store/_group_commit.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";

/** Writes nothing anywhere; its next write fails when `failNext` is set. */
class FlakyStore extends GroupCommitStore<number> {
  failNext = false;
  written = 0;

  constructor() {
    super("flaky");
  }

  protected prepare(batch: readonly StoreMutation[]): number {
    return batch.length;
  }

  protected writeBatches(batches: number[]): Promise<void> {
    if (this.failNext) {
      this.failNext = false;
      return Promise.reject(new Error("the write was lost"));
    }
    this.written += batches.length;
    return Promise.resolve();
  }

  protected async shutdown(written: Promise<void> | undefined): Promise<void> {
    await written;
  }
}

const counter: StoreMutation[] = [{ type: "setCounter", name: "n", value: 1 }];

/** Lets the store's end-of-turn write run and settle. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

Deno.test("GroupCommitStore reports a failed write nobody waited for at the next commit", async () => {
  const store = new FlakyStore();
  store.failNext = true;
  store.apply(counter);
  await nextTurn(); // written and failed, with no commit() asked for
  store.apply(counter);
  await assert.rejects(store.commit(), /the write was lost/);
  // Reported once: the writes after it go on.
  store.apply(counter);
  await store.commit();
  assert.equal(store.written, 2);
  await store.close();
});

Deno.test("GroupCommitStore reports a failed write once, to the commit that waited for it", async () => {
  const store = new FlakyStore();
  store.failNext = true;
  store.apply(counter);
  await assert.rejects(store.commit(), /the write was lost/);
  store.apply(counter);
  await store.commit();
  assert.equal(store.written, 1);
  await store.close();
});

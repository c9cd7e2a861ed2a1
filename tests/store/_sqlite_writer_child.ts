// A process that writes to a SQLite store in a loop and prints the last sequence number of
// every commit that resolved, until it is killed. Used by the kill -9 test.
//
// Usage: deno run -A _sqlite_writer_child.ts <path> <full|normal> [worker|thread] [compactBytes]
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { SqliteWorkerStore } from "../../src/store/sqlite_worker_store.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";

const [path, sync, worker, compact] = Deno.args as [
  string,
  "full" | "normal",
  string | undefined,
  string | undefined,
];
const options = { sync, ...(compact === undefined ? {} : { compactBytes: Number(compact) }) };
const store = worker === "worker"
  ? await SqliteWorkerStore.open(path, options)
  : SqliteStore.open(path, options);
store.apply([{
  type: "putSession",
  session: {
    clientId: "sub",
    protocolVersion: 4,
    clean: false,
    expiryInterval: undefined,
    offlineSince: 0,
  },
}]);
await store.commit();
const payload = new Uint8Array(512).fill(7);
const encoder = new TextEncoder();
for (let seq = 1;; seq += 3) {
  // Three batches per turn, as three publishers would: one transaction.
  for (let i = seq; i < seq + 3; i++) {
    const batch: StoreMutation[] = [
      { type: "putMessage", id: i, message: { topic: `t/${i}`, payload, qos: 1, retain: false } },
      { type: "queueOutbound", clientId: "sub", seq: i, messageId: i, qos: 1 },
    ];
    // The subscriber acknowledges what is 50 behind: those rows and messages go.
    if (i > 50) batch.push({ type: "deleteOutbound", clientId: "sub", seq: i - 50 });
    // Once per turn, so that the messages and entries of its batches are written together.
    if (i === seq + 2) batch.push({ type: "setCounter", name: "last", value: i });
    store.apply(batch);
  }
  await store.commit();
  Deno.stdout.writeSync(encoder.encode(`${seq + 2}\n`));
}

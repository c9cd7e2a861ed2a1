/**
 * The SQLite store defers acknowledgements and inbound ids to the end of a transaction
 * (`src/store/_sqlite_key_groups.ts`): random batches over a few keys must leave it in the same
 * state as the memory store, which applies every mutation in place.
 *
 * @module
 */

import assert from "node:assert/strict";
import { MemoryStore } from "../../src/store/memory_store.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import type { StoredState } from "../../src/store/stored_state.ts";
import { message, session } from "./_conformance.ts";
import { withDir } from "./_sqlite_helpers.ts";

/** A small seeded generator (mulberry32), so that a failure can be replayed. */
function random(seed: number): (n: number) => number {
  let a = seed;
  return (n) => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

function mutation(pick: (n: number) => number, nextId: () => number): StoreMutation {
  const clientId = ["a", "b"][pick(2)]!;
  const seq = 1 + pick(4);
  const packetId = 1 + pick(3);
  switch (pick(11)) {
    case 0:
      return { type: "putSession", session: session(clientId) };
    case 1:
      return pick(3) === 0
        ? { type: "deleteSession", clientId }
        : { type: "putSession", session: session(clientId) };
    case 2:
      return {
        type: "putMessage",
        id: pick(2) === 0 ? nextId() : 1 + pick(3),
        message: message("t", "m"),
      };
    case 3:
    case 4: {
      const qos = (1 + pick(2)) as 1 | 2;
      return {
        type: "queueOutbound",
        clientId,
        seq,
        messageId: 1 + pick(4),
        qos,
        ...(pick(2) === 0 ? { packetId } : {}),
      };
    }
    case 5:
      return { type: "sendOutbound", clientId, seq, packetId };
    case 6:
      return { type: "pubrelOutbound", clientId, seq };
    case 7:
      return { type: "deleteOutbound", clientId, seq };
    case 8:
      return { type: "putInbound", clientId, packetId };
    case 9:
      return { type: "deleteInbound", clientId, packetId };
    default:
      return {
        type: "putSubscription",
        clientId,
        subscription: {
          filter: "t",
          qos: 1,
          noLocal: false,
          retainAsPublished: false,
          retainHandling: 0,
        },
      };
  }
}

function shape(state: StoredState): unknown {
  return {
    sessions: state.sessions.map((s) => ({
      id: s.session.clientId,
      outbound: s.outbound,
      inbound: s.inbound,
      subscriptions: s.subscriptions.length,
    })),
    messages: [...state.messages.keys()].sort((a, b) => a - b),
  };
}

Deno.test("SqliteStore: acknowledgements and inbound ids deferred to the end of a transaction leave the state of in-place writes", async () => {
  await withDir(async (dir) => {
    for (let seed = 1; seed <= 150; seed++) {
      const pick = random(seed);
      let id = 10;
      const nextId = () => id++;
      await using memory = new MemoryStore();
      await using sqlite = SqliteStore.open(`${dir}/s${seed}.db`, { sync: "normal" });
      for (let turn = 0; turn < 3; turn++) {
        // Several batches in one turn: one transaction.
        for (let b = 0; b < 3; b++) {
          const batch = [...Array(1 + pick(12))].map(() => mutation(pick, nextId));
          memory.apply(batch);
          sqlite.apply(batch);
        }
        await Promise.all([memory.commit(), sqlite.commit()]);
      }
      const now = Date.now();
      assert.deepEqual(
        shape(await sqlite.load(now)),
        shape(await memory.load(now)),
        `seed ${seed}`,
      );
    }
  });
});

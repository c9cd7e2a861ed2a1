/**
 * The SQLite store writes the messages and outbound entries of a transaction as multi-row
 * statements (`src/store/_sqlite_insert_groups.ts`): random batches shaped like the journal's
 * (a message put with its deliveries), mixed with acknowledgements of entries still waiting,
 * entries that are ignored (session gone, key taken) and session changes, must leave it in the
 * same state as the memory store, which applies every mutation in place.
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

const CLIENTS = ["a", "b", "c"];

/** One batch: mostly a message with its deliveries, then acknowledgements and the rare rest. */
function batch(pick: (n: number) => number): StoreMutation[] {
  const out: StoreMutation[] = [];
  const steps = 1 + pick(4);
  for (let s = 0; s < steps; s++) {
    const clientId = CLIENTS[pick(CLIENTS.length)]!;
    const seq = 1 + pick(8);
    const id = 1 + pick(6);
    switch (pick(10)) {
      case 0:
      case 1:
      case 2: {
        out.push({ type: "putMessage", id, message: message(`t/${id}`, `m${pick(3)}`) });
        for (let d = pick(3); d > 0; d--) {
          const qos = (1 + pick(2)) as 1 | 2;
          out.push({
            type: "queueOutbound",
            clientId: CLIENTS[pick(CLIENTS.length)]!,
            seq: 1 + pick(8),
            messageId: pick(5) === 0 ? 1 + pick(6) : id,
            qos,
            ...(pick(2) === 0 ? { packetId: 1 + pick(5) } : {}),
          });
        }
        break;
      }
      case 3:
        out.push({ type: "deleteOutbound", clientId, seq });
        break;
      case 4:
        out.push({ type: "sendOutbound", clientId, seq, packetId: 1 + pick(5) });
        break;
      case 5:
        out.push({ type: "pubrelOutbound", clientId, seq });
        break;
      case 6:
        out.push({
          type: "queueOutbound",
          clientId,
          seq,
          messageId: id,
          qos: 1,
        });
        break;
      case 7:
        out.push(
          pick(2) === 0
            ? { type: "deleteSession", clientId }
            : { type: "putSession", session: session(clientId) },
        );
        break;
      case 8:
        out.push({ type: "putInbound", clientId, packetId: 1 + pick(3) });
        break;
      default:
        out.push({ type: "putMessage", id, message: message(`t/${id}`, "again") });
    }
  }
  return out;
}

function shape(state: StoredState): unknown {
  return {
    sessions: state.sessions.map((s) => ({
      id: s.session.clientId,
      outbound: s.outbound,
      inbound: s.inbound,
    })),
    messages: [...state.messages.entries()]
      .sort(([a], [b]) => a - b)
      .map(([id, m]) => [id, m.topic, new TextDecoder().decode(m.payload)]),
  };
}

Deno.test("SqliteStore: messages and entries inserted as multi-row statements leave the state of in-place writes", async () => {
  await withDir(async (dir) => {
    for (let seed = 1; seed <= 200; seed++) {
      const pick = random(seed);
      await using memory = new MemoryStore();
      await using sqlite = SqliteStore.open(`${dir}/s${seed}.db`, { sync: "normal" });
      const start: StoreMutation[] = CLIENTS.slice(0, 2).map((c) => ({
        type: "putSession",
        session: session(c),
      }));
      memory.apply(start);
      sqlite.apply(start);
      for (let turn = 0; turn < 4; turn++) {
        // Several batches in one turn: one transaction.
        for (let b = 0, n = 1 + pick(5); b < n; b++) {
          const mutations = batch(pick);
          memory.apply(mutations);
          sqlite.apply(mutations);
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

Deno.test("SqliteStore: a message delivered and acknowledged in one transaction leaves nothing behind", async () => {
  await withDir(async (dir) => {
    await using store = SqliteStore.open(`${dir}/s.db`, { sync: "normal" });
    store.apply([{ type: "putSession", session: session("a") }]);
    for (let i = 1; i <= 100; i++) {
      store.apply([
        { type: "putMessage", id: i, message: message("t", `m${i}`) },
        { type: "queueOutbound", clientId: "a", seq: i, messageId: i, qos: 1, packetId: i },
      ]);
      // Acknowledged in a later batch of the same turn, except the last ten.
      if (i > 10) store.apply([{ type: "deleteOutbound", clientId: "a", seq: i - 10 }]);
    }
    await store.commit();
    const state = await store.load(Date.now());
    assert.deepEqual(state.sessions[0]!.outbound.map((e) => e.seq), [
      91,
      92,
      93,
      94,
      95,
      96,
      97,
      98,
      99,
      100,
    ]);
    assert.deepEqual([...state.messages.keys()].sort((a, b) => a - b), [
      91,
      92,
      93,
      94,
      95,
      96,
      97,
      98,
      99,
      100,
    ]);
  });
});

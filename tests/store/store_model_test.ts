// Random sequences of mutations applied to the memory store and to a SQLite file must load back
// the same state: the two backends implement one contract, including the ignored writes, the
// shared-message references and load-time expiry.
import assert from "node:assert/strict";
import fc from "fast-check";
import { MemoryStore } from "../../src/store/memory_store.ts";
import type { MessageRecord } from "../../src/store/message_record.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import type { StoredState } from "../../src/store/stored_state.ts";
import { copyAsCrashed } from "./_sqlite_helpers.ts";

const NOW = 1_750_000_000_000;

const clientId = fc.constantFrom("a", "b", "c");
const seq = fc.integer({ min: 1, max: 6 });
const messageId = fc.integer({ min: 1, max: 5 });
const packetId = fc.integer({ min: 1, max: 3 });
const qos = fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2>;
const expiresAt = fc.option(fc.constantFrom(NOW - 1, NOW, NOW + 1), { nil: undefined });

const message: fc.Arbitrary<MessageRecord> = fc.record({
  topic: fc.constantFrom("t/1", "t/2", "t/é"),
  payload: fc.uint8Array({ maxLength: 8 }),
  qos,
  retain: fc.boolean(),
  origin: fc.option(clientId, { nil: undefined }),
  expiresAt,
  properties: fc.option(
    fc.record({
      contentType: fc.constantFrom("text/plain", "é"),
      correlationData: fc.constantFrom("", "AAE="),
      userProperties: fc.array(fc.tuple(fc.string(), fc.string()), { maxLength: 2 }),
    }, { requiredKeys: [] }),
    { nil: undefined },
  ),
}).map((m) => {
  const out: MessageRecord = { topic: m.topic, payload: m.payload, qos: m.qos, retain: m.retain };
  if (m.properties !== undefined) out.properties = m.properties;
  if (m.origin !== undefined) out.origin = m.origin;
  if (m.expiresAt !== undefined) out.expiresAt = m.expiresAt;
  return out;
});

const mutation: fc.Arbitrary<StoreMutation> = fc.oneof(
  fc.record({
    clientId,
    expiryInterval: fc.option(fc.constantFrom(0, 1, 100), { nil: undefined }),
    offlineSince: fc.option(fc.constantFrom(NOW - 50_000, NOW - 500), { nil: undefined }),
    will: fc.option(message, { nil: undefined }),
  }).map(({ clientId, expiryInterval, offlineSince, will }): StoreMutation => ({
    type: "putSession",
    session: {
      clientId,
      protocolVersion: 5,
      clean: false,
      expiryInterval,
      offlineSince,
      ...(will === undefined ? {} : { will: { message: will, delayInterval: 1 } }),
    },
  })),
  clientId.map((clientId): StoreMutation => ({ type: "deleteSession", clientId })),
  fc.record({ clientId, filter: fc.constantFrom("t/+", "#"), qos }).map(
    ({ clientId, filter, qos }): StoreMutation => ({
      type: "putSubscription",
      clientId,
      subscription: { filter, qos, noLocal: false, retainAsPublished: true, retainHandling: 1 },
    }),
  ),
  fc.record({ clientId, filter: fc.constantFrom("t/+", "#") }).map((m): StoreMutation => ({
    type: "deleteSubscription",
    ...m,
  })),
  fc.record({ id: messageId, message }).map((m): StoreMutation => ({ type: "putMessage", ...m })),
  fc.record({
    clientId,
    seq,
    messageId,
    qos,
    packetId: fc.option(packetId, { nil: undefined }),
  }).map((m): StoreMutation => {
    const out: StoreMutation = {
      type: "queueOutbound",
      clientId: m.clientId,
      seq: m.seq,
      messageId: m.messageId,
      qos: m.qos,
    };
    if (m.packetId !== undefined && m.qos > 0) out.packetId = m.packetId;
    return out;
  }),
  fc.record({ clientId, seq, packetId }).map((m): StoreMutation => ({
    type: "sendOutbound",
    ...m,
  })),
  fc.record({ clientId, seq }).map((m): StoreMutation => ({ type: "pubrelOutbound", ...m })),
  fc.record({ clientId, seq }).map((m): StoreMutation => ({ type: "deleteOutbound", ...m })),
  fc.record({ clientId, packetId }).map((m): StoreMutation => ({ type: "putInbound", ...m })),
  fc.record({ clientId, packetId }).map((m): StoreMutation => ({ type: "deleteInbound", ...m })),
  message.map((m): StoreMutation => ({ type: "putRetained", message: { ...m, retain: true } })),
  fc.constantFrom("t/1", "t/2").map((topic): StoreMutation => ({ type: "deleteRetained", topic })),
  fc.record({ name: fc.constantFrom("x", "y"), value: fc.integer() }).map((m): StoreMutation => ({
    type: "setCounter",
    ...m,
  })),
  fc.constant<StoreMutation>({ type: "clear" }),
);

/** The state in a form `deepEqual` compares without caring about Map insertion order. */
function normal(state: StoredState): unknown {
  return {
    ...state,
    messages: [...state.messages].sort((a, b) => a[0] - b[0]),
    counters: [...state.counters].sort(),
  };
}

Deno.test("MemoryStore and SqliteStore load the same state after random mutation batches, from the log, the tables or both", async () => {
  const dir = await Deno.makeTempDir({ prefix: "amqtt_store_model_" });
  let run = 0;
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(mutation, { maxLength: 8 }), { minLength: 1, maxLength: 6 }),
        fc.constantFrom(NOW - 100_000, NOW),
        // Fold at every commit, at some, or only at close.
        fc.constantFrom(1, 150, 1e9),
        async (batches, loadAt, compactBytes) => {
          const memory = new MemoryStore();
          const path = `${dir}/run-${run++}.db`;
          const crashed = `${path}-crashed.db`;
          const sqlite = SqliteStore.open(path, { sync: "normal", compactBytes });
          try {
            // Half the batches in one turn (one transaction), then the rest one commit each.
            const half = Math.ceil(batches.length / 2);
            for (const batch of batches.slice(0, half)) {
              memory.apply(batch);
              sqlite.apply(batch);
            }
            await sqlite.commit();
            for (const batch of batches.slice(half)) {
              memory.apply(batch);
              sqlite.apply(batch);
              await sqlite.commit();
            }
            await copyAsCrashed(path, crashed);
            const expected = normal(await memory.load(loadAt));
            assert.deepEqual(normal(await sqlite.load(loadAt)), expected);
            // The tables as last folded, with the log rows since replayed over them.
            const replayed = SqliteStore.open(crashed, { sync: "normal" });
            try {
              assert.deepEqual(normal(await replayed.load(loadAt)), expected);
            } finally {
              await replayed.close();
            }
            await sqlite.close();
            // And again from the file, after the load-time deletions were written.
            const reopened = SqliteStore.open(path, { sync: "normal" });
            try {
              assert.deepEqual(
                normal(await reopened.load(loadAt)),
                normal(await memory.load(loadAt)),
              );
            } finally {
              await reopened.close();
            }
          } finally {
            await sqlite.close();
            await memory.close();
            await Deno.remove(path);
            await Deno.remove(crashed).catch(() => {});
          }
        },
      ),
      { numRuns: 100 },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

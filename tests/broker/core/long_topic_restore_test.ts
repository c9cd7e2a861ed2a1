/**
 * Stored state with topics or filters past 16383 characters (`MAX_TOPIC_LENGTH`), written by a
 * release before the limit: a broker restarted on that SQLite file or Redis leaves those entries
 * out with a log line (a subscription, a retained message, a queued message, a will) and
 * restores the rest, instead of failing to start. No map of the broker may hold such a key: V8
 * hashes longer strings by their length alone (topic_length.ts).
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../../src/packet/mod.ts";
import type { BrokerStore } from "../../../src/store/broker_store.ts";
import { SqliteStore } from "../../../src/store/sqlite_store.ts";
import { RedisStore } from "../../../src/cluster/redis_store.ts";
import type { StoreMutation } from "../../../src/store/mutation.ts";
import { connect, subscribe, T0, testCore } from "../../_helpers/core.ts";
import { connectPacket, publishPacket } from "../../_helpers/test_client.ts";
import { RedisServer } from "../../_helpers/redis.ts";
import { tempDir } from "../../_helpers/temp_dir.ts";

/** Each placeholder of the first run becomes a topic one character past the limit in the store. */
const LONG = "x".repeat(16384);
const swap = (s: string) => s.replaceAll("LONG", LONG);

/** `value` with every string's placeholders swapped (typed arrays kept as they are). */
function swapped<T>(value: T): T {
  if (typeof value === "string") return swap(value) as T;
  if (Array.isArray(value)) return value.map(swapped) as T;
  if (value === null || typeof value !== "object" || ArrayBuffer.isView(value)) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, swapped(v)])) as T;
}

const resume = (will?: string) =>
  connectPacket({
    clientId: "c",
    clean: false,
    will: will === undefined
      ? undefined
      : { topic: will, payload: new Uint8Array([1]), qos: 0, retain: false },
  });

async function longEntriesLeftOut(open: () => Promise<BrokerStore>): Promise<void> {
  const pending: StoreMutation[] = [];
  const first = testCore({}, { journal: (m) => pending.push(m) });
  // A persistent session with a will, a short and a (later) long subscription, each with a
  // message in flight; a short and a long retained message.
  const c = connect(first, resume("will/LONG"));
  subscribe(first, c, "ok/#", 1);
  subscribe(first, c, "LONG/#", 1, T0 + 1);
  // Still connected when the broker stops: its will stays stored (a 3.1.1 will is published,
  // and gone, at a close).
  first.run();
  const p = connect(first, connectPacket({ clientId: "p" }), T0 + 3);
  first.handle(p, publishPacket("ok/1", "short", { qos: 1, packetId: 1 }), T0 + 4);
  first.handle(p, publishPacket("LONG/1", "long", { qos: 1, packetId: 2 }), T0 + 5);
  first.handle(p, publishPacket("kept", "r", { qos: 0, retain: true }), T0 + 6);
  first.handle(p, publishPacket("r/LONG", "r", { qos: 0, retain: true }), T0 + 7);
  first.run();
  {
    const store = await open();
    store.apply(swapped(pending.splice(0)));
    await store.commit();
    await store.close();
  }
  const store = await open();
  try {
    const state = await store.load(T0 + 1000);
    // The long entries are in the store, as an older release left them.
    const stored = state.sessions.find((s) => s.session.clientId === "c")!;
    assert.ok(stored.subscriptions.some((s) => s.filter === `${LONG}/#`));
    assert.ok(state.retained.some((r) => r.topic === `r/${LONG}`));
    const lines: string[] = [];
    const log = (line: string) => void lines.push(line);
    const second = testCore({}, {
      journal: () => {},
      logger: { debug() {}, info() {}, warning: log, error: log },
    });
    second.restore(state, T0 + 1000);
    // Left out, each said; the rest restored.
    assert.deepEqual(
      lines.map((l) => l.replace(/\("[^"]*…"\)/, "(…)")).sort(),
      [
        "Not restoring a retained message: topic over 16383 characters (…)",
        "Not restoring a subscription of c: topic over 16383 characters (…)",
        "Not restoring message 2: topic over 16383 characters (…)",
        "Not restoring the will of c: topic over 16383 characters (…)",
      ].sort(),
    );
    assert.deepEqual([...second.core.subscriptions.entries()].map((e) => e.filter), ["ok/#"]);
    assert.deepEqual([...second.core.retained.entries()].map(([t]) => t), ["kept"]);
    const back = connect(second, resume(), T0 + 1000);
    assert.equal(back.sent[0]?.type === PacketType.CONNACK && back.sent[0].sessionPresent, true);
    second.run();
    assert.deepEqual(back.published.map((m) => m.topic), ["ok/1"]);
  } finally {
    await store.close();
  }
}

Deno.test("core restore leaves out stored topics and filters over 16383 characters from a SQLite file, with a log line, and restores the rest", async () => {
  await using dir = await tempDir("amqtt-long-topic-");
  await longEntriesLeftOut(() => Promise.resolve(SqliteStore.open(`${dir.path}/state.db`)));
});

Deno.test("core restore leaves out stored topics and filters over 16383 characters from Redis, with a log line, and restores the rest", async () => {
  await using redis = await RedisServer.start();
  await longEntriesLeftOut(() => RedisStore.open({ url: redis.url, prefix: "amqtt:" }));
});

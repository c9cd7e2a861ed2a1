/**
 * A session read of the Redis store (a login's read on the store's connection, or with its claim
 * on the bus's command connection) answers at most `READ_PART_BYTES` of message bodies; the rest
 * is named in groups of at most as many bytes (a larger message alone), which the reader fetches
 * after it (`RedisStore.readRest`): a long queue of large messages read whole was one reply that
 * the bus's heartbeats waited behind for over a second (`bench/claim_read_delay.ts`). The session
 * read in parts is the session stored, message for message. A real redis-server.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Buffer } from "node:buffer";
import { Redis } from "ioredis";
import { RedisStore } from "../../src/cluster/redis_store.ts";
import { CLAIM_SCRIPT } from "../../src/cluster/_bus_scripts.ts";
import { LOAD_SESSION_SCRIPT, READ_PART_BYTES } from "../../src/cluster/_redis_store_scripts.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import { StoreError } from "../../src/store/store_error.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { commandCalls, poolShrunk } from "../_helpers/redis_admin.ts";
import { persistentSession } from "./_rewrite_states.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/**
 * A persistent session queued `sizes.length` messages, message `i` of `sizes[i]` bytes (each
 * byte `i % 251`), ids from 1.
 */
function session(clientId: string, sizes: number[]): StoreMutation[] {
  const mutations: StoreMutation[] = persistentSession(clientId);
  sizes.forEach((size, i) => {
    const payload = new Uint8Array(size).fill(i % 251);
    mutations.push(
      {
        type: "putMessage",
        id: i + 1,
        message: { topic: `q/${i}`, payload, qos: 1, retain: false },
      },
      { type: "queueOutbound", clientId, seq: i + 1, messageId: i + 1, qos: 1 },
    );
  });
  return mutations;
}

/** Bytes of message bodies in a read's answer, and the sizes of its groups left to read. */
async function parts(admin: Redis, P: string, rows: unknown[]) {
  const bodies = (rows[4] as Buffer[]).filter((_, i) => i % 2 === 1);
  const groups: { bytes: number; count: number }[] = [];
  for (const ids of (rows[5] ?? []) as Buffer[][]) {
    let bytes = 0;
    for (const id of ids) bytes += await admin.hstrlen(`${P}msg`, id.toString());
    groups.push({ bytes, count: ids.length });
  }
  return { read: bodies.reduce((n, b) => n + b.length, 0), groups };
}

const KB = 1024;
// 48 messages of 64 KB (3 MB), one of 1.5 MB (larger than a part), and 4 small ones.
const SIZES = [...Array(24).fill(64 * KB), 1536 * KB, ...Array(24).fill(64 * KB), 10, 20, 30, 1];

Deno.test(
  "RedisStore: a session with more than READ_PART_BYTES of messages is read in parts, each answer bounded, and comes back whole",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const P = "rp:store:";
    await using store = await RedisStore.open({ url: redis.url, prefix: P });
    const admin = new Redis({ port: redis.port, host: "127.0.0.1", lazyConnect: true });
    await admin.connect();
    try {
      store.apply(session("big", SIZES));
      await store.commit();

      // The script's answer: at most one part of bodies; the rest in groups of at most a part
      // each, but for the message larger than one, alone.
      const [rows] = await admin.callBuffer(
        "EVAL",
        LOAD_SESSION_SCRIPT,
        "0",
        P,
        "",
        "",
        "big",
      ) as unknown[][];
      const { read, groups } = await parts(admin, P, rows);
      assert.ok(read > 0 && read <= READ_PART_BYTES, `read ${read}`);
      const shown = JSON.stringify(groups);
      assert.ok(groups.length >= 3, shown);
      assert.ok(groups.every((g) => g.bytes <= READ_PART_BYTES || g.count === 1), shown);
      assert.ok(groups.some((g) => g.bytes > 1536 * KB && g.count === 1), shown);
      const total = SIZES.reduce((n, s) => n + s, 0);
      // (Each stored record holds its topic too: a few bytes more than its payload.)
      assert.ok(read + groups.reduce((n, g) => n + g.bytes, 0) >= total);

      // Read whole through the store: every message, with its bytes, in its place.
      const state = await store.loadSession("big", 0);
      const s = state.sessions[0]!;
      assert.deepEqual(s.outbound.map((o) => o.messageId), SIZES.map((_, i) => i + 1));
      assert.equal(state.messages.size, SIZES.length);
      SIZES.forEach((size, i) => {
        const m = state.messages.get(i + 1)!;
        assert.equal(m.topic, `q/${i}`);
        assert.equal(m.payload.length, size);
        assert.ok(m.payload.every((b) => b === i % 251), `message ${i + 1}`);
      });
    } finally {
      admin.disconnect();
    }
    await poolShrunk();
  },
);

Deno.test(
  "RedisStore: a session claimed from nobody with its read (the bus's command connection) answers one part of its messages; the rest read after it on the store's connection",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const P = "rc:";
    await using store = await RedisStore.open({ url: redis.url, prefix: `${P}store:` });
    const admin = new Redis({ port: redis.port, host: "127.0.0.1", lazyConnect: true });
    await admin.connect();
    try {
      store.apply(session("big", SIZES));
      await store.commit();
      const [[previous, claimed, rows]] = await admin.callBuffer(
        "EVAL",
        CLAIM_SCRIPT,
        "0",
        P,
        "b",
        "inc-b",
        "",
        "0",
        "big",
        "frame",
        "",
        "r",
      ) as [[Buffer, number, unknown[]]];
      assert.equal(previous.toString(), "");
      assert.equal(claimed, 1);
      const { read } = await parts(admin, `${P}store:`, rows);
      assert.ok(read > 0 && read <= READ_PART_BYTES, `read ${read}`);
      const all = await store.readRest(rows);
      assert.equal((all[4] as unknown[]).length, 2 * SIZES.length);
      const { state } = store.sessionFrom(all, 0);
      assert.equal(state.sessions.length, 1);
      assert.equal(state.messages.size, SIZES.length);
      assert.deepEqual(
        [...state.messages.keys()].sort((a, b) => a - b),
        SIZES.map((_, i) => i + 1),
      );
      assert.equal(state.messages.get(25)!.payload.length, 1536 * KB);
    } finally {
      admin.disconnect();
    }
    await poolShrunk();
  },
);

Deno.test(
  "RedisStore: a session under READ_PART_BYTES is read as before the parts, one HGET per message and no size asked",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const P = "rs:store:";
    await using store = await RedisStore.open({ url: redis.url, prefix: P });
    const admin = new Redis({ port: redis.port, host: "127.0.0.1", lazyConnect: true });
    await admin.connect();
    try {
      const sizes = Array(100).fill(KB);
      store.apply(session("small", sizes));
      await store.commit();
      await admin.config("RESETSTAT");
      const [rows] = await admin.callBuffer(
        "EVAL",
        LOAD_SESSION_SCRIPT,
        "0",
        P,
        "",
        "",
        "small",
      ) as unknown[][];
      const counts = await commandCalls(admin);
      assert.equal((rows[4] as unknown[]).length, 2 * sizes.length);
      assert.deepEqual(rows[5], []);
      // The session's record, then each message's body: the read whole's commands, no more.
      assert.equal(counts.get("hget"), 1 + sizes.length);
      assert.equal(counts.get("hstrlen") ?? 0, 0);
    } finally {
      admin.disconnect();
    }
  },
);

Deno.test(
  "RedisStore: messages a read named and gone before the rest is read (Redis lost its data meanwhile) fail the read rather than be left out",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const P = "rg:store:";
    await using store = await RedisStore.open({ url: redis.url, prefix: P });
    const admin = new Redis({ port: redis.port, host: "127.0.0.1", lazyConnect: true });
    await admin.connect();
    try {
      store.apply(session("big", SIZES));
      await store.commit();
      const [rows] = await admin.callBuffer(
        "EVAL",
        LOAD_SESSION_SCRIPT,
        "0",
        P,
        "",
        "",
        "big",
      ) as unknown[][];
      assert.ok((rows[5] as unknown[]).length > 0);
      // Between the read and its rest: the data gone (FLUSHALL, or a replica without it
      // promoted). Left out, each message's delivery would be deleted by the load-time expiry
      // as of a message gone, and the session, rewritten after the loss, would lack them.
      await admin.flushall();
      await assert.rejects(
        () => store.readRest(rows),
        (error: Error) =>
          error instanceof StoreError && error.kind === "io" &&
          /Cannot read a session in parts in .*: message \d+ of the session is gone since its read/
            .test(error.message),
      );
    } finally {
      admin.disconnect();
    }
    await poolShrunk();
  },
);

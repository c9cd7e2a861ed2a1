/**
 * Redis's own time per `RedisStore` write of a cluster node (a store with `owner`, as
 * `openClusterStore` opens it): `INFO commandstats`'s `usec_per_call` of `evalsha` over each
 * scenario's writes, and the writes per second the store's client sees. The writes a QoS 1
 * message costs (store the message, queue it for the session, delete the session's previous
 * delivery):
 *
 * - "1 session, 1 message per commit": one publisher waiting for each acknowledgement.
 * - "1 session, 100 messages per commit": 100 publishers in one event-loop turn.
 * - "100 sessions, 1 message per commit": one message queued for 100 persistent sessions (a
 *   fan-out), with each one's previous delivery deleted.
 *
 * Run: deno run -A bench/redis_store_cpu.ts [rounds] [plain|fenced|counted]
 *
 * The store is the cluster's in each (`owner`); `fenced` adds the incarnation fence (`fi`, as a
 * cluster node's store has it), `counted` the fence with the node's own counter (`P gen:ID`,
 * INCRed by every write and answered); `plain` (the default) neither.
 *
 * Starts and stops its own redis-server (no persistence) on a free loopback port.
 *
 * @module
 */

import { Redis } from "ioredis";
import { RedisStore, type RedisStoreOptions } from "../src/cluster/redis_store.ts";
import type { StoreMutation } from "../src/store/mutation.ts";
import { RedisServer } from "../tests/_helpers/redis.ts";

const PAYLOAD = new Uint8Array(256).fill(42);
const FAN_OUT = 100;
const rounds = Number(Deno.args[0] ?? 3);
const mode = Deno.args[1] ?? "plain";
if (!["plain", "fenced", "counted"].includes(mode)) {
  throw new TypeError(`Unknown mode "${mode}": plain, fenced or counted`);
}

function message(id: number): StoreMutation {
  return {
    type: "putMessage",
    id,
    message: { topic: "t", payload: PAYLOAD, qos: 1, retain: false },
  };
}

function delivery(clientId: string, seq: number, id: number): StoreMutation[] {
  const out: StoreMutation[] = [{ type: "queueOutbound", clientId, seq, messageId: id, qos: 1 }];
  if (seq > 1) out.push({ type: "deleteOutbound", clientId, seq: seq - 1 });
  return out;
}

interface Scenario {
  name: string;
  commits: number;
  /** The batches of commit `i` (ids from `next`). */
  batches: (i: number, next: () => number) => StoreMutation[][];
}

const SCENARIOS: Scenario[] = [
  {
    name: "1 session, 1 message per commit",
    commits: 10_000,
    batches: (i, next) => {
      const id = next();
      return [[message(id), ...delivery("sub", i + 1, id)]];
    },
  },
  {
    name: "1 session, 100 messages per commit",
    commits: 200,
    batches: (i, next) =>
      Array.from({ length: 100 }, (_, j) => {
        const id = next();
        return [message(id), ...delivery("sub", i * 100 + j + 1, id)];
      }),
  },
  {
    name: "100 sessions, 1 message per commit",
    commits: 2_000,
    batches: (i, next) => {
      const id = next();
      const batch: StoreMutation[] = [message(id)];
      for (let s = 0; s < FAN_OUT; s++) batch.push(...delivery(`fan-${s}`, i + 1, id));
      return [batch];
    },
  },
];

async function evalshaStats(admin: Redis): Promise<{ calls: number; usec: number }> {
  const info = await admin.info("commandstats");
  const line = info.split("\n").find((l) => l.startsWith("cmdstat_evalsha:"));
  const calls = Number(/calls=(\d+)/.exec(line ?? "")?.[1] ?? 0);
  const usec = Number(/usec=(\d+)/.exec(line ?? "")?.[1] ?? 0);
  return { calls, usec };
}

await using redis = await RedisServer.start();
const admin = new Redis(redis.url, { lazyConnect: true });
await admin.connect();
try {
  for (let round = 0; round < rounds; round++) {
    for (const scenario of SCENARIOS) {
      await admin.flushall();
      const prefix = "bench:";
      const fence: RedisStoreOptions["fence"] = {
        key: `${prefix}inc:n`,
        token: () => "i",
        epochKey: `${prefix}epoch`,
        epoch: () => "e",
        genKey: `${prefix}gen`,
        gen: () => 1,
      };
      if (mode === "counted") fence.nodeGenKey = `${prefix}gen:n`;
      await admin.mset(`${prefix}inc:n`, "i", `${prefix}epoch`, "e", `${prefix}gen`, "1");
      await using store = await RedisStore.open({
        url: redis.url,
        prefix: `${prefix}store:`,
        owner: { key: `${prefix}owner`, node: "n" },
        ...(mode === "plain" ? {} : { fence }),
      });
      const ids = ["sub", ...Array.from({ length: FAN_OUT }, (_, i) => `fan-${i}`)];
      for (const clientId of ids) await admin.hset(`${prefix}owner`, clientId, "n");
      store.apply(ids.map((clientId) => ({
        type: "putSession",
        session: {
          clientId,
          protocolVersion: 4,
          clean: false,
          expiryInterval: undefined,
          offlineSince: undefined,
        },
      })));
      await store.commit();
      let id = 0;
      const next = () => ++id;
      await admin.config("RESETSTAT");
      const started = performance.now();
      for (let i = 0; i < scenario.commits; i++) {
        for (const batch of scenario.batches(i, next)) store.apply(batch);
        await store.commit();
      }
      const seconds = (performance.now() - started) / 1000;
      const { calls, usec } = await evalshaStats(admin);
      console.log(
        `${mode} ${scenario.name}: ${
          (usec / Math.max(calls, 1)).toFixed(1)
        } µs of Redis per write ` +
          `(${calls} writes), ${Math.round(scenario.commits / seconds)} commits/s`,
      );
    }
  }
} finally {
  admin.disconnect();
}

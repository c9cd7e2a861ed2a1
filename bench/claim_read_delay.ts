/**
 * How long the bus's heartbeats wait while logins claim large stored sessions from nobody
 * (`CLAIM_SCRIPT` with its read, `r`, on the bus's command connection), by the size of the
 * session: `queued` messages of `payload` bytes each, and by the number of concurrent logins
 * (`--logins N`: N such sessions claimed in one call, as `ClusterBus` batches the claims of
 * concurrent logins).
 *
 * For each size: N sessions are written with `RedisStore` (each its record, one subscription,
 * `queued` messages queued); then, on one ioredis connection with the bus's scripts, the claim of
 * all N in one call (Buffer replies, as `ClusterBus` sends it) with a heartbeat
 * (`HEARTBEAT_SCRIPT`) right behind it, and one more heartbeat every 5 ms until every session is
 * read whole (`RedisStore.readRest`, on the store's connection, where the checkout has it: the
 * messages, and the outbound entries where the checkout reads them in parts, past the claim's
 * part). Reported:
 * the heartbeat sent behind the claim (its wait: Redis runs the claim's script and sends its
 * reply first, and ioredis parses that before the heartbeat's), the longest heartbeat round trip
 * during the load, the heartbeat alone, the time until the session is read whole, and Redis's time
 * in the scripts and HMGETs (`INFO commandstats`), and the claim's reply in MB. Median of
 * `--runs` (3) per size; the ownership is dropped between runs so that each claims from nobody.
 *
 * Usage: deno run -A bench/claim_read_delay.ts [--root DIR] [--sizes 1000x1024,...] [--runs 3]
 *   [--logins 1]
 *   (`QUEUEDxPAYLOAD`; default: 1,000 messages, the default `max_queued_messages`, of 1 KB to
 *   512 KB, and 10,000 and 100,000 messages of 1 KB). `--root` runs another checkout's scripts
 *   and store (a before/after comparison).
 *
 * Loopback only; starts and stops its own redis-server. Prints one JSON line per size.
 *
 * @module
 */

import { Redis } from "ioredis";
import type { StoreMutation } from "../src/store/mutation.ts";
import { RedisServer } from "../tests/_helpers/redis.ts";

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1]! : fallback;
}

const root = flag("--root", new URL("..", import.meta.url).pathname).replace(/\/?$/, "/");
const { CLAIM_SCRIPT, HEARTBEAT_SCRIPT } = await import(`${root}src/cluster/_bus_scripts.ts`);
const { RedisStore } = await import(`${root}src/cluster/redis_store.ts`);
const SIZES = flag(
  "--sizes",
  "1000x1024,1000x16384,1000x65536,1000x131072,1000x262144,1000x524288,10000x1024,100000x1024",
).split(",").map((s) => s.split("x").map(Number) as [number, number]);
const RUNS = Number(flag("--runs", "3"));
const LOGINS = Number(flag("--logins", "1"));
const P = "cr:";

type Scripted = Redis & {
  claimBuffer(...args: (string | Buffer)[]): Promise<unknown>;
  heartbeat(...args: string[]): Promise<unknown>;
};

/** Bytes of the bodies and strings in a reply, nested lists walked. */
function replyBytes(reply: unknown): number {
  if (Array.isArray(reply)) return reply.reduce((n: number, r) => n + replyBytes(r), 0);
  if (reply instanceof Uint8Array) return reply.byteLength;
  return typeof reply === "string" ? reply.length : 0;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function scriptUsec(admin: Redis): Promise<number> {
  const info = await admin.info("commandstats");
  let usec = 0;
  for (const line of info.split("\n")) {
    const m = /^cmdstat_(evalsha|eval|hmget):.*usec=(\d+)/.exec(line);
    if (m !== null) usec += Number(m[2]);
  }
  return usec;
}

await using server = await RedisServer.start();
// The claiming node's store (as a cluster node's: its reads in parts check that it is the
// session's writer, which its claim made it).
const store = await RedisStore.open({
  url: server.url,
  prefix: `${P}store:`,
  owner: { key: `${P}owner`, node: "me" },
});
const admin = new Redis({ host: "127.0.0.1", port: server.port });
const cmd = new Redis({ host: "127.0.0.1", port: server.port }) as Scripted;
cmd.defineCommand("claim", { numberOfKeys: 0, lua: CLAIM_SCRIPT });
cmd.defineCommand("heartbeat", { numberOfKeys: 0, lua: HEARTBEAT_SCRIPT });
const heartbeat = () => {
  const t = performance.now();
  return cmd.heartbeat(P, "me", "10000", "inc-me", "", "0").then(() => performance.now() - t);
};
try {
  await cmd.sadd(`${P}nodes`, "me");
  await cmd.set(`${P}inc:me`, "inc-me");
  let id = 1;
  for (const [queued, payloadBytes] of SIZES) {
    const clientIds = Array.from({ length: LOGINS }, (_, k) => `c${queued}x${payloadBytes}-${k}`);
    const payload = new Uint8Array(payloadBytes).fill(120);
    for (const clientId of clientIds) {
      store.apply([
        {
          type: "putSession",
          session: {
            clientId,
            protocolVersion: 4,
            clean: false,
            expiryInterval: 0,
            offlineSince: 1,
          },
        },
        {
          type: "putSubscription",
          clientId,
          subscription: {
            filter: "q/#",
            qos: 1,
            noLocal: false,
            retainAsPublished: false,
            retainHandling: 0,
          },
        },
      ]);
      await store.commit();
      for (let i = 0; i < queued; i += 1000) {
        const batch: StoreMutation[] = [];
        for (let j = i; j < Math.min(queued, i + 1000); j++) {
          const mid = id++;
          batch.push(
            {
              type: "putMessage",
              id: mid,
              message: { topic: "q/x", payload, qos: 1, retain: false },
            },
            { type: "queueOutbound", clientId, seq: j + 1, messageId: mid, qos: 1 },
          );
        }
        store.apply(batch);
        await store.commit();
      }
    }
    const behind: number[] = [], longest: number[] = [], alone: number[] = [];
    const whole: number[] = [], inRedis: number[] = [];
    let messages = 0;
    const replyMB: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      await admin.hdel(`${P}owner`, ...clientIds);
      alone.push(await heartbeat());
      const before = await scriptUsec(admin);
      const t0 = performance.now();
      const claims = clientIds.flatMap((c) => [c, Buffer.from("takeover"), "", "r"]);
      const claim = cmd.claimBuffer(P, "me", "inc-me", "", "0", ...claims);
      const first = heartbeat();
      let done = false;
      const beats: Promise<number>[] = [first];
      const ticker = (async () => {
        while (!done) {
          await new Promise((r) => setTimeout(r, 5));
          if (!done) beats.push(heartbeat());
        }
      })();
      const reply = await claim as [Buffer, number, unknown[]][];
      replyMB.push(replyBytes(reply) / 2 ** 20);
      const read = await Promise.all(clientIds.map(async (_, k) => {
        const rows = reply[k]![2];
        return typeof store.readRest === "function" ? await store.readRest(rows) : rows;
      }));
      whole.push(performance.now() - t0);
      done = true;
      await ticker;
      const rtts = await Promise.all(beats);
      behind.push(await first);
      longest.push(Math.max(...rtts));
      inRedis.push(((await scriptUsec(admin)) - before) / 1000);
      messages = Math.min(...read.map((rows) => (rows[4] as unknown[]).length / 2));
    }
    if (messages !== queued) throw new Error(`read ${messages} of ${queued} messages`);
    console.log(JSON.stringify({
      logins: LOGINS,
      queued,
      payloadBytes,
      sessionMB: +(queued * payloadBytes / 2 ** 20).toFixed(1),
      claimReplyMB: +median(replyMB).toFixed(1),
      heartbeatAloneMs: +median(alone).toFixed(1),
      heartbeatBehindClaimMs: +median(behind).toFixed(1),
      longestHeartbeatMs: +median(longest).toFixed(1),
      sessionReadMs: +median(whole).toFixed(1),
      redisMs: +median(inRedis).toFixed(1),
    }));
    // Dropped before the next size: Redis holds one session at a time.
    await admin.del(
      ...clientIds.map((c) => `${P}store:out:${c}`),
      `${P}store:msg`,
      `${P}store:ref`,
    );
  }
} finally {
  cmd.disconnect();
  admin.disconnect();
  await store.close();
}

/**
 * How long one script holds Redis (every client of it, every node's heartbeats) while a reader
 * that is not a session's writer (a store outside a cluster, or a node reading a session another
 * node owns) reads a long queue: `COPY` of the entries in one step (the read before session 15)
 * against the read in place in parts with a mark (`P reading`, `READ_SESSION_LUA` and
 * `READ_ENTRIES_SCRIPT`), by the queue's length.
 *
 * For each length: the session's rows are written straight into Redis in the store's format
 * (pipelined HSETs: a million deliveries in seconds); then `COPY P out:ID` to another key in a
 * script of its own, and the read in parts from the session's read to its last part, each script
 * timed by Redis itself (`SLOWLOG`, threshold 1 ms: the microseconds of each script). Reported: the
 * COPY's script, the longest script of the read in parts, their count and sum. Median of `--runs`
 * (3) per length.
 *
 * Usage: deno run -A bench/read_block.ts [--counts 100000,1000000] [--runs 3]
 *
 * Loopback only; starts and stops its own redis-server. Prints one JSON line per length.
 *
 * @module
 */

import { Redis } from "ioredis";
import { RedisServer } from "../tests/_helpers/redis.ts";
import { LOAD_SESSION_SCRIPT, READ_ENTRIES_SCRIPT } from "../src/cluster/_redis_store_scripts.ts";

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1]! : fallback;
}

const COUNTS = flag("--counts", "100000,1000000").split(",").map(Number);
const RUNS = Number(flag("--runs", "3"));
const P = "rb:store:";
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * The microseconds of each script Redis ran since the last call (SLOWLOG, threshold 1 ms: the
 * commands a script runs are logged too when slower, a part's HGETs are not; asked after each script).
 */
async function slowlog(admin: Redis): Promise<number[]> {
  const entries = await admin.call("SLOWLOG", "GET", "-1") as [number, number, number, string[]][];
  await admin.call("SLOWLOG", "RESET");
  return entries.filter((e) => /^eval/i.test(e[3][0]!)).map((e) => e[2]);
}

await using server = await RedisServer.start();
const admin = new Redis({ host: "127.0.0.1", port: server.port });
try {
  await admin.config("SET", "slowlog-max-len", "100000");
  for (const count of COUNTS) {
    const c = `q${count}`;
    await admin.hset(`${P}sessions`, c, JSON.stringify({ clientId: c, protocolVersion: 4 }));
    for (let i = 0; i < count; i += 1000) {
      const out: string[] = [];
      const msg: string[] = [];
      for (let j = i + 1; j <= Math.min(count, i + 1000); j++) {
        out.push(String(j), `queued|1||${j}`);
        msg.push(String(j), `message record ${j}`);
      }
      const pipe = admin.pipeline();
      pipe.hset(`${P}out:${c}`, ...out);
      pipe.hset(`${P}msg`, ...msg);
      await pipe.exec();
    }
    const copyMs: number[] = [];
    const longestMs: number[] = [];
    const scripts: number[] = [];
    const sumMs: number[] = [];
    const parts: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      await admin.call("CONFIG", "SET", "slowlog-log-slower-than", "1000");
      await admin.call("SLOWLOG", "RESET");
      await admin.eval(
        "return redis.call('COPY', KEYS[1], KEYS[2])",
        2,
        `${P}out:${c}`,
        `${P}copy`,
      );
      copyMs.push(Math.max(...await slowlog(admin)) / 1000);
      await admin.del(`${P}copy`);
      // The read as a reader that is not the writer: its session's read, then every part.
      const [rows] = await admin.callBuffer("EVAL", LOAD_SESSION_SCRIPT, "0", P, "", "", c) as [
        unknown[],
      ];
      const times = await slowlog(admin);
      const from = rows[6] as Buffer[];
      let cursor = "0";
      const seen = new Set<string>();
      let calls = 0;
      do {
        calls++;
        const [next, flat] = await admin.callBuffer(
          "EVAL",
          READ_ENTRIES_SCRIPT,
          "0",
          P,
          `${P}out:${c}`,
          cursor,
          c,
          "",
          from[4]!.toString(),
        ) as [Buffer, Buffer[]];
        for (let i = 0; i < flat.length; i += 2) seen.add(flat[i]!.toString());
        times.push(...await slowlog(admin));
        cursor = next.toString();
      } while (cursor !== "0");
      // Every entry read, or the figures are of another read.
      if (seen.size !== count) throw new Error(`read ${seen.size} entries of ${count}`);
      parts.push(calls);
      await admin.call("CONFIG", "SET", "slowlog-log-slower-than", "10000");
      longestMs.push(Math.max(...times) / 1000);
      scripts.push(times.length);
      sumMs.push(times.reduce((a, b) => a + b, 0) / 1000);
    }
    console.log(JSON.stringify({
      entries: count,
      copyMs: median(copyMs),
      partsLongestMs: median(longestMs),
      partsScripts: median(scripts),
      partCalls: median(parts),
      partsSumMs: Math.round(median(sumMs)),
      runs: RUNS,
    }));
    await admin.del(`${P}out:${c}`, `${P}msg`);
  }
} finally {
  admin.disconnect();
}

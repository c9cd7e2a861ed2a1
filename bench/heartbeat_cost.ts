/**
 * Redis CPU per run of the bus's heartbeat script (`HEARTBEAT_SCRIPT`), for A/B comparisons of the
 * script between two checkouts: `nodes` registered nodes (set up by hand, alive for the whole
 * run, so nothing is reaped), one of them heartbeating `runs` times, 100 scripts per pipeline,
 * passing the last `P gen` and own `P gen:ID` it got (ignored by a script without them). Redis's own figure:
 * `INFO commandstats`, µs per EVALSHA (the script's run inside Redis, no network).
 *
 * Usage (alternate the checkouts):
 *
 *     deno run -A --config DIR/deno.json bench/heartbeat_cost.ts DIR [runs] [nodes]
 *
 * Prints one JSON line: µs per heartbeat script run in Redis, runs.
 *
 * @module
 */

const root = Deno.args[0] ?? new URL("..", import.meta.url).pathname;
const runs = Number(Deno.args[1] ?? 20_000);
const nodes = Number(Deno.args[2] ?? 8);
const { HEARTBEAT_SCRIPT } = await import(`${root}/src/cluster/_bus_scripts.ts`);
const { RedisServer } = await import(`${root}/tests/_helpers/redis.ts`);
const { Redis } = await import("ioredis");

await using server = await RedisServer.start();
const redis = new Redis({ host: "127.0.0.1", port: server.port });
try {
  const P = "hb:";
  await redis.set(`${P}epoch`, "e1");
  for (let i = 0; i < nodes; i++) {
    await redis.sadd(`${P}nodes`, `n${i}`);
    await redis.set(`${P}alive:n${i}`, "1", "PX", 3_600_000);
    await redis.set(`${P}inc:n${i}`, `i${i}`);
  }
  const sha = await redis.script("LOAD", HEARTBEAT_SCRIPT) as string;
  let gen = "0";
  let own = "0";
  const heartbeats = async (count: number) => {
    for (let done = 0; done < count; done += 100) {
      const pipeline = redis.pipeline();
      for (let i = 0; i < 100; i++) {
        pipeline.evalsha(sha, 0, P, "n0", "3600000", "i0", "e1", gen, own);
      }
      const replies = await pipeline.exec();
      const last = replies?.at(-1)?.[1] as unknown[];
      if (last.length > 4) gen = String(last[4]);
      if (last.length > 6) own = String(last[6]);
    }
  };
  await heartbeats(2_000); // warm-up
  await redis.config("RESETSTAT");
  await heartbeats(runs);
  const stats: string = await redis.info("commandstats");
  const line = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(stats)!;
  console.log(JSON.stringify({ usPerHeartbeat: Number(line[2]) / Number(line[1]), runs, nodes }));
} finally {
  redis.disconnect();
}

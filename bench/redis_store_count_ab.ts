/**
 * Redis's own time per `RedisStore` write of a cluster node with the incarnation fence (`fi`),
 * without and with the node's own counter (`P gen:ID`, INCRed by every write and answered): two
 * stores on one redis-server, alternating blocks of 2,000 commits (one QoS 1 message queued for
 * one persistent session, its previous delivery deleted), `INFO commandstats`'s µs per `evalsha`
 * over each block. Interleaved in one process so that a busy machine weighs on both alike
 * (`bench/redis_store_cpu.ts` runs one mode per process).
 *
 * Run: deno run -A bench/redis_store_count_ab.ts [rounds]
 *
 * Starts and stops its own redis-server (no persistence) on a free loopback port.
 *
 * @module
 */

import { Redis } from "ioredis";
import { RedisStore, type RedisStoreOptions } from "../src/cluster/redis_store.ts";
import type { StoreMutation } from "../src/store/mutation.ts";
import { RedisServer } from "../tests/_helpers/redis.ts";

const rounds = Number(Deno.args[0] ?? 10);
const COMMITS = 2_000;
const P = "bench:";
const PAYLOAD = new Uint8Array(256).fill(42);

await using server = await RedisServer.start();
const admin = new Redis({ host: "127.0.0.1", port: server.port });
try {
  await admin.mset(`${P}inc:n`, "i", `${P}epoch`, "e", `${P}gen`, "1");
  await admin.hset(`${P}owner`, "sub", "n");
  const open = (counted: boolean) => {
    const fence: RedisStoreOptions["fence"] = {
      key: `${P}inc:n`,
      token: () => "i",
      epochKey: `${P}epoch`,
      epoch: () => "e",
      genKey: `${P}gen`,
      gen: () => 1,
    };
    if (counted) fence.nodeGenKey = `${P}gen:n`;
    return RedisStore.open({
      url: server.url,
      prefix: `${P}store:`,
      owner: { key: `${P}owner`, node: "n" },
      fence,
    });
  };
  await using fenced = await open(false);
  await using counted = await open(true);
  fenced.apply([{
    type: "putSession",
    session: {
      clientId: "sub",
      protocolVersion: 4,
      clean: false,
      expiryInterval: undefined,
      offlineSince: undefined,
    },
  }]);
  await fenced.commit();
  let id = 0;
  const times: Record<"fenced" | "counted", number[]> = { fenced: [], counted: [] };
  for (let round = 0; round < rounds; round++) {
    for (const [name, store] of [["fenced", fenced], ["counted", counted]] as const) {
      await admin.config("RESETSTAT");
      for (let i = 0; i < COMMITS; i++) {
        const m = ++id;
        const batch: StoreMutation[] = [
          {
            type: "putMessage",
            id: m,
            message: { topic: "t", payload: PAYLOAD, qos: 1, retain: false },
          },
          { type: "queueOutbound", clientId: "sub", seq: m, messageId: m, qos: 1 },
        ];
        if (m > 1) batch.push({ type: "deleteOutbound", clientId: "sub", seq: m - 1 });
        store.apply(batch);
        await store.commit();
      }
      const stats = await admin.info("commandstats");
      const line = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(stats)!;
      times[name].push(Number(line[2]) / Number(line[1]));
    }
  }
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  const round1 = (a: number[]) => a.map((v) => Math.round(v * 10) / 10);
  console.log(JSON.stringify({
    fenced: round1(times.fenced),
    counted: round1(times.counted),
    medianFenced: round1([median(times.fenced)])[0],
    medianCounted: round1([median(times.counted)])[0],
  }));
} finally {
  admin.disconnect();
}

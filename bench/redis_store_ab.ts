/**
 * Redis's own time per `RedisStore` write of a cluster node (the incarnation fence and the node's
 * own counter, as a node's store has them), this checkout's store scripts against another
 * checkout's (`--root DIR`, a before/after comparison of a change to the apply script): two
 * stores on one redis-server, alternating blocks of 2,000 commits (one QoS 1 message queued for
 * one persistent session, its previous delivery deleted), `INFO commandstats`'s µs per `evalsha`
 * over each block. Interleaved in one process so that a busy machine weighs on both alike.
 *
 * Run: deno run -A bench/redis_store_ab.ts --root DIR [--rounds 10]
 *
 * Starts and stops its own redis-server (no persistence) on a free loopback port.
 *
 * @module
 */

import { Redis } from "ioredis";
import type { RedisStore as Store } from "../src/cluster/redis_store.ts";
import type { StoreMutation } from "../src/store/mutation.ts";
import { RedisServer } from "../tests/_helpers/redis.ts";

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1]! : fallback;
}

const rounds = Number(flag("--rounds", "10"));
const root = flag("--root", "").replace(/\/?$/, "/");
if (root === "/") throw new TypeError("--root DIR: the checkout to compare with");
const here = new URL("..", import.meta.url).pathname;
const COMMITS = 2_000;
const P = "bench:";
const PAYLOAD = new Uint8Array(256).fill(42);

await using server = await RedisServer.start();
const admin = new Redis({ host: "127.0.0.1", port: server.port });
try {
  await admin.mset(`${P}inc:n`, "i", `${P}epoch`, "e", `${P}gen`, "1");
  await admin.hset(`${P}owner`, "a", "n", "b", "n");
  const open = async (checkout: string, clientId: string): Promise<Store> => {
    const { RedisStore } = await import(`${checkout}src/cluster/redis_store.ts`);
    const store: Store = await RedisStore.open({
      url: server.url,
      prefix: `${P}store:`,
      owner: { key: `${P}owner`, node: "n" },
      fence: {
        key: `${P}inc:n`,
        token: () => "i",
        epochKey: `${P}epoch`,
        epoch: () => "e",
        genKey: `${P}gen`,
        gen: () => 1,
        nodeGenKey: `${P}gen:n`,
      },
    });
    store.apply([{
      type: "putSession",
      session: {
        clientId,
        protocolVersion: 4,
        clean: false,
        expiryInterval: undefined,
        offlineSince: undefined,
      },
    }]);
    await store.commit();
    return store;
  };
  await using before = await open(root, "a");
  await using after = await open(here, "b");
  let id = 0;
  const times: Record<"before" | "after", number[]> = { before: [], after: [] };
  for (let round = 0; round < rounds; round++) {
    for (const [name, store, c] of [["before", before, "a"], ["after", after, "b"]] as const) {
      await admin.config("RESETSTAT");
      let previous = 0;
      for (let i = 0; i < COMMITS; i++) {
        const m = ++id;
        const batch: StoreMutation[] = [
          {
            type: "putMessage",
            id: m,
            message: { topic: "t", payload: PAYLOAD, qos: 1, retain: false },
          },
          { type: "queueOutbound", clientId: c, seq: m, messageId: m, qos: 1 },
        ];
        if (previous > 0) batch.push({ type: "deleteOutbound", clientId: c, seq: previous });
        previous = m;
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
    before: round1(times.before),
    after: round1(times.after),
    medianBefore: round1([median(times.before)])[0],
    medianAfter: round1([median(times.after)])[0],
  }));
} finally {
  admin.disconnect();
}

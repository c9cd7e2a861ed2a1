// The cluster protocol check is made in the script that registers a starting node
// (`REGISTER_SCRIPT`), not only in a look before it: a node of another version registered between
// the look and the registration (two releases starting within a moment) keeps the starting node
// out, and it waits as if the look had found it. Real redis-server.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { REGISTER_SCRIPT } from "../../src/cluster/_bus_scripts.ts";
import { CLUSTER_PROTOCOL, type ForeignNode } from "../../src/cluster/_protocol.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { startBus } from "./_bus_helpers.ts";

/** Another release's protocol: one past this one. */
const OTHER = CLUSTER_PROTOCOL + 1;

const opts = { sanitizeOps: true, sanitizeResources: true };

async function connect(server: RedisServer): Promise<Redis> {
  const redis = new Redis({ host: "127.0.0.1", port: server.port, lazyConnect: true });
  await redis.connect();
  return redis;
}

/** Writes node `id` as a live node of a release that registers `record` in `P versions` (none). */
async function liveNode(redis: Redis, prefix: string, id: string, record?: string) {
  const incarnation = crypto.randomUUID();
  const multi = redis.multi()
    .sadd(`${prefix}nodes`, id)
    .set(`${prefix}inc:${id}`, incarnation)
    .set(`${prefix}alive:${id}`, "1", "PX", 60_000);
  if (record !== undefined) multi.hset(`${prefix}versions`, id, record.replace("INC", incarnation));
  await multi.exec();
}

/** REGISTER_SCRIPT for node `n` with no interest and no sessions; `kind` its 6th argument. */
function register(redis: Redis, prefix: string, kind: string): Promise<unknown> {
  return redis.eval(
    REGISTER_SCRIPT,
    0,
    prefix,
    "n",
    "1000",
    "sync",
    "inc-n",
    kind,
    "",
    "0",
    "0",
    "0",
  );
}

Deno.test(
  "bus scripts: a starting node's registration is refused, writing nothing, while a live node of another protocol version is registered; a running node's is not",
  opts,
  async () => {
    await using server = await RedisServer.start();
    const redis = await connect(server);
    try {
      const P = "r1:";
      await liveNode(redis, P, "old");
      await liveNode(redis, P, "two", `${OTHER} INC`);
      await liveNode(redis, P, "same", `${CLUSTER_PROTOCOL} INC`);
      const reply = await register(redis, P, "2") as unknown[];
      assert.equal(reply[0], 2);
      const others = (reply[1] as string[]).map(String);
      const pairs = [[others[0], others[1]], [others[2], others[3]]].sort();
      assert.deepEqual(pairs, [["old", "0"], ["two", String(OTHER)]]);
      // Nothing written: neither registered, nor its record, incarnation or counters.
      assert.equal(await redis.sismember(`${P}nodes`, "n"), 0);
      assert.equal(await redis.hget(`${P}versions`, "n"), null);
      assert.equal(await redis.get(`${P}inc:n`), null);
      assert.equal(await redis.get(`${P}gen`), null);
      // A running node registering again (a new incarnation after a reap) runs already: not
      // refused (the nodes beside it log the ERROR line instead).
      assert.equal((await register(redis, P, "1") as unknown[])[0], 1);
      assert.equal(await redis.hget(`${P}versions`, "n"), `${CLUSTER_PROTOCOL} inc-n`);
      // Beside live nodes of its own version only, a starting node registers.
      const Q = "r2:";
      await liveNode(redis, Q, "same", `${CLUSTER_PROTOCOL} INC`);
      assert.equal((await register(redis, Q, "2") as unknown[])[0], 1);
      assert.equal(await redis.sismember(`${Q}nodes`, "n"), 1);
      assert.equal(await redis.hget(`${Q}versions`, "n"), `${CLUSTER_PROTOCOL} inc-n`);
    } finally {
      await redis.quit();
    }
  },
);

Deno.test(
  "cluster bus: a node of another protocol version registered just after a starting node looked keeps it out; it waits and joins once that node is gone",
  opts,
  async () => {
    await using server = await RedisServer.start();
    const P = "r3:";
    const redis = await connect(server);
    const monitor = await redis.monitor();
    const registrations: string[] = [];
    let written: Promise<void> | undefined;
    monitor.on("monitor", (_time: string, args: string[]) => {
      // evalsha, its sha, 0 keys, then the script's ARGV: prefix, node, ...
      if (!/^eval/i.test(args[0] ?? "") || args[4] !== "new") return;
      // The starting node's first script is its look for other versions (prefix, node): the
      // node of another release registers right after it, before the registration.
      if (written === undefined && args.length === 5) written = liveNode(redis, P, "old");
      if (args.length > 9) registrations.push(args[8]!);
    });
    const refusals: ForeignNode[][] = [];
    const refused = Promise.withResolvers<void>();
    try {
      const starting = startBus(server, "new", {
        prefix: P,
        protocolRetry: 100,
        protocolRefused: (nodes) => {
          refusals.push(nodes);
          refused.resolve();
        },
      });
      starting.catch(() => {});
      const outcome = await Promise.race([
        refused.promise.then(() => "refused"),
        starting.then(() => "registered"),
      ]);
      if (outcome !== "refused") {
        await (await starting).close();
        assert.fail("started beside node old");
      }
      await written;
      assert.deepEqual(refusals, [[{ node: "old", protocol: 0 }]]);
      // Refused by the registration itself, not by the look before it.
      assert.deepEqual(registrations, ["2"]);
      assert.equal(await redis.sismember(`${P}nodes`, "new"), 0, "registered beside node old");
      assert.equal(await redis.hget(`${P}versions`, "new"), null);
      // Node old goes: the node looks again, registers and starts.
      await redis.del(`${P}alive:${"old"}`);
      await using bus = await starting;
      assert.equal(await redis.sismember(`${P}nodes`, "new"), 1);
      assert.equal(
        await redis.hget(`${P}versions`, "new"),
        `${CLUSTER_PROTOCOL} ${bus.incarnation.token}`,
      );
      assert.deepEqual(registrations, ["2", "2"]);
      assert.equal(refusals.length, 1, "the refusal told once");
    } finally {
      monitor.disconnect();
      await redis.quit();
    }
  },
);

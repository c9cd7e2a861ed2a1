// The cluster protocol check is made in the script that registers a starting node
// (`REGISTER_SCRIPT`), not only in a look before it: a node of another version registered between
// the look and the registration (two releases starting within a moment) keeps the starting node
// out, and it waits as if the look had found it. Real redis-server.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { PRE_VERSION_BARRIER, REGISTER_SCRIPT } from "../../src/cluster/_bus_scripts.ts";
import { PRE_VERSIONING_HEARTBEAT, PRE_VERSIONING_REGISTER } from "./_pre_versioning_scripts.ts";
import { CLUSTER_PROTOCOL, type ForeignNode } from "../../src/cluster/_protocol.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { startBus } from "./_bus_helpers.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/** This release's cluster protocol version, and another one's. */
const V = CLUSTER_PROTOCOL;
const OTHER = CLUSTER_PROTOCOL + 1;

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
      await liveNode(redis, P, "same", `${V} INC`);
      const reply = await register(redis, P, "2") as unknown[];
      assert.equal(reply[0], 2);
      const others = (reply[1] as string[]).map(String);
      const pairs = [[others[0], others[1]], [others[2], others[3]]].sort();
      assert.deepEqual(pairs, [["old", "0"], ["two", String(OTHER)]]);
      // Nothing written: neither registered, nor its record, incarnation or counters.
      assert.equal(await redis.sismember(`${P}nodes`, "n"), 0);
      assert.equal(await redis.hget(`${P}versions`, "n"), null);
      assert.equal(await redis.get(`${P}inc:n`), null);
      assert.equal(await redis.get(`${P}count`), null);
      // A running node registering again (a new incarnation after a reap) runs already: not
      // refused (the nodes beside it log the ERROR line instead).
      assert.equal((await register(redis, P, "1") as unknown[])[0], 1);
      assert.equal(await redis.hget(`${P}versions`, "n"), `${V} inc-n`);
      // Beside live nodes of its own version only, a starting node registers.
      const Q = "r2:";
      await liveNode(redis, Q, "same", `${V} INC`);
      assert.equal((await register(redis, Q, "2") as unknown[])[0], 1);
      assert.equal(await redis.sismember(`${Q}nodes`, "n"), 1);
      assert.equal(await redis.hget(`${Q}versions`, "n"), `${V} inc-n`);
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
      assert.equal(await redis.hget(`${P}versions`, "new"), `${V} ${bus.incarnation.token}`);
      assert.deepEqual(registrations, ["2", "2"]);
      assert.equal(refusals.length, 1, "the refusal told once");
    } finally {
      monitor.disconnect();
      await redis.quit();
    }
  },
);

/** The registration of the release before protocol versions, of node `old` starting. */
function registerOld(redis: Redis, prefix: string): Promise<unknown> {
  return redis.eval(
    PRE_VERSIONING_REGISTER,
    0,
    prefix,
    "old",
    "1000",
    "sync",
    "inc-old",
    "1",
    "",
    "0",
    "0",
    "0",
  );
}

Deno.test(
  "bus scripts: a node of the release before protocol versions, whose scripts do not check, fails to register while nodes of this release live, writing nothing, and registers again once the last of them is gone",
  opts,
  async () => {
    await using server = await RedisServer.start();
    const P = "r4:";
    const redis = await connect(server);
    try {
      const bus = await startBus(server, "new", { prefix: P, livenessTtl: 1000 });
      try {
        assert.equal(await redis.get(`${P}gen`), PRE_VERSION_BARRIER);
        assert.ok(await redis.pttl(`${P}gen`) > 0, "the barrier goes with the nodes");
        // Its registration INCRs `P gen` first: refused before any write.
        await assert.rejects(registerOld(redis, P), /value is not an integer/);
        assert.equal(await redis.sismember(`${P}nodes`, "old"), 0);
        assert.equal(await redis.get(`${P}inc:old`), null);
        assert.equal(await redis.get(`${P}alive:old`), null);
        // One already running (started at the same moment) fails its heartbeats the same way:
        // its liveness key is not refreshed, and the nodes of this release reap it.
        await assert.rejects(
          redis.eval(PRE_VERSIONING_HEARTBEAT, 0, P, "old", "1000", "inc-old", "", "0", "0"),
          /value is not an integer/,
        );
        // This release's nodes count on (`P count`), and keep the barrier at each heartbeat.
        await redis.del(`${P}gen`);
        await bus.heartbeat();
        assert.equal(await redis.get(`${P}gen`), PRE_VERSION_BARRIER);
        assert.ok(Number(await redis.get(`${P}count`)) > 0);
      } finally {
        await bus.close();
      }
      // The last node of this release gone (a rollback to the release before): the barrier
      // expires with its liveness TTL, and the older release's nodes register.
      for (let i = 0; i < 600 && await redis.exists(`${P}gen`) === 1; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const reply = await registerOld(redis, P) as unknown[];
      assert.equal(reply[0], 1);
      assert.equal(await redis.sismember(`${P}nodes`, "old"), 1);
    } finally {
      await redis.quit();
    }
  },
);

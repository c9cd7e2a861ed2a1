// The store conformance suite on Redis (a real redis-server started here), plus what only Redis
// can show: key prefixes keep stores apart, a commit is one atomic script run, and a message is
// stored once with a reference count.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisStore } from "../../src/cluster/redis_store.ts";
import { StoreError } from "../../src/store/store_error.ts";
import { certFiles } from "../_helpers/certs.ts";
import { freePort, RedisServer } from "../_helpers/redis.ts";
import { message, session, storeConformance } from "./_conformance.ts";

const NOW = 1_750_000_000_000;

// ioredis's reply parser (redis-parser) grows a module-wide buffer pool for replies larger than
// one socket read, and shrinks it back with an interval of its own, which stops by itself within
// about two seconds. A test that read such a reply waits for it, so the op sanitizer sees it end.
const BIG_REPLY = 64 * 1024;
const POOL_SHRINK_MS = 3000;

/** Opens a store whose `load` notes whether it read a reply larger than one socket read. */
async function openWatched(url: string, seen: { big: boolean }): Promise<RedisStore> {
  const store = await RedisStore.open({ url, prefix: "amqtt:" });
  const load = store.load.bind(store);
  store.load = async (now) => {
    const state = await load(now);
    for (const m of [...state.messages.values(), ...state.retained]) {
      if (m.payload.length >= BIG_REPLY) seen.big = true;
    }
    return state;
  };
  return store;
}

// Each test has a redis-server of its own, stopped at its end.
storeConformance("RedisStore", async () => {
  const redis = await RedisServer.start();
  const seen = { big: false };
  const open = () => openWatched(redis.url, seen);
  return {
    store: await open(),
    reopen: async (store) => {
      await store.close();
      return open();
    },
    cleanup: async (store) => {
      await store.close().catch(() => {});
      await redis[Symbol.asyncDispose]();
      if (seen.big) await new Promise((resolve) => setTimeout(resolve, POOL_SHRINK_MS));
    },
  };
});

/** A plain client for looking at the keys. */
async function inspect<T>(server: RedisServer, body: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis({ port: server.port, host: "127.0.0.1", lazyConnect: true });
  await redis.connect();
  try {
    return await body(redis);
  } finally {
    await redis.quit();
  }
}

Deno.test("RedisStore keeps every key under its prefix; two prefixes are two stores", async () => {
  await using redis = await RedisServer.start();
  await using a = await RedisStore.open({ url: redis.url, prefix: "{iso-a}:" });
  await using b = await RedisStore.open({ url: redis.url, prefix: "{iso-b}:" });
  a.apply([
    { type: "putSession", session: session("c") },
    {
      type: "putSubscription",
      clientId: "c",
      subscription: {
        filter: "t",
        qos: 1,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      },
    },
    { type: "putMessage", id: 1, message: message("t", "m") },
    { type: "queueOutbound", clientId: "c", seq: 1, messageId: 1, qos: 1 },
    { type: "putInbound", clientId: "c", packetId: 2 },
    { type: "putRetained", message: message("r", "x", { retain: true }) },
    { type: "setCounter", name: "n", value: 1 },
  ]);
  await a.commit();
  // Each store's epoch key is set at its open (`RedisStore.dataLost`).
  const keys = (await inspect(redis, (r) => r.keys("{iso-*"))).filter((k) => k !== "{iso-b}:epoch");
  assert.ok(keys.length >= 7, `keys: ${keys}`);
  assert.ok(keys.every((k) => k.startsWith("{iso-a}:")), `keys: ${keys}`);
  const stateB = await b.load(NOW);
  assert.deepEqual([stateB.sessions, stateB.retained, stateB.counters.size], [[], [], 0]);
  assert.equal((await a.load(NOW)).sessions.length, 1);
});

Deno.test("RedisStore stores a message routed to many sessions once, with a reference count", async () => {
  await using redis = await RedisServer.start();
  await using store = await RedisStore.open({ url: redis.url, prefix: "refs:" });
  const batch = [
    { type: "putMessage" as const, id: 5, message: message("fan", "x".repeat(1000)) },
  ];
  const all = [];
  for (let i = 0; i < 20; i++) all.push({ type: "putSession" as const, session: session(`s${i}`) });
  store.apply(all);
  store.apply([
    ...batch,
    ...all.map((_, i) => ({
      type: "queueOutbound" as const,
      clientId: `s${i}`,
      seq: 1,
      messageId: 5,
      qos: 1 as const,
    })),
  ]);
  await store.commit();
  assert.deepEqual(await inspect(redis, (r) => r.hlen("refs:msg")), 1);
  assert.equal(await inspect(redis, (r) => r.hget("refs:ref", "5")), "20");
  store.apply(
    all.slice(0, 19).map((_, i) => ({ type: "deleteOutbound", clientId: `s${i}`, seq: 1 })),
  );
  await store.commit();
  assert.equal(await inspect(redis, (r) => r.hget("refs:ref", "5")), "1");
  store.apply([{ type: "deleteSession", clientId: "s19" }]);
  await store.commit();
  assert.deepEqual(await inspect(redis, (r) => r.hlen("refs:msg")), 0);
  assert.deepEqual(await inspect(redis, (r) => r.hlen("refs:ref")), 0);
});

Deno.test("RedisStore writes the batches of one turn in one atomic script run", async () => {
  await using redis = await RedisServer.start();
  await using store = await RedisStore.open({ url: redis.url, prefix: "group:" });
  const before = store.transactions;
  for (let i = 0; i < 50; i++) store.apply([{ type: "putSession", session: session(`c${i}`) }]);
  await store.commit();
  assert.equal(store.transactions - before, 1);
  assert.equal((await store.load(NOW)).sessions.length, 50);
});

Deno.test("RedisStore.open refuses an unreachable Redis with one StoreError, and a bad URL with a TypeError", async () => {
  await assert.rejects(
    RedisStore.open({ url: `redis://127.0.0.1:${freePort()}` }),
    (error) => {
      assert.ok(error instanceof StoreError);
      assert.equal(error.kind, "io");
      assert.match(error.message, /^Cannot open store redis:\/\/127\.0\.0\.1:\d+/);
      return true;
    },
  );
  await assert.rejects(RedisStore.open({ url: "http://x" }), TypeError);
});

Deno.test("RedisStore authenticates with a password, and a wrong one is refused at open", async () => {
  await using redis = await RedisServer.start({ password: "s3cret" });
  await assert.rejects(
    RedisStore.open({ url: redis.url, password: "wrong" }),
    (error) => error instanceof StoreError && error.kind === "io",
  );
  await using store = await RedisStore.open({
    url: `redis://:s3cret@127.0.0.1:${redis.port}`,
  });
  store.apply([{ type: "setCounter", name: "n", value: 1 }]);
  await store.commit();
  assert.equal((await store.load(NOW)).counters.get("n"), 1);
  assert.ok(!store.location.includes("s3cret"), store.location);
});

Deno.test("RedisStore over TLS trusts a private CA and presents a client certificate", async () => {
  await using certs = await certFiles();
  await using redis = await RedisServer.start({
    tls: {
      certFile: certs.serverCertFile,
      keyFile: certs.serverKeyFile,
      caFile: certs.caFile,
      ca: certs.ca,
      clientCert: certs.clientCert,
      clientKey: certs.clientKey,
    },
  });
  // Without the CA, the server's certificate is not trusted; without a client certificate, the
  // server refuses the client.
  await assert.rejects(RedisStore.open({ url: redis.url }), StoreError);
  await assert.rejects(RedisStore.open({ url: redis.url, tls: { ca: certs.ca } }), StoreError);
  await using store = await RedisStore.open({
    url: redis.url,
    tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey },
  });
  store.apply([{ type: "putRetained", message: message("r", "over tls", { retain: true }) }]);
  await store.commit();
  assert.equal((await store.load(NOW)).retained[0]?.topic, "r");
});

Deno.test("RedisStore.reserveMessageIds hands out disjoint blocks to stores sharing one Redis, above stored ids", async () => {
  await using redis = await RedisServer.start();
  await using a = await RedisStore.open({ url: redis.url, prefix: "ids:" });
  await using b = await RedisStore.open({ url: redis.url, prefix: "ids:" });
  a.apply([
    { type: "putSession", session: session("s") },
    { type: "putMessage", id: 41, message: message("t", "m") },
    { type: "queueOutbound", clientId: "s", seq: 1, messageId: 41, qos: 1 },
  ]);
  await a.commit();
  const blocks = await Promise.all([
    a.reserveMessageIds(100),
    b.reserveMessageIds(100),
    a.reserveMessageIds(1),
  ]);
  const ranges = blocks.map((first, i) => [first, first + [100, 100, 1][i]! - 1]);
  ranges.sort((x, y) => x[0]! - y[0]!);
  assert.equal(ranges[0]![0], 42, "above the stored message 41");
  for (let i = 1; i < ranges.length; i++) assert.equal(ranges[i]![0], ranges[i - 1]![1]! + 1);
  a.apply([{ type: "clear" }]);
  await a.commit();
  assert.equal(await b.reserveMessageIds(1), 243, "never handed out twice, even after clear");
  await assert.rejects(a.reserveMessageIds(0), RangeError);
});

Deno.test("RedisStore.loadSession reads one session as load() would, with only the messages it references, and applies its expiry", async () => {
  await using redis = await RedisServer.start();
  await using store = await RedisStore.open({ url: redis.url, prefix: "one:" });
  const sub = { filter: "t/#", qos: 2 as const, noLocal: false, retainAsPublished: false };
  store.apply([
    { type: "putSession", session: session("a", { offlineSince: NOW - 1000 }) },
    { type: "putSession", session: session("b") },
    {
      type: "putSession",
      session: session("gone", {
        offlineSince: NOW - 20_000,
        expiryInterval: 10,
        will: { message: message("w", "bye"), delayInterval: 0 },
      }),
    },
    { type: "putSubscription", clientId: "a", subscription: { ...sub, retainHandling: 0 } },
    { type: "putMessage", id: 1, message: message("t/1", "one") },
    { type: "putMessage", id: 2, message: message("t/2", "two", { qos: 2 }) },
    { type: "putMessage", id: 3, message: message("t/3", "b's") },
    { type: "queueOutbound", clientId: "a", seq: 1, messageId: 1, qos: 1, packetId: 7 },
    { type: "queueOutbound", clientId: "a", seq: 2, messageId: 2, qos: 2 },
    { type: "queueOutbound", clientId: "b", seq: 1, messageId: 3, qos: 1 },
    { type: "putInbound", clientId: "a", packetId: 9 },
  ]);
  await store.commit();
  // Expired: deleted, its will due.
  const expired = await store.loadSession("gone", NOW);
  assert.deepEqual(expired.sessions, []);
  assert.deepEqual(expired.dueWills.map((d) => d.clientId), ["gone"]);
  const one = await store.loadSession("a", NOW);
  const all = await store.load(NOW);
  assert.deepEqual(one.sessions, all.sessions.filter((s) => s.session.clientId === "a"));
  assert.deepEqual([...one.messages.keys()].sort(), [1, 2], "only the messages a references");
  assert.deepEqual(one.messages.get(2), all.messages.get(2));
  assert.deepEqual([one.retained, one.dueWills, one.nextMessageId], [[], [], 0]);
  // Unknown: nothing.
  assert.deepEqual((await store.loadSession("nobody", NOW)).sessions, []);
  assert.deepEqual((await store.load(NOW)).sessions.map((s) => s.session.clientId), ["a", "b"]);
});

Deno.test("RedisStore.loadSession: reads asked together go to Redis as one script call, each answered with its own session", async () => {
  await using redis = await RedisServer.start();
  await using store = await RedisStore.open({ url: redis.url, prefix: "batch:" });
  const ids = Array.from({ length: 20 }, (_, i) => `c${i}`);
  // Half of them stored, each with a message queued for it.
  store.apply(
    ids.filter((_, i) => i % 2 === 0).flatMap((clientId, i) => [
      { type: "putSession" as const, session: session(clientId) },
      { type: "putMessage" as const, id: i + 1, message: message(`t/${clientId}`, clientId) },
      { type: "queueOutbound" as const, clientId, seq: 1, messageId: i + 1, qos: 1 as const },
    ]),
  );
  await store.commit();
  const watch = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
  await watch.connect();
  try {
    const scripts = async () => {
      let calls = 0;
      const info = await watch.info("commandstats");
      for (const m of info.matchAll(/cmdstat_(?:eval|evalsha):calls=(\d+)/g)) calls += Number(m[1]);
      return calls;
    };
    const before = await scripts();
    const states = await Promise.all(ids.map((id) => store.loadSession(id, Date.now())));
    // The first read goes alone, the 19 asked while it is unanswered go together.
    assert.equal(await scripts() - before, 2);
    states.forEach((state, i) => {
      if (i % 2 === 1) {
        assert.equal(state.sessions.length, 0, `c${i} is not stored`);
        return;
      }
      assert.equal(state.sessions[0]?.session.clientId, `c${i}`);
      const [entry] = state.sessions[0]!.outbound;
      assert.equal(
        new TextDecoder().decode(state.messages.get(entry!.messageId!)!.payload),
        `c${i}`,
      );
    });
  } finally {
    watch.disconnect();
  }
});

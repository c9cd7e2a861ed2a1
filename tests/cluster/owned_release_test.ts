// Ownership left over while Redis is away or refuses (issue #14): a release that fails is made
// again when Redis is back, before the node registers, and a login whose claim failed gives the
// claim back, so that the node's next registration does not make it the owner of a session it
// does not hold; and a node's sweep does not release the claim of a login loading a session back
// (handed over from it just before). Real redis-server, real buses and node processes, a TCP proxy
// cutting one node's Redis, a node paused with SIGSTOP, byte-level clients.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { ClusterBus, type ClusterBusOptions } from "../../src/cluster/cluster_bus.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { TestClient } from "../_helpers/test_client.ts";
import { acl, Node, retry, until as nodeUntil } from "./_nodes.ts";
import { inspect, MANUAL_TIMERS, nextEvent, startBus, until } from "./_bus_helpers.ts";
import { StallProxy } from "./_stall_proxy.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/** A bus whose connections to Redis go through `proxy`. */
function startProxied(
  proxy: StallProxy,
  nodeId: string,
  options: Partial<ClusterBusOptions> = {},
): Promise<ClusterBus> {
  return ClusterBus.start({
    url: proxy.url,
    nodeId,
    prefix: "test:",
    timers: MANUAL_TIMERS,
    retryDelay: () => 50,
    ...options,
  });
}

/** Cuts the bus's Redis connections (new ones never answered) and waits for it to see that. */
async function cutAway(proxy: StallProxy, bus: ClusterBus): Promise<void> {
  proxy.mode = "stall";
  proxy.cut();
  await until(() => !bus.ready);
}

/** Cuts the bus's Redis connections (new ones never answered) until `away` is done. */
async function whileAway(
  proxy: StallProxy,
  bus: ClusterBus,
  away: () => Promise<void>,
): Promise<void> {
  await cutAway(proxy, bus);
  await away();
  const back = nextEvent(bus, "state", (event) => event.state === "ready");
  proxy.mode = "forward";
  proxy.cut();
  await back;
}

type Takeover = { clientId: string; node: string; missed?: boolean };

/** The takeovers `bus` is told of, as they come. */
function takeoversOf(bus: ClusterBus): Takeover[] {
  const takeovers: Takeover[] = [];
  bus.on("takeover", (event) => takeovers.push(event));
  return takeovers;
}

/** A answered B's claim of `clientId` as a missed takeover: B owns it, A lists it no more. */
async function assertMissedTakeover(
  redis: RedisServer,
  takeovers: Takeover[],
  clientId: string,
): Promise<void> {
  assert.deepEqual(takeovers, [{ clientId, node: "b", missed: true }]);
  assert.equal(await inspect(redis, (r) => r.hget("test:owner", clientId)), "b");
  assert.equal(await inspect(redis, (r) => r.sismember("test:owned:a", clientId)), 0);
}

Deno.test(
  "cluster ownership: a release that failed while Redis was away is made when Redis is back, and another node's registration does not take its client as taken over",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    await using a = await startProxied(proxy, "a");
    await using b = await startBus(redis, "b");
    assert.equal(await a.claim("c1"), undefined);
    assert.equal(await inspect(redis, (r) => r.hget("test:owner", "c1")), "a");

    await whileAway(proxy, a, async () => {
      await assert.rejects(a.release("c1"));
    });
    // Released at the resync: no stale owner left for another node's registration or takeover.
    assert.equal(await inspect(redis, (r) => r.hget("test:owner", "c1")), null);
    assert.equal(await inspect(redis, (r) => r.sismember("test:owned:a", "c1")), 0);
    // The client on B now: its claim finds no previous owner to take it from.
    assert.equal(await b.claim("c1"), undefined);
    assert.ok(b.ready);
  },
);

Deno.test(
  "cluster ownership: a session claimed by another node while this node's release of it was pending is answered at the resync as a missed takeover",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    await using a = await startProxied(proxy, "a");
    await using b = await startBus(redis, "b");
    assert.equal(await a.claim("c4"), undefined);
    const takeovers = takeoversOf(a);
    await whileAway(proxy, a, async () => {
      await assert.rejects(a.release("c4"));
      // B's claim finds A named as the owner; its notice reaches no one.
      assert.equal(await b.claim("c4"), "a");
    });
    // Back, A answers it (it holds nothing: its listeners hand nothing over, and say so).
    await assertMissedTakeover(redis, takeovers, "c4");
  },
);

Deno.test(
  "cluster ownership: a session claimed by another node while this node's release of it was pending is answered as a missed takeover when the release is made again before the resync makes it",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    // The resync waits for its stream connections: a long connect timeout holds it there.
    await using a = await startProxied(proxy, "a", { streamConnectTimeout: 60_000 });
    await using b = await startBus(redis, "b");
    assert.equal(await a.claim("c5"), undefined);
    const takeovers = takeoversOf(a);
    await cutAway(proxy, a);
    await assert.rejects(a.release("c5"));
    // B's claim finds A named as the owner; its notice reaches no one.
    assert.equal(await b.claim("c5"), "a");
    // Redis is back for A's command and subscriber connections; its resync waits for its XREAD
    // connection, which the proxy holds.
    const held = proxy.hold(":xread");
    const back = nextEvent(a, "state", (event) => event.state === "ready");
    proxy.mode = "forward";
    proxy.cut();
    const reader = await held;
    assert.equal(a.ready, false);
    // The release is made again meanwhile (the broker's sweep does, for a session gone here):
    // B, listed as the owner, waits for A's handoff, which A gives once it learns of the claim.
    assert.equal(await a.release("c5"), false);
    proxy.release(reader);
    await back;
    await assertMissedTakeover(redis, takeovers, "c5");
  },
);

Deno.test(
  "cluster ownership: a session claimed again while its release was pending stays owned at the resync",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    await using a = await startProxied(proxy, "a");
    assert.equal(await a.claim("c3"), undefined);
    await whileAway(proxy, a, async () => {
      await assert.rejects(a.release("c3"));
      // The client is back here meanwhile (a clean start served while Redis is away).
      await assert.rejects(a.claim("c3"));
    });
    assert.equal(await inspect(redis, (r) => r.hget("test:owner", "c3")), "a");
  },
);

Deno.test(
  "cluster ownership: a claim that failed while Redis was away, given back, is not claimed again by the node's registration",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    await using a = await startProxied(proxy, "a");
    await whileAway(proxy, a, async () => {
      await assert.rejects(a.claim("c2"));
      // What a refused login does with its claim (ClusterSessions #giveBack).
      await assert.rejects(a.release("c2"));
    });
    assert.equal(await inspect(redis, (r) => r.hget("test:owner", "c2")), null);
  },
);

Deno.test(
  "cluster ownership: a login whose claim Redis refused is refused as server unavailable (3.1.1 return code 3, Session Present 0) and the node's next registration does not make it the session's owner [MQTT-3.2.2-6]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    await using b = await Node.start(proxy, { nodeId: "b", prefix: "ow1:" });
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    let denied = false;
    try {
      // The claim script fails at its first write (HSET): nothing claimed, and an error.
      await acl(redis, "-hset");
      denied = true;
      await using client = await TestClient.open(b.port);
      const connack = await client.handshake({ clientId: "ghost", clean: false });
      assert.equal(connack.reasonCode, 3);
      assert.equal(connack.sessionPresent, false);
      await client.expectClosed();
      assert.match(b.log(), /stored session of ghost .*server busy/);
      await acl(redis, "+hset");
      denied = false;
      assert.equal(await admin.hget("ow1:owner", "ghost"), null);

      // B registers again (its Redis connections cut and made again).
      const backs = () => b.log().match(/Cluster: Redis is back/g)?.length ?? 0;
      const before = backs();
      proxy.cut();
      await nodeUntil(() => backs() > before, "B registering again");
      // Not the owner of a session held nowhere (messages for it would be queued nowhere).
      assert.equal(await admin.hget("ow1:owner", "ghost"), null);
      assert.equal(await admin.sismember("ow1:owned:b", "ghost"), 0);
    } finally {
      if (denied) await acl(redis, "+hset").catch(() => {});
      admin.disconnect();
    }
  },
);

Deno.test(
  "cluster ownership: a session that comes back to a node it was handed over from stays owned by that node while its login waits for the handoff (the sweep does not release it)",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "ow2:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "ow2:" });
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    const login = async (node: Node) => {
      const client = await TestClient.open(node.port);
      const connack = await client.handshake({ clientId: "back", clean: false });
      return { client, connack };
    };
    let stopped = false;
    const closing: TestClient[] = [];
    try {
      // No subscription: a login announces none (it would wait for A's answer before it claims).
      (await login(a)).client.close();
      await retry(async () => (await admin.hget("ow2:owner", "back")) === "a", "A owning it");
      // To B (which loads it while its client is not attached yet: one of B's offline sessions
      // until the next sweep), and at once back to A (B hands it over) and to B again while A
      // answers nothing: B's claim waits for A's handoff over several sweeps (every 500 ms).
      const first = await login(b);
      assert.equal(first.connack.sessionPresent, true);
      const second = await login(a);
      assert.equal(second.connack.sessionPresent, true);
      a.process.kill("SIGSTOP");
      stopped = true;
      const third = login(b);
      // Settled whatever the test asserts meanwhile (its client closed), for the sanitizers.
      third.then(({ client }) => closing.push(client), () => {});
      await retry(async () => (await admin.hget("ow2:owner", "back")) === "b", "B's claim");
      await new Promise((r) => setTimeout(r, 2000));
      // Released by B's sweep, the session would be owned by nobody: the next node the client
      // goes to would claim it from nobody, and this node would not hand it over.
      assert.equal(await admin.hget("ow2:owner", "back"), "b", "B's claim stands while it waits");
      a.process.kill("SIGCONT");
      stopped = false;
      const { client, connack } = await third;
      try {
        assert.equal(connack.sessionPresent, true);
        assert.equal(await admin.hget("ow2:owner", "back"), "b", "B owns the session it holds");
        assert.equal(client.ended, false, "the connection is still open");
      } finally {
        await client.close();
        await first.client.close();
        await second.client.close();
      }
    } finally {
      if (stopped) a.process.kill("SIGCONT");
      admin.disconnect();
      for (const client of closing) await client.close();
    }
  },
);

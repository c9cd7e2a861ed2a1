/**
 * The oldest Redis a node runs on ({@linkcode MIN_REDIS_VERSION}: `XADD … MINID` is 6.2's): a
 * node connecting to an older one refuses to start, in one line naming the version found and the
 * one needed, rather than fail later mid-operation (a stream trim). No Redis older than 6.2 is installed here: the check's parsing runs on a real server's
 * `INFO server` text, and the refusal on that text with its version altered, then end to end
 * through a TCP proxy that alters the version in the server's answers (the bus, the store and the
 * CLI refuse); a node on the real server joins as before.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { ClusterBus } from "../../src/cluster/cluster_bus.ts";
import { RedisStore } from "../../src/cluster/redis_store.ts";
import { StoreError } from "../../src/store/store_error.ts";
import {
  MIN_REDIS_VERSION,
  redisTooOld,
  redisVersionFrom,
} from "../../src/cluster/_redis_version.ts";
import { REDIS_SERVER, RedisServer } from "../_helpers/redis.ts";
import { startBus } from "./_bus_helpers.ts";
import { runCli, tempDir } from "../cli/_helpers.ts";
import { delay } from "../_helpers/broker.ts";
import { Inbox, Node, until } from "./_nodes.ts";
import { StallProxy } from "./_stall_proxy.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/** The installed server's version, as `redis-server --version` says it (`v=7.0.15`). */
async function installedVersion(): Promise<string> {
  const out = await new Deno.Command(REDIS_SERVER, { args: ["--version"] }).output();
  return /v=(\S+)/.exec(new TextDecoder().decode(out.stdout))![1]!;
}

async function infoServer(port: number): Promise<string> {
  const admin = new Redis({ port, host: "127.0.0.1", lazyConnect: true });
  await admin.connect();
  try {
    return await admin.info("server");
  } finally {
    admin.disconnect();
  }
}

/** A version older than 6.2 of the same length as `real` (the RESP bulk lengths stay right). */
function olderOfLength(real: string): string {
  const old = "6.0." + "9".repeat(Math.max(1, real.length - 4));
  assert.equal(old.length, real.length);
  return old;
}

/**
 * A TCP proxy to a real redis-server that replaces `redis_version:REAL` by
 * `redis_version:OLDER` in what the server sends (same length), everything else as it is; with
 * {@linkcode older} false it forwards the server's version, and {@linkcode cut} closes every
 * connection (the server seen to change on the clients' reconnection: a failover).
 */
class OlderVersionProxy implements AsyncDisposable {
  /** Whether the version is replaced. */
  older = true;
  /** Script calls (EVAL, EVALSHA) the clients sent while {@linkcode older} was true. */
  scripts = 0;
  readonly #listener: Deno.TcpListener;
  readonly #conns = new Set<Deno.Conn>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #accepting: Promise<void>;

  constructor(upstream: number, real: string, older: string) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const from = new TextEncoder().encode(`redis_version:${real}`);
    const to = new TextEncoder().encode(`redis_version:${older}`);
    const listener = this.#listener;
    this.#accepting = (async () => {
      for await (const conn of listener) {
        const task = this.#forward(conn, upstream, from, to);
        this.#tasks.add(task);
        task.finally(() => this.#tasks.delete(task));
      }
    })().catch(() => {});
  }

  get url(): string {
    return `redis://127.0.0.1:${(this.#listener.addr as Deno.NetAddr).port}`;
  }

  async #forward(conn: Deno.Conn, upstream: number, from: Uint8Array, to: Uint8Array) {
    this.#conns.add(conn);
    let up: Deno.Conn;
    try {
      up = await Deno.connect({ hostname: "127.0.0.1", port: upstream });
    } catch {
      conn.close();
      this.#conns.delete(conn);
      return;
    }
    this.#conns.add(up);
    const pipe = async (a: Deno.Conn, b: Deno.Conn, fromServer: boolean) => {
      const buf = new Uint8Array(64 * 1024);
      try {
        for (;;) {
          const n = await a.read(buf);
          if (n === null) break;
          const chunk = buf.subarray(0, n);
          if (!fromServer && this.older) {
            this.scripts += new TextDecoder().decode(chunk).match(/\r\neval/gi)?.length ?? 0;
          }
          if (fromServer && this.older) {
            // (The INFO reply is a few KB, in one read on 127.0.0.1.)
            for (let i = 0; i + from.length <= n; i++) {
              if (from.every((byte, k) => chunk[i + k] === byte)) chunk.set(to, i);
            }
          }
          let off = 0;
          while (off < n) off += await b.write(chunk.subarray(off));
        }
      } catch { /* closed */ }
      for (const c of [a, b]) {
        try {
          c.close();
        } catch { /* closed already */ }
        this.#conns.delete(c);
      }
    };
    await Promise.all([pipe(conn, up, false), pipe(up, conn, true)]);
  }

  /** Closes every connection through it: the clients reconnect. */
  cut(): void {
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* closed already */ }
    }
    this.#conns.clear();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* closed already */ }
    }
    await Promise.all(this.#tasks);
  }
}

Deno.test(
  "redisVersionFrom reads the version of a real server's INFO server text",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const info = await infoServer(redis.port);
    assert.equal(redisVersionFrom(info), await installedVersion());
    assert.equal(redisVersionFrom("# Server\r\nredis_mode:standalone\r\n"), undefined);
  },
);

Deno.test(
  "redisTooOld refuses a version older than the minimum, compared as numbers",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const real = await installedVersion();
    assert.equal(redisTooOld(real), undefined, `the installed ${real} is recent enough`);
    // The real text with its version altered.
    const older = olderOfLength(real);
    const altered = (await infoServer(redis.port)).replace(
      `redis_version:${real}\r\n`,
      `redis_version:${older}\r\n`,
    );
    const found = redisVersionFrom(altered)!;
    assert.equal(found, older);
    assert.equal(
      redisTooOld(found),
      `Redis ${older} is too old: amqtt needs Redis ${MIN_REDIS_VERSION} or later (XADD MINID)`,
    );
    assert.equal(MIN_REDIS_VERSION, "6.2.0");
    assert.equal(redisTooOld("6.2.0"), undefined);
    assert.equal(redisTooOld("6.2"), undefined);
    assert.equal(redisTooOld("10.0.0"), undefined, "10 is newer than 6 (not compared as text)");
    assert.equal(redisTooOld("7.2.4"), undefined);
    assert.match(redisTooOld("6.1.99")!, /^Redis 6\.1\.99 is too old/);
    assert.match(redisTooOld("5.0.14")!, /^Redis 5\.0\.14 is too old/);
    assert.match(redisTooOld("unstable")!, /"unstable", which is no version number/);
  },
);

Deno.test(
  "a cluster node and the Redis store on the real server start as before",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using bus = await startBus(redis, "a");
    assert.ok(bus.ready);
    await using store = await RedisStore.open({ url: redis.url, prefix: "v:store:" });
    assert.equal(await store.reserveMessageIds(1) > 0, true);
  },
);

Deno.test(
  "a node whose ACL user may not run INFO takes the version from HELLO and starts",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const admin = new Redis({ port: redis.port, host: "127.0.0.1", lazyConnect: true });
    await admin.connect();
    try {
      await admin.call("ACL", "SETUSER", "noinfo", "on", ">pw", "~*", "&*", "+@all", "-info");
    } finally {
      admin.disconnect();
    }
    const user = { username: "noinfo", password: "pw" };
    await using bus = await startBus(redis, "a", user);
    assert.ok(bus.ready);
    await using store = await RedisStore.open({ url: redis.url, prefix: "v:store:", ...user });
    assert.equal(await store.reserveMessageIds(1) > 0, true);
  },
);

Deno.test(
  "a cluster node, the Redis store and the broker CLI refuse an older Redis in one line naming both versions",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const real = await installedVersion();
    const older = olderOfLength(real);
    await using proxy = new OlderVersionProxy(redis.port, real, older);
    const line =
      `Redis ${older} is too old: amqtt needs Redis ${MIN_REDIS_VERSION} or later (XADD MINID)`;
    await assert.rejects(
      ClusterBus.start({ url: proxy.url, nodeId: "old", prefix: "v:" }),
      (error: Error) => {
        assert.equal(error.message, `Cannot start cluster node "old": ${line}, at ${proxy.url}`);
        return true;
      },
    );
    await assert.rejects(
      RedisStore.open({ url: proxy.url, prefix: "v:store:" }),
      (error: Error) => {
        assert.ok(error instanceof StoreError);
        assert.equal(error.message, `Cannot open store ${proxy.url} (prefix "v:store:"): ${line}`);
        return true;
      },
    );
    // Nothing written under the prefix: refused before the registration.
    const admin = new Redis({ port: redis.port, host: "127.0.0.1", lazyConnect: true });
    await admin.connect();
    try {
      assert.deepEqual(await admin.keys("v:*"), []);
    } finally {
      admin.disconnect();
    }
    // The broker's command line: that line, no stack trace, exit code 1.
    await using dir = await tempDir();
    const config = `${dir.path}/old.yaml`;
    await Deno.writeTextFile(
      config,
      [
        "listeners:",
        "  default:",
        "    bind: 127.0.0.1:0",
        "cluster:",
        "  node_id: old",
        `  redis: ${proxy.url}`,
        "",
      ].join("\n"),
    );
    const result = await runCli("amqtt.ts", ["-c", config]);
    assert.equal(result.code, 1, result.stderr);
    assert.ok(
      result.stderr.includes(`Cannot start the broker: Cannot start cluster node "old": ${line}`),
      result.stderr,
    );
    assert.doesNotMatch(result.stderr, /at .*\.ts:\d+/);
  },
);

Deno.test(
  "a cluster node reconnected to an older Redis logs one error, registers nothing and runs no script there, serves its local clients, and joins again once the Redis is recent enough",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const real = await installedVersion();
    const older = olderOfLength(real);
    await using proxy = new OlderVersionProxy(redis.port, real, older);
    proxy.older = false;
    await using node = await Node.start(proxy, { prefix: "v2:", nodeId: "a" });
    await using sub = await Inbox.connect(node, "sub");
    assert.deepEqual(await sub.client.subscribe([{ topic: "local/#", qos: 0 }]), [0]);
    await using pub = await Inbox.connect(node, "pub");
    // A persistent session, whose messages the node writes to the Redis store.
    await using kept = await Inbox.connect(node, "kept", { cleanSession: false });
    assert.deepEqual(await kept.client.subscribe([{ topic: "kept/#", qos: 1 }]), [1]);
    // The same address now answers as an older server (a failover to a replica left behind).
    proxy.older = true;
    proxy.cut();
    const line = new RegExp(
      `ERROR - Cluster: reconnected to Redis, but Redis ${
        older.replaceAll(".", "\\.")
      } is too old: amqtt needs Redis 6\\.2\\.0 or later \\(XADD MINID\\): not registering on it`,
    );
    await until(() => line.test(node.log()), "the error line");
    // Local traffic goes on meanwhile.
    await pub.client.publish("local/x", "here", { qos: 0 });
    await until(() => sub.on("local/x").length === 1, "the local message");
    // A message for the persistent session: its store write is refused before it is sent, as
    // while Redis is away (the store's outage), naming the version.
    const acked = pub.client.publish("kept/x", "stored", { qos: 1 });
    acked.catch(() => {});
    await until(
      () =>
        node.log().includes(`Redis ${older} is too old`) &&
        /Cannot write to the store/.test(node.log()),
      "the store's outage",
    );
    // Several heartbeats later (each looks again): still one line, not back, no script run.
    await delay(1500);
    assert.equal(node.log().split("\n").filter((l) => line.test(l)).length, 1);
    assert.doesNotMatch(node.log(), /Cluster: Redis is back/);
    assert.equal(proxy.scripts, 0, "scripts sent to the older Redis");
    // A recent enough server again: the node registers and says so.
    proxy.older = false;
    proxy.cut();
    await until(() => /Cluster: Redis is back/.test(node.log()), "the node back");
    await acked;
    await until(() => kept.on("kept/x").length === 1, "the persistent session's message");
    assert.ok(sub.client.connected, "the subscriber stays connected");
  },
);

Deno.test(
  "the Redis store asks the version again at a reconnection after a check whose answer was lost with its connection, and is usable again",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    await using store = await RedisStore.open({ url: proxy.url, prefix: "v3:store:" });
    assert.ok(await store.reserveMessageIds(1) > 0);
    // The check after the next reconnection (`INFO server`) held, then its connection closed
    // unanswered: the client does not send it again.
    const { reached, release } = proxy.holdRequestsFrom("$6\r\nserver\r\n");
    proxy.cut();
    await reached;
    proxy.cut();
    release();
    // Usable once a later return's check is answered (a reservation waits for it).
    let guard: ReturnType<typeof setTimeout> | undefined;
    const stuck = new Promise<never>((_, reject) => {
      guard = setTimeout(() => reject(new Error("the store stayed unusable")), 60_000);
    });
    try {
      assert.ok(await Promise.race([store.reserveMessageIds(1), stuck]) > 0);
    } finally {
      clearTimeout(guard);
    }
  },
);

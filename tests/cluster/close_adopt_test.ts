// A node that closes adopts nothing (issue #14): another node's departure heard while it leaves
// the cluster (the notice late, behind its own leaving script) starts no adoption, and nothing
// of one reaches Redis once the node is gone; the session stays in the store for the client's
// next login. Real redis-server, node processes, a TCP proxy holding back what Redis sends to the
// closing node's subscriber connection.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { TestClient } from "../_helpers/test_client.ts";
import { Node, until } from "./_nodes.ts";
import { StallProxy } from "./_stall_proxy.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster close: a node that hears of another node's departure once it has left the cluster adopts none of its sessions and sends nothing for them to Redis",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    await using a = await Node.start(proxy, { nodeId: "a", prefix: "ca1:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "ca1:" });
    await until(() => /Cluster: node b joined/.test(a.log()), "A hearing of B");
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    let release: (() => void) | undefined;
    try {
      // A persistent session on B.
      {
        await using sub = await TestClient.connect(b.port, { clientId: "keep", clean: false });
        await sub.subscribe({ "s/keep": 1 });
        await sub.disconnect();
      }
      assert.equal(await admin.hget("ca1:owner", "keep"), "b");

      // What Redis sends to A's subscriber connection waits in the proxy: B's departure too.
      release = proxy.delayReplies("SUBSCRIBE");
      await b.stop();
      assert.equal(await admin.sismember("ca1:nodes", "b"), 0, "B left");

      // A stops and leaves the cluster; its subscriber connection's QUIT waits behind B's
      // departure, which reaches it after A's leaving script.
      const stopping = a.stop();
      await waitForLeave(admin, "a");
      await using monitor = await Monitor.start(redis.port);
      release();
      release = undefined;
      assert.equal(await stopping, 0);
      // Every command run before this one has reached the monitor.
      await admin.set("ca1:test:mark", "1");
      const seen = await monitor.until("ca1:test:mark");

      assert.doesNotMatch(a.log(), /adopt/, "A adopted nothing while closing");
      assert.deepEqual(
        seen.filter((line) => /"keep"/.test(line)),
        [],
        "nothing about keep reached Redis once A had left",
      );
      assert.equal(await admin.hget("ca1:owner", "keep"), null, "no node owns the session");
    } finally {
      release?.();
      admin.disconnect();
    }
    // The session is still in the store: its client's next login on a node resumes it.
    await using c = await Node.start(redis, { nodeId: "c", prefix: "ca1:" });
    await using again = await TestClient.open(c.port);
    const connack = await again.handshake({ clientId: "keep", clean: false });
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.sessionPresent, true);
  },
);

/** Waits until `node` is no longer a registered node (its leaving script ran). */
async function waitForLeave(admin: Redis, node: string): Promise<void> {
  for (let i = 0;; i++) {
    if (await admin.sismember("ca1:nodes", node) === 0) return;
    assert.ok(i < 6000, `${node} leaving the cluster`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A raw `MONITOR` connection: the lines Redis reports of every command run from now on. */
class Monitor implements AsyncDisposable {
  readonly #conn: Deno.TcpConn;
  #text = "";

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  static async start(port: number): Promise<Monitor> {
    const monitor = new Monitor(await Deno.connect({ hostname: "127.0.0.1", port }));
    await monitor.#conn.write(new TextEncoder().encode("MONITOR\r\n"));
    await monitor.until("+OK");
    return monitor;
  }

  /** Reads until a line contains `text`; returns the lines read so far. */
  async until(text: string): Promise<string[]> {
    const buf = new Uint8Array(64 * 1024);
    const decoder = new TextDecoder();
    while (!this.#text.includes(text)) {
      const n = await this.#conn.read(buf);
      assert.notEqual(n, null, "the monitor connection stays open");
      this.#text += decoder.decode(buf.subarray(0, n!), { stream: true });
    }
    return this.#text.split("\r\n");
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.#conn.close();
    return Promise.resolve();
  }
}

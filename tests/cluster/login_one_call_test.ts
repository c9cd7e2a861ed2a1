// A cluster login reads and claims its session in one Redis call (`ClusterBus.claimRead`): a new
// client id, or a stored session without subscriptions, costs one script call before its
// CONNACK, not a read and then a claim; a stored session with subscriptions is read first (its
// filters are announced before its claim) and claimed with a read again. Counted with Redis's
// MONITOR. Real processes, redis-server, byte-level 3.1.1 and 5.0 clients.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Redis } from "ioredis";
import { TestClient } from "../_helpers/test_client.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { Inbox, Node, until } from "./_nodes.ts";
import { CLAIM_SCRIPT } from "../../src/cluster/_bus_scripts.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
const P = "one:";

/** Whether a command runs a script (EVAL the first time, then EVALSHA). */
function script(command: string[]): boolean {
  return ["eval", "evalsha"].includes(command[0]?.toLowerCase() ?? "");
}

const CLAIM_SHA = createHash("sha1").update(CLAIM_SCRIPT).digest("hex");

/**
 * Whether a command runs the claim script (`CLAIM_SCRIPT`): by its SHA, or its text (a line only
 * it has) the first time.
 */
function claimScript(command: string[]): boolean {
  return script(command) &&
    (command[1] === CLAIM_SHA ||
      (command[1] ?? "").includes("out[#out + 1] = { previous, 0, subscribed }"));
}

/** Every command Redis runs, as MONITOR reports it (arguments as it quotes them). */
class Monitor implements AsyncDisposable {
  readonly commands: string[][] = [];
  readonly #conn: Deno.TcpConn;
  readonly #reading: Promise<void>;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    this.#reading = this.#read();
  }

  static async start(server: RedisServer): Promise<Monitor> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await conn.write(new TextEncoder().encode("MONITOR\r\n"));
    const monitor = new Monitor(conn);
    await until(() => monitor.#started, "MONITOR started");
    return monitor;
  }

  #started = false;

  async #read(): Promise<void> {
    const decoder = new TextDecoder();
    let text = "";
    try {
      for await (const chunk of this.#conn.readable) {
        text += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = text.indexOf("\r\n")) >= 0) {
          const line = text.slice(0, end);
          text = text.slice(end + 2);
          if (line === "+OK") this.#started = true;
          const args = [...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!);
          if (args.length > 0) this.commands.push(args);
        }
      }
    } catch {
      // Closed by dispose.
    }
  }

  /**
   * The session reads of the store (`LOAD_SESSION_SCRIPT`: the store's prefix, the ownership
   * key, the node, then client ids) naming `clientId`.
   */
  reads(clientId: string): number {
    return this.commands.filter((c) =>
      script(c) && c[3] === `${P}store:` && c[4] === `${P}owner` && c.includes(clientId)
    ).length;
  }

  /** The claims of `clientId` with a read, by their read mode (`s`: unless subscribed, `r`). */
  claimReads(clientId: string): string[] {
    const modes: string[] = [];
    for (const c of this.commands) {
      if (!claimScript(c)) continue;
      // EVALSHA, SHA, 0 keys, prefix, node, incarnation, epoch, gen; then 4 arguments per claim:
      // client id, takeover frame, will, read.
      for (let i = 8; i + 3 < c.length; i += 4) {
        if (c[i] === clientId && ["s", "r"].includes(c[i + 3]!)) modes.push(c[i + 3]!);
      }
    }
    return modes;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#conn.close();
    await this.#reading;
  }
}

Deno.test(
  "cluster: a login of a new client id or of a stored session without subscriptions reads and claims it in one Redis call [MQTT-3.1.2-4]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: P });
    await using b = await Node.start(redis, { nodeId: "b", prefix: P });
    await using monitor = await Monitor.start(redis);
    const admin = new Redis({ port: redis.port, host: "127.0.0.1" });
    try {
      // A new client id (3.1.1, Clean Session 0): one call reads (nothing) and claims.
      {
        await using c = await TestClient.connect(a.port, { clientId: "fresh", clean: false });
        await c.disconnect();
      }
      await until(() => monitor.claimReads("fresh").length > 0, "the claim with its read");
      assert.deepEqual(monitor.claimReads("fresh"), ["s"], "one claim with its read");
      assert.equal(monitor.reads("fresh"), 0, "no read of its own");
      assert.equal(await admin.hget(`${P}owner`, "fresh"), "a");

      // Its stored session (no subscriptions) taken to b by a 5.0 client: one call reads and
      // claims it; the read after a's handoff is the only other read.
      const connack = await (async () => {
        await using c = await TestClient.open(b.port, { protocolVersion: 5 });
        const ack = await c.handshake({
          clientId: "fresh",
          clean: false,
          protocolVersion: 5,
          properties: { sessionExpiryInterval: 300 },
        });
        await c.disconnect();
        return ack;
      })();
      assert.equal(connack.reasonCode, 0);
      assert.equal(connack.sessionPresent, true, "the stored session resumed [MQTT-3.2.2-2]");
      assert.deepEqual(monitor.claimReads("fresh"), ["s", "s"]);
      assert.equal(monitor.reads("fresh"), 1, "read again after the handoff only");
      assert.equal(await admin.hget(`${P}owner`, "fresh"), "b");
    } finally {
      await admin.quit();
    }
  },
);

Deno.test(
  "cluster: a login of a stored session with subscriptions reads it, announces its filters, then claims it with a read again, and gets what was queued and published meanwhile [MQTT-3.1.2-4]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: P });
    await using b = await Node.start(redis, { nodeId: "b", prefix: P });
    await using monitor = await Monitor.start(redis);
    {
      await using sub = await TestClient.connect(a.port, { clientId: "subbed", clean: false });
      await sub.subscribe({ "t/subbed": 1 });
      await sub.disconnect();
    }
    {
      await using pub = await Inbox.connect(a, "pub-subbed");
      await pub.client.publish("t/subbed", "queued", { qos: 1 });
    }
    await using sub = await TestClient.open(b.port);
    const connack = await sub.handshake({ clientId: "subbed", clean: false });
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.sessionPresent, true);
    const publish = await sub.expect(PacketType.PUBLISH);
    assert.equal(new TextDecoder().decode(publish.payload), "queued");
    // The first login (on a, a new client id), then b's: a read, then a claim with a read.
    assert.deepEqual(monitor.claimReads("subbed"), ["s", "s", "r"]);
    assert.equal(monitor.reads("subbed"), 1, "read again after the handoff only");
    await sub.disconnect();
  },
);

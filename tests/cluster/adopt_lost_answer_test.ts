// A dead node's persistent session whose adoption script ran in Redis while its answer was lost
// with the connection (the adopter's Redis connection dropped at that moment): the script, run
// again, finds the session owned by the adopter itself, which then adopts it (before, it took it
// as adopted by another node, and no node held it until its client returned): messages published
// while its client is away are queued for it, and every one acknowledged reaches it. Real
// processes and redis-server; the adopter reaches Redis through a proxy of the test's that drops
// the connection carrying the script once it has run.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { assertDelivered } from "./_arrivals.ts";
import { adopted, Inbox, Node, routeReady, UNBOUNDED_QUEUE, until } from "./_nodes.ts";
import { Publisher } from "./_publisher.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
const prefix = "al1:";

/**
 * A TCP proxy to Redis. The first connection that sends a command containing `marker` is
 * dropped once `ran()` says the command has run, and the answers Redis sent it since are not
 * passed on.
 */
class DropProxy implements AsyncDisposable {
  readonly #listener: Deno.TcpListener;
  readonly #target: number;
  readonly #marker: string;
  readonly #ran: () => Promise<boolean>;
  readonly #conns = new Set<Deno.Conn>();
  readonly #pipes = new Set<Promise<void>>();
  readonly #serving: Promise<void>;
  #armed = false;
  /** Connections dropped so far. */
  dropped = 0;

  constructor(target: number, marker: string, ran: () => Promise<boolean>) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#target = target;
    this.#marker = marker;
    this.#ran = ran;
    this.#serving = this.#serve();
  }

  /** What a node is given as its Redis URL. */
  get url(): string {
    return `redis://127.0.0.1:${this.#listener.addr.port}`;
  }

  async #serve(): Promise<void> {
    try {
      for await (const client of this.#listener) {
        const pipe = this.#pipe(client).catch(() => {});
        this.#pipes.add(pipe);
        pipe.then(() => this.#pipes.delete(pipe));
      }
    } catch {
      // Closed.
    }
  }

  async #pipe(client: Deno.Conn): Promise<void> {
    this.#conns.add(client);
    let server: Deno.Conn;
    try {
      server = await Deno.connect({ hostname: "127.0.0.1", port: this.#target });
    } catch {
      this.#close(client);
      return;
    }
    this.#conns.add(server);
    let marked = false;
    let tail = "";
    const up = async () => {
      const buf = new Uint8Array(64 * 1024);
      for (;;) {
        const n = await client.read(buf);
        if (n === null) break;
        const chunk = buf.subarray(0, n);
        if (!this.#armed) {
          const seen = tail + latin1.decode(chunk);
          if (seen.includes(this.#marker)) this.#armed = marked = true;
          tail = seen.slice(-this.#marker.length);
        }
        await write(server, chunk);
      }
    };
    const down = async () => {
      const buf = new Uint8Array(64 * 1024);
      for (;;) {
        const n = await server.read(buf);
        if (n === null) break;
        if (marked) {
          // Held back from here on; dropped once the command has run.
          while (!await this.#ran()) await new Promise((resolve) => setTimeout(resolve, 10));
          this.dropped++;
          break;
        }
        await write(client, buf.subarray(0, n));
      }
    };
    await Promise.all([
      up().catch(() => {}).finally(() => this.#close(server, client)),
      down().catch(() => {}).finally(() => this.#close(server, client)),
    ]);
  }

  #close(...conns: Deno.Conn[]): void {
    for (const conn of conns) {
      if (!this.#conns.delete(conn)) continue;
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    this.#close(...this.#conns);
    await this.#serving;
    await Promise.all(this.#pipes);
  }
}

const latin1 = new TextDecoder("latin1");

async function write(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}

Deno.test(
  "cluster: a dead node's persistent session whose adoption script ran while its answer was lost is adopted when the script runs again; every QoS 1 message acknowledged reaches it [MQTT-4.3.2-1]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const admin = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
    await admin.connect();
    await using _admin = { [Symbol.asyncDispose]: async () => void await admin.quit() };
    // The adoption script's text, sent the first time it runs on a connection.
    await using proxy = new DropProxy(
      redis.port,
      "Reads before writes",
      async () => await admin.hget(`${prefix}owner`, "orphan") === "b",
    );
    const options = { prefix, yaml: [UNBOUNDED_QUEUE] };
    await using a = await Node.start(redis, { nodeId: "a", nodeTimeout: 3, ...options });
    // B, the only node left to adopt, reaches Redis through the proxy.
    await using b = await Node.start(proxy as unknown as RedisServer, { nodeId: "b", ...options });
    const seen: string[] = [];
    let inbox: Inbox | undefined = await Inbox.connect(a, "orphan", { cleanSession: false });
    try {
      assert.deepEqual(await inbox.client.subscribe([{ topic: "al/#", qos: 1 }]), [1]);
      await using pub = await Inbox.connect(b, "pub-b");
      await routeReady(pub.client, inbox, "al/probe");
      // Disposed before `pub`: no publish left pending when its connection closes.
      await using publisher = new Publisher(pub.client, "al/x");
      await until(publisher.reached(20), "messages published before the death");
      await a.crash();
      await inbox[Symbol.asyncDispose]();
      seen.push(...inbox.on("al/x").map((m) => m.payload));
      inbox = undefined;
      await until(
        () => adopted(b.log(), "orphan"),
        "the adoption of the session",
        60_000,
      );
      assert.equal(proxy.dropped, 1, "the connection that ran the script dropped");
      assert.match(b.log(), /cannot adopt the session of orphan/);
      await until(publisher.reached(publisher.sent + 20), "messages published after the adoption");
      const back = inbox = await Inbox.connect(b, "orphan", { cleanSession: false });
      await until(publisher.reached(publisher.sent + 20), "messages published after the return");
      await publisher.stop();
      const acked = publisher.sent;
      await until(
        () => back.on("al/x").some((m) => m.payload === String(acked - 1)),
        "the last message",
      );
      seen.push(...back.on("al/x").map((m) => m.payload));
      assertDelivered(seen, acked);
    } finally {
      await inbox?.[Symbol.asyncDispose]();
    }
  },
);

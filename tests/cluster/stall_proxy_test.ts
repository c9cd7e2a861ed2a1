// The test proxy in front of redis-server (`_stall_proxy.ts`) ends whatever a test left held:
// a test that failed between `delayReplies` and its release left the link's reply copy waiting
// on the gate for ever, and the proxy's end waiting for it (a cluster test hung 26 min so, its
// nodes long gone, its redis-server left). Real redis-server and sockets.
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";
import { settles } from "./_nodes.ts";
import { StallProxy } from "./_stall_proxy.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/** Reads from `conn` until `text` came (or the connection ended: then what came). */
async function readUntil(conn: Deno.Conn, text: string): Promise<string> {
  let got = "";
  const buf = new Uint8Array(1024);
  while (!got.includes(text)) {
    const n = await conn.read(buf);
    if (n === null) break;
    got += new TextDecoder().decode(buf.subarray(0, n));
  }
  return got;
}

Deno.test(
  "StallProxy: its end releases replies a test held back and never released, its links closed",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const proxy = new StallProxy(redis.port);
    let ending = false;
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
      try {
        await conn.write(new TextEncoder().encode("PING\r\n"));
        assert.match(await readUntil(conn, "PONG"), /\+PONG/);
        // Held back, never released (the test "failed" here).
        proxy.delayReplies("PING");
        await conn.write(new TextEncoder().encode("ECHO held\r\n"));
        // The reply reached the proxy and waits at the gate: nothing comes meanwhile.
        const early = conn.read(new Uint8Array(64));
        const nothing = await Promise.race([
          early.then(() => "came"),
          new Promise((resolve) => setTimeout(() => resolve("nothing"), 300)),
        ]);
        assert.equal(nothing, "nothing", "the reply is held");
        ending = true;
        await settles(proxy[Symbol.asyncDispose](), "the proxy's end with a reply held", 20_000);
        // Released at the end: the reply came, or the link closed.
        await early.catch(() => null);
      } finally {
        conn.close();
      }
    } finally {
      if (!ending) await proxy[Symbol.asyncDispose]();
    }
  },
);

/**
 * The bus's RESP2 client against a real redis-server: pipelining, replies of every type, error
 * replies, large values split over many reads, large arguments written in place, a lost
 * connection, AUTH and SELECT, a server at its maxclients, a TLS refusal.
 */

import * as assert from "node:assert/strict";
import {
  DIRECT_BYTES,
  RespClient,
  RespConnectionError,
  RespError,
  RespTlsError,
  type RespValue,
} from "../../src/cluster/resp_client.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { StallProxy } from "./_stall_proxy.ts";

const OPTS = { sanitizeOps: true, sanitizeResources: true };
const text = (v: RespValue) => new TextDecoder().decode(v as Uint8Array);

Deno.test("RespClient answers each reply type in order", OPTS, async () => {
  await using server = await RedisServer.start();
  await using redis = await RespClient.connect({ hostname: "127.0.0.1", port: server.port });
  assert.equal(await redis.send(["PING"]), "PONG");
  assert.equal(await redis.send(["SET", "k", "v"]), "OK");
  assert.equal(text(await redis.send(["GET", "k"])), "v");
  assert.equal(await redis.send(["GET", "missing"]), null);
  assert.equal(await redis.send(["INCRBY", "n", -5]), -5);
  assert.deepEqual(
    (await redis.send(["MGET", "k", "missing"]) as RespValue[]).map((v) =>
      v === null ? null : text(v)
    ),
    ["v", null],
  );
  // Non-ASCII text is sent as UTF-8.
  await redis.send(["SET", "ü/ключ", "é"]);
  assert.equal(text(await redis.send(["GET", "ü/ключ"])), "é");
});

Deno.test("RespClient pipelines many commands and matches replies in order", OPTS, async () => {
  await using server = await RedisServer.start();
  await using redis = await RespClient.connect({ hostname: "127.0.0.1", port: server.port });
  const replies: Promise<RespValue>[] = [];
  for (let i = 0; i < 20_000; i++) replies.push(redis.send(["INCR", "c"]));
  assert.equal(redis.unanswered, 20_000);
  const values = await Promise.all(replies);
  values.forEach((v, i) => assert.equal(v, i + 1));
  assert.equal(redis.unanswered, 0);
  // XADD/XREAD as the bus uses them: ids in order, payloads intact.
  const ids: RespValue[] = [];
  const sends = [];
  for (let i = 0; i < 100; i++) {
    sends.push(
      redis.send(["XADD", "s", "MAXLEN", "~", 10_000, "*", "f", new Uint8Array([i, 0, 255])]),
    );
  }
  ids.push(...await Promise.all(sends));
  const read = await redis.send(["XREAD", "COUNT", 4096, "STREAMS", "s", "0-0"]) as RespValue[];
  const [[name, entries]] = read as [[Uint8Array, [Uint8Array, Uint8Array[]][]]];
  assert.equal(text(name), "s");
  assert.equal(entries.length, 100);
  entries.forEach(([id, fields], i) => {
    assert.equal(text(id), text(ids[i]!));
    assert.equal(text(fields[0]!), "f");
    assert.deepEqual([...fields[1]!], [i, 0, 255]);
  });
});

Deno.test("RespClient rejects an error reply and goes on with the next command", OPTS, async () => {
  await using server = await RedisServer.start();
  await using redis = await RespClient.connect({ hostname: "127.0.0.1", port: server.port });
  await redis.send(["SET", "k", "v"]);
  const bad = redis.send(["XADD", "k", "*", "f", "x"]); // wrong type
  const next = redis.send(["GET", "k"]);
  await assert.rejects(bad, (e) => e instanceof RespError && /WRONGTYPE/.test(e.message));
  assert.equal(text(await next), "v");
  await assert.rejects(redis.send(["NOSUCHCOMMAND"]), RespError);
  // An error inside an array (EXEC) is a value, not a rejection.
  await redis.send(["MULTI"]);
  await redis.send(["INCR", "k"]);
  await redis.send(["SET", "j", "1"]);
  const exec = await redis.send(["EXEC"]) as RespValue[];
  assert.ok(exec[0] instanceof RespError);
  assert.equal(exec[1], "OK");
});

Deno.test("RespClient reads values larger than its read buffer, in place", OPTS, async () => {
  await using server = await RedisServer.start();
  await using redis = await RespClient.connect({ hostname: "127.0.0.1", port: server.port });
  const big = new Uint8Array(5 * 1024 * 1024 + 3);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
  const small = new Uint8Array([7]);
  // Pipelined: a small value, the large one, and a small one again.
  const [a, b, c] = await Promise.all([
    redis.send(["SET", "a", small]),
    redis.send(["SET", "big", big]),
    redis.send(["SET", "c", small]),
  ]);
  assert.deepEqual([a, b, c], ["OK", "OK", "OK"]);
  const [x, got, y] = await Promise.all([
    redis.send(["GET", "a"]),
    redis.send(["GET", "big"]),
    redis.send(["GET", "c"]),
  ]) as Uint8Array[];
  assert.deepEqual([...x!], [7]);
  assert.equal(got!.length, big.length);
  assert.ok(got!.every((v, i) => v === big[i]));
  assert.deepEqual([...y!], [7]);
  // The argument buffer may be reused at once after send(): it was copied.
  const reused = new Uint8Array([1, 2, 3]);
  const set = redis.send(["SET", "r", reused]);
  reused.fill(9);
  await set;
  assert.deepEqual([...await redis.send(["GET", "r"]) as Uint8Array], [1, 2, 3]);
});

Deno.test("RespClient rejects what is unanswered when the connection is lost", OPTS, async () => {
  await using server = await RedisServer.start();
  await using redis = await RespClient.connect({ hostname: "127.0.0.1", port: server.port });
  await using killer = await RespClient.connect({ hostname: "127.0.0.1", port: server.port });
  const id = await redis.send(["CLIENT", "ID"]);
  // Blocked until its connection is killed.
  const blocked = redis.send(["BLPOP", "nothing", 0]);
  const behind = redis.send(["PING"]);
  const rejected = Promise.all([
    assert.rejects(blocked, RespConnectionError),
    assert.rejects(behind, RespConnectionError),
  ]);
  assert.equal(await killer.send(["CLIENT", "KILL", "ID", id as number]), 1);
  await rejected;
  assert.ok(redis.closed);
  await assert.rejects(redis.send(["PING"]), RespConnectionError);
  // A new client reaches the same server (the owner reconnects by opening another).
  await using again = await RespClient.connect({ hostname: "127.0.0.1", port: server.port });
  assert.equal(await again.send(["PING"]), "PONG");
});

Deno.test("RespClient close rejects a blocking read at once", OPTS, async () => {
  await using server = await RedisServer.start();
  const redis = await RespClient.connect({ hostname: "127.0.0.1", port: server.port });
  const blocked = redis.send(["XREAD", "BLOCK", 0, "STREAMS", "s", "$"]);
  const rejected = assert.rejects(blocked, RespConnectionError);
  await redis.close();
  await rejected;
  await redis.close(); // idempotent
});

Deno.test("RespClient authenticates and selects the database", OPTS, async () => {
  await using server = await RedisServer.start({ password: "sekret" });
  await assert.rejects(
    RespClient.connect({ hostname: "127.0.0.1", port: server.port, password: "wrong" }),
    (e) => e instanceof RespError && /WRONGPASS|invalid/i.test(e.message),
  );
  await using redis = await RespClient.connect({
    hostname: "127.0.0.1",
    port: server.port,
    password: "sekret",
    db: 3,
  });
  await redis.send(["SET", "k", "in3"]);
  await using other = await RespClient.connect({
    hostname: "127.0.0.1",
    port: server.port,
    username: "default",
    password: "sekret",
  });
  assert.equal(await other.send(["GET", "k"]), null);
  await other.send(["SELECT", 3]);
  assert.equal(text(await other.send(["GET", "k"])), "in3");
});

Deno.test("RespClient.connect fails when nothing listens", OPTS, async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  await assert.rejects(
    RespClient.connect({ hostname: "127.0.0.1", port }),
    Deno.errors.ConnectionRefused,
  );
});

Deno.test(
  "RespClient writes large arguments from where they are, in order among small commands",
  OPTS,
  async () => {
    await using server = await RedisServer.start();
    await using redis = await RespClient.connect({ hostname: "127.0.0.1", port: server.port });
    const sizes = [DIRECT_BYTES - 1, DIRECT_BYTES, 300 * 1024, 20_000, 1, 1024 * 1024];
    const values = sizes.map((size, n) => {
      const value = new Uint8Array(size);
      for (let i = 0; i < size; i++) value[i] = (i * 7 + n) & 0xff;
      return value;
    });
    // One turn: each large value between small commands, and enough small ones after the last to
    // grow the write buffer while the large values wait to be written.
    const sends: Promise<RespValue>[] = [];
    values.forEach((value, n) => {
      sends.push(redis.send(["INCR", "c"]));
      sends.push(redis.send(["XADD", "s", "*", "f", value, "n", n]));
    });
    for (let i = 0; i < 5000; i++) sends.push(redis.send(["INCR", "c"]));
    const replies = await Promise.all(sends);
    assert.equal(replies.at(-1), 5000 + values.length);
    const entries = await redis.send(["XRANGE", "s", "-", "+"]) as [Uint8Array, Uint8Array[]][];
    assert.equal(entries.length, values.length);
    entries.forEach(([, fields], n) => {
      assert.equal(text(fields[3]!), String(n));
      assert.deepEqual(fields[1], values[n]);
    });
  },
);

Deno.test(
  "RespClient.connect fails with Redis's error at a server over its maxclients",
  OPTS,
  async () => {
    await using server = await RedisServer.start();
    await using admin = await RespClient.connect({ hostname: "127.0.0.1", port: server.port });
    await admin.send(["CONFIG", "SET", "maxclients", 1]);
    // The server accepts the socket, answers with an error and closes it: the PING tells.
    await assert.rejects(
      RespClient.connect({ hostname: "127.0.0.1", port: server.port, name: "named" }),
      (e) => e instanceof RespError && /max number of clients/.test(e.message),
    );
  },
);

Deno.test(
  "RespClient.connect names the connection, and tells a TLS failure apart from a refused one",
  OPTS,
  async () => {
    await using server = await RedisServer.start();
    await using redis = await RespClient.connect({
      hostname: "127.0.0.1",
      port: server.port,
      name: "amqtt:n1:xadd",
    });
    assert.equal(text(await redis.send(["CLIENT", "GETNAME"])), "amqtt:n1:xadd");
    // A server that answers a TLS handshake with plain RESP.
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    const answered = listener.accept().then(async (conn) => {
      await conn.write(new TextEncoder().encode("-ERR not TLS\r\n"));
      return conn;
    });
    await assert.rejects(
      RespClient.connect({ hostname: "127.0.0.1", port, tls: {} }),
      (e) =>
        e instanceof RespTlsError &&
        /^Cannot open a TLS connection to 127\.0\.0\.1:/.test(e.message),
    );
    (await answered).close();
  },
);

Deno.test(
  "RespClient.connect gives up when the server does not answer within connectTimeout",
  OPTS,
  async () => {
    // Accepts the connection and never answers (nor does a plain RESP server a TLS handshake).
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    const accepted: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const conn of listener) accepted.push(conn);
    })();
    for (const tls of [undefined, {}]) {
      await assert.rejects(
        RespClient.connect({
          hostname: "127.0.0.1",
          port,
          connectTimeout: 50,
          ...(tls ? { tls } : {}),
        }),
        (e) => e instanceof RespConnectionError && /no answer within 50 ms/.test(e.message),
      );
    }
    listener.close();
    await accepting.catch(() => {});
    for (const conn of accepted) conn.close();
    assert.equal(accepted.length, 2);
  },
);

Deno.test(
  "RespClient.connect gives up within connectTimeout when its SYN is never answered (a full listen queue)",
  OPTS,
  async () => {
    await using server = await RedisServer.start();
    await using proxy = new StallProxy(server.port);
    // Through the proxy first: it forwards.
    const through = await RespClient.connect({ hostname: "127.0.0.1", port: proxy.port });
    assert.equal(await through.send(["PING"]), "PONG");
    await proxy.fillQueue();
    await assert.rejects(
      RespClient.connect({ hostname: "127.0.0.1", port: proxy.port, connectTimeout: 100 }),
      (e) =>
        e instanceof RespConnectionError && /no answer within 100 ms/.test(e.message) &&
        (e.cause as Error).name === "AbortError",
    );
    // The connection opened before goes on; a new one gets through once the proxy accepts again.
    assert.equal(await through.send(["PING"]), "PONG");
    await proxy.resume();
    await using again = await RespClient.connect({ hostname: "127.0.0.1", port: proxy.port });
    assert.equal(await again.send(["PING"]), "PONG");
    await through.close();
  },
);

/**
 * The bus's RESP2 client against a real redis-server: pipelining, replies of every type, error
 * replies, large values split over many reads, a lost connection, AUTH and SELECT.
 */

import * as assert from "node:assert/strict";
import {
  RespClient,
  RespConnectionError,
  RespError,
  type RespValue,
} from "../../src/cluster/resp_client.ts";
import { RedisServer } from "../_helpers/redis.ts";

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

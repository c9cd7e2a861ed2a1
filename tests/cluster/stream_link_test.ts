// The bus's stream connections (the RESP client's XADDs and XREAD) against a real redis-server:
// how many connections a node holds, an outage of those connections alone (Redis refusing new
// connections at its maxclients), retried with the reconnect back-off on the bus's injected
// timer and reported once each way, and the move to ioredis when Deno's TLS refuses what ioredis
// accepts; and what a node logs of an outage of those connections.
import assert from "node:assert/strict";
import { Redis, type RedisOptions } from "ioredis";
import type { BusTimers } from "../../src/cluster/cluster_bus.ts";
import type { MessageRecord } from "../../src/store/message_record.ts";
import { certFiles } from "../_helpers/certs.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { collect, MANUAL_TIMERS, nextEvent, startBus, until } from "./_bus_helpers.ts";
import { Inbox, Node, until as nodeUntil } from "./_nodes.ts";
import { StallProxy } from "./_stall_proxy.ts";
import { StreamLink } from "../../src/cluster/_stream_link.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function msg(topic: string, body: string): MessageRecord {
  return { topic, payload: new TextEncoder().encode(body), qos: 0, retain: false };
}

/** A connection of the test's own to the server, for CLIENT and CONFIG; disposed at the end. */
async function admin(server: RedisServer, tls?: RedisOptions["tls"]) {
  const redis = new Redis({
    host: tls === undefined ? "127.0.0.1" : "localhost",
    port: server.port,
    lazyConnect: true,
    ...(tls === undefined ? {} : { tls }),
  });
  await redis.connect();
  const self = await redis.client("ID") as number;
  return {
    redis,
    /** The other clients, as `CLIENT LIST` fields. */
    async clients(): Promise<Record<string, string>[]> {
      const list = await redis.client("LIST") as string;
      return list.trim().split("\n").map((line) =>
        Object.fromEntries(line.trim().split(" ").map((f) => f.split("=", 2) as [string, string]))
      ).filter((c) => c.id !== String(self));
    },
    async rejected(): Promise<number> {
      return Number(/rejected_connections:(\d+)/.exec(await redis.info("stats"))![1]);
    },
    [Symbol.asyncDispose]: async () => {
      await redis.quit();
    },
  };
}

/** Retry timers the test fires itself, with the delays the bus asked for. */
function manualTimeouts() {
  const pending = new Map<number, { callback: () => void; ms: number }>();
  let next = 1;
  const timers: BusTimers = {
    ...MANUAL_TIMERS,
    setTimeout: (callback, ms) => {
      pending.set(next, { callback, ms });
      return next++;
    },
    clearTimeout: (id) => pending.delete(id),
  };
  return {
    timers,
    get pending(): number[] {
      return [...pending.values()].map((p) => p.ms);
    },
    /** Runs the one pending timer. */
    fire(): void {
      assert.equal(pending.size, 1, "one retry pending");
      const [[id, { callback }]] = [...pending];
      pending.delete(id!);
      callback();
    },
  };
}

Deno.test("ClusterBus: a node holds four Redis connections (command, subscriber, XADD, XREAD): no idle ioredis reader", async () => {
  await using server = await RedisServer.start();
  await using redis = await admin(server);
  await using _a = await startBus(server, "a");
  const clients = await redis.clients();
  assert.equal(clients.length, 4);
  // The two named ones are the RESP client's; the unnamed ones ioredis's.
  assert.deepEqual(clients.map((c) => c.name).sort(), ["", "", "test:a:xadd", "test:a:xread"]);
  // Blocked reading the node's stream in its group (once the group is set, a moment after start).
  await until(async () =>
    (await redis.clients()).find((c) => c.name === "test:a:xread")?.cmd === "xreadgroup"
  );
});

Deno.test("ClusterBus: stream connections that cannot be opened again while Redis answers are reported lost once, retried with the back-off on the bus's timer (reset on success), reported back once, and what waited then goes both ways", async () => {
  await using server = await RedisServer.start();
  await using redis = await admin(server);
  const manual = manualTimeouts();
  await using a = await startBus(server, "a");
  // The default back-off: 100 ms doubling up to 5 s.
  await using b = await startBus(server, "b", { timers: manual.timers, retryDelay: undefined });
  const states = collect(b, "state");
  const atA = collect(a, "message");
  const atB = collect(b, "message");
  await a.addInterest("to-a/#");
  await b.addInterest("to-b/#");
  await until(() => a.nodesFor("to-b/1").length === 1 && b.nodesFor("to-a/1").length === 1);

  /** Redis takes no more connections; b's two stream connections are dropped. */
  const cutOff = async () => {
    const clients = await redis.clients();
    const streams = clients.filter((c) => c.name?.startsWith("test:b:"));
    assert.equal(streams.length, 2);
    await redis.redis.config("SET", "maxclients", String(clients.length + 1 - 2));
    const lost = nextEvent(b, "state", (s) => s.state === "streamsLost");
    for (const c of streams) await redis.redis.client("KILL", "ID", c.id!);
    return lost;
  };
  const rejectedBefore = await redis.rejected();
  const lost = await cutOff();
  assert.match((lost as { error: string }).error, /max number of clients/);
  // One attempt at once (both connections refused), then the retries on the bus's timer only.
  assert.deepEqual(manual.pending, [100]);
  assert.equal(await redis.rejected() - rejectedBefore, 2);
  assert.equal(b.ready, true, "Redis itself is reachable");
  assert.equal(b.streamsUp, false);
  // What is published meanwhile waits: b's forward in its outbox, a's in b's stream.
  assert.equal(b.publish(msg("to-a/1", "from b"), "p"), 1);
  assert.equal(a.publish(msg("to-b/1", "from a"), "p"), 1);
  for (const delay of [200, 400]) {
    manual.fire();
    await until(() => manual.pending.length === 1);
    assert.deepEqual(manual.pending, [delay]);
  }
  assert.equal(await redis.rejected() - rejectedBefore, 6, "one attempt per retry fired");
  assert.equal(atA.length + atB.length, 0);

  await redis.redis.config("SET", "maxclients", "10000");
  const back = nextEvent(b, "state", (s) => s.state === "streamsBack");
  manual.fire();
  await back;
  assert.equal(b.streamsUp, true);
  await until(() => atA.length === 1 && atB.length === 1);
  assert.deepEqual([text(atA[0]!.message.payload), text(atB[0]!.message.payload)], [
    "from b",
    "from a",
  ]);
  assert.deepEqual(manual.pending, []);
  // One line's worth each way, the attempts in between; never "disconnected": Redis answered.
  assert.deepEqual(
    states.map((s) =>
      s.state === "reconnecting" ? `${s.connection} ${s.attempt} ${s.delay}` : s.state
    ),
    ["streamsLost", "stream 1 100", "stream 2 200", "stream 3 400", "streamsBack"],
  );

  // The back-off starts again from its first delay after a success.
  await cutOff();
  assert.deepEqual(manual.pending, [100]);
  await redis.redis.config("SET", "maxclients", "10000");
  const again = nextEvent(b, "state", (s) => s.state === "streamsBack");
  manual.fire();
  await again;
});

Deno.test("ClusterBus: stream connections lost with Redis itself are reported once, as Redis's loss, and opened again by the resync", async () => {
  await using server = await RedisServer.start();
  const manual = manualTimeouts();
  await using a = await startBus(server, "a");
  await using b = await startBus(server, "b", { timers: manual.timers });
  const states = collect(b, "state");
  await b.addInterest("x/#");
  await until(() => a.nodesFor("x/1").length === 1);
  const ready = nextEvent(b, "state", (s) => s.state === "ready");
  await server.restart();
  await ready;
  // The stream connections are open again with the resync: no retry of their own is pending.
  assert.deepEqual(manual.pending, []);
  assert.equal(b.streamsUp, true);
  assert.deepEqual(
    states.filter((s) => s.state !== "reconnecting").map((s) => s.state),
    ["disconnected", "ready"],
  );
  await until(() => a.nodesFor("x/1").length === 1);
  const arrived = nextEvent(b, "message");
  a.publish(msg("x/1", "after"), "p");
  assert.equal(text((await arrived).message.payload), "after");
});

/** A self-signed server certificate that is its own CA (OpenSSL accepts it, rustls does not). */
async function selfSignedFiles() {
  const dir = await Deno.makeTempDir({ prefix: "amqtt_selfsigned_" });
  const out = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      "self.key",
      "-out",
      "self.pem",
      "-days",
      "2",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
    ],
    cwd: dir,
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return {
    certFile: `${dir}/self.pem`,
    keyFile: `${dir}/self.key`,
    cert: await Deno.readTextFile(`${dir}/self.pem`),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

Deno.test("ClusterBus: when Deno's TLS refuses a server certificate ioredis accepts (self-signed, its own CA), the streams move to ioredis, the bus says why, and messages flow", async () => {
  await using certs = await certFiles();
  await using self = await selfSignedFiles();
  await using server = await RedisServer.start({
    tls: {
      certFile: self.certFile,
      keyFile: self.keyFile,
      caFile: certs.caFile,
      ca: self.cert,
      clientCert: certs.clientCert,
      clientKey: certs.clientKey,
    },
  });
  const tls = { ca: self.cert, cert: certs.clientCert, key: certs.clientKey };
  await using a = await startBus(server, "a", { tls });
  await using b = await startBus(server, "b", { tls });
  assert.match(
    a.streamsFallback ?? "",
    /^Cannot open a TLS connection to localhost:\d+: .*CaUsedAsEndEntity/,
  );
  await b.addInterest("secure/#");
  await until(() => a.nodesFor("secure/1").length === 1);
  const arrived = nextEvent(b, "message");
  a.publish(msg("secure/1", "over ioredis"), "p");
  assert.equal(text((await arrived).message.payload), "over ioredis");
  // Per node: command, subscriber and the ioredis reader; the RESP connections are not kept.
  await using redis = await admin(server, tls);
  assert.equal((await redis.clients()).length, 6);
});

Deno.test("ClusterBus: TLS without certificate verification keeps the streams on ioredis (said why) and opens the ioredis reader", async () => {
  await using certs = await certFiles();
  await using server = await RedisServer.start({
    tls: {
      certFile: certs.serverCertFile,
      keyFile: certs.serverKeyFile,
      caFile: certs.caFile,
      ca: certs.ca,
      clientCert: certs.clientCert,
      clientKey: certs.clientKey,
    },
  });
  const tls = { cert: certs.clientCert, key: certs.clientKey, rejectUnauthorized: false };
  await using a = await startBus(server, "a", { tls });
  await using b = await startBus(server, "b", { tls });
  assert.match(b.streamsFallback ?? "", /without verifying/);
  await b.addInterest("plain/#");
  await until(() => a.nodesFor("plain/1").length === 1);
  const arrived = nextEvent(b, "message");
  a.publish(msg("plain/1", "unverified"), "p");
  assert.equal(text((await arrived).message.payload), "unverified");
  await using redis = await admin(server, {
    ca: certs.ca,
    cert: certs.clientCert,
    key: certs.clientKey,
  });
  assert.equal((await redis.clients()).length, 6);
});

Deno.test("cluster: a node logs an outage of its stream connections once when it starts and once when it ends, not each attempt, and keeps its clients", async () => {
  await using server = await RedisServer.start();
  await using redis = await admin(server);
  await using node = await Node.start(server, { nodeId: "n", prefix: "sl1:" });
  await using inbox = await Inbox.connect(node, "local");
  const clients = await redis.clients();
  const streams = clients.filter((c) => c.name?.startsWith("sl1:n:"));
  assert.deepEqual(streams.map((c) => c.name).sort(), ["sl1:n:xadd", "sl1:n:xread"]);
  await redis.redis.config("SET", "maxclients", String(clients.length + 1 - 2));
  const rejected = await redis.rejected();
  for (const c of streams) await redis.redis.client("KILL", "ID", c.id!);
  await nodeUntil(
    () => /cannot open the message stream connections/.test(node.log()),
    "the outage logged",
  );
  // Attempts go on (two connections each) while nothing more is logged.
  await until(async () => await redis.rejected() - rejected >= 6, 6000);
  await redis.redis.config("SET", "maxclients", "10000");
  await nodeUntil(() => /message stream connections to Redis back/.test(node.log()), "the end");
  const log = node.log();
  assert.equal(log.match(/cannot open the message stream connections/g)?.length, 1);
  assert.equal(log.match(/message stream connections to Redis back/g)?.length, 1);
  assert.doesNotMatch(log, /reconnecting to Redis|lost Redis/);
  // Its own clients were served throughout.
  assert.ok(inbox.client.connected);
  await inbox.client.subscribe([{ topic: "local/#", qos: 1 }]);
  await inbox.client.publish("local/1", "here", { qos: 1 });
  await nodeUntil(() => inbox.on("local/1").length === 1, "the local message");
});

Deno.test("ClusterBus: a stream connection whose server accepts and never answers, or never answers its SYN, fails at the connect timeout, is reported lost once and retried with the back-off", async () => {
  await using server = await RedisServer.start();
  await using redis = await admin(server);
  await using proxy = new StallProxy(server.port);
  const manual = manualTimeouts();
  await using a = await startBus(server, "a");
  await using b = await startBus(server, "b", {
    url: proxy.url,
    timers: manual.timers,
    retryDelay: undefined,
    streamConnectTimeout: 200,
  });
  const states = collect(b, "state");
  const atB = collect(b, "message");
  await b.addInterest("to-b/#");
  await until(() => a.nodesFor("to-b/1").length === 1);

  // New connections are accepted and never answered; b's stream connections are dropped.
  proxy.mode = "stall";
  const lost = nextEvent(b, "state", (s) => s.state === "streamsLost");
  for (const c of (await redis.clients()).filter((c) => c.name?.startsWith("test:b:"))) {
    await redis.redis.client("KILL", "ID", c.id!);
  }
  assert.match((await lost as { error: string }).error, /no answer within 200 ms/);
  assert.deepEqual(manual.pending, [100]);
  assert.equal(b.ready, true, "Redis itself answers");

  // Now the proxy accepts nothing and its listen queue is full: a connect's SYN goes unanswered.
  await proxy.fillQueue();
  manual.fire();
  await until(() => manual.pending.length === 1);
  assert.deepEqual(manual.pending, [200]);
  manual.fire();
  await until(() => manual.pending.length === 1);
  assert.deepEqual(manual.pending, [400]);
  assert.equal(b.streamsUp, false);

  // Through again: the next attempt opens them, and what waited in b's stream arrives.
  a.publish(msg("to-b/1", "waited"), "p");
  proxy.mode = "forward";
  await proxy.resume();
  const back = nextEvent(b, "state", (s) => s.state === "streamsBack");
  manual.fire();
  await back;
  await until(() => atB.length === 1);
  assert.equal(text(atB[0]!.message.payload), "waited");
  assert.deepEqual(
    states.map((s) =>
      s.state === "reconnecting" ? `${s.connection} ${s.attempt} ${s.delay}` : s.state
    ),
    ["streamsLost", "stream 1 100", "stream 2 200", "stream 3 400", "streamsBack"],
  );
  for (const conn of proxy.stalled) conn.close();
});

Deno.test("StreamLink: after a reset (a failover) while one connection opened and the other was still opening, the old attempt keeps neither, a new open is not joined to it, and both connections end on the new server", async () => {
  await using first = await RedisServer.start();
  await using second = await RedisServer.start();
  await using atFirst = await admin(first);
  await using atSecond = await admin(second);
  await using proxy = new StallProxy(first.port);
  // The command connection is only read for its address: the proxy, whose upstream moves.
  const command = new Redis({ host: "127.0.0.1", port: proxy.port, lazyConnect: true });
  const link = new StreamLink(command, "t");
  const names = async (at: typeof atFirst) => (await at.clients()).map((c) => c.name).sort();
  try {
    // The XREAD connection is held before it reaches Redis; the XADD one opens on the first.
    const held = proxy.hold(":xread");
    const old = link.open();
    const reader = await held;
    await until(async () => (await names(atFirst)).includes("t:xadd"));
    // The command connection moved to the second server.
    link.reset();
    proxy.upstream = second.port;
    await link.open();
    assert.deepEqual(await names(atSecond), ["t:xadd", "t:xread"]);
    // The old attempt's reader gets through now (to the second server): it fails, and keeps
    // neither its reader nor its writer on the first server.
    proxy.release(reader);
    await assert.rejects(old, /reset while opening/);
    await until(async () => (await names(atFirst)).length === 0);
    await until(async () => (await names(atSecond)).length === 2);
    assert.deepEqual(await names(atSecond), ["t:xadd", "t:xread"]);
    // The link's pair is the second server's.
    for (const client of [link.writer!, link.reader!]) {
      const info = text(await client.send(["INFO", "server"]) as Uint8Array);
      assert.match(info, new RegExp(`tcp_port:${second.port}\\r\\n`));
    }
  } finally {
    await link.close();
    command.disconnect();
  }
});

Deno.test("ClusterBus: after a failover, the resync opens the stream connections on the new server at once: it does not wait for an attempt made on the lost server, nor report the streams lost", async () => {
  await using first = await RedisServer.start();
  await using second = await RedisServer.start();
  const atFirst = await admin(first);
  await using proxy = new StallProxy(first.port);
  await using a = await startBus(second, "a");
  // A long connect timeout: a resync that waited for the attempt on the lost server would wait
  // for it, then report the streams lost.
  await using b = await startBus(first, "b", { url: proxy.url, streamConnectTimeout: 60_000 });
  const states = collect(b, "state");
  // b's XREAD connection is lost; the attempt to open it again is held by the proxy.
  const held = proxy.hold(":xread");
  const xread = (await atFirst.clients()).find((c) => c.name === "test:b:xread");
  await atFirst.redis.client("KILL", "ID", xread!.id!);
  const heldConn = await held;
  await atFirst[Symbol.asyncDispose]();
  // The failover: the proxy now leads to the second server, and the first one is gone.
  proxy.upstream = second.port;
  const ready = nextEvent(b, "state", (s) => s.state === "ready");
  await first.stop();
  await ready;
  assert.equal(b.streamsUp, true);
  assert.deepEqual(
    states.filter((s) => s.state !== "reconnecting").map((s) => s.state),
    ["disconnected", "ready"],
  );
  // The old attempt's connection gets through now (to the second server): it is not kept.
  proxy.release(heldConn);
  // Messages flow on the second server both ways.
  await b.addInterest("to-b/#");
  await a.addInterest("to-a/#");
  await until(() => a.nodesFor("to-b/1").length === 1 && b.nodesFor("to-a/1").length === 1);
  const atB = nextEvent(b, "message");
  const atA = nextEvent(a, "message");
  a.publish(msg("to-b/1", "after"), "p");
  b.publish(msg("to-a/1", "back"), "p");
  assert.equal(text((await atB).message.payload), "after");
  assert.equal(text((await atA).message.payload), "back");
});

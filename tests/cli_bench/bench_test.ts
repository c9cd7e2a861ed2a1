/**
 * `amqtt bench` (cli/bench): small runs against our broker, asserting counts, no losses and the
 * payload timestamp path; the histogram and argument handling on their own.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startBroker } from "../_helpers/broker.ts";
import {
  expandTopic,
  LatencyHistogram,
  openConnections,
  PAYLOAD_HEADER,
  Publishers,
  runBenchCommand,
  Subscribers,
} from "../../cli/bench/mod.ts";
import type { BenchTarget } from "../../cli/bench/mod.ts";
import { MQTTClient } from "../../client.ts";
import { hashPassword } from "../../src/plugins/mod.ts";
import { runCli, spawnCli } from "../cli/_helpers.ts";

const test = (name: string, fn: () => Promise<void> | void) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

function target(port: number, protocolVersion: 3 | 4 = 4): BenchTarget {
  return { host: "127.0.0.1", port, protocolVersion, keepAlive: 60, clean: true };
}

for (const qos of [0, 1, 2] as const) {
  test(`bench publishers and subscribers move every message at QoS ${qos} with no loss`, async () => {
    await using b = await startBroker();
    const subs = await Subscribers.connect({
      target: target(b.port),
      connections: 2,
      clientIdPrefix: `sub${qos}-`,
      topic: "bench/+",
      qos,
      limit: 0,
      duration: 0,
    });
    const pubs = await Publishers.connect({
      target: target(b.port),
      connections: 3,
      clientIdPrefix: `pub${qos}-`,
      topic: "bench/%i",
      qos,
      size: 100,
      rate: 0,
      limit: 500,
      duration: 0,
    });
    const sent = await pubs.run();
    assert.equal(sent.sent, 1500);
    assert.equal(sent.acked, 1500);
    assert.equal(sent.failed, 0);
    const until = Date.now() + 5000;
    while (subs.received < 3000 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    const got = await subs.stop();
    assert.equal(got.received, 3000, "each of 2 subscribers gets all 1500 messages");
    assert.equal(got.gaps, 0);
    assert.equal(got.duplicates, 0);
    assert.equal(got.latency.count, 3000, "every payload carried a usable timestamp");
    assert.ok(got.latency.percentile(0.99) <= got.latency.max);
  });
}

test("bench speaks MQTT 3.1 (MQIsdp, level 3)", async () => {
  await using b = await startBroker();
  const subs = await Subscribers.connect({
    target: target(b.port, 3),
    connections: 1,
    clientIdPrefix: "sub31-",
    topic: "v31/#",
    qos: 1,
    limit: 100,
    duration: 0,
  });
  const pubs = await Publishers.connect({
    target: target(b.port, 3),
    connections: 1,
    clientIdPrefix: "pub31-",
    topic: "v31/%i",
    qos: 1,
    size: PAYLOAD_HEADER,
    rate: 0,
    limit: 100,
    duration: 0,
  });
  assert.equal((await pubs.run()).acked, 100);
  const got = await subs.wait(undefined, 5);
  assert.equal(got.received, 100);
  assert.equal(got.gaps, 0);
});

test("bench publisher rate limit caps what is sent in a duration", async () => {
  await using b = await startBroker();
  const pubs = await Publishers.connect({
    target: target(b.port),
    connections: 1,
    clientIdPrefix: "rate-",
    topic: "rate/%i",
    qos: 0,
    size: 32,
    rate: 200,
    limit: 0,
    duration: 0.5,
  });
  const r = await pubs.run();
  // At 200 msg/s for 0.5 s: never more than the schedule allows (the first message goes at t=0).
  assert.ok(r.sent > 0 && r.sent <= 101, `sent ${r.sent}`);
});

test("bench openConnections opens and closes idle connections", async () => {
  await using b = await startBroker();
  const idle = await openConnections({
    target: target(b.port),
    connections: 50,
    clientIdPrefix: "idle-",
    rate: 0,
    concurrency: 10,
  });
  assert.equal(idle.report.connections, 50);
  assert.equal(idle.report.failed, 0);
  assert.equal(idle.report.latency.count, 50);
  assert.equal(b.broker.stats.clientsConnected, 50);
  await idle.close();
  const until = Date.now() + 3000;
  while (b.broker.stats.clientsConnected > 0 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(b.broker.stats.clientsConnected, 0);
});

test("bench openConnections counts refused connections as failures", async () => {
  await using b = await startBroker({
    auth: { "allow-anonymous": false, plugins: ["auth_anonymous"] },
  });
  const idle = await openConnections({
    target: target(b.port),
    connections: 3,
    clientIdPrefix: "refused-",
    rate: 0,
  });
  assert.equal(idle.report.connections, 0);
  assert.equal(idle.report.failed, 3);
  assert.match(idle.report.firstError ?? "", /CONNACK return code 5/);
  await idle.close();
});

test("runBenchCommand pub and sub exit 0 when every message arrives", async () => {
  await using b = await startBroker();
  const port = String(b.port);
  const sub = runBenchCommand([
    "sub",
    "-p",
    port,
    "--connections",
    "2",
    "-t",
    "cmd/#",
    "-q",
    "2",
    "-C",
    "400",
    "-W",
    "10",
    "--quiet",
  ]);
  const until = Date.now() + 3000;
  while (b.broker.subscriptions().length < 2 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const pub = [
    ...["pub", "-p", port, "--connections", "4", "-t", "cmd/%i", "-q", "2", "-C", "100", "--quiet"],
  ];
  assert.equal(await runBenchCommand(pub), 0);
  assert.equal(await sub, 0, "both subscribers received all 400 messages");
});

test("runBenchCommand conn holds connections for the duration and exits 0", async () => {
  await using b = await startBroker();
  let peak = 0;
  const off = b.broker.on("clientConnected", () => {
    peak = Math.max(peak, b.broker.stats.clientsConnected);
  });
  const code = await runBenchCommand([
    "conn",
    "-p",
    String(b.port),
    "--connections",
    "20",
    "-W",
    "0.2",
    "--quiet",
  ]);
  off();
  assert.equal(code, 0);
  assert.equal(peak, 20);
});

test("runBenchCommand returns 2 for unusable arguments and 0 for --help", async () => {
  assert.equal(await runBenchCommand(["pub", "-t", "x", "-q", "3"]), 2);
  assert.equal(await runBenchCommand(["pub", "-t", "x", "--size", "8"]), 2);
  // The old emqtt-bench letters are refused, never read with another meaning.
  for (const old of [["-L", "1"], ["-s", "64"], ["-d", "1"], ["-F", "20"], ["-c", "8"]]) {
    assert.equal(await runBenchCommand(["pub", "-t", "x", ...old]), 2, old.join(" "));
  }
  assert.equal(await runBenchCommand(["pub"]), 2, "the topic is required");
  assert.equal(await runBenchCommand(["nonsense"]), 2);
  assert.equal(await runBenchCommand(["--help"]), 0);
});

test("runBenchCommand returns 1 when the broker cannot be reached", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  assert.equal(await runBenchCommand(["pub", "-p", String(port), "-t", "x", "-C", "1"]), 1);
});

test("expandTopic replaces %i and %c", () => {
  assert.equal(expandTopic("a/%i/b/%c/%i", 7, "cid"), "a/7/b/cid/7");
  assert.equal(expandTopic("plain", 1, "x"), "plain");
});

test("LatencyHistogram percentiles stay within 0.1% over a wide range", () => {
  const h = new LatencyHistogram();
  for (let v = 1; v <= 100_000; v++) h.record(v);
  assert.equal(h.count, 100_000);
  assert.equal(h.max, 100_000);
  for (const [f, want] of [[0.5, 50_000], [0.99, 99_000], [0.001, 100]] as const) {
    const got = h.percentile(f);
    assert.ok(Math.abs(got - want) <= want * 0.001 + 1, `p${f * 100}: ${got} vs ${want}`);
  }
  const other = new LatencyHistogram();
  other.record(5_000_000);
  other.record(-3);
  h.merge(other);
  assert.equal(h.count, 100_002);
  assert.equal(h.max, 5_000_000);
  assert.equal(h.percentile(1), 5_000_000);
  assert.equal(new LatencyHistogram().percentile(0.5), 0);
});

/** Waits until the broker holds `n` subscriptions. */
async function subscriptions(b: { broker: { subscriptions(): unknown[] } }, n: number) {
  const until = Date.now() + 10_000;
  while (b.broker.subscriptions().length < n && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(b.broker.subscriptions().length, n, "the bench subscribers subscribed");
}

const SECONDS = String.raw`\d+\.\d\d s`;
const LATENCY = String.raw`latency p50 [\d.]+ ms p99 [\d.]+ ms max [\d.]+ ms`;

test("amqtt bench sub and pub (subprocesses): a progress line each second on stderr; summaries with msg/s, latency p50/p99/max and losses", async () => {
  await using b = await startBroker();
  const port = String(b.port);
  await using sub = spawnCli("main.ts", [
    "bench",
    "sub",
    "-p",
    port,
    "--connections",
    "2",
    "-t",
    "prog/#",
    "-q",
    "1",
    "-C",
    "60",
  ]);
  await subscriptions(b, 2);
  // 40 msg/s for 60 messages: about 1.5 s, long enough for one progress line.
  const pub = await runCli("main.ts", [
    "bench",
    "pub",
    "-p",
    port,
    "-t",
    "prog/%i",
    "-q",
    "1",
    "--rate",
    "40",
    "-C",
    "60",
    "--size",
    "32",
  ]);
  assert.equal(pub.code, 0, pub.stderr);
  assert.match(pub.stderr, /^pub \d+s conns 1 sent \d+ \(\d+\/s\) acked \d+$/m);
  assert.match(
    pub.text,
    new RegExp(
      String
        .raw`^pub: 1 connections \(0 failed\), 60 sent, 60 acknowledged in ${SECONDS}: \d+ msg/s\n$`,
    ),
  );
  const got = await sub.done;
  assert.equal(got.code, 0, got.stderr);
  assert.match(
    got.stderr,
    new RegExp(String.raw`^sub \d+s conns 2 received \d+ \(\d+/s\) ${LATENCY}$`, "m"),
  );
  assert.match(
    got.text,
    new RegExp(
      String
        .raw`^sub: 2 connections \(0 failed\), 120 received in ${SECONDS}: \d+ msg/s, ${LATENCY}, lost 0, duplicates 0\n$`,
    ),
  );
});

test("amqtt bench sub counts gaps in a publisher's sequence and a short count as lost, duplicates apart, and exits 1", async () => {
  await using b = await startBroker();
  await using sub = spawnCli("main.ts", [
    "bench",
    "sub",
    "-p",
    String(b.port),
    "-t",
    "loss",
    "-q",
    "1",
    "-C",
    "5",
    "--idle",
    "1",
    "--json",
    "--quiet",
  ]);
  await subscriptions(b, 1);
  await using client = new MQTTClient();
  await client.connect(`mqtt://127.0.0.1:${b.port}`);
  // Publisher 7 sends sequence numbers 0, 1, 4, 4: 2 and 3 are missing, the second 4 a duplicate.
  for (const seq of [0, 1, 4, 4]) {
    const payload = new Uint8Array(PAYLOAD_HEADER);
    const view = new DataView(payload.buffer);
    view.setFloat64(0, Date.now());
    view.setUint32(8, 7);
    view.setUint32(12, seq);
    await client.publish("loss", payload, { qos: 1 });
  }
  await client.disconnect();
  const got = await sub.done;
  assert.equal(got.code, 1, "losses make the exit code 1");
  assert.equal(got.stderr, "", "--quiet: no progress line");
  const summary = JSON.parse(got.text);
  assert.equal(summary.kind, "sub");
  assert.equal(summary.received, 4);
  assert.equal(summary.gaps, 2);
  assert.equal(summary.duplicates, 1);
  assert.equal(summary.lost, 3, "2 gaps and 1 message short of the limit of 5");
  assert.equal(summary.latency.samples, 4);
  for (const key of ["p50Ms", "p99Ms", "maxMs"]) {
    assert.equal(typeof summary.latency[key], "number");
  }
});

test("amqtt bench conn (subprocess): progress line, summary with conn/s and CONNACK latency, exit 0", async () => {
  await using b = await startBroker();
  let peak = 0;
  const ids: string[] = [];
  const off = b.broker.on("clientConnected", ({ clientId }) => {
    ids.push(clientId);
    peak = Math.max(peak, b.broker.stats.clientsConnected);
  });
  const r = await runCli("main.ts", [
    "bench",
    "conn",
    "-p",
    String(b.port),
    "--connections",
    "5",
    "--start-number",
    "10",
    "-I",
    "idle-",
    "-W",
    "1.2",
  ]);
  off();
  assert.equal(r.code, 0, r.stderr);
  assert.equal(peak, 5);
  assert.deepEqual(ids.sort(), ["idle-10", "idle-11", "idle-12", "idle-13", "idle-14"]);
  assert.match(r.stderr, /^conn \d+s connected \d+ \(\d+\/s\) failed 0$/m);
  assert.match(
    r.text,
    new RegExp(
      String
        .raw`^conn: 5 connected, 0 failed in ${SECONDS}: \d+ conn/s, CONNACK p50 [\d.]+ ms p99 [\d.]+ ms max [\d.]+ ms\n$`,
    ),
  );
});

test("amqtt bench: wrong flags, a missing command and an unreadable CA file are one line each", async () => {
  const [qos, none, unknown, ca, help] = await Promise.all([
    runCli("main.ts", ["bench", "pub", "-t", "x", "-q", "3"]),
    runCli("main.ts", ["bench"]),
    runCli("main.ts", ["bench", "nonsense"]),
    runCli("main.ts", ["bench", "sub", "--cafile", "/no/such/ca.pem", "-t", "x"]),
    runCli("main.ts", ["bench", "sub", "--help"]),
  ]);
  assert.equal(qos.code, 2);
  assert.equal(
    qos.stderr,
    "amqtt bench pub: Option '-q, --qos <qos>' argument '3' is invalid. Expected 0, 1, 2 (see --help)\n",
  );
  assert.equal(none.code, 2);
  assert.match(none.stderr, /^Usage: amqtt bench \[options\] \[command\]/);
  assert.equal(unknown.code, 2);
  assert.equal(unknown.stderr, "amqtt bench: Unknown command 'nonsense' (see --help)\n");
  assert.equal(ca.code, 1);
  assert.equal(
    ca.stderr,
    'amqtt bench sub: Cannot read --ca-file "/no/such/ca.pem": it does not exist\n',
  );
  assert.equal(help.code, 0);
  for (
    const flag of [
      "--connections",
      "-t, --topic",
      "-q, --qos",
      "-C, --count",
      "-W, --duration",
      "-h, --host",
      "-p, --port",
      "-u, --username",
      "-P, --password",
      "--pw-file",
      "-V, --protocol-version",
      "-k, --keep-alive",
      "-c, --disable-clean-session",
      "-I, --id-prefix",
      "--ca-file",
    ]
  ) {
    assert.ok(help.text.includes(flag), `sub help lists ${flag}`);
  }
});

test("amqtt bench pub with neither -C nor -W publishes until Ctrl-C, then prints its summary and exits 0", async () => {
  await using b = await startBroker();
  let seen = 0;
  const off = b.broker.on("message", () => seen++);
  await using pub = spawnCli("main.ts", [
    "bench",
    "pub",
    "-p",
    String(b.port),
    "-t",
    "forever",
    "-q",
    "1",
    "--rate",
    "100",
    "--quiet",
  ]);
  const until = Date.now() + 10_000;
  while (seen < 20 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  assert.ok(seen >= 20, `still publishing (${seen} messages)`);
  pub.kill("SIGINT");
  const r = await pub.done;
  off();
  assert.equal(r.code, 0, r.stderr);
  const [, sent, acked] =
    r.text.match(/^pub: 1 connections \(0 failed\), (\d+) sent, (\d+) acknowledged/) ?? [];
  assert.ok(Number(sent) >= 20, r.text);
  assert.equal(acked, sent, "every QoS 1 message acknowledged before the exit");
});

test("bench connections give up on a server that accepts and never sends CONNACK (handshake timeout)", async () => {
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of server) accepted.push(conn);
  })();
  try {
    const idle = await openConnections({
      target: { ...target((server.addr as Deno.NetAddr).port), handshakeTimeoutMs: 200 },
      connections: 2,
      clientIdPrefix: "mute-",
      rate: 0,
    });
    assert.equal(idle.report.connections, 0);
    assert.equal(idle.report.failed, 2);
    // The 200 ms handshake timeout gave up on them (the server never answers: nothing else would).
    assert.match(idle.report.firstError ?? "", /^No answer to mute-\d within 200 ms$/);
    await idle.close();
  } finally {
    server.close();
    await accepting.catch(() => {});
    for (const c of accepted) c.close();
  }
});

test("amqtt bench sub -t A -t B subscribes to both filters; bench --version prints the version", async () => {
  await using b = await startBroker();
  const port = String(b.port);
  const sub = runBenchCommand([
    ...["sub", "-p", port, "-t", "two/a", "-t", "two/b", "-q", "1", "-C", "20", "--quiet"],
  ]);
  await subscriptions(b, 2);
  assert.deepEqual(b.broker.subscriptions().map((x) => x.topic).sort(), ["two/a", "two/b"]);
  for (const topic of ["two/a", "two/b"]) {
    const pub = ["pub", "-p", port, "-t", topic, "-q", "1", "-C", "10", "--quiet"];
    assert.equal(await runBenchCommand(pub), 0);
  }
  assert.equal(await sub, 0, "20 messages from the two filters");
  const version = await runCli("main.ts", ["bench", "--version"]);
  assert.equal(version.code, 0, version.stderr);
  assert.match(version.text, /^\d+\.\d+\.\d+\n$/);
});

test("amqtt bench logs in as amqtt pub/sub do: -u with -P, --pw-file or $AMQTT_PASSWORD; a wrong password fails with exit code 1", async () => {
  const dir = await Deno.makeTempDir({ prefix: "amqtt_bench_pw_" });
  try {
    await Deno.writeTextFile(`${dir}/passwd`, `alice:${await hashPassword("s3cret")}\n`);
    await Deno.writeTextFile(`${dir}/pw`, "s3cret\n");
    await using b = await startBroker({
      auth: { "allow-anonymous": false, "password-file": `${dir}/passwd` },
    });
    const conn = ["bench", "conn", "-p", String(b.port), "-u", "alice", "-W", "0.1", "--quiet"];
    const [flag, file, env, wrong] = await Promise.all([
      runCli("main.ts", [...conn, "-P", "s3cret"]),
      runCli("main.ts", [...conn, "--pw-file", `${dir}/pw`]),
      runCli("main.ts", conn, { env: { AMQTT_PASSWORD: "s3cret" } }),
      runCli("main.ts", [...conn, "-P", "wrong"]),
    ]);
    for (const r of [flag, file, env]) {
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.text, /^conn: 1 connected, 0 failed/);
    }
    assert.equal(wrong.code, 1);
    assert.match(wrong.text, /^conn: 0 connected, 1 failed/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

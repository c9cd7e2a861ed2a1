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
    "-c",
    "2",
    "-t",
    "cmd/#",
    "-q",
    "2",
    "-L",
    "400",
    "-d",
    "10",
    "--quiet",
  ]);
  const until = Date.now() + 3000;
  while (b.broker.subscriptions().length < 2 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const pub = ["pub", "-p", port, "-c", "4", "-t", "cmd/%i", "-q", "2", "-L", "100", "--quiet"];
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
    "-c",
    "20",
    "-d",
    "0.2",
    "--quiet",
  ]);
  off();
  assert.equal(code, 0);
  assert.equal(peak, 20);
});

test("runBenchCommand returns 2 for unusable arguments and 0 for --help", async () => {
  assert.equal(await runBenchCommand(["pub", "-t", "x", "-q", "3"]), 2);
  assert.equal(await runBenchCommand(["pub", "-t", "x", "-s", "8"]), 2);
  assert.equal(await runBenchCommand(["pub"]), 2, "the topic is required");
  assert.equal(await runBenchCommand(["nonsense"]), 2);
  assert.equal(await runBenchCommand(["--help"]), 0);
});

test("runBenchCommand returns 1 when the broker cannot be reached", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  assert.equal(await runBenchCommand(["pub", "-p", String(port), "-t", "x", "-L", "1"]), 1);
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

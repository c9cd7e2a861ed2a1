// Smoke test of the benchmark's C load generator (bench/loadgen): it builds, and its counts are
// right against our broker, Mosquitto and the baseline forwarder. Fixed message counts, no timing
// bounds: what is asserted is what was sent, received, acknowledged and connected.
import assert from "node:assert/strict";
import { buildLoadgen } from "../../bench/loadgen/build.ts";
import { type LoadgenReport, runLoadgen } from "../../bench/loadgen/run.ts";
import { startBroker as startBenchBroker } from "../../bench/_brokers.ts";
import { startBroker } from "../_helpers/broker.ts";
import { Mosquitto } from "../_helpers/peers.ts";

const bins = await buildLoadgen();

/**
 * 2 publishers × 50 messages to 2 subscribers at each QoS and protocol level: every message
 * arrives once per subscriber.
 */
async function assertCounts(port: number, pid: number, levels = ["4", "5"]): Promise<void> {
  for (const level of levels) {
    for (const qos of [0, 1, 2]) {
      const r = await runLoadgen(bins.loadgen, [
        "pubsub",
        ...["--port", String(port), "--pid", String(pid), "--qos", String(qos)],
        ...["--pubs", "2", "--subs", "2", "--messages", "50", "--level", level],
      ]);
      assert.deepEqual(
        [r.sent, r.distinct, r.received, r.duplicates, r.corrupt, r.lost],
        [100, 200, 200, 0, 0, 0],
        `level ${level} QoS ${qos}: ${JSON.stringify(r)}`,
      );
    }
  }
  // Open loop at a scheduled rate: latency is sampled for every message.
  const paced = await runLoadgen(bins.loadgen, [
    "pubsub",
    ...["--port", String(port), "--pid", String(pid), "--qos", "1"],
    ...["--pubs", "1", "--subs", "1", "--rate", "2000", "--messages", "40"],
  ]);
  assert.deepEqual([paced.sent, paced.distinct, paced.samples, paced.refused], [40, 40, 40, 0]);
  assert.ok((paced.p99us as number) > 0, JSON.stringify(paced));
  // One burst of concurrent handshakes, all answered.
  const connect = await runLoadgen(bins.loadgen, [
    "connect",
    ...["--port", String(port), "--pid", String(pid), "--burst", "20"],
    ...["--warmup", "0", "--seconds", "0.001"],
  ]);
  assert.deepEqual(connect.failed, 0);
  assert.deepEqual((connect.connections as number) % 20, 0);
  assert.ok((connect.connections as number) > 0, JSON.stringify(connect));
  // Idle connections: all opened, the broker's RSS read at each step, and once more after the
  // close with --linger.
  const idle: LoadgenReport = await runLoadgen(bins.loadgen, [
    "idle",
    ...["--port", String(port), "--pid", String(pid)],
    ...["--n1", "10", "--n2", "30", "--settle", "0.05", "--linger", "0.05"],
  ]);
  assert.deepEqual([idle.connections, idle.failed], [30, 0]);
  assert.ok((idle.rssN2KiB as number) > 0, JSON.stringify(idle));
  assert.ok((idle.rssLingerKiB as number) > 0, JSON.stringify(idle));
}

Deno.test("bench loadgen counts messages and connections against amqtt", async () => {
  await using b = await startBroker();
  await assertCounts(b.port, Deno.pid);
});

Deno.test("bench loadgen counts messages and connections against Mosquitto", async () => {
  await using m = await Mosquitto.start();
  // Mosquitto's pid is not needed for counting: the test process's own stands in for /proc reads.
  await assertCounts(m.port, Deno.pid);
});

Deno.test("bench loadgen counts messages and connections against the C forwarder", async () => {
  await using f = await startBenchBroker("forwarder", { forwarder: bins.forwarder });
  // It copies PUBLISH bytes as they come and speaks 3.1.1 only.
  await assertCounts(f.port, f.pid, ["4"]);
});

Deno.test("bench system call probe reports both costs as positive figures", async () => {
  const out = await new Deno.Command(bins.syscallCost, { stdout: "piped" }).output();
  assert.ok(out.success);
  const cost = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.ok(cost.null_ns > 0 && cost.pipe_ns > cost.null_ns, JSON.stringify(cost));
});

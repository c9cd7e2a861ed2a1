/**
 * A load generator stall: 1→1 QoS 1 at a fixed offered rate (open loop, the C generator), with
 * the generator stopped (SIGSTOP) for a while in the middle of the measured phase. When it is
 * continued it sends every message that fell due meanwhile at once: a burst of rate × stall
 * messages. A broker that routes the whole burst before reading the subscriber's PUBACKs overflows
 * the subscriber's queue (`max_queued_messages`, 1000 by default in amqtt and Mosquitto) and drops;
 * one that paces the publisher by the subscriber (amqtt's flow control) drops nothing.
 *
 *   deno run -A bench/stall_bench.ts [--brokers amqtt,mosquitto] [--reps 3] [--rate 5000]
 *                                    [--stall-ms 600] [--seconds 5]
 *
 * Prints per run: messages lost (never delivered), p99 latency, and the broker's CPU.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type BrokerName, startBroker } from "./_brokers.ts";
import { buildLoadgen } from "./loadgen/build.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    brokers: { type: "string", default: "amqtt,mosquitto" },
    reps: { type: "string", default: "3" },
    rate: { type: "string", default: "5000" },
    "stall-ms": { type: "string", default: "600" },
    seconds: { type: "string", default: "5" },
  },
});
const brokers = values.brokers.split(",") as BrokerName[];
const reps = Number(values.reps);
const stallMs = Number(values["stall-ms"]);
const seconds = Number(values.seconds);
const bins = await buildLoadgen();

for (let rep = 1; rep <= reps; rep++) {
  for (const name of brokers) {
    await using broker = await startBroker(name, { forwarder: bins.forwarder });
    const gen = new Deno.Command(bins.loadgen, {
      args: [
        ...["pubsub", "--port", String(broker.port), "--pid", String(broker.pid)],
        ...["--pubs", "1", "--subs", "1", "--qos", "1", "--size", "64"],
        ...["--rate", values.rate, "--warmup", "1", "--seconds", String(seconds)],
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // Stop the generator in the middle of the measured phase.
    await new Promise((r) => setTimeout(r, (1 + seconds / 2) * 1000));
    Deno.kill(gen.pid, "SIGSTOP");
    await new Promise((r) => setTimeout(r, stallMs));
    Deno.kill(gen.pid, "SIGCONT");
    const out = await gen.output();
    const text = new TextDecoder().decode(out.stdout);
    let report: Record<string, unknown> = {};
    try {
      report = JSON.parse(text);
    } catch {
      report = { error: new TextDecoder().decode(out.stderr).slice(0, 300) };
    }
    console.log(
      `[${rep}/${reps}] ${name}: stall ${stallMs} ms, sent ${report.sent}, lost ${report.lost}, ` +
        `p99 ${report.p99us} µs, max delay ${report.worstConnectionMaxDelayUs} µs, ` +
        `broker CPU ${report.brokerCpu} s${report.error ? `, ${report.error}` : ""}`,
    );
  }
}

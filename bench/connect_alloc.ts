/**
 * What a connection allocates in the broker's heap, by the function that allocated it: the amqtt
 * broker runs in this process (defaults, 127.0.0.1, port 0) while the C generator's `connect` mode
 * (bursts of concurrent CONNECT→CONNACK handshakes, then DISCONNECT and close) drives it from its
 * own process. V8's sampling heap profiler (`HeapProfiler.startSampling` through `node:inspector`)
 * counts every sampled allocation, those collected by later scavenges and full collections
 * included, so the total is what a connection allocates, not what it keeps. Every byte allocated
 * brings the next scavenge nearer, and a scavenge pauses every handshake in flight: the bytes per
 * connection decide how often that happens in a storm.
 *
 * Frames are grouped by the function that allocated and its file (`ext:` files are Deno's own).
 * Sampling is statistical (one sample per `--interval` bytes on average): compare totals of the
 * order of several hundred connections' worth, not single frames of a few bytes.
 *
 * Usage: deno run -A bench/connect_alloc.ts [--burst 1000] [--seconds 5] [--interval 256]
 *          [--top 30] [--root DIR]   (DIR: another checkout whose broker.ts to measure)
 *
 * @module
 */

import { Session } from "node:inspector";
import { buildLoadgen } from "./loadgen/build.ts";
import { runLoadgen } from "./loadgen/run.ts";

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1]! : fallback;
}

const burst = flag("--burst", "1000");
const seconds = flag("--seconds", "5");
const interval = Number(flag("--interval", "256"));
const top = Number(flag("--top", "30"));
const root = flag("--root", new URL("..", import.meta.url).pathname).replace(/\/$/, "");

interface SamplingNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: SamplingNode[];
}

const { Broker } = await import(`${root}/broker.ts`);
const broker = new Broker({ listeners: { default: { bind: "127.0.0.1:0" } } });
await broker.start();
const port: number = broker.listeners[0]!.port;
const bins = await buildLoadgen();

const session = new Session();
session.connect();
const post = <T>(method: string, params: object = {}) =>
  new Promise<T>((resolve, reject) =>
    session.post(
      method,
      params,
      (err: Error | null, result?: object) => err ? reject(err) : resolve(result as T),
    )
  );

// A short warm-up so that compilation and one-off growth (tables, caches) are left out.
await runLoadgen(bins.loadgen, [
  "connect",
  "--burst",
  burst,
  "--warmup",
  "0",
  "--seconds",
  "1",
  "--port",
  String(port),
]);
await post("HeapProfiler.enable");
await post("HeapProfiler.startSampling", {
  samplingInterval: interval,
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
});
const report = await runLoadgen(bins.loadgen, [
  "connect",
  "--burst",
  burst,
  "--warmup",
  "0",
  "--seconds",
  seconds,
  "--port",
  String(port),
]);
const { profile } = await post<{ profile: { head: SamplingNode } }>("HeapProfiler.stopSampling");
session.disconnect();
await broker.shutdown();

// The generator counts only the measured handshakes; every connection of the run was measured.
const connections = Number(report.connections) + Number(report.failed);
const byFrame = new Map<string, number>();
const byFile = new Map<string, number>();
// Each allocation also goes to the innermost amqtt function (src/) on its stack, with the frame
// that allocated: what Deno or V8 allocated on amqtt's behalf (a read's promise, a map's rehash).
const byOwner = new Map<string, number>();
let total = 0;
const nameOf = (f: SamplingNode["callFrame"], file: string) =>
  `${f.functionName || "(anonymous)"} ${file}${file.startsWith("(") ? "" : `:${f.lineNumber + 1}`}`;
const walk = (node: SamplingNode, owner: string) => {
  const f = node.callFrame;
  const file = f.url.replace(/^file:\/\/.*?\/(src|bench)\//, "$1/") || "(native)";
  const key = nameOf(f, file);
  const here = file.startsWith("src/") ? key : owner;
  if (node.selfSize > 0) {
    byFrame.set(key, (byFrame.get(key) ?? 0) + node.selfSize);
    byFile.set(file, (byFile.get(file) ?? 0) + node.selfSize);
    const own = here === key ? key : `${here} → ${key}`;
    byOwner.set(own, (byOwner.get(own) ?? 0) + node.selfSize);
    total += node.selfSize;
  }
  for (const c of node.children) walk(c, here);
};
walk(profile.head, "(outside amqtt)");

const per = (bytes: number) => (bytes / connections).toFixed(0).padStart(7);
console.log(
  `${root}: ${connections} connections in bursts of ${burst} (${report.failed} failed), ` +
    `allocated ${(total / connections).toFixed(0)} B per connection`,
);
console.log("\nB/conn  by file");
for (const [file, bytes] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`${per(bytes)}  ${file}`);
}
console.log("\nB/conn  by allocating function");
for (const [key, bytes] of [...byFrame].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`${per(bytes)}  ${key}`);
}
console.log("\nB/conn  by innermost amqtt function → the frame that allocated");
for (const [key, bytes] of [...byOwner].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`${per(bytes)}  ${key}`);
}

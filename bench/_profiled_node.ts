/**
 * A broker with V8's CPU sampler running (`Profiler` through `node:inspector`, a sample every
 * 200 µs), for `bench/cluster_logins.ts --program bench/_profiled_node.ts`: run as
 * `deno run -A bench/_profiled_node.ts CONFIG.yaml`, it serves like `amqtt -c CONFIG.yaml` and, at
 * SIGTERM, writes the functions with the most samples of their own and (amqtt's and ioredis's)
 * with the most samples including their callees to `/tmp/amqtt-profile-PID.txt`, then stops.
 *
 * @module
 */

import { Session } from "node:inspector";
import { Broker } from "../broker.ts";
import { loadBrokerConfigFile } from "../src/config/broker_config.ts";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

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

const broker = new Broker(await loadBrokerConfigFile(Deno.args[0]!));
await broker.start();
console.error("amqtt profiled started");
await post("Profiler.enable");
await post("Profiler.setSamplingInterval", { interval: 200 });
await post("Profiler.start");

const name = (n: ProfileNode) =>
  `${n.callFrame.functionName || "(anonymous)"} ${n.callFrame.url.replace(/.*\/(npm|ext)\//, "")}:${
    n.callFrame.lineNumber + 1
  }`;

Deno.addSignalListener("SIGTERM", async () => {
  const { profile } = await post<{ profile: { nodes: ProfileNode[]; samples: number[] } }>(
    "Profiler.stop",
  );
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const counts = new Map<number, number>();
  for (const s of profile.samples) counts.set(s, (counts.get(s) ?? 0) + 1);
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, count] of counts) {
    const key = name(byId.get(id)!);
    self.set(key, (self.get(key) ?? 0) + count);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      seen.add(name(byId.get(at)!));
    }
    for (const k of seen) inclusive.set(k, (inclusive.get(k) ?? 0) + count);
  }
  const total = profile.samples.length;
  const top = (map: Map<string, number>, keep: (k: string) => boolean) =>
    [...map].filter(([k]) => keep(k)).sort((a, b) => b[1] - a[1]).slice(0, 50)
      .map(([k, c]) => `${(100 * c / total).toFixed(1)}% ${k}`).join("\n");
  Deno.writeTextFileSync(
    `/tmp/amqtt-profile-${Deno.pid}.txt`,
    `${total} samples\n\nSELF\n${top(self, () => true)}\n\nINCLUSIVE\n${
      top(inclusive, (k) => k.includes("/src/") || k.includes("ioredis"))
    }\n`,
  );
  await broker.shutdown();
  Deno.exit(0);
});

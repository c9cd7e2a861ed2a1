/**
 * A broker in its own process for memory measurements: run with `--v8-flags=--expose-gc` and a
 * JSON configuration as the first argument (and `memory-store` as the second to keep state in a
 * `MemoryStore`). It prints `{"port": N}`, then answers each `measure`
 * line on stdin (`measure compact`: after
 * compacting collections) with one JSON line: the heap after two full collections and the broker's counts.
 * `quit` (or the end of stdin) shuts it down.
 *
 * @module
 */

import { Broker } from "../../broker.ts";
import { MemoryStore } from "../../src/store/memory_store.ts";

/** Collections the broker ran after many connections closed (its info line says so). */
let releases = 0;
const quiet = {
  debug() {},
  info: (m: string) => void (m.startsWith("Many connections have closed") && releases++),
  warning() {},
  error: (m: string) => console.error(m),
};
const config = JSON.parse(Deno.args[0] ?? "{}");
const broker = new Broker(
  { listeners: { default: { bind: "127.0.0.1:0" } }, ...config },
  { logger: quiet, ...(Deno.args[1] === "memory-store" ? { store: new MemoryStore() } : {}) },
);
await broker.start();
console.log(JSON.stringify({ port: broker.listeners[0].port }));

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("Run with --v8-flags=--expose-gc");

async function measure(compact: boolean): Promise<string> {
  // Let closed connections finish detaching, then collect twice (weak references, finalizers).
  // `compact`: V8's collection that also compacts the heap and gives pages back, so that heap used
  // is the live objects' size without the free space between them.
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    if (compact) (gc as (o: unknown) => void)({ type: "major", flavor: "last-resort" });
    else gc!();
  }
  const m = Deno.memoryUsage();
  const sessions = broker.clients();
  return JSON.stringify({
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
    rss: m.rss,
    releases,
    sessions: sessions.length,
    connected: sessions.filter((s) => s.connected).length,
    subscriptions: broker.subscriptions().length,
    retained: broker.retainedMessages().length,
    refusedTopicLevels: broker.stats.refusedTopicLevels,
  });
}

const decoder = new TextDecoder();
let pending = "";
read: for await (const chunk of Deno.stdin.readable) {
  pending += decoder.decode(chunk, { stream: true });
  let newline: number;
  while ((newline = pending.indexOf("\n")) >= 0) {
    const line = pending.slice(0, newline).trim();
    pending = pending.slice(newline + 1);
    if (line === "quit") break read;
    if (line === "measure") console.log(await measure(false));
    if (line === "measure compact") console.log(await measure(true));
  }
}
await broker.shutdown();

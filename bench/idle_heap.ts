/**
 * What an idle connection keeps in the V8 heap, by constructor: the amqtt broker
 * (`bench/_amqtt_broker.ts`, defaults) runs under the inspector in its own process; this program
 * opens `--n1` idle MQTT connections (3.1.1 unless `--level 5`) (CONNECT, CONNACK, then silence), takes a heap snapshot
 * after two forced collections, opens more up to `--n2`, takes another, and prints the difference
 * per connection: self size and count for each kind of object (`object:Name`, `closure:name`,
 * V8's internal `array:` and `native:` nodes), with the owner of the objects named in `--detail`
 * (for example `array,object:Object`; `loc` adds where each closure's function is defined), and the V8 heap spaces of both moments (committed/used).
 *
 * Self sizes of everything a connection adds are what it retains, the objects its socket holds in
 * Deno included (`TcpConn`, its two address objects, the pending read's promise and frame). RSS
 * is not measured here (a snapshot allocates a lot outside the heap): see `bench/idle_floor.ts`.
 *
 * `--usage` skips the snapshots (slow past ~10,000 connections) and reads only `Deno.memoryUsage()`
 * after two forced collections at both moments: heap used, heap committed, memory outside the
 * heap and RSS per connection (`--no-gc`: without the collections, as the RSS slope of
 * `idle_floor.ts` sees it, with the young generation's committed size). `--program floor` measures the minimal Deno program of
 * `idle_floor.ts --serve` (one pending 256-byte read per connection) instead of the broker: the
 * heap Deno's socket layer itself keeps per connection. `--program cluster` runs the broker as a node
 * of a cluster on a redis-server this program starts (and stops). `--root DIR` takes the broker
 * from another checkout (a worktree of the base commit, for an A/B).
 *
 * `--level 5` connects at MQTT 5.0 (default 4, 3.1.1); `--subscribe` has each connection subscribe
 * to one filter of its own (`idle/K/#`, QoS 1) before it goes quiet.
 *
 * Usage: deno run -A bench/idle_heap.ts [--n1 2000] [--n2 8000] [--top 40] [--detail KINDS]
 *          [--usage [--no-gc]] [--program amqtt|cluster|floor] [--root DIR] [--settle 1] [--depth 1]
 *          [--level 4|5] [--subscribe]
 *
 * @module
 */

import { encodePacket, PacketType } from "../src/packet/mod.ts";
import { RedisServer } from "../tests/_helpers/redis.ts";

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1]! : fallback;
}

const n1 = Number(flag("--n1", "2000"));
const n2 = Number(flag("--n2", "8000"));
const top = Number(flag("--top", "40"));
const detail = new Set(flag("--detail", "").split(",").filter((s) => s !== ""));
const usageOnly = Deno.args.includes("--usage");
/** With `--usage`: measure as the program stands, without forcing collections first. */
const noGc = Deno.args.includes("--no-gc");
const program = flag("--program", "amqtt");
const root = flag("--root", "");
/** Seconds to wait after the last connection before measuring (a cluster's claims settle). */
const settle = Number(flag("--settle", "1"));
/** How many retainers `--detail` names, each retained by the next. */
const depth = Number(flag("--depth", "1"));
/** The connections' protocol level: 4 (MQTT 3.1.1) or 5 (MQTT 5.0). */
const level = Number(flag("--level", "4")) as 4 | 5;
/** Each connection subscribes to one filter of its own after its CONNACK. */
const subscribe = Deno.args.includes("--subscribe");

/** The broker in its own process under the inspector, the open-file limit raised. */
async function startInspected(): Promise<{ port: number; inspectPort: number } & AsyncDisposable> {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const inspectPort = probe.addr.port;
  probe.close();
  const script =
    new URL(program === "floor" ? "./idle_floor.ts" : "./_amqtt_broker.ts", import.meta.url)
      .pathname;
  const scriptArgs = program === "floor"
    ? ["--serve", "--read-size", "256"]
    : program === "cluster"
    ? ["--cluster", redis!.url]
    : [];
  if (root !== "" && program !== "floor") scriptArgs.push("--root", root);
  const child = new Deno.Command("bash", {
    args: [
      "-c",
      'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"',
      "bash",
      Deno.execPath(),
      "run",
      "-A",
      `--inspect=127.0.0.1:${inspectPort}`,
      script,
      ...scriptArgs,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let port: number | undefined;
  while (port === undefined) {
    const { value, done } = await lines.read();
    if (done) throw new Error("the broker exited before it listened");
    text += value;
    const m = /port (\d+)/.exec(text);
    if (m) port = Number(m[1]);
  }
  return {
    port,
    inspectPort,
    [Symbol.asyncDispose]: async () => {
      child.kill("SIGKILL");
      await child.status;
      await lines.cancel().catch(() => {});
    },
  };
}

await using redis = program === "cluster" ? await RedisServer.start() : undefined;
await using broker = await startInspected();

/** A minimal Chrome DevTools Protocol session over the inspector's WebSocket. */
class Inspector implements Disposable {
  #ws: WebSocket;
  #id = 0;
  #pending = new Map<number, (result: Record<string, unknown>) => void>();
  chunks: string[] = [];
  /** Script ids to file names, for the closures' locations (`--detail loc`). */
  scripts = new Map<number, string>();

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.id !== undefined) this.#pending.get(m.id)?.(m.result ?? {});
      else if (m.method === "HeapProfiler.addHeapSnapshotChunk") this.chunks.push(m.params.chunk);
      else if (m.method === "Debugger.scriptParsed") {
        this.scripts.set(Number(m.params.scriptId), m.params.url.replace(/.*\//, ""));
      }
    };
  }

  static async open(port: number): Promise<Inspector> {
    const targets = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
    const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    return new Inspector(ws);
  }

  call(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = ++this.#id;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      this.#ws.send(JSON.stringify({ id, method, params }));
    });
  }

  [Symbol.dispose](): void {
    this.#ws.close();
  }
}

using inspector = await Inspector.open(broker.inspectPort);
await inspector.call("HeapProfiler.enable");
if (detail.has("loc")) await inspector.call("Debugger.enable");

const conns: Deno.TcpConn[] = [];
/** CONNECT at `--level` (4: 3.1.1, 5: 5.0), clean session, keepalive 600 s. */
function connectPacket(clientId: string): Uint8Array {
  return encodePacket({
    type: PacketType.CONNECT,
    protocolName: "MQTT",
    protocolVersion: level,
    clean: true,
    keepAlive: 600,
    clientId,
  }, level);
}
/** Reads one packet of less than 128 bytes (CONNACK, SUBACK) and checks its type. */
async function readSmall(c: Deno.TcpConn, type: number): Promise<void> {
  const head = new Uint8Array(2);
  for (let got = 0; got < 2;) {
    const n = await c.read(head.subarray(got));
    if (n === null) throw new Error("the broker closed a connection before its answer");
    got += n;
  }
  if (head[0]! >> 4 !== type || head[1]! > 127) throw new Error(`unexpected answer ${head}`);
  const rest = new Uint8Array(head[1]!);
  for (let got = 0; got < rest.length;) {
    const n = await c.read(rest.subarray(got));
    if (n === null) throw new Error("the broker closed a connection before its answer");
    got += n;
  }
}
async function openOne(k: number): Promise<Deno.TcpConn> {
  const c = await Deno.connect({ hostname: "127.0.0.1", port: broker.port });
  await c.write(connectPacket(`idle-${k}`));
  await readSmall(c, PacketType.CONNACK);
  if (subscribe) {
    // One subscription of its own (`--subscribe`), as a device listening to its own topics.
    await c.write(encodePacket({
      type: PacketType.SUBSCRIBE,
      packetId: 1,
      subscriptions: [{ topic: `idle/${k}/#`, qos: 1 }],
    }, level));
    await readSmall(c, PacketType.SUBACK);
  }
  return c;
}
async function openUpTo(n: number): Promise<void> {
  while (conns.length < n) {
    const batch = Math.min(100, n - conns.length);
    const first = conns.length;
    conns.push(...await Promise.all(Array.from({ length: batch }, (_, i) => openOne(first + i))));
  }
  await new Promise((r) => setTimeout(r, settle * 1000));
}

interface Snapshot {
  kinds: Map<string, { size: number; count: number }>;
  spaces: string;
}

async function snapshot(): Promise<Snapshot> {
  await inspector.call("HeapProfiler.collectGarbage");
  await inspector.call("HeapProfiler.collectGarbage");
  inspector.chunks = [];
  await inspector.call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
  const s = JSON.parse(inspector.chunks.join(""));
  inspector.chunks = [];
  const meta = s.snapshot.meta;
  const nf: number = meta.node_fields.length, ef: number = meta.edge_fields.length;
  const nodeTypes: string[] = meta.node_types[0], edgeTypes: string[] = meta.edge_types[0];
  const nodes: number[] = s.nodes, edges: number[] = s.edges, strings: string[] = s.strings;
  // The first strong retainer of each node, for --detail.
  const owner = new Int32Array(nodes.length / nf).fill(-1);
  const via: string[] = [];
  if (detail.size > 0) {
    for (let i = 0, e = 0; i < nodes.length; i += nf) {
      for (let k = 0; k < nodes[i + 4]!; k++, e += ef) {
        const type = edgeTypes[edges[e]!]!;
        const to = edges[e + 2]! / nf;
        if (type === "weak" || owner[to] !== -1) continue;
        owner[to] = i / nf;
        via[to] = type === "element" || type === "hidden"
          ? String(edges[e + 1])
          : strings[edges[e + 1]!]!;
      }
    }
  }
  // Where each closure's function is defined, for `--detail loc`.
  const where = new Map<number, string>();
  if (detail.has("loc")) {
    const lf: number = meta.location_fields.length, loc: number[] = s.locations;
    for (let i = 0; i < loc.length; i += lf) {
      const file = inspector.scripts.get(loc[i + 1]!) ?? String(loc[i + 1]);
      where.set(loc[i]! / nf, ` @${file}:${loc[i + 2]! + 1}`);
    }
  }
  const kinds = new Map<string, { size: number; count: number }>();
  for (let i = 0; i < nodes.length; i += nf) {
    const type = nodeTypes[nodes[i]!]!;
    let key = /string/.test(type) ? "string" : `${type}:${strings[nodes[i + 1]!]!.slice(0, 60)}`;
    if (type === "code") key = "code";
    if (type === "closure") key += where.get(i / nf) ?? "";
    if (detail.has(type) || detail.has(key)) {
      // The chain of first retainers, `--depth` links long.
      for (let at = i / nf, o = owner[at]!, k = 0; o >= 0 && k < depth; k++) {
        key += ` <-${via[at]}- ${strings[nodes[o * nf + 1]!]!.slice(0, 40)}`;
        at = o;
        o = owner[at]!;
      }
    }
    const k = kinds.get(key) ?? { size: 0, count: 0 };
    k.size += nodes[i + 3]!;
    k.count++;
    kinds.set(key, k);
  }
  const spaces = await inspector.call("Runtime.evaluate", {
    expression: `(async () => { const v8 = await import("node:v8");
      return v8.getHeapSpaceStatistics().filter((s) => s.space_size > 0).map((s) =>
        s.space_name.replace("_space", "") + " " + (s.space_size / 1048576).toFixed(1) + "/" +
        (s.space_used_size / 1048576).toFixed(1)).join(", "); })()`,
    awaitPromise: true,
    returnByValue: true,
  });
  return { kinds, spaces: String((spaces.result as { value: unknown }).value) };
}

/**
 * Deno.memoryUsage() of the program after two forced collections (none with `--no-gc`), in bytes,
 * with the committed size of V8's young generation (`newCommitted`).
 */
async function usage(): Promise<Record<string, number>> {
  if (!noGc) {
    await inspector.call("HeapProfiler.collectGarbage");
    await inspector.call("HeapProfiler.collectGarbage");
  }
  const r = await inspector.call("Runtime.evaluate", {
    expression: `(async () => { const v8 = await import("node:v8");
      const young = v8.getHeapSpaceStatistics().filter((s) => s.space_name === "new_space")
        .reduce((t, s) => t + s.space_size, 0);
      return JSON.stringify({ ...Deno.memoryUsage(), newCommitted: young }); })()`,
    awaitPromise: true,
    returnByValue: true,
  });
  return JSON.parse(String((r.result as { value: unknown }).value));
}

if (usageOnly) {
  try {
    await openUpTo(n1);
    const a = await usage();
    await openUpTo(n2);
    const b = await usage();
    const per = (k: string) => ((b[k]! - a[k]!) / (n2 - n1)).toFixed(0);
    console.log(
      `${program}, ${n1} → ${n2} idle connections, ` +
        (noGc ? "no forced collection" : "after forced collections") + ", bytes per " +
        `connection: heap used ${per("heapUsed")}, heap committed ${per("heapTotal")} (young ` +
        `generation ${per("newCommitted")}), outside the heap ${per("external")}, RSS ${
          per("rss")
        }`,
    );
    const mb = (x: number) => (x / 1048576).toFixed(1);
    console.log(
      `at ${n1}: heap ${mb(a.heapUsed!)}/${mb(a.heapTotal!)} MB, RSS ${mb(a.rss!)} MB; at ${n2}: ` +
        `heap ${mb(b.heapUsed!)}/${mb(b.heapTotal!)} MB, RSS ${mb(b.rss!)} MB`,
    );
  } finally {
    for (const c of conns) c.close();
    inspector[Symbol.dispose]();
    await broker[Symbol.asyncDispose]();
    // Deno.exit below skips the `await using` of the redis-server: stopped here (it stayed
    // running, orphaned, after every `--usage --program cluster` run).
    await redis?.[Symbol.asyncDispose]();
  }
  Deno.exit(0);
}

try {
  await openUpTo(n1);
  const a = await snapshot();
  await openUpTo(n2);
  const b = await snapshot();
  const d = n2 - n1;
  const rows: { key: string; size: number; count: number }[] = [];
  for (const [key, v] of b.kinds) {
    const o = a.kinds.get(key) ?? { size: 0, count: 0 };
    rows.push({ key, size: (v.size - o.size) / d, count: (v.count - o.count) / d });
  }
  rows.sort((x, y) => y.size - x.size);
  const total = rows.reduce((t, r) => t + r.size, 0);
  console.log(`heap per idle connection, ${n1} → ${n2} connections: ${total.toFixed(0)} B`);
  console.log(`V8 spaces (MB committed/used) at ${n1}: ${a.spaces}`);
  console.log(`V8 spaces (MB committed/used) at ${n2}: ${b.spaces}`);
  console.log("| kind | bytes per connection | objects per connection |");
  console.log("| --- | --- | --- |");
  for (const r of rows.slice(0, top)) {
    console.log(`| ${r.key} | ${r.size.toFixed(1)} | ${r.count.toFixed(2)} |`);
  }
} finally {
  for (const c of conns) c.close();
}

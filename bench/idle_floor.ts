/**
 * Memory per idle connection: the amqtt broker against the floor Deno's socket layer sets.
 *
 * The floor is a minimal Deno program (`--serve`) that accepts TCP connections, answers each
 * CONNECT with a CONNACK, closes on DISCONNECT, and otherwise does nothing but keep one pending
 * `read()` per connection (into
 * a buffer of `--read-size` bytes, 1024 by default, the size of the broker's idle read). Both run
 * in their own process with the open-file limit raised to the hard limit; the C generator's
 * `idle` mode opens `--n1` then `--n2` connections and reports the RSS slope between them
 * (`bytesPerConnection`), the same measure as `deno task bench:compare`'s idle row, and the RSS
 * kept after all closed: 4 s after (as in bench:compare) and `--linger` seconds later, once V8's
 * memory reducer has had its turn (it runs some 10-30 s after the allocation rate has dropped).
 *
 * V8's young generation grows from about 1 MB to its maximum (about 50 MB here) while a program
 * takes on thousands of connections whose objects all survive; that one-off growth lands inside
 * a 2,000 → 8,000 slope. A slope from 8,000 up (`--n1 8000 --n2 18000`, under the 20,000 open
 * files a process may have) leaves it out; `--v8-flags=--max-semi-space-size=4` (passed to both
 * programs as DENO_V8_FLAGS) caps it.
 *
 * Usage: deno run -A bench/idle_floor.ts [--n1 2000] [--n2 8000] [--reps 3] [--read-size 1024]
 *          [--linger 30] [--v8-flags=FLAGS]
 *        deno run -A bench/idle_floor.ts --serve [--read-size N]   (the floor program alone)
 *
 * @module
 */

import { buildLoadgen } from "./loadgen/build.ts";
import { runLoadgen } from "./loadgen/run.ts";
import { startBroker } from "./_brokers.ts";

function flag(name: string, fallback: number): number {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Number(Deno.args[i + 1]) : fallback;
}

const readSize = flag("--read-size", 1024);
const v8Flags = Deno.args.find((a) => a.startsWith("--v8-flags="))?.slice("--v8-flags=".length);
// Both programs under test are Deno processes started from here: they take the flags from this.
if (v8Flags !== undefined && !Deno.args.includes("--serve")) Deno.env.set("DENO_V8_FLAGS", v8Flags);

/** The floor: one pending read per connection, nothing else. */
async function serve(): Promise<void> {
  // The listen queue amqtt's listeners ask for (src/transport/_backlog.ts), so that a storm of
  // connects measures the same accept queue in both programs.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0, tcpBacklog: 4096 });
  console.log(`port ${listener.addr.port}`);
  const connack = new Uint8Array([0x20, 0x02, 0x00, 0x00]);
  for await (const conn of listener) {
    void (async () => {
      const buf = new Uint8Array(readSize);
      try {
        // No setNoDelay: the CONNACK is the only write, and Nagle's algorithm holds back no first
        // write of one segment (amqtt makes the call only before a second write).
        if (await conn.read(buf) === null) return; // the CONNECT (the generator sends it whole)
        await conn.write(connack);
        // Idle: a pending read, until the peer closes or sends DISCONNECT (0xE0, a packet the
        // generator writes whole), after which it closes, as a broker does [MQTT-3.14.4-1].
        for (;;) {
          const n = await conn.read(buf);
          if (n === null || buf[0] === 0xe0) break;
        }
      } catch {
        /* reset by the peer */
      } finally {
        try {
          conn.close();
        } catch { /* closed */ }
      }
    })();
  }
}

/**
 * Starts the floor program in its own process with the open-file limit raised (also the floor of
 * `connect_floor.ts`: accepting, answering CONNECT and closing is all it does).
 *
 * @returns its pid and port; dispose of it to stop it
 */
export async function startFloor(
  options: { prefix?: string[] } = {},
): Promise<{ pid: number; port: number } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "amqtt-idle-floor-" });
  const self = new URL(import.meta.url).pathname;
  const script = `ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@" >"${dir}/out" 2>"${dir}/err"`;
  const child = new Deno.Command("bash", {
    args: [
      "-c",
      script,
      "bash",
      ...(options.prefix ?? []),
      Deno.execPath(),
      "run",
      "-A",
      self,
      "--serve",
      "--read-size",
      String(readSize),
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let port: number | undefined;
  for (let i = 0; i < 600 && port === undefined; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const m = /port (\d+)/.exec(await Deno.readTextFile(`${dir}/out`).catch(() => ""));
    if (m) port = Number(m[1]);
  }
  const dispose = async () => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await child.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  if (port === undefined) {
    await dispose();
    throw new Error("the floor program did not start");
  }
  return { pid: child.pid, port, [Symbol.asyncDispose]: dispose };
}

async function measure(): Promise<void> {
  const n1 = flag("--n1", 2000), n2 = flag("--n2", 8000), reps = flag("--reps", 3);
  const linger = flag("--linger", 30);
  const bins = await buildLoadgen();
  const args = [
    "idle",
    "--n1",
    String(n1),
    "--n2",
    String(n2),
    "--settle",
    "2",
    "--linger",
    String(linger),
  ];
  type Row = { slope: number[]; base: number[]; kept: number[]; later: number[] };
  const results: Record<string, Row> = {};
  for (let rep = 1; rep <= reps; rep++) {
    for (const name of ["deno floor", "amqtt"]) {
      await using target = name === "amqtt" ? await startBroker("amqtt") : await startFloor();
      const r = await runLoadgen(bins.loadgen, [
        ...args,
        "--port",
        String(target.port),
        "--pid",
        String(target.pid),
      ]);
      const row = results[name] ??= { slope: [], base: [], kept: [], later: [] };
      row.slope.push(Number(r.bytesPerConnection));
      row.base.push(Number(r.rssBaseKiB) / 1024);
      row.kept.push((Number(r.rssAfterCloseKiB) - Number(r.rssBaseKiB)) / 1024);
      row.later.push((Number(r.rssLingerKiB) - Number(r.rssBaseKiB)) / 1024);
      console.error(
        `[${rep}/${reps}] ${name}: ${(Number(r.bytesPerConnection) / 1024).toFixed(2)} KB per ` +
          `connection, ${r.connections} connected, ${r.failed} failed`,
      );
    }
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
  const range = (v: number[], f: (x: number) => string) =>
    `${f(Math.min(...v))}–${f(Math.max(...v))}`;
  const kb = (x: number) => (x / 1024).toFixed(2);
  const mb = (x: number) => x.toFixed(1);
  console.log(
    `idle connections ${n1} → ${n2}, read buffer ${readSize} B, ${reps} interleaved runs` +
      (v8Flags ? `, V8 flags ${v8Flags}` : ""),
  );
  console.log(
    "| program | KB per idle connection (RSS slope) | RSS before, MB | kept 4 s after close, MB " +
      `| kept ${linger + 4} s after close, MB |`,
  );
  console.log("| --- | --- | --- | --- | --- |");
  for (const [name, r] of Object.entries(results)) {
    console.log(
      `| ${name} | ${kb(median(r.slope))} (${range(r.slope, kb)}) | ${mb(median(r.base))} | ` +
        `${mb(median(r.kept))} | ${mb(median(r.later))} |`,
    );
  }
}

if (import.meta.main) {
  if (Deno.args.includes("--serve")) await serve();
  else await measure();
}

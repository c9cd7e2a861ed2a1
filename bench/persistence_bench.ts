/**
 * Persistence cost: 1->1 QoS 1 and QoS 2 to a persistent session (64-byte payloads, window 20),
 * against `amqtt` in its own process with state in memory, with `persistence: {sync: normal}`
 * and with `sync: full`. Each mode gets a fresh broker and a fresh store file per run; the modes
 * are interleaved and repeated (default 3 times) and the median is printed with the range, since
 * other work on a shared machine moves single runs a lot.
 *
 * Usage: deno run -A bench/persistence_bench.ts [--runs N] [--messages N]
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { oneToOne, type Result } from "./throughput.ts";

type Mode = "memory" | "normal" | "full";
const MODES: Mode[] = ["memory", "normal", "full"];
const AMQTT = fileURLToPath(new URL("../cli/amqtt.ts", import.meta.url));

function arg(name: string, fallback: number): number {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Number(Deno.args[i + 1]) : fallback;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function withBroker<T>(
  mode: Mode,
  body: (port: number, pid: number) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "amqtt-bench-" });
  const port = freePort();
  const config = `${dir}/broker.yaml`;
  let yaml = `listeners:\n  default:\n    bind: 127.0.0.1:${port}\n`;
  if (mode !== "memory") yaml += `persistence:\n  path: ${dir}/state.db\n  sync: ${mode}\n`;
  await Deno.writeTextFile(config, yaml);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", AMQTT, "-c", config, "--log-level", "warning"],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  try {
    for (let i = 0;; i++) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        break;
      } catch {
        if (i > 600) throw new Error("the broker did not start");
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    return await body(port, child.pid);
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

if (import.meta.main) {
  const runs = arg("--runs", 3);
  const messages = arg("--messages", 30_000);
  const rates = new Map<string, number[]>();
  const perCpu = new Map<string, number[]>();
  for (let run = 0; run < runs; run++) {
    for (const mode of MODES) {
      const results: Result[] = await withBroker(mode, async (port, pid) => [
        await oneToOne(port, pid, 1, messages, true),
        await oneToOne(port, pid, 2, Math.floor(messages / 2), true),
      ]);
      for (const r of results) {
        const key = `${r.name} persistent, ${mode}`;
        const list = rates.get(key) ?? [];
        list.push(r.count / r.seconds);
        rates.set(key, list);
        const cpu = perCpu.get(key) ?? [];
        cpu.push(r.count / r.cpu);
        perCpu.set(key, cpu);
      }
    }
  }
  for (const [key, list] of rates) {
    const k = (n: number) => `${Math.round(n / 100) / 10}k`;
    console.log(
      `${key.padEnd(36)} ${k(median(list)).padStart(7)} msg/s  (range ${k(Math.min(...list))}-${
        k(Math.max(...list))
      }, ${list.length} runs)  ${k(median(perCpu.get(key)!))} msg/CPU-s`,
    );
  }
}

/**
 * Pinning for the benchmarks: the broker on one CPU, the load generator on another, with
 * `taskset`. On a machine with few cores, where the kernel puts the two processes decides a
 * throughput figure as much as the broker does (here, unpinned runs of one build swung between
 * about 8M and 16M deliveries per broker CPU-second from run to run). Every broker is pinned the
 * same way, Mosquitto and amqtt alike.
 *
 * @module
 */

/** Where the benchmark's processes run. */
export interface Pinning {
  /** Prefix of the broker's command line (empty when not pinned). */
  broker: string[];
  /** Prefix of the generator's command line (empty when not pinned). */
  generator: string[];
  /** One line for the results' header: pinned to which CPUs, or why not. */
  description: string;
}

const NONE = { broker: [], generator: [] };

/** The CPUs this process may run on, from /proc/self/status (e.g. "0-1" or "0,2-3"). */
function allowedCpus(): number[] {
  const status = Deno.readTextFileSync("/proc/self/status");
  const list = /Cpus_allowed_list:\s*(\S+)/.exec(status)?.[1] ?? "";
  const cpus: number[] = [];
  for (const part of list.split(",")) {
    const [from, to] = part.split("-").map(Number);
    if (!Number.isInteger(from)) continue;
    for (let c = from!; c <= (to ?? from!); c++) cpus.push(c);
  }
  return cpus;
}

async function hasTaskset(): Promise<boolean> {
  try {
    const out = await new Deno.Command("taskset", {
      args: ["-c", "0", "true"],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch {
    return false;
  }
}

/**
 * Decides the pinning: the broker on the first CPU this process may use, the generator on the
 * second, when asked for, `taskset` works and there are two CPUs.
 *
 * @param wanted false for `--no-pin`
 * @returns the command prefixes and the header line
 *
 * @example
 * ```ts
 * import { pinning } from "./_pinning.ts";
 *
 * const p = await pinning(false);
 * console.log(p.description); // "Not pinned (--no-pin): …"
 * ```
 */
export async function pinning(wanted: boolean): Promise<Pinning> {
  if (!wanted) {
    return { ...NONE, description: "Not pinned (`--no-pin`): the kernel placed the processes." };
  }
  let cpus: number[] = [];
  try {
    cpus = allowedCpus();
  } catch {
    // Not Linux: no /proc.
  }
  if (cpus.length < 2) {
    return { ...NONE, description: "Not pinned: fewer than two CPUs to pin to." };
  }
  if (!(await hasTaskset())) {
    return { ...NONE, description: "Not pinned: `taskset` (util-linux) is not installed." };
  }
  const [broker, generator] = [String(cpus[0]), String(cpus[1])];
  return {
    broker: ["taskset", "-c", broker],
    generator: ["taskset", "-c", generator],
    description: `Pinned with \`taskset\`: every broker on CPU ${broker}, the load generator ` +
      `on CPU ${generator} (other processes on the machine were not).`,
  };
}

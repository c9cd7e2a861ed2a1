/**
 * CPU time of a process, as the benchmarks count it: Linux's `/proc/PID/stat` (user + system
 * time, in clock ticks of 10 ms), and redis-server's own figure from `INFO cpu`.
 *
 * @module
 */

/** Seconds of CPU (user + system) process `pid` has used so far ("self": this process). */
export function cpuSeconds(pid: number | "self" = "self"): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime
}

/** redis-server's CPU seconds so far (user + system), read through `redis`'s `INFO cpu`. */
export async function redisCpuSeconds(redis: { info(section: string): Promise<string> }) {
  const info = await redis.info("cpu");
  const field = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)![1]);
  return field("used_cpu_user") + field("used_cpu_sys");
}

/**
 * What the Redis store's read tests share besides the server: an ioredis connection to look at
 * Redis with, its command counts, and the wait for ioredis's reply buffer pool.
 *
 * @module
 */

import { Redis } from "ioredis";

/** An ioredis connection to the server on `port` of 127.0.0.1, connected. */
export async function adminClient(port: number): Promise<Redis> {
  const admin = new Redis({ port, host: "127.0.0.1", lazyConnect: true });
  await admin.connect();
  return admin;
}

/** How many times Redis ran each command since `CONFIG RESETSTAT` (scripts' commands counted). */
export async function commandCalls(admin: Redis): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const line of (await admin.info("commandstats")).split("\n")) {
    const m = /^cmdstat_([a-z|]+):calls=(\d+)/.exec(line);
    if (m !== null) counts.set(m[1]!, Number(m[2]));
  }
  return counts;
}

/**
 * Waits until ioredis's reply parser (redis-parser) has shrunk its module-wide buffer pool: grown
 * for a reply larger than one socket read, it is shrunk by an interval of its own that stops by
 * itself within about two seconds. A test that read large replies waits for it at its end.
 */
export function poolShrunk(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 3000));
}

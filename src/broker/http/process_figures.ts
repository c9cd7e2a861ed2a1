/**
 * Process figures for `/metrics`: memory, CPU time, open files and event-loop delay.
 *
 * @module
 */

import process from "node:process";

/** A point-in-time reading of the process. */
export interface ProcessFigures {
  /** Resident set size, bytes. */
  residentBytes: number;
  /** V8 heap in use, bytes. */
  heapUsedBytes: number;
  /** V8 heap reserved, bytes. */
  heapTotalBytes: number;
  /** Memory held outside the V8 heap by JavaScript objects (buffers), bytes. */
  externalBytes: number;
  /** User plus system CPU time since the process started, seconds. */
  cpuSeconds: number;
  /** Open file descriptors, where the system tells (Linux); else undefined. */
  openFds: number | undefined;
  /** When the process started, seconds since the epoch. */
  startTimeSeconds: number;
}

const PROCESS_START = Date.now() - performance.now();

/** @returns the process figures now */
export function readProcessFigures(): ProcessFigures {
  const memory = Deno.memoryUsage();
  const cpu = process.cpuUsage();
  return {
    residentBytes: memory.rss,
    heapUsedBytes: memory.heapUsed,
    heapTotalBytes: memory.heapTotal,
    externalBytes: memory.external,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    openFds: countOpenFds(),
    startTimeSeconds: PROCESS_START / 1000,
  };
}

function countOpenFds(): number | undefined {
  if (Deno.build.os !== "linux") return undefined;
  try {
    let n = 0;
    for (const _ of Deno.readDirSync("/proc/self/fd")) n++;
    return n;
  } catch {
    return undefined;
  }
}

/**
 * Measures event-loop delay: a timer due every `intervalMs` notes how late it fires. Lateness is
 * time the loop spent on other work, i.e. what every client waited for meanwhile.
 */
export class EventLoopMonitor {
  #timer: ReturnType<typeof setInterval> | undefined;
  #intervalMs: number;
  #expected = 0;
  /** The delay of the latest tick, seconds. */
  last = 0;
  /** The largest delay since {@linkcode takeMax} was last called, seconds. */
  #max = 0;

  /** @param intervalMs how often to sample (default 100 ms) */
  constructor(intervalMs = 100) {
    this.#intervalMs = intervalMs;
  }

  /** Starts sampling. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#expected = performance.now() + this.#intervalMs;
    this.#timer = setInterval(() => {
      const now = performance.now();
      this.last = Math.max(0, now - this.#expected) / 1000;
      if (this.last > this.#max) this.#max = this.last;
      this.#expected = now + this.#intervalMs;
    }, this.#intervalMs);
  }

  /** Stops sampling. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** @returns the largest delay seen since the previous call (seconds), and starts afresh */
  takeMax(): number {
    const max = Math.max(this.#max, this.last);
    this.#max = 0;
    return max;
  }
}

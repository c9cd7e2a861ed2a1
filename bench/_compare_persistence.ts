/**
 * The `persistence` scenario of bench/compare.ts: amqtt alone, with persistence off, `sync:
 * normal` and `sync: full` (bench/persistence_bench.ts), as its own section of RESULTS.md.
 *
 * @module
 */

import type { Pinning } from "./_pinning.ts";
import {
  measurePersistence,
  PERSISTENCE_SCENARIOS,
  persistenceTable,
  pinThisProcess,
} from "./persistence_bench.ts";

/** The scenario key in `--scenarios`. */
export const PERSISTENCE = "persistence";

/** The heading the section starts with; the section runs to the next `## ` heading or the end. */
const HEADING = "## Persistence (amqtt only)";

/** What the section says about where and when it was measured. */
export interface SectionContext {
  /** ISO date and time, UTC. */
  date: string;
  /** The commit measured. */
  commit: string;
  /** The machine's description. */
  machine: string;
  /** Load average before and after. */
  load: string;
}

/**
 * Runs the persistence measurement and returns it as a Markdown section.
 *
 * @param options repetitions, whether it is a quick run, where progress goes, and the context
 * @returns the section, starting with its heading
 */
export async function persistenceSection(options: {
  reps: number;
  quick: boolean;
  log: (line: string) => void;
  context: () => Promise<SectionContext>;
  /** Where the broker and the load clients (this process) run. */
  pinned: Pinning;
}): Promise<string> {
  // Warm-up excluded, as in every other row: a fresh broker's first tens of thousands of
  // messages cost it several times more (compilation, heap and store file growth).
  const messages = options.quick ? 3000 : 300_000;
  const warmup = options.quick ? 0 : 60_000;
  await pinThisProcess(options.pinned);
  const rows = await measurePersistence({
    runs: options.reps,
    messages,
    warmup,
    scenarios: PERSISTENCE_SCENARIOS,
    builds: [{ name: "", prefix: options.pinned.broker }],
    log: options.log,
  });
  const c = await options.context();
  return [
    HEADING,
    "",
    "Made by bench/compare.ts's `persistence` scenario (alone: `deno run -A bench/compare.ts",
    "--scenarios persistence --write bench/RESULTS.md` replaces only this section), which runs",
    "bench/persistence_bench.ts: `amqtt` in its own process, a persistent subscriber (clean session",
    "0), 64-byte payloads, 20 messages in flight per publisher, Deno load clients in another",
    `process. 1->1: ${messages} QoS 1 messages, ${Math.floor(messages / 2)} QoS 2; fan-in: ${
      messages * 2
    } QoS 1 messages from 8 publishers to one subscriber, after ${warmup} messages of warm-up`,
    `(in the same proportions) to the same broker. ${
      options.pinned.broker.length > 0
        ? "The broker runs on one CPU, the load clients on the other."
        : "Not pinned to CPUs."
    } Each mode (persistence off, then`,
    "`persistence: {sync: normal}`, then `sync: full`) starts a fresh broker with a fresh store",
    `file; the modes are interleaved, ${options.reps} repetition(s); each cell is the median with`,
    "the range. msg/CPU-s divides by the broker process's CPU time (user + system). The target",
    "of issue 13 is `sync: normal` at half of the in-memory figure or better.",
    "",
    `- Date: ${c.date} UTC; commit: ${c.commit}`,
    `- Machine: ${c.machine}`,
    `- Load average (1/5/15 min) before and after: ${c.load}`,
    "- **The machine is shared and was busy with other work during this run:** single runs moved",
    "  by a wide margin (see the ranges); read the ratios within a row, not absolute figures.",
    "",
    persistenceTable(rows),
    "",
  ].join("\n");
}

/**
 * A document with its persistence section replaced by `section` (added at the end when it has
 * none).
 *
 * @param doc the document
 * @param section the new section, from {@linkcode persistenceSection}
 * @returns the new document
 */
export function replaceSection(doc: string, section: string): string {
  const start = doc.indexOf(HEADING);
  if (start < 0) return `${doc.trimEnd()}\n\n${section}`;
  const next = doc.indexOf("\n## ", start + HEADING.length);
  return `${doc.slice(0, start)}${section}${next < 0 ? "" : `\n${doc.slice(next + 1)}`}`;
}

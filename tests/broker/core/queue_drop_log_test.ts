/**
 * Queue-full drops told per session in the core, with an injected clock: a warning at a
 * session's first drop, at most one more line per interval while it goes on dropping, and a
 * summary when its client is back or the session ends.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { QoS } from "../../../src/packet/mod.ts";
import { BrokerMessage } from "../../../src/broker/message.ts";
import type { LogFields, Logger } from "../../../src/plugins/types.ts";
import { connect, subscribe, T0, testCore } from "../../_helpers/core.ts";
import { connectPacket } from "../../_helpers/test_client.ts";

function message(topic: string, qos: QoS): BrokerMessage {
  return new BrokerMessage(topic, new TextEncoder().encode(topic), { qos, retain: false });
}

function recorder(): Logger & { lines: { message: string; fields?: LogFields }[] } {
  const lines: { message: string; fields?: LogFields }[] = [];
  const none = () => {};
  return {
    lines,
    debug: none,
    info: none,
    error: none,
    warning: (message, fields) => lines.push({ message, fields }),
  };
}

/** The per-session queue-full lines (not the interval's total by reason). */
function queueLines(log: ReturnType<typeof recorder>): string[] {
  return log.lines.filter((l) => l.fields?.event === "queue_full").map((l) => l.message);
}

Deno.test("core queue drops: an offline session's drops get a line at the first, one per interval, and a summary when its client is back", () => {
  const log = recorder();
  const core = testCore({ maxInflight: 2, maxQueuedMessages: 3, logSummaryInterval: 60 }, {
    logger: log,
  });
  core.tick(T0);
  const sub = connect(core, connectPacket({ clientId: "s", clean: false }));
  subscribe(core, sub, "q/#", 1);
  core.detach(sub, T0 + 1);
  // 2 in the window, 3 queued, then 5 more: 5 dropped, one line at the first.
  for (let i = 0; i < 10; i++) core.publish(message(`q/${i}`, 1));
  assert.equal(core.stats.droppedBy.queueFull, 5);
  let lines = queueLines(log);
  assert.equal(lines.length, 1);
  assert.match(lines[0], /^Queue of "s" \(offline\) full at max_queued_messages 3: .*, 1 so far$/);
  const fields = log.lines.find((l) => l.fields?.event === "queue_full")!.fields!;
  assert.equal(fields.clientId, "s");

  // Within the interval: no new line, whatever it drops.
  core.tick(T0 + 30_000);
  for (let i = 10; i < 15; i++) core.publish(message(`q/${i}`, 1));
  core.tick(T0 + 59_000);
  assert.equal(queueLines(log).length, 1);
  // The interval passed: one line with the drops since the first line.
  core.tick(T0 + 60_001);
  lines = queueLines(log);
  assert.equal(lines.length, 2);
  assert.match(lines[1], /^Queue of "s" \(offline\) still full: 9 more .*, 10 since /);
  // Nothing more dropped: no line at the next interval.
  core.tick(T0 + 125_000);
  assert.equal(queueLines(log).length, 2);

  // The client is back: the summary with the count, once.
  connect(core, connectPacket({ clientId: "s", clean: false }), T0 + 126_000);
  lines = queueLines(log);
  assert.equal(lines.length, 3);
  assert.match(lines[2], /^"s" is connected again: 10 of its queued messages were dropped since /);
  core.tick(T0 + 200_000);
  assert.equal(queueLines(log).length, 3);
  assert.equal(core.stats.droppedBy.queueFull, 10);
});

Deno.test("core queue drops: a session that ends with drops not told says so; lines past the budget are tallied in one summary", () => {
  const log = recorder();
  const core = testCore({ maxInflight: 1, maxQueuedMessages: 1, logSummaryInterval: 60 }, {
    logger: log,
  });
  core.tick(T0);
  const links = [];
  for (let i = 0; i < 25; i++) {
    const link = connect(core, connectPacket({ clientId: `c${i}`, clean: false }));
    subscribe(core, link, "q/#", 1);
    links.push(link);
  }
  for (const link of links) core.detach(link, T0 + 1);
  // One in the window, one queued, one dropped for each.
  for (let i = 0; i < 3; i++) core.publish(message(`q/${i}`, 1));
  // 25 sessions with a first drop each: 20 lines in full, 5 tallied.
  assert.equal(queueLines(log).length, 20);
  core.tick(T0 + 60_001);
  const summary = log.lines.find((l) => l.fields?.event === "summary")!;
  assert.match(summary.message, /^5 queue-full warnings beyond the 20 logged in the last 60 s/);
  assert.equal(queueLines(log).length, 20, "nothing more dropped: no interval line");
  // c0 taken by a clean start: its session ends, with its drops since the last line told.
  const before = queueLines(log).length;
  core.publish(message("q/3", 1));
  connect(core, connectPacket({ clientId: "c0", clean: true }), T0 + 61_000);
  const ended = queueLines(log).slice(before).filter((l) => l.includes('"c0"'));
  assert.equal(ended.length, 1);
  assert.match(ended[0], /^Session of "c0" ended: 2 of its queued messages were dropped here/);
});

/**
 * The CLI's log lines: aMQTT's `[time] :: LEVEL - message` format and levels.
 */

import assert from "node:assert/strict";
import { createLogger, formatLogTime } from "../../cli/_log.ts";

Deno.test("formatLogTime prints local time like Python's logging asctime, comma before milliseconds", () => {
  assert.equal(formatLogTime(new Date(2026, 10, 2, 5, 8, 1, 7)), "2026-11-02 05:08:01,007");
  assert.equal(formatLogTime(new Date(2026, 0, 31, 23, 59, 59, 999)), "2026-01-31 23:59:59,999");
});

Deno.test("createLogger writes INFO and above by default, DEBUG too with debug", () => {
  const lines: string[] = [];
  const now = () => new Date(2026, 10, 22, 15, 48, 51, 108);
  const quiet = createLogger({ write: (l) => lines.push(l), now });
  quiet.debug("hidden");
  quiet.info("started");
  quiet.warning("careful");
  quiet.error("failed");
  assert.deepEqual(lines, [
    "[2026-11-22 15:48:51,108] :: INFO - started",
    "[2026-11-22 15:48:51,108] :: WARNING - careful",
    "[2026-11-22 15:48:51,108] :: ERROR - failed",
  ]);
  lines.length = 0;
  createLogger({ debug: true, write: (l) => lines.push(l), now }).debug("shown");
  assert.deepEqual(lines, ["[2026-11-22 15:48:51,108] :: DEBUG - shown"]);
});

Deno.test("createLogger says which levels it writes, so callers can skip building lines", () => {
  const log = createLogger({ write: () => {} });
  assert.equal(log.enabled?.("debug"), false);
  assert.equal(log.enabled?.("info"), true);
  assert.equal(log.enabled?.("error"), true);
  assert.equal(createLogger({ level: "warning", write: () => {} }).enabled?.("info"), false);
});

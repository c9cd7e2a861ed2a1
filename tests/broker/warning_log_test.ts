// WarningLog: warnings a client can cause at will are written in full up to a budget per
// interval; the rest are tallied by reason and source and told in one summary line.

import assert from "node:assert/strict";
import { WarningLog } from "../../src/broker/warning_log.ts";
import type { LogFields } from "../../src/plugins/types.ts";

function recorder() {
  const lines: { message: string; fields?: LogFields }[] = [];
  const add = (message: string, fields?: LogFields) => lines.push({ message, fields });
  return { lines, logger: { debug() {}, info() {}, warning: add, error: add } };
}

Deno.test("WarningLog writes the first lines of an interval in full and tallies the rest", () => {
  const { lines, logger } = recorder();
  const log = new WarningLog(logger, { what: "logins refused", lines: 2 });
  for (let i = 0; i < 5; i++) {
    log.warn(`refused ${i}`, { reason: "bad password", source: "10.0.0.1" }, { clientId: `c${i}` });
  }
  log.warn("refused 5", { reason: "not checked", source: "10.0.0.2" });
  assert.deepEqual(lines.map((l) => l.message), ["refused 0", "refused 1"]);
  assert.equal(lines[1]!.fields?.clientId, "c1");

  log.flush(60);
  assert.equal(lines.length, 3);
  assert.equal(
    lines[2]!.message,
    "4 logins refused beyond the 2 logged in the last 60 s: 3 bad password, 1 not checked; " +
      "2 source(s), most from 10.0.0.1 (3), 10.0.0.2 (1)",
  );
  assert.equal(lines[2]!.fields?.event, "summary");

  // A new interval has its budget back; an interval with nothing left out writes no summary.
  log.warn("refused 6", { reason: "bad password" });
  log.flush(60);
  assert.deepEqual(lines.slice(3).map((l) => l.message), ["refused 6"]);
});

/**
 * The CLI's JSON log lines and log levels.
 */

import assert from "node:assert/strict";
import { createLogger, formatIsoTime } from "../../cli/_log.ts";

Deno.test("formatIsoTime prints local time in ISO 8601 with the zone offset", () => {
  const date = new Date(2026, 10, 2, 5, 8, 1, 7);
  const text = formatIsoTime(date);
  assert.match(text, /^2026-11-02T05:08:01\.007[+-]\d\d:\d\d$/);
  assert.equal(new Date(text).getTime(), date.getTime(), "the offset makes it the same instant");
});

Deno.test("createLogger json: one object per line with time, level, event, message and fields", () => {
  const lines: string[] = [];
  const log = createLogger({ format: "json", write: (l) => lines.push(l) });
  log.debug("hidden");
  log.info("started");
  log.warning('Refused client "c1" from 10.0.0.7:5000: authentication refused', {
    event: "connection_refused",
    clientId: "c1",
    listener: "default",
    remoteAddress: "10.0.0.7:5000",
    reason: "authentication refused",
  });
  assert.equal(lines.length, 2);
  const [started, refused] = lines.map((l) => JSON.parse(l));
  assert.match(started.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$/);
  assert.deepEqual({ ...started, time: undefined }, {
    time: undefined,
    level: "INFO",
    event: "log",
    message: "started",
  });
  assert.deepEqual({ ...refused, time: undefined }, {
    time: undefined,
    level: "WARNING",
    event: "connection_refused",
    message: 'Refused client "c1" from 10.0.0.7:5000: authentication refused',
    client_id: "c1",
    listener: "default",
    remote_address: "10.0.0.7:5000",
    reason: "authentication refused",
  });
});

Deno.test("createLogger level: warning drops INFO; debug shows DEBUG", () => {
  const lines: string[] = [];
  const write = (l: string) => lines.push(l);
  const quiet = createLogger({ level: "warning", write });
  quiet.info("no");
  quiet.warning("yes");
  quiet.error("yes too");
  assert.equal(lines.length, 2);
  lines.length = 0;
  createLogger({ level: "debug", write }).debug("shown");
  assert.equal(lines.length, 1);
  lines.length = 0;
  createLogger({ level: "error", write }).warning("hidden");
  assert.equal(lines.length, 0);
});

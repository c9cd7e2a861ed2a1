/**
 * The CI scripts install what the tests need and nothing more: they never stop a process they did
 * not start (a system mosquitto on 1883 keeps running; the tests use ports of their own).
 */

import assert from "node:assert/strict";

const SCRIPTS = ["../../.ci/peers", "../../.ci/run"];

/** Commands that stop processes by name or service, rather than by a pid the script owns. */
const STOPPERS = [
  /\bservice\s+\S+\s+stop\b/,
  /\bsystemctl\s+(stop|kill|disable)\b/,
  /\bpkill\b/,
  /\bkillall\b/,
  /\/etc\/init\.d\/\S+\s+stop\b/,
];

Deno.test(".ci scripts stop no process they did not start (no service stop, pkill or killall)", async () => {
  for (const script of SCRIPTS) {
    const text = await Deno.readTextFile(new URL(script, import.meta.url));
    const code = text.split("\n").filter((line) => !line.trimStart().startsWith("#"));
    assert.ok(code.length > 5, `${script} has commands`);
    for (const line of code) {
      for (const stopper of STOPPERS) {
        assert.doesNotMatch(line, stopper, `${script}: ${line}`);
      }
    }
  }
});

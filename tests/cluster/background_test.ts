// background(): work nobody awaits has its rejection reported, never left unhandled (an
// unhandled rejection ends the node: see tests/cli/fault_test.ts).
import assert from "node:assert/strict";
import { background } from "../../src/cluster/_background.ts";

Deno.test("background reports a rejection with what the work was, and a throwing callback's too", async () => {
  const reports: string[] = [];
  const report = (what: string, error: unknown) =>
    reports.push(`${what}: ${(error as Error).message}`);
  background(Promise.reject(new Error("gone")), "the check", report);
  background(Promise.resolve(1).then(() => JSON.parse("{")), "the merge", report);
  background(Promise.resolve(), "nothing", report);
  // A report that throws is swallowed, not a new unhandled rejection.
  background(Promise.reject(new Error("x")), "the take", () => {
    throw new Error("broken logger");
  });
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(reports.sort(), [
    "the check: gone",
    `the merge: ${
      (() => {
        try {
          JSON.parse("{");
        } catch (e) {
          return (e as Error).message;
        }
      })()
    }`,
  ]);
});

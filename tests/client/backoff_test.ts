import assert from "node:assert/strict";
import { reconnectDelay } from "../../src/client/_backoff.ts";

Deno.test("reconnectDelay doubles per attempt (aMQTT min(max, 2**n)) and caps at the maximum", () => {
  const top = () => 0.999999;
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5].map((n) => Math.round(reconnectDelay(n, 10, top))),
    [1000, 2000, 4000, 8000, 10000, 10000],
  );
  assert.equal(Math.round(reconnectDelay(1000, 10, top)), 10000, "huge attempt counts stay capped");
});

Deno.test("reconnectDelay jitters between half and all of the step", () => {
  assert.equal(reconnectDelay(2, 10, () => 0), 2000);
  assert.equal(reconnectDelay(0, 0.2, () => 0.5), 150);
  for (let i = 0; i < 100; i++) {
    const d = reconnectDelay(3, 10);
    assert.ok(d >= 4000 && d < 8000, `delay ${d}`);
  }
});

import assert from "node:assert/strict";
import { parseSharedFilter, SHARED_PREFIX } from "../../src/topic/shared_filter.ts";

Deno.test("parseSharedFilter splits $share/{ShareName}/{filter}", () => {
  assert.equal(SHARED_PREFIX, "$share/");
  assert.deepEqual(parseSharedFilter("$share/consumer1/sport/tennis/+"), {
    group: "consumer1",
    filter: "sport/tennis/+",
  });
  assert.deepEqual(parseSharedFilter("$share/g//finance"), { group: "g", filter: "/finance" });
  assert.deepEqual(parseSharedFilter("$share/g/#"), { group: "g", filter: "#" });
  assert.deepEqual(parseSharedFilter("$share/g/$share/h/x"), { group: "g", filter: "$share/h/x" });
});

Deno.test("parseSharedFilter returns undefined for non-shared filters", () => {
  for (const filter of ["sport/#", "$share", "$SHARE/g/x", "$shared/g/x", "share/g/x", "#"]) {
    assert.equal(parseSharedFilter(filter), undefined, filter);
  }
});

Deno.test("parseSharedFilter returns undefined for an empty share name [MQTT-4.8.2-1]", () => {
  assert.equal(parseSharedFilter("$share//x"), undefined);
  assert.equal(parseSharedFilter("$share/"), undefined);
});

Deno.test("parseSharedFilter returns undefined for a bad share name or no filter [MQTT-4.8.2-2]", () => {
  for (const filter of ["$share/+/x", "$share/a#/x", "$share/g", "$share/g/"]) {
    assert.equal(parseSharedFilter(filter), undefined, filter);
  }
});

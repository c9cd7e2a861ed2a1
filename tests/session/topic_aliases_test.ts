// InboundTopicAliases as the broker uses it: the aliases a 5.0 client sets, within the Topic
// Alias Maximum the broker announced.

import assert from "node:assert/strict";
import { InboundTopicAliases } from "../../src/session/topic_aliases.ts";

function failure(result: string | { reasonCode: number; message: string }) {
  assert.equal(typeof result, "object", `expected a failure, got ${JSON.stringify(result)}`);
  return result as { reasonCode: number; message: string };
}

Deno.test("InboundTopicAliases (MQTT 5) accepts every alias from 1 to the maximum it announced [MQTT-3.3.2-12]", () => {
  const aliases = new InboundTopicAliases(10, { peer: "Client" });
  for (let alias = 1; alias <= 10; alias++) {
    assert.equal(aliases.resolve(`t/${alias}`, alias), `t/${alias}`);
  }
  for (let alias = 1; alias <= 10; alias++) assert.equal(aliases.resolve("", alias), `t/${alias}`);
  assert.equal(aliases.maximum, 10);
});

Deno.test("InboundTopicAliases (MQTT 5) refuses alias 0 and aliases above the maximum with 0x94 [MQTT-3.3.2-8]", () => {
  const aliases = new InboundTopicAliases(2, { peer: "Client" });
  const zero = failure(aliases.resolve("t", 0));
  assert.equal(zero.reasonCode, 0x94);
  assert.equal(zero.message, "Client sent topic alias 0, which is not allowed");
  const above = failure(aliases.resolve("t", 3));
  assert.equal(above.reasonCode, 0x94);
  assert.equal(above.message, "Client sent topic alias 3, above the maximum 2");
  // A broker that announced no aliases (maximum 0) accepts none.
  assert.equal(failure(new InboundTopicAliases(0).resolve("t", 1)).reasonCode, 0x94);
});

Deno.test("InboundTopicAliases refuses an alias with no mapping yet with 0x82", () => {
  const aliases = new InboundTopicAliases(5, { peer: "Client" });
  const unknown = failure(aliases.resolve("", 4));
  assert.equal(unknown.reasonCode, 0x82);
  assert.match(unknown.message, /^Client sent topic alias 4 with no topic name/);
});

Deno.test("InboundTopicAliases (MQTT 5) replaces a mapping; a new connection starts with none [MQTT-3.3.2-7]", () => {
  const first = new InboundTopicAliases(5, { peer: "Client" });
  first.resolve("a", 1);
  assert.equal(first.resolve("b", 1), "b");
  assert.equal(first.resolve("", 1), "b");
  const next = new InboundTopicAliases(5, { peer: "Client" });
  assert.equal(failure(next.resolve("", 1)).reasonCode, 0x82);
});

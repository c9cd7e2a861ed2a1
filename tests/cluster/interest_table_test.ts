// The interest table: which remote nodes a topic goes to, with wildcards, shared subscriptions,
// overlapping filters, removal, replacement and nodes leaving.
import assert from "node:assert/strict";
import { InterestTable } from "../../src/cluster/interest_table.ts";

Deno.test("InterestTable matches topics to nodes once each, by MQTT filter rules", () => {
  const table = new InterestTable();
  table.add("b", ["sport/#", "sport/tennis/+"]);
  table.add("c", ["sport/tennis/player1", "#"]);
  table.add("d", ["$share/g/sport/+/player1"]);
  assert.deepEqual(table.nodesFor("sport/tennis/player1").sort(), ["b", "c", "d"]);
  assert.deepEqual(table.nodesFor("sport").sort(), ["b", "c"]);
  // A filter starting with a wildcard does not match $ topics [MQTT-4.7.2-1].
  assert.deepEqual(table.nodesFor("$SYS/x"), []);
  assert.deepEqual(table.nodes.sort(), ["b", "c", "d"]);
});

Deno.test("InterestTable removes filters, keeps overlapping ones, replaces and drops nodes", () => {
  const table = new InterestTable();
  table.add("b", ["a/+", "$share/g/a/+", "x/#"]);
  table.remove("b", ["a/+"]);
  assert.deepEqual(table.nodesFor("a/1"), ["b"], "the shared filter still wants a/+");
  table.remove("b", ["$share/g/a/+", "never-added"]);
  assert.deepEqual(table.nodesFor("a/1"), []);
  assert.deepEqual(table.filtersOf("b"), ["x/#"]);
  table.replace("b", ["y"]);
  assert.deepEqual([table.nodesFor("x/1"), table.nodesFor("y")], [[], ["b"]]);
  table.drop("b");
  assert.deepEqual([table.nodes, table.nodesFor("y")], [[], []]);
});

Deno.test("InterestTable ignores invalid filters from other nodes", () => {
  const table = new InterestTable();
  table.add("b", ["a/#/b", "", "ok"]);
  assert.deepEqual(table.filtersOf("b"), ["ok"]);
  assert.deepEqual(table.nodesFor("ok"), ["b"]);
});

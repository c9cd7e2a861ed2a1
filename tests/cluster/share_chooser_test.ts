// Which node serves each shared group for a message: one node per matching group, in turn or at
// random among the nodes with members, following joins, leaves and the nodes' interest changes.
import assert from "node:assert/strict";
import { ShareChooser } from "../../src/cluster/share_chooser.ts";
import { InterestTable } from "../../src/cluster/interest_table.ts";

/** The node chosen for `share` at each of `n` messages to `topic`. */
function picks(chooser: ShareChooser, topic: string, share: string, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const choice = chooser.choose(topic)!;
    const nodes = [...choice].filter(([, shares]) => shares.includes(share)).map(([n]) => n);
    assert.equal(nodes.length, 1, "exactly one node serves the group");
    out.push(nodes[0]!);
  }
  return out;
}

Deno.test("ShareChooser picks one node per group per message, in turn (round_robin)", () => {
  const chooser = new ShareChooser();
  for (const node of ["a", "b", "c"]) chooser.add(node, "$share/g/s/#");
  const got = picks(chooser, "s/1", "$share/g/s/#", 6);
  assert.deepEqual(got.slice(0, 3).sort(), ["a", "b", "c"]);
  assert.deepEqual(got.slice(3), got.slice(0, 3));
});

Deno.test("ShareChooser with the random strategy draws with the injected source", () => {
  const draws = [0.9, 0.1, 0.5];
  let i = 0;
  const chooser = new ShareChooser({ strategy: "random", random: () => draws[i++ % 3]! });
  for (const node of ["a", "b", "c"]) chooser.add(node, "$share/g/s/#");
  assert.deepEqual(picks(chooser, "s/1", "$share/g/s/#", 3), ["c", "a", "b"]);
});

Deno.test("ShareChooser chooses each matching group on its own and ignores non-shared filters", () => {
  const chooser = new ShareChooser();
  chooser.add("a", "$share/g/s/#");
  chooser.add("b", "$share/h/s/+");
  chooser.add("b", "s/#");
  chooser.add("c", "$share/h/other");
  const choice = chooser.choose("s/1")!;
  assert.deepEqual(
    [...choice].sort(),
    [["a", ["$share/g/s/#"]], ["b", ["$share/h/s/+"]]],
  );
  assert.equal(chooser.choose("x"), undefined);
  // A group is named by share name and filter: $share/g/other is another group than $share/g/s/#.
  chooser.add("c", "$share/g/s/+");
  assert.deepEqual(picks(chooser, "s/1", "$share/g/s/+", 2), ["c", "c"]);
});

Deno.test("ShareChooser: a node leaving a group, or the cluster, gets no more of its messages", () => {
  const chooser = new ShareChooser();
  for (const node of ["a", "b", "c"]) chooser.add(node, "$share/g/s/#");
  chooser.remove("b", "$share/g/s/#");
  assert.deepEqual(picks(chooser, "s/1", "$share/g/s/#", 4).sort(), ["a", "a", "c", "c"]);
  chooser.drop("c");
  assert.deepEqual(picks(chooser, "s/1", "$share/g/s/#", 2), ["a", "a"]);
  chooser.replace("a", ["s/#"]);
  assert.equal(chooser.choose("s/1"), undefined);
  chooser.add("b", "$share/bad/a/#/b"); // invalid: ignored
  assert.equal(chooser.choose("a/x/b"), undefined);
});

Deno.test("InterestTable keeps its share chooser and plain nodes in step with the nodes' interest", () => {
  const table = new InterestTable();
  table.add("b", ["$share/g/s/#"]);
  table.add("c", ["s/#", "$share/g/s/#"]);
  table.shares.add("self", "$share/g/s/#");
  assert.deepEqual(table.nodesFor("s/1").sort(), ["b", "c"], "shared interest still counts");
  assert.deepEqual(table.plainNodesFor("s/1"), ["c"]);
  assert.deepEqual(picks(table.shares, "s/1", "$share/g/s/#", 3).sort(), ["b", "c", "self"]);
  table.remove("c", ["$share/g/s/#"]);
  table.drop("b");
  assert.deepEqual(picks(table.shares, "s/1", "$share/g/s/#", 2), ["self", "self"]);
  assert.deepEqual(table.plainNodesFor("s/1"), ["c"]);
  table.replace("c", ["$share/g/s/#"]);
  assert.deepEqual(table.plainNodesFor("s/1"), []);
  assert.deepEqual(picks(table.shares, "s/1", "$share/g/s/#", 2).sort(), ["c", "self"]);
});

Deno.test("ShareChooser splits a group by members: a node with 3 members gets 3 of every 4 messages, spread out, against a node with 1", () => {
  const chooser = new ShareChooser();
  const share = "$share/g/s/#";
  chooser.add("a", share);
  chooser.add("b", share);
  chooser.weigh("a", share, 3);
  const got = picks(chooser, "s/1", share, 8);
  assert.deepEqual(got.filter((n) => n === "a").length, 6);
  // Smooth: never all of a's turns in a row before b's.
  assert.deepEqual(got.slice(0, 4).filter((n) => n === "b").length, 1);
  // Back to one member: in turn again.
  chooser.weigh("a", share, 1);
  const even = picks(chooser, "s/1", share, 4);
  assert.deepEqual(even.filter((n) => n === "a").length, 2);
  // A node that leaves takes its weight along.
  chooser.weigh("b", share, 5);
  chooser.drop("b");
  assert.deepEqual(picks(chooser, "s/1", share, 3), ["a", "a", "a"]);
});

Deno.test("ShareChooser with the random strategy weighs its draw by members", () => {
  const draws = [0.1, 0.7, 0.74, 0.76, 0.99];
  let i = 0;
  const chooser = new ShareChooser({ strategy: "random", random: () => draws[i++]! });
  const share = "$share/g/s/#";
  chooser.add("a", share);
  chooser.add("b", share);
  chooser.weigh("a", share, 3);
  // a covers [0, 0.75), b [0.75, 1).
  assert.deepEqual(picks(chooser, "s/1", share, 5), ["a", "a", "a", "b", "b"]);
});

Deno.test("ShareChooser picks a fallback node only for a group with no other node, until dropped", () => {
  const chooser = new ShareChooser();
  const both = "$share/g/s/#";
  const alone = "$share/h/s/#";
  chooser.add("a", both);
  chooser.add("x", both);
  chooser.add("x", alone);
  chooser.fallback("x");
  assert.deepEqual(picks(chooser, "s/1", both, 4), ["a", "a", "a", "a"]);
  assert.deepEqual(picks(chooser, "s/1", alone, 2), ["x", "x"]);
  assert.equal(chooser.another(both, "b"), "a");
  assert.equal(chooser.another(alone, "b"), "x");
  // Back (its interest replaced): an ordinary member again.
  chooser.drop("x");
  chooser.add("x", both);
  assert.deepEqual(picks(chooser, "s/1", both, 4).sort(), ["a", "a", "x", "x"]);
});

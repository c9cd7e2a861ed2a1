import assert from "node:assert/strict";
import fc from "fast-check";
import { matchTopic } from "../../src/topic/match_topic.ts";
import { arbitraryFilter, arbitraryName } from "./_arbitraries.ts";

function matches(filter: string, names: string[]): void {
  for (const name of names) assert.ok(matchTopic(filter, name), `${filter} should match ${name}`);
}

function misses(filter: string, names: string[]): void {
  for (const name of names) {
    assert.ok(!matchTopic(filter, name), `${filter} should not match ${name}`);
  }
}

Deno.test('matchTopic: "sport/tennis/player1/#" matches the player and all below (spec §4.7.1.2)', () => {
  matches("sport/tennis/player1/#", [
    "sport/tennis/player1",
    "sport/tennis/player1/ranking",
    "sport/tennis/player1/score/wimbledon",
  ]);
  misses("sport/tennis/player1/#", [
    "sport/tennis/player2",
    "sport/tennis",
    "sport/tennis/player10",
  ]);
});

Deno.test('matchTopic: "sport/#" matches "sport", its parent level (spec §4.7.1.2)', () => {
  matches("sport/#", ["sport", "sport/", "sport/tennis", "sport/tennis/player1"]);
  misses("sport/#", ["sports", "spor", "/sport"]);
});

Deno.test('matchTopic: "#" matches every topic not starting with "$"', () => {
  matches("#", ["sport", "/", "/finance", "a/b/c", "a//b"]);
});

Deno.test('matchTopic: "sport/tennis/+" matches exactly one level (spec §4.7.1.3)', () => {
  matches("sport/tennis/+", ["sport/tennis/player1", "sport/tennis/player2", "sport/tennis/"]);
  misses("sport/tennis/+", ["sport/tennis/player1/ranking", "sport/tennis"]);
});

Deno.test('matchTopic: "sport/+" does not match "sport" but matches "sport/" (spec §4.7.1.3)', () => {
  misses("sport/+", ["sport"]);
  matches("sport/+", ["sport/"]);
});

Deno.test('matchTopic: "/finance" matches "+/+" and "/+" but not "+" (spec §4.7.1.3)', () => {
  assert.ok(matchTopic("+/+", "/finance"));
  assert.ok(matchTopic("/+", "/finance"));
  assert.ok(!matchTopic("+", "/finance"));
});

Deno.test('matchTopic: "sport/+/player1" and "+/tennis/#" (spec §4.7.1.3)', () => {
  matches("sport/+/player1", ["sport/tennis/player1", "sport//player1"]);
  misses("sport/+/player1", ["sport/tennis/player2", "sport/player1"]);
  matches("+/tennis/#", ["sport/tennis", "sport/tennis/player1", "/tennis"]);
  misses("+/tennis/#", ["sport/golf/player1", "tennis"]);
});

Deno.test("matchTopic does not match $SYS with # [MQTT-4.7.2-1]", () => {
  misses("#", ["$SYS/monitor/Clients", "$SYS", "$", "$share/g/x"]);
});

Deno.test("matchTopic does not match $SYS with a filter starting with + [MQTT-4.7.2-1]", () => {
  misses("+/monitor/Clients", ["$SYS/monitor/Clients"]);
  misses("+", ["$SYS"]);
  misses("+/#", ["$SYS/x", "$SYS"]);
});

Deno.test("matchTopic matches $ topics with filters that name the $ level [MQTT-4.7.2-1]", () => {
  matches("$SYS/#", ["$SYS/monitor/Clients", "$SYS"]);
  matches("$SYS/monitor/+", ["$SYS/monitor/Clients"]);
  matches("$SYS/monitor/Clients", ["$SYS/monitor/Clients"]);
  // Only the first character of the name matters: "$" elsewhere is ordinary.
  matches("+/$x", ["a/$x"]);
  matches("#", ["a/$SYS"]);
});

Deno.test("matchTopic counts empty levels", () => {
  matches("+/+", ["/", "a/", "/b"]);
  misses("+", ["/"]);
  matches("a//b", ["a//b"]);
  misses("a//b", ["a/b", "a///b"]);
  matches("a/+/b", ["a//b"]);
  matches("/", ["/"]);
  misses("/", ["", "//"]);
  matches("+//#", ["a/", "a//", "a//x"]);
});

Deno.test("matchTopic does no normalisation and is case sensitive [MQTT-4.7.3-4]", () => {
  misses("ACCOUNTS", ["Accounts", "accounts"]);
  matches("Accounts payable", ["Accounts payable"]);
  misses("/finance", ["finance"]);
  misses("finance", ["/finance", "finance/"]);
  misses("café", ["cafe\u0301"]);
});

Deno.test("matchTopic rejects partial level matches", () => {
  misses("sport/tennis", ["sport/tennisball", "sport/tenni", "sport/tennis/x", "sport"]);
  misses("a/b/c", ["a/b", "a/b/cd", "a/bc"]);
});

Deno.test("matchTopic handles topics of tens of thousands of levels without recursion", () => {
  const filter = "+/".repeat(30000) + "#";
  assert.ok(matchTopic(filter, "/".repeat(30000)));
  assert.ok(!matchTopic(filter, "/".repeat(29998)));
});

// A straightforward reference, level by level, to check the single-scan matcher against.
function reference(filter: string, name: string): boolean {
  const f = filter.split("/");
  const n = name.split("/");
  if (name.startsWith("$") && (f[0] === "#" || f[0] === "+")) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= n.length) return false;
    if (f[i] !== "+" && f[i] !== n[i]) return false;
  }
  return f.length === n.length;
}

Deno.test("matchTopic agrees with a level-by-level reference on random filters and names", () => {
  fc.assert(
    fc.property(arbitraryFilter, arbitraryName, (filter, name) => {
      assert.equal(matchTopic(filter, name), reference(filter, name), `${filter} vs ${name}`);
    }),
    { numRuns: 20000 },
  );
});

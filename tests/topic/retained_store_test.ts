import assert from "node:assert/strict";
import fc from "fast-check";
import { matchTopic } from "../../src/topic/match_topic.ts";
import { RetainedStore } from "../../src/topic/retained_store.ts";
import { arbitraryFilter, arbitraryName } from "./_arbitraries.ts";

function storeOf(topics: string[]): RetainedStore<string> {
  const store = new RetainedStore<string>();
  for (const topic of topics) store.set(topic, `msg:${topic}`);
  return store;
}

function matched(store: RetainedStore<string>, filter: string): string[] {
  return store.match(filter).map((m) => m.slice(4)).sort();
}

const TOPICS = [
  "sport",
  "sport/",
  "sport/tennis",
  "sport/tennis/player1",
  "sport/tennis/player1/ranking",
  "sport/tennis/player1/score/wimbledon",
  "sport/tennis/player2",
  "sport/golf",
  "/finance",
  "finance",
  "$SYS/monitor/Clients",
  "$SYS",
];

Deno.test("RetainedStore set, get, has, delete and size", () => {
  const store = new RetainedStore<{ payload: string }>();
  const m1 = { payload: "one" };
  const m2 = { payload: "two" };
  assert.equal(store.size, 0);
  store.set("a/b", m1);
  assert.equal(store.get("a/b"), m1);
  assert.equal(store.has("a/b"), true);
  assert.equal(store.has("a"), false);
  store.set("a/b", m2);
  assert.equal(store.get("a/b"), m2);
  assert.equal(store.size, 1);
  assert.equal(store.delete("a"), false);
  assert.equal(store.delete("a/b"), true);
  assert.equal(store.delete("a/b"), false);
  assert.equal(store.get("a/b"), undefined);
  assert.equal(store.size, 0);
  assert.deepEqual(store.match("#"), []);
});

Deno.test("RetainedStore.set rejects invalid topic names with TypeError", () => {
  const store = new RetainedStore<string>();
  assert.throws(() => store.set("", "x"), {
    name: "TypeError",
    message: "Cannot retain message: topic name is empty",
  });
  assert.throws(() => store.set("a/+", "x"), TypeError);
  assert.throws(() => store.set("a/#", "x"), TypeError);
  assert.equal(store.size, 0);
});

Deno.test('RetainedStore.match with "sport/tennis/player1/#" returns the player and all below', () => {
  assert.deepEqual(matched(storeOf(TOPICS), "sport/tennis/player1/#"), [
    "sport/tennis/player1",
    "sport/tennis/player1/ranking",
    "sport/tennis/player1/score/wimbledon",
  ]);
});

Deno.test('RetainedStore.match with "sport/#" includes "sport" itself', () => {
  assert.deepEqual(
    matched(storeOf(TOPICS), "sport/#"),
    TOPICS.filter((t) => t.startsWith("sport")).sort(),
  );
});

Deno.test('RetainedStore.match with "+" levels', () => {
  const store = storeOf(TOPICS);
  assert.deepEqual(matched(store, "sport/tennis/+"), [
    "sport/tennis/player1",
    "sport/tennis/player2",
  ]);
  assert.deepEqual(matched(store, "sport/+"), ["sport/", "sport/golf", "sport/tennis"]);
  assert.deepEqual(matched(store, "+/+"), ["/finance", "sport/", "sport/golf", "sport/tennis"]);
  assert.deepEqual(matched(store, "/+"), ["/finance"]);
  assert.deepEqual(matched(store, "+"), ["finance", "sport"]);
  assert.deepEqual(matched(store, "+/tennis/#"), [
    "sport/tennis",
    "sport/tennis/player1",
    "sport/tennis/player1/ranking",
    "sport/tennis/player1/score/wimbledon",
    "sport/tennis/player2",
  ]);
});

Deno.test("RetainedStore.match with an exact filter returns at most one message", () => {
  const store = storeOf(TOPICS);
  assert.deepEqual(matched(store, "sport/golf"), ["sport/golf"]);
  assert.deepEqual(matched(store, "sport/cricket"), []);
  assert.deepEqual(matched(store, "/finance"), ["/finance"]);
});

Deno.test("RetainedStore.match does not match $ topics with # or + [MQTT-4.7.2-1]", () => {
  const store = storeOf(TOPICS);
  const all = matched(store, "#");
  assert.deepEqual(all, TOPICS.filter((t) => !t.startsWith("$")).sort());
  assert.ok(!matched(store, "+").includes("$SYS"));
  assert.deepEqual(matched(store, "+/monitor/Clients"), []);
  assert.deepEqual(matched(store, "$SYS/#"), ["$SYS", "$SYS/monitor/Clients"]);
  assert.deepEqual(matched(store, "$SYS/monitor/+"), ["$SYS/monitor/Clients"]);
});

Deno.test("RetainedStore.entries lists every topic and message", () => {
  const store = storeOf(["a", "a/b", "c"]);
  assert.deepEqual([...store.entries()], [["a", "msg:a"], ["a/b", "msg:a/b"], ["c", "msg:c"]]);
  store.delete("a");
  assert.deepEqual([...store.entries()], [["a/b", "msg:a/b"], ["c", "msg:c"]]);
  // "a" is now an inner node without a message: "a/#" still finds "a/b" but not "a".
  assert.deepEqual(matched(store, "a/#"), ["a/b"]);
  assert.deepEqual(matched(store, "a"), []);
});

Deno.test("RetainedStore.clear empties the store", () => {
  const store = storeOf(TOPICS);
  store.clear();
  assert.equal(store.size, 0);
  assert.deepEqual(store.match("#"), []);
  assert.equal(store.get("sport"), undefined);
});

Deno.test("RetainedStore handles topics of thousands of levels", () => {
  const store = new RetainedStore<number>();
  const deep = "/".repeat(16382);
  store.set(deep, 1);
  assert.deepEqual(store.match("#"), [1]);
  assert.deepEqual(store.match("+/".repeat(16382) + "+"), [1]);
  assert.equal(store.delete(deep), true);
  assert.deepEqual(store.match("#"), []);
});

Deno.test("RetainedStore refuses a topic over 16383 characters, holding no such key", () => {
  // V8 hashes longer strings by length alone: one Map bucket for all such topics of one length.
  const store = new RetainedStore<number>();
  assert.throws(() => store.set("a".repeat(16384), 1), TypeError);
  assert.throws(() => store.set("a/".repeat(8192), 1), TypeError);
  store.set("a".repeat(16383), 2);
  assert.deepEqual(store.match("#"), [2]);
});

Deno.test("RetainedStore.match agrees with matchTopic on random topics and filters", () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(arbitraryName, { maxLength: 30 }),
      fc.array(arbitraryFilter, { minLength: 1, maxLength: 10 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      (topics, filters, deletions) => {
        const store = storeOf(topics);
        const live = new Set(topics);
        for (const d of deletions) {
          if (topics.length === 0) break;
          const topic = topics[d % topics.length];
          assert.equal(store.delete(topic), live.delete(topic));
        }
        assert.equal(store.size, live.size);
        for (const filter of filters) {
          const expected = [...live].filter((t) => matchTopic(filter, t)).sort();
          assert.deepEqual(matched(store, filter), expected, filter);
        }
      },
    ),
    { numRuns: 1000 },
  );
});

Deno.test("RetainedStore.cursor taken a few nodes at a time finds what match finds", () => {
  const topics: string[] = [...TOPICS];
  for (let i = 0; i < 500; i++) {
    topics.push(`bulk/${i % 7}/${i}`, `deep/${"x/".repeat(i % 30)}${i}`);
  }
  const store = storeOf(topics);
  for (const filter of ["#", "+/+/+", "bulk/#", "deep/+/#", "sport/#", "$SYS/#", "+", "none/#"]) {
    const cursor = store.cursor(filter);
    const out: string[] = [];
    let calls = 0;
    while (cursor.next(5, out)) calls++;
    assert.deepEqual(out.sort(), store.match(filter).sort(), filter);
    if (filter === "#") assert.ok(calls > 100, `"#" took ${calls} steps of 5 nodes`);
  }
});

Deno.test("RetainedStore.cursor skips messages set or replaced after it began, and deleted ones", () => {
  const store = storeOf(["a/1", "a/2", "a/3"]);
  const cursor = store.cursor("a/#");
  store.set("a/1", "replaced");
  store.delete("a/2");
  store.set("a/4", "new");
  const out: string[] = [];
  while (cursor.next(1, out));
  assert.deepEqual(out, ["msg:a/3"]);
  assert.deepEqual(store.match("a/#").sort(), ["msg:a/3", "new", "replaced"]);
});

Deno.test("RetainedStore.nodeCount counts trie nodes and drops as deleted topics are pruned", () => {
  const store = storeOf(["a/b/c", "a/b/d", "x"]);
  assert.equal(store.nodeCount, 5); // a, b, c, d, x
  store.delete("a/b/c");
  assert.equal(store.nodeCount, 4);
  store.delete("a/b/d");
  assert.equal(store.nodeCount, 1);
  store.clear();
  assert.equal(store.nodeCount, 0);
});

Deno.test("RetainedStore.cursor finds nothing more once the store is cleared", () => {
  const store = storeOf(["a/1", "a/2", "a/3"]);
  const cursor = store.cursor("a/#");
  const out: string[] = [];
  cursor.next(2, out);
  store.clear();
  while (cursor.next(1, out));
  assert.deepEqual(out, []);
  store.set("a/1", "new");
  assert.deepEqual(store.match("a/#"), ["new"]);
});

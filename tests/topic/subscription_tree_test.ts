import assert from "node:assert/strict";
import type { Delivery } from "../../src/topic/delivery.ts";
import { SubscriptionTree } from "../../src/topic/subscription_tree.ts";

interface Session {
  id: string;
}

function session(id: string): Session {
  return { id };
}

/** Subscriber id -> QoS, for order-independent comparison of non-shared deliveries. */
function byId(deliveries: readonly Delivery<Session>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const d of deliveries) {
    assert.equal(out[d.subscriber.id], undefined, `two deliveries for ${d.subscriber.id}`);
    out[d.subscriber.id] = d.qos;
  }
  return out;
}

Deno.test("SubscriptionTree matches the spec §4.7 examples", () => {
  const tree = new SubscriptionTree<Session>();
  const filters = [
    "sport/tennis/player1/#",
    "sport/#",
    "sport/tennis/+",
    "sport/+",
    "+/+",
    "/+",
    "+",
    "#",
    "$SYS/#",
    "$SYS/monitor/+",
    "+/monitor/Clients",
  ];
  const sessions = new Map(filters.map((f) => [f, session(f)]));
  for (const [filter, s] of sessions) tree.subscribe(filter, s, { qos: 0 });
  const who = (topic: string) => tree.match(topic).map((d) => d.subscriber.id).sort();

  assert.deepEqual(who("sport/tennis/player1"), [
    "#",
    "sport/#",
    "sport/tennis/+",
    "sport/tennis/player1/#",
  ]);
  assert.deepEqual(who("sport/tennis/player1/score/wimbledon"), [
    "#",
    "sport/#",
    "sport/tennis/player1/#",
  ]);
  assert.deepEqual(who("sport"), ["#", "+", "sport/#"]);
  assert.deepEqual(who("sport/"), ["#", "+/+", "sport/#", "sport/+"]);
  assert.deepEqual(who("/finance"), ["#", "+/+", "/+"]);
  assert.deepEqual(who("$SYS/monitor/Clients"), ["$SYS/#", "$SYS/monitor/+"]);
});

Deno.test("SubscriptionTree does not match $SYS with # or + [MQTT-4.7.2-1]", () => {
  const tree = new SubscriptionTree<Session>();
  tree.subscribe("#", session("hash"), { qos: 0 });
  tree.subscribe("+/#", session("plus-hash"), { qos: 0 });
  tree.subscribe("+/broker/uptime", session("plus"), { qos: 0 });
  assert.deepEqual(tree.match("$SYS/broker/uptime"), []);
  assert.deepEqual(tree.match("$"), []);
  assert.equal(tree.match("a/broker/uptime").length, 3);
  // A "$" in a later level is an ordinary character.
  assert.equal(tree.match("a/$SYS").length, 2);
});

Deno.test("SubscriptionTree delivers one copy per subscriber at the maximum QoS [MQTT-3.3.5-1] (5.0 [MQTT-3.3.4-2])", () => {
  const tree = new SubscriptionTree<Session>();
  const a = session("a");
  const b = session("b");
  tree.subscribe("sport/#", a, { qos: 0 });
  tree.subscribe("sport/tennis/+", a, { qos: 2 });
  tree.subscribe("sport/tennis/player1", a, { qos: 1 });
  tree.subscribe("#", b, { qos: 1 });
  tree.subscribe("+/tennis/player1", b, { qos: 0 });
  assert.deepEqual(byId(tree.match("sport/tennis/player1")), { a: 2, b: 1 });
  assert.deepEqual(byId(tree.match("sport/golf")), { a: 0, b: 1 });
});

Deno.test("SubscriptionTree gathers every matching Subscription Identifier [MQTT-3.3.4-3]", () => {
  const tree = new SubscriptionTree<Session>();
  const a = session("a");
  tree.subscribe("sport/#", a, { qos: 0, identifier: 1 });
  tree.subscribe("sport/tennis/+", a, { qos: 1, identifier: 2 });
  tree.subscribe("sport/+/player1", a, { qos: 0 });
  tree.subscribe("+/tennis/player1", a, { qos: 0, identifier: 2 });
  const [delivery] = tree.match("sport/tennis/player1");
  assert.deepEqual([...delivery.identifiers].sort(), [1, 2]);
  assert.equal(delivery.subscriptions.length, 4);
  assert.deepEqual(tree.match("sport/golf")[0].identifiers, [1]);
});

Deno.test("SubscriptionTree takes Retain As Published from the maximum-QoS subscription", () => {
  const tree = new SubscriptionTree<Session>();
  const a = session("a");
  tree.subscribe("x/#", a, { qos: 0, retainAsPublished: true });
  tree.subscribe("x/+", a, { qos: 1, retainAsPublished: false });
  assert.equal(tree.match("x/y")[0].retainAsPublished, false);
  tree.subscribe("x/+", a, { qos: 0 });
  tree.subscribe("x/#", a, { qos: 2, retainAsPublished: true });
  assert.equal(tree.match("x/y")[0].retainAsPublished, true);
});

Deno.test("SubscriptionTree sets noLocal only when every matching subscription has it [MQTT-3.8.3-3]", () => {
  const tree = new SubscriptionTree<Session>();
  const a = session("a");
  tree.subscribe("x/#", a, { qos: 2, noLocal: true });
  assert.equal(tree.match("x/y")[0].noLocal, true);
  tree.subscribe("x/+", a, { qos: 0 });
  const [delivery] = tree.match("x/y");
  assert.equal(delivery.noLocal, false);
  assert.equal(delivery.qos, 2);
});

Deno.test("SubscriptionTree.subscribe replacement updates the options [MQTT-3.8.4-3]", () => {
  const tree = new SubscriptionTree<Session>();
  const a = session("a");
  assert.equal(tree.subscribe("sport/+", a, { qos: 0, identifier: 5 }), true);
  assert.equal(tree.match("sport/tennis")[0].qos, 0);
  assert.equal(tree.subscribe("sport/+", a, { qos: 2, retainHandling: 1 }), false);
  assert.equal(tree.size, 1);
  const [delivery] = tree.match("sport/tennis");
  assert.equal(delivery.qos, 2);
  assert.deepEqual(delivery.identifiers, []);
  assert.deepEqual(tree.subscriptionsOf(a), [["sport/+", { qos: 2, retainHandling: 1 }]]);
});

Deno.test("SubscriptionTree keeps one subscription per subscriber per exact filter", () => {
  const tree = new SubscriptionTree<Session>();
  const a = session("a");
  const b = session("b");
  assert.equal(tree.subscribe("t", a, { qos: 0 }), true);
  assert.equal(tree.subscribe("t", b, { qos: 1 }), true);
  assert.equal(tree.subscribe("t", a, { qos: 1 }), false);
  assert.equal(tree.size, 2);
  assert.deepEqual(byId(tree.match("t")), { a: 1, b: 1 });
});

Deno.test("SubscriptionTree copies options so later caller edits change nothing", () => {
  const tree = new SubscriptionTree<Session>();
  const options: { qos: 0 | 1 | 2 } = { qos: 1 };
  tree.subscribe("t", session("a"), options);
  options.qos = 2;
  assert.equal(tree.match("t")[0].qos, 1);
});

Deno.test("SubscriptionTree.subscribe rejects invalid filters with TypeError", () => {
  const tree = new SubscriptionTree<Session>();
  const a = session("a");
  assert.throws(() => tree.subscribe("", a, { qos: 0 }), {
    name: "TypeError",
    message: "Cannot subscribe: topic filter is empty",
  });
  assert.throws(() => tree.subscribe("a/#/b", a, { qos: 0 }), TypeError);
  assert.throws(() => tree.subscribe("a+", a, { qos: 0 }), TypeError);
  assert.throws(() => tree.subscribe("$share//a", a, { qos: 0 }), {
    name: "TypeError",
    message: "Cannot subscribe: shared subscription has an empty share name",
  });
  assert.equal(tree.size, 0);
  assert.equal(tree.nodeCount, 0);
});

Deno.test("SubscriptionTree.subscribe rejects out-of-range options with RangeError", () => {
  const tree = new SubscriptionTree<Session>();
  const a = session("a");
  assert.throws(() => tree.subscribe("t", a, { qos: 3 as 0 }), {
    name: "RangeError",
    message: "Cannot subscribe: QoS 3 is not 0, 1 or 2",
  });
  assert.throws(() => tree.subscribe("t", a, { qos: 0, retainHandling: 3 as 0 }), RangeError);
  assert.throws(() => tree.subscribe("t", a, { qos: 0, identifier: 0 }), RangeError);
  assert.throws(() => tree.subscribe("t", a, { qos: 0, identifier: 268_435_456 }), RangeError);
  assert.throws(() => tree.subscribe("t", a, { qos: 0, identifier: 1.5 }), RangeError);
  assert.equal(tree.subscribe("t", a, { qos: 0, identifier: 268_435_455 }), true);
  assert.equal(tree.size, 1);
});

Deno.test("SubscriptionTree.unsubscribe removes only that subscriber's exact filter", () => {
  const tree = new SubscriptionTree<Session>();
  const a = session("a");
  const b = session("b");
  tree.subscribe("sport/+", a, { qos: 1 });
  tree.subscribe("sport/#", a, { qos: 0 });
  tree.subscribe("sport/+", b, { qos: 0 });
  assert.equal(tree.unsubscribe("sport/tennis", a), false);
  assert.equal(tree.unsubscribe("sport/+", session("a")), false); // identity, not equality
  assert.equal(tree.unsubscribe("sport/+", a), true);
  assert.equal(tree.unsubscribe("sport/+", a), false);
  assert.equal(tree.size, 2);
  assert.deepEqual(byId(tree.match("sport/tennis")), { a: 0, b: 0 });
});

Deno.test("SubscriptionTree.unsubscribeAll removes every subscription of a subscriber", () => {
  const tree = new SubscriptionTree<Session>();
  const a = session("a");
  const b = session("b");
  tree.subscribe("x", a, { qos: 0 });
  tree.subscribe("x/#", a, { qos: 0 });
  tree.subscribe("$share/g/x", a, { qos: 0 });
  tree.subscribe("x", b, { qos: 0 });
  assert.equal(tree.unsubscribeAll(a), 3);
  assert.equal(tree.unsubscribeAll(a), 0);
  assert.equal(tree.size, 1);
  assert.deepEqual(tree.subscriptionsOf(a), []);
  assert.deepEqual(byId(tree.match("x")), { b: 0 });
});

Deno.test("SubscriptionTree.subscriptionsOf and entries list the subscriptions", () => {
  const tree = new SubscriptionTree<Session>();
  const a = session("a");
  const b = session("b");
  tree.subscribe("x/+", a, { qos: 1, noLocal: true });
  tree.subscribe("$share/g/y", a, { qos: 2, identifier: 9 });
  tree.subscribe("#", b, { qos: 0 });
  assert.deepEqual(tree.subscriptionsOf(a), [
    ["x/+", { qos: 1, noLocal: true }],
    ["$share/g/y", { qos: 2, identifier: 9 }],
  ]);
  assert.deepEqual(tree.subscriptionsOf(session("a")), []);
  assert.deepEqual([...tree.entries()], [
    { filter: "x/+", subscriber: a, options: { qos: 1, noLocal: true } },
    { filter: "$share/g/y", subscriber: a, options: { qos: 2, identifier: 9 } },
    { filter: "#", subscriber: b, options: { qos: 0 } },
  ]);
  assert.equal(tree.size, 3);
});

Deno.test("SubscriptionTree prunes empty nodes on unsubscribe", () => {
  const tree = new SubscriptionTree<Session>();
  const a = session("a");
  const b = session("b");
  tree.subscribe("a/b/c", a, { qos: 0 });
  assert.equal(tree.nodeCount, 3);
  tree.subscribe("a/b", b, { qos: 0 });
  tree.subscribe("a/+/#", b, { qos: 0 });
  tree.subscribe("$share/g/a/b/c/d", b, { qos: 0 });
  assert.equal(tree.nodeCount, 6); // a, a/b, a/b/c, a/+, a/+/#, a/b/c/d
  assert.equal(tree.unsubscribe("$share/g/a/b/c/d", b), true);
  assert.equal(tree.nodeCount, 5);
  assert.equal(tree.unsubscribe("a/b/c", a), true);
  assert.equal(tree.nodeCount, 4); // a/b stays: b subscribes to it
  assert.equal(tree.unsubscribeAll(b), 2);
  assert.equal(tree.nodeCount, 0);
  assert.equal(tree.size, 0);
  assert.deepEqual([...tree.entries()], []);
  assert.deepEqual(tree.match("a/b"), []);
});

Deno.test("SubscriptionTree returns to zero nodes after many subscribers come and go", () => {
  const tree = new SubscriptionTree<Session>();
  const sessions = Array.from({ length: 200 }, (_, i) => session(`s${i}`));
  for (const [i, s] of sessions.entries()) {
    tree.subscribe(`devices/${i % 17}/+/temp`, s, { qos: 1 });
    tree.subscribe(`devices/${i}/#`, s, { qos: 0 });
    tree.subscribe(`$share/g${i % 3}/jobs/${i % 5}`, s, { qos: 1 });
  }
  assert.equal(tree.size, 600);
  tree.match("devices/3/x/temp");
  for (const s of sessions) tree.unsubscribeAll(s);
  assert.equal(tree.size, 0);
  assert.equal(tree.nodeCount, 0);
  assert.equal(tree.cacheSize, 0);
});

Deno.test("SubscriptionTree returns the same array from a warm cache (no allocation)", () => {
  const tree = new SubscriptionTree<Session>();
  tree.subscribe("a/+", session("a"), { qos: 1 });
  const first = tree.match("a/b");
  assert.equal(tree.cacheSize, 1);
  assert.equal(tree.match("a/b"), first);
  const none = tree.match("c");
  assert.equal(tree.match("c"), none);
  assert.equal(none.length, 0);
});

Deno.test("SubscriptionTree cache is invalidated by subscribe", () => {
  const tree = new SubscriptionTree<Session>();
  const a = session("a");
  const b = session("b");
  assert.deepEqual(tree.match("a/b"), []);
  tree.subscribe("a/+", a, { qos: 0 });
  assert.deepEqual(byId(tree.match("a/b")), { a: 0 });
  tree.subscribe("#", b, { qos: 1 });
  assert.deepEqual(byId(tree.match("a/b")), { a: 0, b: 1 });
  tree.subscribe("a/b", a, { qos: 2 });
  assert.deepEqual(byId(tree.match("a/b")), { a: 2, b: 1 });
});

Deno.test("SubscriptionTree cache is invalidated by option replacement [MQTT-3.8.4-3]", () => {
  const tree = new SubscriptionTree<Session>();
  const a = session("a");
  tree.subscribe("a/+", a, { qos: 0 });
  assert.equal(tree.match("a/b")[0].qos, 0);
  tree.subscribe("a/+", a, { qos: 2 });
  assert.equal(tree.match("a/b")[0].qos, 2);
});

Deno.test("SubscriptionTree cache is invalidated by unsubscribe and unsubscribeAll", () => {
  const tree = new SubscriptionTree<Session>();
  const a = session("a");
  const b = session("b");
  tree.subscribe("a/+", a, { qos: 0 });
  tree.subscribe("a/#", b, { qos: 0 });
  assert.deepEqual(byId(tree.match("a/b")), { a: 0, b: 0 });
  tree.unsubscribe("a/+", a);
  assert.deepEqual(byId(tree.match("a/b")), { b: 0 });
  tree.unsubscribeAll(b);
  assert.deepEqual(tree.match("a/b"), []);
});

Deno.test("SubscriptionTree cache keeps at most cacheEntries topics, evicting the oldest", () => {
  const tree = new SubscriptionTree<Session>({ cacheEntries: 3 });
  tree.subscribe("t/+", session("a"), { qos: 1 });
  const first = tree.match("t/0");
  for (let i = 0; i < 100; i++) {
    assert.equal(tree.match(`t/${i}`).length, 1);
    assert.ok(tree.cacheSize <= 3);
  }
  assert.equal(tree.cacheSize, 3);
  // "t/0" was evicted long ago: a new array, still correct.
  const again = tree.match("t/0");
  assert.notEqual(again, first);
  assert.equal(again[0].qos, 1);
  // "t/99" is still cached.
  assert.equal(tree.match("t/99"), tree.match("t/99"));
});

Deno.test("SubscriptionTree cache weight bounds long topics and wide fan-out", () => {
  const tree = new SubscriptionTree<Session>({ cacheWeight: 200 });
  for (let i = 0; i < 50; i++) tree.subscribe("#", session(`s${i}`), { qos: 0 });
  // 300 characters alone weigh more than the whole budget: not cached.
  assert.equal(tree.match("x".repeat(300)).length, 50);
  assert.equal(tree.cacheSize, 0);
  // Each entry weighs 1 + 50 + 16 = 67: two fit in 200, a third evicts the first.
  tree.match("a");
  tree.match("b");
  assert.equal(tree.cacheSize, 2);
  tree.match("c");
  assert.equal(tree.cacheSize, 2);
});

Deno.test("SubscriptionTree with cacheEntries 0 caches nothing and still matches", () => {
  const tree = new SubscriptionTree<Session>({ cacheEntries: 0 });
  tree.subscribe("t", session("a"), { qos: 1 });
  assert.equal(tree.match("t").length, 1);
  assert.equal(tree.match("t").length, 1);
  assert.equal(tree.cacheSize, 0);
});

Deno.test("SubscriptionTree rejects invalid cache bounds", () => {
  assert.throws(() => new SubscriptionTree({ cacheEntries: -1 }), RangeError);
  assert.throws(() => new SubscriptionTree({ cacheWeight: 1.5 }), RangeError);
});

for (const cacheEntries of [10_000, 0]) {
  Deno.test(`SubscriptionTree shares a $share group round-robin (cacheEntries ${cacheEntries}) [MQTT-4.8.2-1]`, () => {
    const tree = new SubscriptionTree<Session>({ cacheEntries });
    const members = [session("m0"), session("m1"), session("m2")];
    for (const m of members) tree.subscribe("$share/workers/jobs/+", m, { qos: 1 });
    const got: string[] = [];
    for (let i = 0; i < 9; i++) {
      const deliveries = tree.match("jobs/build");
      assert.equal(deliveries.length, 1);
      assert.equal(deliveries[0].group, "workers");
      got.push(deliveries[0].subscriber.id);
    }
    assert.deepEqual(got, ["m0", "m1", "m2", "m0", "m1", "m2", "m0", "m1", "m2"]);
  });
}

Deno.test("SubscriptionTree rotates one group across all the topics it matches", () => {
  const tree = new SubscriptionTree<Session>();
  tree.subscribe("$share/g/jobs/#", session("m0"), { qos: 0 });
  tree.subscribe("$share/g/jobs/#", session("m1"), { qos: 0 });
  const got = ["jobs/a", "jobs/b", "jobs/a", "jobs/a"].map((t) => tree.match(t)[0].subscriber.id);
  assert.deepEqual(got, ["m0", "m1", "m0", "m1"]);
});

Deno.test("SubscriptionTree delivers once per matching share group [MQTT-4.8.2-2]", () => {
  const tree = new SubscriptionTree<Session>();
  const a = session("a");
  const b = session("b");
  tree.subscribe("$share/consumer1/sport/tennis/+", a, { qos: 1 });
  tree.subscribe("$share/consumer2/sport/tennis/+", b, { qos: 2 });
  // Same ShareName, another filter: another group.
  tree.subscribe("$share/consumer1/sport/#", b, { qos: 0 });
  const deliveries = tree.match("sport/tennis/player1");
  assert.deepEqual(
    deliveries.map((d) => `${d.group}:${d.subscriber.id}:${d.qos}`).sort(),
    ["consumer1:a:1", "consumer1:b:0", "consumer2:b:2"],
  );
  assert.deepEqual(tree.match("sport/golf").map((d) => d.subscriber.id), ["b"]);
});

Deno.test("SubscriptionTree delivers a shared and a non-shared copy to the same subscriber", () => {
  const tree = new SubscriptionTree<Session>();
  const a = session("a");
  tree.subscribe("sport/+", a, { qos: 0 });
  tree.subscribe("$share/g/sport/+", a, { qos: 2, identifier: 3 });
  const deliveries = tree.match("sport/tennis");
  assert.equal(deliveries.length, 2);
  const shared = deliveries.find((d) => d.group !== undefined);
  const plain = deliveries.find((d) => d.group === undefined);
  assert.equal(shared?.qos, 2);
  assert.deepEqual(shared?.identifiers, [3]);
  assert.equal(plain?.qos, 0);
  assert.deepEqual(plain?.identifiers, []);
});

Deno.test("SubscriptionTree shared groups do not match $ topics with a leading wildcard [MQTT-4.7.2-1]", () => {
  const tree = new SubscriptionTree<Session>();
  tree.subscribe("$share/g/#", session("a"), { qos: 0 });
  tree.subscribe("$share/g/$SYS/#", session("b"), { qos: 0 });
  assert.deepEqual(tree.match("$SYS/x").map((d) => d.subscriber.id), ["b"]);
});

Deno.test("SubscriptionTree keeps the rotation going when members leave and join", () => {
  const tree = new SubscriptionTree<Session>();
  const [m0, m1, m2, m3] = ["m0", "m1", "m2", "m3"].map(session);
  for (const m of [m0, m1, m2]) tree.subscribe("$share/g/t", m, { qos: 0 });
  const next = () => tree.match("t")[0].subscriber.id;
  assert.equal(next(), "m0");
  assert.equal(next(), "m1");
  tree.unsubscribe("$share/g/t", m0);
  assert.equal(next(), "m2");
  assert.equal(next(), "m1");
  tree.subscribe("$share/g/t", m3, { qos: 0 });
  assert.deepEqual([next(), next(), next()], ["m2", "m3", "m1"]);
  tree.unsubscribeAll(m1);
  tree.unsubscribeAll(m2);
  tree.unsubscribeAll(m3);
  assert.deepEqual(tree.match("t"), []);
  assert.equal(tree.nodeCount, 0);
});

Deno.test("SubscriptionTree replacing a shared subscription updates its options", () => {
  const tree = new SubscriptionTree<Session>();
  const a = session("a");
  assert.equal(tree.subscribe("$share/g/t", a, { qos: 0 }), true);
  assert.equal(tree.match("t")[0].qos, 0);
  assert.equal(tree.subscribe("$share/g/t", a, { qos: 2 }), false);
  const deliveries = tree.match("t");
  assert.equal(deliveries.length, 1);
  assert.equal(deliveries[0].qos, 2);
  assert.equal(deliveries[0].group, "g");
});

Deno.test("SubscriptionTree handles filters and topics of thousands of levels", () => {
  const tree = new SubscriptionTree<Session>();
  const deep = "+/".repeat(8191) + "#";
  tree.subscribe(deep, session("deep"), { qos: 0 });
  assert.equal(tree.nodeCount, 8192);
  assert.deepEqual(tree.match("/".repeat(8191)).map((d) => d.subscriber.id), ["deep"]);
  assert.deepEqual(tree.match("/".repeat(100)), []);
  tree.unsubscribe(deep, tree.entries().next().value!.subscriber);
  assert.equal(tree.nodeCount, 0);
});

Deno.test("SubscriptionTree refuses a filter over 16383 characters, holding no such key", () => {
  // V8 hashes longer strings by length alone: one Map bucket for all such levels of one length.
  const tree = new SubscriptionTree<Session>();
  assert.throws(() => tree.subscribe("a".repeat(16384), session("long"), { qos: 0 }), TypeError);
  assert.throws(() => tree.subscribe("$share/g/" + "a".repeat(16375), session("s"), { qos: 0 }));
  assert.equal(tree.nodeCount, 0);
});

Deno.test("SubscriptionTree works with primitive subscriber keys", () => {
  const tree = new SubscriptionTree<string>();
  tree.subscribe("a", "client-1", { qos: 0 });
  tree.subscribe("+", "client-1", { qos: 1 });
  assert.deepEqual(tree.match("a").map((d) => [d.subscriber, d.qos]), [["client-1", 1]]);
});

Deno.test("SubscriptionTree random strategy draws one member per message from the random source", () => {
  const draws = [0.9, 0.1, 0.5, 0.99];
  const tree = new SubscriptionTree<Session>({
    shareStrategy: "random",
    random: () => draws.shift()!,
  });
  for (const id of ["m0", "m1", "m2"]) tree.subscribe("$share/g/t", session(id), { qos: 1 });
  const got = [0, 1, 2, 3].map(() => {
    const deliveries = tree.match("t");
    assert.equal(deliveries.length, 1);
    return deliveries[0].subscriber.id;
  });
  assert.deepEqual(got, ["m2", "m0", "m1", "m2"]);
});

for (const shareStrategy of ["round_robin", "random"] as const) {
  Deno.test(`SubscriptionTree ${shareStrategy} passes over members that are not available`, () => {
    const online = new Set(["m1", "m3"]);
    let r = 0;
    const tree = new SubscriptionTree<Session>({
      shareStrategy,
      shareAvailable: (s) => online.has(s.id),
      random: () => (r++ % 4) / 4,
    });
    for (const id of ["m0", "m1", "m2", "m3"]) {
      tree.subscribe("$share/g/t", session(id), { qos: 1 });
    }
    const got = new Set<string>();
    for (let i = 0; i < 8; i++) got.add(tree.match("t")[0].subscriber.id);
    assert.deepEqual([...got].sort(), ["m1", "m3"]);
    // None available: a member still gets it (its session keeps QoS 1/2 for later).
    online.clear();
    assert.equal(tree.match("t").length, 1);
  });
}

Deno.test("SubscriptionTree rejects an unknown share strategy", () => {
  assert.throws(
    () => new SubscriptionTree({ shareStrategy: "sticky" as "random" }),
    RangeError,
  );
});

Deno.test("SubscriptionTree deliveries name their shared group's whole filter", () => {
  const tree = new SubscriptionTree<Session>();
  tree.subscribe("$share/g/a/+", session("m"), { qos: 1 });
  tree.subscribe("a/#", session("p"), { qos: 1 });
  const shares = tree.match("a/b").map((d) => [d.subscriber.id, d.share]).sort();
  assert.deepEqual(shares, [["m", "$share/g/a/+"], ["p", undefined]]);
  // Replacing the subscription keeps it.
  tree.subscribe("$share/g/a/+", session("m2"), { qos: 0 });
  assert.ok(tree.match("a/b").every((d) => d.subscriber.id === "p" || d.share === "$share/g/a/+"));
});

Deno.test("SubscriptionTree.shareMember picks a member of the named group as match would", () => {
  const tree = new SubscriptionTree<Session>();
  for (const id of ["m0", "m1"]) tree.subscribe("$share/g/jobs/#", session(id), { qos: 1 });
  tree.subscribe("$share/other/jobs/#", session("x"), { qos: 2 });
  assert.deepEqual(
    [0, 1, 2].map(() => tree.shareMember("$share/g/jobs/#")?.subscriber.id),
    ["m0", "m1", "m0"],
  );
  assert.equal(tree.shareMember("$share/other/jobs/#")?.qos, 2);
  assert.equal(tree.shareMember("$share/none/jobs/#"), undefined);
  assert.equal(tree.shareMember("$share/g/jobs/+"), undefined);
  assert.equal(tree.shareMember("jobs/#"), undefined);
});

Deno.test("SubscriptionTree.shareMemberAmong picks the group's first member among the given subscribers, without moving the turn", () => {
  const tree = new SubscriptionTree<Session>();
  const members = ["m0", "m1", "m2"].map((id) => session(id));
  for (const m of members) tree.subscribe("$share/g/jobs/#", m, { qos: 1 });
  const among = new Set<unknown>([members[2], members[1]]);
  assert.equal(tree.shareMemberAmong("$share/g/jobs/#", among)?.subscriber.id, "m1");
  assert.equal(tree.shareMemberAmong("$share/g/jobs/#", new Set([session("x")])), undefined);
  assert.equal(tree.shareMemberAmong("$share/none/jobs/#", among), undefined);
  // The turn of `match` is where it was.
  assert.equal(tree.shareMember("$share/g/jobs/#")?.subscriber.id, "m0");
});

/**
 * Topic matching benchmarks: SubscriptionTree.match on 10,000 subscriptions with a warm and a
 * cold cache, plus matchTopic, validateTopicName and RetainedStore.match.
 *
 * Run: deno bench -A bench/topic_bench.ts
 *
 * @module
 */

import { matchTopic } from "../src/topic/match_topic.ts";
import { RetainedStore } from "../src/topic/retained_store.ts";
import { SubscriptionTree } from "../src/topic/subscription_tree.ts";
import { validateTopicName } from "../src/topic/validate_topic_name.ts";

const SUBSCRIPTIONS = 10_000;
const ROOMS = 500;
const DEVICES = 20;

interface Session {
  id: number;
}

/**
 * 10,000 subscriptions from 10,000 sessions, shaped like a home-automation deployment: mostly
 * exact filters, some single-level wildcards, a few multi-level ones and a shared group. Each of
 * the benchmark topics matches about 52 subscriptions (the `home/+/deviceN/state` filters are
 * shared by about 50 sessions each).
 */
function buildTree(cacheEntries: number): SubscriptionTree<Session> {
  const tree = new SubscriptionTree<Session>({ cacheEntries });
  for (let i = 0; i < SUBSCRIPTIONS; i++) {
    const session = { id: i };
    const room = i % ROOMS;
    const device = Math.floor(i / ROOMS) % DEVICES;
    const kind = i % 100;
    let filter: string;
    if (kind < 85) filter = `home/room${room}/device${device}/state`;
    else if (kind < 95) filter = `home/+/device${device}/state`;
    else if (kind < 99) filter = `home/room${room}/#`;
    else filter = `$share/workers/home/room${room}/+/command`;
    tree.subscribe(filter, session, { qos: (i % 3) as 0 | 1 | 2 });
  }
  return tree;
}

const topics = Array.from(
  { length: 1000 },
  (_, i) => `home/room${(i * 7) % ROOMS}/device${i % DEVICES}/state`,
);
// Fresh string objects, as a decoder produces for every PUBLISH.
const freshTopics = () => topics.map((t) => (" " + t).slice(1));

const warm = buildTree(10_000);
for (const topic of topics) warm.match(topic);
const cold = buildTree(0);

let sink = 0;
let k = 0;

Deno.bench("SubscriptionTree.match, 10k subscriptions, warm cache", { group: "match" }, () => {
  sink += warm.match(topics[k++ % topics.length]).length;
});

const fresh = freshTopics();
Deno.bench(
  "SubscriptionTree.match, 10k subscriptions, warm cache, fresh topic strings",
  { group: "match" },
  () => {
    sink += warm.match(fresh[k++ % fresh.length]).length;
  },
);

Deno.bench(
  "SubscriptionTree.match, 10k subscriptions, cold (cache off)",
  { group: "match", baseline: true },
  () => {
    sink += cold.match(topics[k++ % topics.length]).length;
  },
);

// Low fan-out: 10,000 sessions, each with one exact filter of its own; a topic matches one.
const narrow = new SubscriptionTree<Session>();
const narrowCold = new SubscriptionTree<Session>({ cacheEntries: 0 });
for (let i = 0; i < SUBSCRIPTIONS; i++) {
  narrow.subscribe(`clients/${i}/inbox`, { id: i }, { qos: 1 });
  narrowCold.subscribe(`clients/${i}/inbox`, { id: i }, { qos: 1 });
}
const inboxes = Array.from({ length: 1000 }, (_, i) => `clients/${i * 10}/inbox`);
for (const topic of inboxes) narrow.match(topic);
Deno.bench(
  "SubscriptionTree.match, 10k exact filters, 1 delivery, warm",
  { group: "narrow" },
  () => {
    sink += narrow.match(inboxes[k++ % inboxes.length]).length;
  },
);
Deno.bench(
  "SubscriptionTree.match, 10k exact filters, 1 delivery, cold",
  { group: "narrow", baseline: true },
  () => {
    sink += narrowCold.match(inboxes[k++ % inboxes.length]).length;
  },
);

const sharedTopic = "home/room1/light/command";
warm.match(sharedTopic);
Deno.bench(
  "SubscriptionTree.match, shared group round-robin, warm cache",
  { group: "match" },
  () => {
    sink += warm.match(sharedTopic).length;
  },
);

// Wide fan-out: every one of 10,000 sessions subscribes to "broadcast/#".
const wide = new SubscriptionTree<Session>();
const wideCold = new SubscriptionTree<Session>({ cacheEntries: 0 });
for (let i = 0; i < SUBSCRIPTIONS; i++) {
  wide.subscribe("broadcast/#", { id: i }, { qos: 1 });
  wideCold.subscribe("broadcast/#", { id: i }, { qos: 1 });
}
wide.match("broadcast/all");
Deno.bench("SubscriptionTree.match, fan-out 10k, warm cache", { group: "fan-out" }, () => {
  sink += wide.match("broadcast/all").length;
});
Deno.bench(
  "SubscriptionTree.match, fan-out 10k, cold",
  { group: "fan-out", baseline: true },
  () => {
    sink += wideCold.match("broadcast/all").length;
  },
);

// Its own tree: subscribing drops the match cache, which would turn the warm cases cold.
const churn = buildTree(10_000);
const churner = { id: -1 };
Deno.bench("SubscriptionTree subscribe + unsubscribe, 10k subscriptions", () => {
  churn.subscribe("home/room3/+/state", churner, { qos: 1 });
  churn.unsubscribe("home/room3/+/state", churner);
});

Deno.bench("matchTopic, 5-level filter with + and #", { group: "single" }, () => {
  if (matchTopic("home/+/device7/#", topics[k++ % topics.length])) sink++;
});

Deno.bench("validateTopicName, 30-character name", { group: "single" }, () => {
  if (validateTopicName(topics[k++ % topics.length]) === undefined) sink++;
});

const retained = new RetainedStore<number>();
for (let room = 0; room < ROOMS; room++) {
  for (let device = 0; device < DEVICES; device++) {
    retained.set(`home/room${room}/device${device}/state`, room * DEVICES + device);
  }
}
Deno.bench("RetainedStore.match, 10k retained, home/room42/#", { group: "retained" }, () => {
  sink += retained.match("home/room42/#").length;
});
Deno.bench("RetainedStore.match, 10k retained, home/+/device3/state", { group: "retained" }, () => {
  sink += retained.match("home/+/device3/state").length;
});

Deno.bench("RetainedStore set + delete of one topic, 10k retained", { group: "retained" }, () => {
  retained.set("home/room7/device99/state", 1);
  retained.delete("home/room7/device99/state");
});

globalThis.addEventListener("unload", () => {
  if (sink === -1) console.log(sink);
});

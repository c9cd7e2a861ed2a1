import assert from "node:assert/strict";
import fc from "fast-check";
import type { QoS } from "../../src/packet/constants.ts";
import { matchTopic } from "../../src/topic/match_topic.ts";
import { parseSharedFilter } from "../../src/topic/shared_filter.ts";
import { SubscriptionTree } from "../../src/topic/subscription_tree.ts";
import { arbitraryFilter, arbitraryName } from "./_arbitraries.ts";

interface Op {
  kind: "subscribe" | "unsubscribe" | "unsubscribeAll" | "match";
  filter: string;
  subscriber: number;
  qos: QoS;
  topic: string;
}

const SUBSCRIBERS = 5;

const arbitraryOp: fc.Arbitrary<Op> = fc.record({
  kind: fc.constantFrom<Op["kind"]>(
    "subscribe",
    "subscribe",
    "subscribe",
    "unsubscribe",
    "unsubscribeAll",
    "match",
  ),
  filter: fc.oneof(
    { weight: 4, arbitrary: arbitraryFilter },
    {
      weight: 1,
      arbitrary: fc.tuple(fc.constantFrom("g", "h"), arbitraryFilter).map(([g, f]) =>
        `$share/${g}/${f}`
      ),
    },
  ),
  subscriber: fc.nat(SUBSCRIBERS - 1),
  qos: fc.constantFrom<QoS>(0, 1, 2),
  topic: arbitraryName,
});

/**
 * Runs random operations on a tree and on a plain model (a list of subscriptions), then checks
 * that match agrees with matchTopic applied to every subscription. The cache stays on throughout,
 * so a stale cache entry after a change would be caught.
 */
Deno.test("SubscriptionTree.match agrees with matchTopic applied to every subscription, and subscriptionsOf with each subscriber's filters", () => {
  fc.assert(
    fc.property(
      fc.array(arbitraryOp, { minLength: 1, maxLength: 60 }),
      fc.array(arbitraryName, { minLength: 1, maxLength: 8 }),
      fc.constantFrom(10_000, 3),
      (ops, topics, cacheEntries) => {
        const subscribers = Array.from({ length: SUBSCRIBERS }, (_, i) => ({ id: i }));
        const tree = new SubscriptionTree<{ id: number }>({ cacheEntries });
        // Model: subscriber -> filter -> QoS.
        const model = subscribers.map(() => new Map<string, QoS>());

        const check = (topic: string) => {
          const deliveries = tree.match(topic);
          const plain = new Map<number, QoS>();
          const shared: string[] = [];
          for (const d of deliveries) {
            if (d.group === undefined) {
              assert.equal(plain.has(d.subscriber.id), false, "one copy per subscriber");
              plain.set(d.subscriber.id, d.qos);
            } else {
              shared.push(d.group);
            }
          }
          const expectedPlain = new Map<number, QoS>();
          const groups = new Map<string, number>(); // "$share/g/filter" groups -> member count
          model.forEach((filters, id) => {
            for (const [filter, qos] of filters) {
              const sharedFilter = parseSharedFilter(filter);
              if (sharedFilter !== undefined) {
                if (matchTopic(sharedFilter.filter, topic)) {
                  groups.set(filter, (groups.get(filter) ?? 0) + 1);
                }
              } else if (matchTopic(filter, topic)) {
                expectedPlain.set(id, Math.max(expectedPlain.get(id) ?? 0, qos) as QoS);
              }
            }
          });
          assert.deepEqual(
            [...plain].sort(([a], [b]) => a - b),
            [...expectedPlain].sort(([a], [b]) => a - b),
            `plain deliveries for ${topic}`,
          );
          assert.deepEqual(
            shared.sort(),
            [...groups.keys()].map((f) => parseSharedFilter(f)!.group).sort(),
            `shared deliveries for ${topic}`,
          );
        };

        for (const op of ops) {
          const subscriber = subscribers[op.subscriber];
          const filters = model[op.subscriber];
          switch (op.kind) {
            case "subscribe":
              assert.equal(
                tree.subscribe(op.filter, subscriber, { qos: op.qos }),
                !filters.has(op.filter),
              );
              filters.set(op.filter, op.qos);
              break;
            case "unsubscribe": {
              // Unsubscribe from one of the subscriber's filters when it has any.
              const own = [...filters.keys()];
              const filter = own.length > 0 ? own[op.qos % own.length] : op.filter;
              assert.equal(tree.unsubscribe(filter, subscriber), filters.delete(filter));
              break;
            }
            case "unsubscribeAll":
              assert.equal(tree.unsubscribeAll(subscriber), filters.size);
              filters.clear();
              break;
            case "match":
              check(op.topic);
              break;
          }
          assert.equal(tree.size, model.reduce((n, m) => n + m.size, 0));
          // Its filters and their options, in subscription order, whether the subscriber has one
          // (kept without a map) or several, a replaced one in its place.
          assert.deepEqual(
            tree.subscriptionsOf(subscriber).map(([filter, options]) => [filter, options.qos]),
            [...filters],
          );
        }
        for (const topic of topics) {
          check(topic);
          check(topic); // again, from the cache
        }
        for (const subscriber of subscribers) tree.unsubscribeAll(subscriber);
        assert.equal(tree.nodeCount, 0);
      },
    ),
    { numRuns: 1000 },
  );
});

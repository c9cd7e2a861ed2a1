import assert from "node:assert/strict";
import { dropNoLocal } from "../../src/topic/delivery.ts";
import { SubscriptionTree } from "../../src/topic/subscription_tree.ts";

Deno.test("dropNoLocal returns the delivery unchanged when no subscription has No Local", () => {
  const tree = new SubscriptionTree<string>();
  tree.subscribe("a/#", "c", { qos: 1 });
  const [delivery] = tree.match("a/b");
  assert.equal(dropNoLocal(delivery), delivery);
});

Deno.test("dropNoLocal drops a delivery whose subscriptions all have No Local [MQTT-3.8.3-3]", () => {
  const tree = new SubscriptionTree<string>();
  tree.subscribe("a/#", "c", { qos: 1, noLocal: true });
  tree.subscribe("a/+", "c", { qos: 2, noLocal: true });
  const [delivery] = tree.match("a/b");
  assert.equal(dropNoLocal(delivery), undefined);
});

Deno.test("dropNoLocal recomputes QoS and identifiers without No Local subscriptions [MQTT-3.8.3-3]", () => {
  const tree = new SubscriptionTree<string>();
  tree.subscribe("a/#", "c", { qos: 2, noLocal: true, identifier: 1 });
  tree.subscribe("a/+", "c", { qos: 0, identifier: 2 });
  tree.subscribe("+/b", "c", { qos: 1, identifier: 3, retainAsPublished: true });
  const [delivery] = tree.match("a/b");
  assert.equal(delivery.qos, 2);
  const own = dropNoLocal(delivery);
  assert.equal(own?.qos, 1);
  assert.equal(own?.noLocal, false);
  assert.equal(own?.retainAsPublished, true);
  assert.deepEqual([...own!.identifiers].sort(), [2, 3]);
  assert.equal(own?.subscriptions.length, 2);
});

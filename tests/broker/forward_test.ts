// forwardOf, retainedForward, sendsRetained: what one delivery carries under the 5.0
// subscription options, from the subscription tree's real deliveries.

import assert from "node:assert/strict";
import { forwardOf, retainedForward, sendsRetained } from "../../src/broker/forward.ts";
import { SubscriptionTree } from "../../src/topic/mod.ts";

function tree() {
  return new SubscriptionTree<string>();
}

Deno.test("forwardOf (MQTT 5) delivers at the lower of published and granted QoS [MQTT-3.8.4-8]", () => {
  const t = tree();
  t.subscribe("t", "s", { qos: 1 });
  const [d] = t.match("t");
  assert.equal(forwardOf(d, { qos: 2, retain: false }, false)?.qos, 1);
  assert.equal(forwardOf(d, { qos: 0, retain: false }, false)?.qos, 0);
});

Deno.test("forwardOf (MQTT 5) drops a session's own message on a No Local subscription [MQTT-3.8.3-3]", () => {
  const t = tree();
  t.subscribe("chat/#", "alice", { qos: 1, noLocal: true });
  const [d] = t.match("chat/room");
  assert.equal(forwardOf(d, { qos: 1, retain: false }, true), undefined);
  // Someone else's message still arrives.
  assert.equal(forwardOf(d, { qos: 1, retain: false }, false)?.qos, 1);
});

Deno.test("forwardOf (MQTT 5) keeps the overlapping subscriptions without No Local for the publisher [MQTT-3.8.3-3]", () => {
  const t = tree();
  t.subscribe("chat/#", "alice", { qos: 2, noLocal: true, identifier: 1 });
  t.subscribe("chat/+", "alice", { qos: 0, identifier: 2 });
  const [d] = t.match("chat/room");
  assert.deepEqual(forwardOf(d, { qos: 2, retain: false }, true), {
    qos: 0,
    retain: false,
    subscriptionIdentifiers: [2],
  });
  assert.deepEqual(forwardOf(d, { qos: 2, retain: false }, false)?.subscriptionIdentifiers, [1, 2]);
});

Deno.test("forwardOf (MQTT 5) clears RETAIN unless Retain As Published [MQTT-3.3.1-12] [MQTT-3.3.1-13]", () => {
  const t = tree();
  t.subscribe("t", "plain", { qos: 1 });
  t.subscribe("t", "rap", { qos: 1, retainAsPublished: true });
  const byId = new Map(t.match("t").map((d) => [d.subscriber, d]));
  assert.equal(forwardOf(byId.get("plain")!, { qos: 1, retain: true }, false)?.retain, false);
  assert.equal(forwardOf(byId.get("rap")!, { qos: 1, retain: true }, false)?.retain, true);
  assert.equal(forwardOf(byId.get("rap")!, { qos: 1, retain: false }, false)?.retain, false);
});

Deno.test("forwardOf (MQTT 5) carries every matching Subscription Identifier on the one copy [MQTT-3.3.4-3] [MQTT-3.3.4-4]", () => {
  const t = tree();
  t.subscribe("a/+", "s", { qos: 0, identifier: 5 });
  t.subscribe("a/#", "s", { qos: 1, identifier: 6 });
  t.subscribe("#", "s", { qos: 0 });
  const deliveries = t.match("a/b");
  assert.equal(deliveries.length, 1);
  const f = forwardOf(deliveries[0], { qos: 1, retain: false }, false)!;
  assert.deepEqual([...f.subscriptionIdentifiers].sort(), [5, 6]);
  assert.equal(f.qos, 1);
});

Deno.test("forwardOf (MQTT 5) gives a shared group's copy its own subscription's identifier [MQTT-3.3.4-5]", () => {
  const t = tree();
  t.subscribe("a/+", "s", { qos: 0, identifier: 5 });
  t.subscribe("$share/g/a/#", "s", { qos: 1, identifier: 8 });
  const copies = t.match("a/b").map((d) => forwardOf(d, { qos: 1, retain: false }, false)!);
  assert.deepEqual(copies.map((f) => [f.qos, f.subscriptionIdentifiers]).sort(), [
    [0, [5]],
    [1, [8]],
  ]);
});

Deno.test("retainedForward (MQTT 5) sets RETAIN 1 with the new subscription's identifier alone", () => {
  assert.deepEqual(retainedForward({ qos: 2, identifier: 3 }, { qos: 1, retain: true }), {
    qos: 1,
    retain: true,
    subscriptionIdentifiers: [3],
  });
  assert.deepEqual(
    retainedForward({ qos: 0 }, { qos: 1, retain: true }).subscriptionIdentifiers,
    [],
  );
});

Deno.test("sendsRetained (MQTT 5) follows Retain Handling 0, 1 and 2 [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11]", () => {
  for (const existed of [false, true]) {
    assert.equal(sendsRetained("a/#", { qos: 1 }, existed), true);
    assert.equal(sendsRetained("a/#", { qos: 1, retainHandling: 0 }, existed), true);
    assert.equal(sendsRetained("a/#", { qos: 1, retainHandling: 1 }, existed), !existed);
    assert.equal(sendsRetained("a/#", { qos: 1, retainHandling: 2 }, existed), false);
  }
});

Deno.test("sendsRetained (MQTT 5) sends nothing for a shared subscription, whatever its Retain Handling", () => {
  for (const retainHandling of [0, 1, 2] as const) {
    assert.equal(sendsRetained("$share/g/a/#", { qos: 1, retainHandling }, false), false);
  }
});

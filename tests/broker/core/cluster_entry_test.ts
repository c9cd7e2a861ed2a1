/**
 * The core's entry points for a cluster node, with no socket: a message from another node is
 * delivered like a local one (QoS downgraded, RETAIN 0) with no event and no forwarding; a
 * retained change from another node is stored without routing; an evicted session's connection
 * is taken over, its will published, the session gone; the `published` event tells the cluster
 * glue of host, plugin and will messages.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { QoS } from "../../../src/packet/mod.ts";
import type { BrokerCore } from "../../../src/broker/core.ts";
import { BrokerMessage } from "../../../src/broker/message.ts";
import type { BrokerEvents } from "../../../src/broker/policy.ts";
import { connect, subscribe, T0, type TestCore, testCore } from "../../_helpers/core.ts";
import { connectPacket } from "../../_helpers/test_client.ts";

/** A core that records the events the cluster glue listens to. */
function clusterCore() {
  const events = { published: [] as string[], received: [] as string[] };
  const hooks: BrokerEvents = {
    published: (m) => events.published.push(m.topic),
    messageReceived: (_id, m) => events.received.push(m.topic),
  };
  return { core: testCore({}, { events: hooks }), events };
}

/** A call into the core's cluster entry points, its actions run as the broker runs them. */
function run<T>(core: TestCore, call: (core: BrokerCore) => T): T {
  const result = call(core.core);
  core.run();
  return result;
}

const message = (topic: string, qos: QoS, retain = false) =>
  new BrokerMessage(topic, new TextEncoder().encode("v"), { qos, retain, senderId: "remote" });

Deno.test("core routeRemote delivers at min(published, granted) to local subscriptions, with no event [MQTT-3.8.4-6]", () => {
  const { core, events } = clusterCore();
  const low = connect(core, connectPacket({ clientId: "low" }));
  const high = connect(core, connectPacket({ clientId: "high" }));
  subscribe(core, low, "s/#", 0);
  subscribe(core, high, "s/#", 2);
  run(core, (c) => c.routeRemote(message("s/1", 1, true)));
  assert.deepEqual(low.published.map((p) => [p.topic, p.qos]), [["s/1", 0]]);
  assert.deepEqual(high.published.map((p) => [p.topic, p.qos]), [["s/1", 1]]);
  // Not stored as retained here (the retained change travels apart), not forwarded again.
  assert.equal(core.retained.get("s/1"), undefined);
  assert.deepEqual(events, { published: [], received: [] });
});

Deno.test("core replaceRetained stores and clears a retained message without routing it; a new subscription gets it with RETAIN 1 [MQTT-3.3.1-6]", () => {
  const { core, events } = clusterCore();
  const live = connect(core, connectPacket({ clientId: "live" }));
  subscribe(core, live, "r/#", 1);
  run(core, (c) => c.replaceRetained("r/a", message("r/a", 1, true)));
  assert.equal(live.published.length, 0, "routed");
  assert.equal(core.retained.get("r/a")?.retainOut, true);
  const bytes = core.core.retainedBytes;
  assert.ok(bytes > 0);
  const late = connect(core, connectPacket({ clientId: "late" }));
  subscribe(core, late, "r/#", 1);
  assert.deepEqual(late.published.map((p) => [p.topic, p.qos]), [["r/a", 1]]);
  run(core, (c) => c.replaceRetained("r/a", undefined));
  assert.equal(core.retained.get("r/a"), undefined);
  assert.equal(core.core.retainedBytes, 0);
  assert.deepEqual(events, { published: [], received: [] });
});

Deno.test("core evict takes the connection over, publishes its will (a published event) and ends the session", () => {
  const { core, events } = clusterCore();
  const watcher = connect(core, connectPacket({ clientId: "w" }));
  subscribe(core, watcher, "will/#", 0);
  const will = { topic: "will/c", payload: new Uint8Array([1]), qos: 0 as QoS, retain: false };
  const client = connect(core, connectPacket({ clientId: "c", clean: false, will }));
  subscribe(core, client, "x/#", 1);
  assert.equal(run(core, (c) => c.evict("c", "session taken over by node b", T0 + 1)), true);
  assert.deepEqual(client.closed, {
    how: "takeOver",
    reason: "session taken over by node b",
    code: 0x8e,
  });
  assert.deepEqual(watcher.published.map((p) => p.topic), ["will/c"]);
  assert.deepEqual(events.published, ["will/c"]);
  // The persistent session is gone too: it continues on the other node.
  assert.equal(core.sessions.has("c"), false);
  assert.equal(core.subscriptions.match("x/1").length, 0);
  assert.equal(run(core, (c) => c.evict("c", "again", T0 + 2)), false);
});

Deno.test("core publish (host, plugin, will) tells the published event after storing a retained one", () => {
  const { core, events } = clusterCore();
  let storedFirst = false;
  const check: TestCore = testCore({}, {
    events: { published: (m) => storedFirst = check.retained.get(m.topic) !== undefined },
  });
  check.publish(message("h/r", 0, true));
  assert.equal(storedFirst, true);
  core.publish(message("h/1", 0));
  assert.deepEqual(events, { published: ["h/1"], received: [] });
});

Deno.test("core shareGate: a cluster node leaves its members of a group out of a message another node serves; non-shared subscriptions are not asked", () => {
  const { core } = clusterCore();
  const plain = connect(core, connectPacket({ clientId: "plain" }));
  const g = connect(core, connectPacket({ clientId: "g" }));
  const h = connect(core, connectPacket({ clientId: "h" }));
  subscribe(core, plain, "s/#", 1);
  subscribe(core, g, "$share/g/s/#", 1);
  subscribe(core, h, "$share/h/s/#", 1);
  const asked: string[] = [];
  core.core.shareGate = (m, share) => {
    asked.push(share);
    return new TextDecoder().decode(m.payload) === "v" ? share === "$share/h/s/#" : true;
  };
  run(core, (c) => c.routeRemote(message("s/1", 1)));
  assert.deepEqual(asked.sort(), ["$share/g/s/#", "$share/h/s/#"]);
  assert.deepEqual([plain, g, h].map((l) => l.published.length), [1, 0, 1]);
  // A message whose topic matches no group: the gate is not asked.
  asked.length = 0;
  subscribe(core, plain, "only/#", 1);
  run(core, (c) => c.routeRemote(message("only/1", 0)));
  assert.deepEqual(asked, []);
  assert.equal(plain.published.length, 2);
});

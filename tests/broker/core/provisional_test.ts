/**
 * A provisional session (a cluster node's, served while Redis is away: `BrokerCore.provisional`),
 * with no socket: nothing of it is journaled while it is provisional; `storeSession` journals it
 * whole (a store then holds it as the core does), and `giveWay` closes its connection with 0x89
 * and drops it, journaling nothing.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ReasonCode } from "../../../src/packet/mod.ts";
import { MemoryStore } from "../../../src/store/memory_store.ts";
import type { StoreMutation } from "../../../src/store/mutation.ts";
import { connect, subscribe, T0, testCore } from "../../_helpers/core.ts";
import { connectPacket, publishPacket } from "../../_helpers/test_client.ts";

/** A core whose journal goes into `store` at each `flush`, with `c` provisional. */
function journaled(store: MemoryStore) {
  const pending: StoreMutation[] = [];
  const core = testCore({}, { journal: (m) => pending.push(m) });
  core.core.provisional = (clientId) => clientId === "c";
  const flush = () => store.apply(pending.splice(0));
  return { core, pending, flush };
}

const about = (m: StoreMutation) =>
  m.type === "putSession" ? m.session.clientId : "clientId" in m ? m.clientId : undefined;

const resume = (protocolVersion: 4 | 5) =>
  connectPacket({
    clientId: "c",
    clean: false,
    protocolVersion,
    ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 300 } } : {}),
  });

Deno.test("core provisional session journals nothing until storeSession, which journals it whole (its subscription and queue then in the store) [MQTT-3.2.2-2]", async () => {
  await using store = new MemoryStore();
  const a = journaled(store);
  const sub = connect(a.core, resume(4));
  assert.equal(sub.sent[0]?.type === 2 && sub.sent[0].sessionPresent, false);
  subscribe(a.core, sub, "t/#", 1);
  const pub = connect(a.core, connectPacket({ clientId: "p" }));
  a.core.handle(pub, publishPacket("t/1", "m1", { qos: 1, packetId: 1 }), T0);
  a.core.run();
  // Delivered, not acknowledged yet: in flight.
  assert.deepEqual(sub.published.map((p) => p.topic), ["t/1"]);
  assert.deepEqual(a.pending.filter((m) => about(m) === "c"), [], "nothing of c journaled");

  assert.equal(a.core.core.storeSession("c"), true);
  a.core.run();
  const ofC = a.pending.filter((m) => about(m) === "c").map((m) => m.type);
  assert.equal(ofC[0], "deleteSession", "what the store held of it replaced");
  assert.ok(ofC.includes("putSession"));
  a.flush();
  const state = await store.load(T0 + 1000);
  const stored = state.sessions.find((s) => s.session.clientId === "c");
  assert.ok(stored !== undefined, "c stored");
  assert.deepEqual(stored.subscriptions.map((s) => s.filter), ["t/#"]);
  assert.equal(stored.outbound.length, 1, "the message in flight stored");
  // Journaled as any session from then on.
  a.core.handle(pub, publishPacket("t/2", "m2", { qos: 1, packetId: 2 }), T0 + 2);
  a.core.run();
  assert.ok(a.pending.some((m) => about(m) === "c"), "c journaled after storeSession");
});

Deno.test("core giveWay closes a provisional session's connection with 0x89 Server busy and drops the session, journaling nothing of it", async () => {
  await using store = new MemoryStore();
  const a = journaled(store);
  const sub = connect(a.core, resume(5));
  subscribe(a.core, sub, "t/#", 1);
  a.core.run();
  assert.equal(a.core.core.giveWay("c", "its session exists on node b", T0 + 10), true);
  a.core.run();
  assert.equal(sub.closed?.how, "close");
  assert.equal(sub.closed?.code, ReasonCode.SERVER_BUSY);
  assert.equal(a.core.sessions.has("c"), false);
  assert.deepEqual(a.pending.filter((m) => about(m) === "c"), [], "nothing of c journaled");
  // A message for its filter reaches nobody now.
  const pub = connect(a.core, connectPacket({ clientId: "p" }));
  a.core.handle(pub, publishPacket("t/1", "m1", { qos: 1, packetId: 1 }), T0 + 20);
  a.core.run();
  assert.deepEqual(sub.published, []);
  assert.equal(a.core.core.giveWay("c", "again", T0 + 30), false);
});

/** `c` resuming at 5.0 with a will on `w/c` delayed `delay` s, and a watcher of `w/#`. */
function withWill(delay: number, protocolVersion: 4 | 5 = 5) {
  const core = testCore();
  core.core.provisional = (clientId) => clientId === "c";
  const watcher = connect(core, connectPacket({ clientId: "w" }));
  subscribe(core, watcher, "w/#", 0);
  const will = {
    topic: "w/c",
    payload: new Uint8Array([1]),
    qos: 0 as const,
    retain: false,
    ...(protocolVersion === 5 ? { properties: { willDelayInterval: delay } } : {}),
  };
  const client = connect(core, connectPacket({ ...resume(protocolVersion), will }));
  return { core, watcher, client };
}

Deno.test("core giveWay publishes the will of a connection it closes when the will has no delay: the server's DISCONNECT 0x89 is no client DISCONNECT [MQTT-3.1.2-8] [MQTT-3.14.4-3]", () => {
  for (const version of [4, 5] as const) {
    const { core, watcher, client } = withWill(0, version);
    core.core.giveWay("c", "its session exists on node b", T0 + 10);
    core.run();
    assert.equal(client.closed?.how, "close");
    assert.deepEqual(watcher.published.map((p) => p.topic), ["w/c"], `version ${version}`);
  }
});

Deno.test("core giveWay keeps a delayed will for its delay, and the client's next login here within it cancels it: its session goes on elsewhere [MQTT-3.1.3-9]", () => {
  const { core, watcher, client } = withWill(30);
  core.core.giveWay("c", "its session exists on node b", T0 + 10);
  core.run();
  assert.equal(client.closed?.code, ReasonCode.SERVER_BUSY);
  assert.equal(core.sessions.has("c"), false, "the provisional session dropped");
  assert.equal(watcher.published.length, 0, "published before its delay");
  // Back (as it resumes the session that exists) within the delay.
  core.core.provisional = () => false;
  connect(core, connectPacket(resume(5)), T0 + 5_000);
  core.tick(T0 + 100_000);
  assert.equal(watcher.published.length, 0, "will published though the client is back");
});

Deno.test("core giveWay publishes a delayed will once its delay has passed when the client is not back", () => {
  const { core, watcher } = withWill(30);
  core.core.giveWay("c", "its session exists on node b", T0 + 10);
  core.run();
  core.tick(T0 + 30_009);
  assert.equal(watcher.published.length, 0, "published before its delay");
  core.tick(T0 + 30_010);
  assert.deepEqual(watcher.published.map((p) => p.topic), ["w/c"]);
  core.tick(T0 + 90_000);
  assert.equal(watcher.published.length, 1, "published twice");
});

Deno.test("core giveWay asks givenWayWillDue when a delayed will's delay is over, and publishes it only when told to: a login on another node within the delay cancels it [MQTT-3.1.3-9]", () => {
  const { core, watcher } = withWill(30);
  const asked: { clientId: string; publish: () => void }[] = [];
  core.core.givenWayWillDue = (clientId, publish) => asked.push({ clientId, publish });
  core.core.giveWay("c", "its session exists on node b", T0 + 10);
  core.run();
  core.tick(T0 + 30_010);
  assert.deepEqual(asked.map((a) => a.clientId), ["c"]);
  assert.equal(watcher.published.length, 0, "published before the node's answer");
  core.tick(T0 + 90_000);
  assert.equal(asked.length, 1, "asked twice");
  asked[0]!.publish();
  core.run();
  assert.deepEqual(watcher.published.map((p) => p.topic), ["w/c"]);
});

Deno.test("core mergeSubscriptions adds subscriptions to a session held here, replacing one to the same filter [MQTT-3.8.4-3], journaled, with nothing sent to its client, retained messages matching included", async () => {
  await using store = new MemoryStore();
  const a = journaled(store);
  a.core.core.provisional = () => false;
  // Retained messages on both merged filters: the client had them when it subscribed in its
  // provisional session; a SUBSCRIBE sends them after its SUBACK [MQTT-3.3.1-6] (both/r below),
  // a merge does not (the step it shares with a SUBSCRIBE, #addSubscription, sends nothing).
  const retainer = connect(a.core, connectPacket({ clientId: "r" }));
  a.core.handle(retainer, publishPacket("new/r", "n", { retain: true }), T0);
  a.core.handle(retainer, publishPacket("both/r", "b", { retain: true }), T0);
  a.core.run();
  const sub = connect(a.core, resume(5));
  subscribe(a.core, sub, "old/#", 0);
  subscribe(a.core, sub, "both/#", 0);
  assert.deepEqual(sub.published.map((p) => p.topic), ["both/r"]);
  const sent = sub.sent.length;
  const delivered = sub.published.length;
  assert.equal(
    a.core.core.mergeSubscriptions("c", [
      { topic: "both/#", qos: 1 },
      { topic: "new/#", qos: 1, identifier: 7 },
    ]),
    2,
  );
  a.core.run();
  assert.equal(sub.sent.length, sent, "a packet sent for the merge");
  assert.equal(a.core.core.mergeSubscriptions("nobody", [{ topic: "x", qos: 0 }]), 0);
  a.flush();
  const state = await store.load(T0 + 1000);
  const stored = state.sessions.find((s) => s.session.clientId === "c");
  assert.deepEqual(
    stored?.subscriptions.map((s) => [s.filter, s.qos, s.identifier]).sort(),
    [["both/#", 1, undefined], ["new/#", 1, 7], ["old/#", 0, undefined]],
  );
  // Routed: a message on a merged filter reaches the session at the merged QoS.
  const pub = connect(a.core, connectPacket({ clientId: "p" }));
  a.core.handle(pub, publishPacket("new/1", "m", { qos: 1, packetId: 1 }), T0 + 2);
  a.core.run();
  assert.deepEqual(sub.published.slice(delivered).map((p) => [p.topic, p.qos]), [["new/1", 1]]);
});

Deno.test("core mergeSubscriptions keeps max_subscriptions_per_client: a new filter past it is left out and counted, a replaced one goes through", async () => {
  await using store = new MemoryStore();
  const pending: StoreMutation[] = [];
  const core = testCore({ limits: { maxSubscriptionsPerClient: 2 } }, {
    journal: (m) => pending.push(m),
  });
  core.core.provisional = () => false;
  const sub = connect(core, resume(5));
  subscribe(core, sub, "a/#", 0);
  subscribe(core, sub, "b/#", 0);
  assert.equal(
    core.core.mergeSubscriptions("c", [
      { topic: "b/#", qos: 1 },
      { topic: "c/#", qos: 1 },
      { topic: "d/#", qos: 1 },
    ]),
    1,
    "only the replaced filter merged",
  );
  core.run();
  assert.equal(core.core.stats.refusedSubscriptions, 2);
  store.apply(pending.splice(0));
  const state = await store.load(T0 + 1000);
  const stored = state.sessions.find((s) => s.session.clientId === "c");
  assert.deepEqual(
    stored?.subscriptions.map((s) => [s.filter, s.qos]).sort(),
    [["a/#", 0], ["b/#", 1]],
  );
  // Not routed: a message on a filter left out does not reach the session.
  const pub = connect(core, connectPacket({ clientId: "p" }));
  core.handle(pub, publishPacket("c/1", "m", { qos: 1, packetId: 1 }), T0 + 2);
  core.run();
  assert.deepEqual(sub.published.map((p) => p.topic), []);
  assert.equal(sub.closing, false, "the client's connection is still open");
});

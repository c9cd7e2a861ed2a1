/**
 * The conformance suite every broker store runs (in the manner of aedes-persistence's abstract
 * tests): one set of behaviours, checked against each backend through the `BrokerStore`
 * contract only.
 *
 * A backend's test file calls {@linkcode storeConformance} with a factory. When the factory can
 * reopen the store from where it keeps its state, every case checks its state after a close and
 * reopen as well as in the live store.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { BrokerStore } from "../../src/store/broker_store.ts";
import type { MessageRecord } from "../../src/store/message_record.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import type { SessionRecord, SubscriptionRecord } from "../../src/store/session_record.ts";
import type { StoredSession, StoredState } from "../../src/store/stored_state.ts";

/** A store under test, and how to reopen it. */
export interface StoreHarness {
  /** A new, empty store. */
  store: BrokerStore;
  /**
   * Closes the store and opens it again from where it keeps its state; absent for stores that
   * keep nothing past a close.
   */
  reopen?: (store: BrokerStore) => Promise<BrokerStore>;
  /** Closes the store (if still open) and removes everything the harness created. */
  cleanup(store: BrokerStore): Promise<void>;
}

/** Creates a harness for one test. */
export type StoreFactory = () => Promise<StoreHarness>;

const NOW = 1_750_000_000_000;

/** A message record with a payload of `text`. */
export function message(
  topic: string,
  text: string,
  extra: Partial<MessageRecord> = {},
): MessageRecord {
  return {
    topic,
    payload: new TextEncoder().encode(text),
    qos: 1,
    retain: false,
    ...extra,
  };
}

/** A persistent MQTT 5.0 session record. */
export function session(clientId: string, extra: Partial<SessionRecord> = {}): SessionRecord {
  return {
    clientId,
    protocolVersion: 5,
    clean: false,
    expiryInterval: 3600,
    offlineSince: undefined,
    ...extra,
  };
}

function subscription(filter: string, extra: Partial<SubscriptionRecord> = {}): SubscriptionRecord {
  return {
    filter,
    qos: 1,
    noLocal: false,
    retainAsPublished: false,
    retainHandling: 0,
    ...extra,
  };
}

/** The state of one test: the store, rebuilt on reopen. */
class Subject {
  store: BrokerStore;
  #harness: StoreHarness;

  constructor(harness: StoreHarness) {
    this.#harness = harness;
    this.store = harness.store;
  }

  /** Applies batches and waits for their commit. */
  async write(...batches: StoreMutation[][]): Promise<void> {
    for (const batch of batches) this.store.apply(batch);
    await this.store.commit();
  }

  /**
   * Loads the state, checks it with `check`, and when the store can be reopened, checks the
   * state read back after a close and reopen too.
   */
  async expect(now: number, check: (state: StoredState) => void): Promise<void> {
    check(await this.store.load(now));
    if (this.#harness.reopen !== undefined) {
      this.store = await this.#harness.reopen(this.store);
      check(await this.store.load(now));
    }
  }

  cleanup(): Promise<void> {
    return this.#harness.cleanup(this.store);
  }
}

function sessionOf(state: StoredState, clientId: string): StoredSession {
  const found = state.sessions.find((s) => s.session.clientId === clientId);
  assert.ok(found, `session ${clientId} is stored`);
  return found;
}

function text(bytes: Uint8Array | undefined): string {
  return new TextDecoder().decode(bytes);
}

/** Payload texts of a session's outbound entries in delivery order (`-` for a pubrel entry). */
function queueTexts(state: StoredState, clientId: string): string[] {
  return sessionOf(state, clientId).outbound.map((e) =>
    e.messageId === undefined ? "-" : text(state.messages.get(e.messageId)?.payload)
  );
}

/**
 * Registers the conformance tests of one store backend.
 *
 * @param name the backend's name, prefixed to each test name
 * @param factory creates a fresh harness per test
 */
export function storeConformance(name: string, factory: StoreFactory): void {
  const test = (title: string, body: (s: Subject) => Promise<void>) => {
    Deno.test(`${name}: ${title}`, async () => {
      const subject = new Subject(await factory());
      try {
        await body(subject);
      } finally {
        await subject.cleanup();
      }
    });
  };

  test("a new store loads empty", async (s) => {
    await s.expect(NOW, (state) => {
      assert.deepEqual(state.sessions, []);
      assert.equal(state.messages.size, 0);
      assert.equal(state.nextMessageId, 1);
      assert.deepEqual(state.retained, []);
      assert.equal(state.counters.size, 0);
      assert.deepEqual(state.dueWills, []);
    });
  });

  test("sessions keep settings, will, subscriptions with options and identifiers", async (s) => {
    const will = {
      message: message("clients/a/status", "gone", {
        qos: 2,
        retain: true,
        origin: "a",
        properties: {
          contentType: "text/plain",
          correlationData: "AAEC",
          userProperties: [["k", "v"], ["k", "w"]],
        },
        expiresAt: NOW + 1_000_000,
      }),
      delayInterval: 30,
    };
    await s.write([
      {
        type: "putSession",
        session: session("a", { username: "alice", will, offlineSince: NOW - 5 }),
      },
      {
        type: "putSubscription",
        clientId: "a",
        subscription: subscription("x/#", {
          qos: 2,
          noLocal: true,
          retainAsPublished: true,
          retainHandling: 2,
          identifier: 268_435_455,
        }),
      },
      { type: "putSubscription", clientId: "a", subscription: subscription("$share/g/y") },
      {
        type: "putSession",
        session: session("b", { protocolVersion: 4, expiryInterval: undefined }),
      },
    ]);
    await s.expect(NOW, (state) => {
      assert.deepEqual(state.sessions.map((x) => x.session.clientId), ["a", "b"]);
      const a = sessionOf(state, "a");
      assert.deepEqual(a.session, session("a", { username: "alice", will, offlineSince: NOW - 5 }));
      assert.deepEqual(a.subscriptions, [
        subscription("$share/g/y"),
        subscription("x/#", {
          qos: 2,
          noLocal: true,
          retainAsPublished: true,
          retainHandling: 2,
          identifier: 268_435_455,
        }),
      ]);
      assert.deepEqual(
        sessionOf(state, "b").session,
        session("b", { protocolVersion: 4, expiryInterval: undefined }),
      );
    });
  });

  test("putSession updates settings and keeps subscriptions and queue; subscriptions are replaced by filter", async (s) => {
    await s.write([
      { type: "putSession", session: session("a") },
      { type: "putSubscription", clientId: "a", subscription: subscription("t", { qos: 0 }) },
      { type: "putMessage", id: 1, message: message("t", "m1") },
      { type: "queueOutbound", clientId: "a", seq: 1, messageId: 1, qos: 1 },
    ]);
    await s.write([
      {
        type: "putSession",
        session: session("a", {
          offlineSince: NOW - 1,
          protocolVersion: 3,
          clean: true,
          expiryInterval: 7,
        }),
      },
      { type: "putSubscription", clientId: "a", subscription: subscription("t", { qos: 2 }) },
      { type: "putSubscription", clientId: "a", subscription: subscription("u") },
      { type: "deleteSubscription", clientId: "a", filter: "u" },
    ]);
    await s.expect(NOW, (state) => {
      const a = sessionOf(state, "a");
      assert.deepEqual(
        a.session,
        session("a", { offlineSince: NOW - 1, protocolVersion: 3, clean: true, expiryInterval: 7 }),
      );
      assert.deepEqual(a.subscriptions, [subscription("t", { qos: 2 })]);
      assert.deepEqual(queueTexts(state, "a"), ["m1"]);
    });
  });

  test("queued messages come back in delivery (seq) order, whatever the batch order", async (s) => {
    const put = (i: number): StoreMutation => ({
      type: "putMessage",
      id: 100 + i,
      message: message("t", `m${i}`),
    });
    const queue = (seq: number, i: number): StoreMutation => ({
      type: "queueOutbound",
      clientId: "a",
      seq,
      messageId: 100 + i,
      qos: 1,
    });
    await s.write(
      [{ type: "putSession", session: session("a") }, put(3), queue(30, 3)],
      [put(1), queue(10, 1)],
      [put(5), put(2), put(4), queue(50, 5), queue(20, 2), queue(40, 4)],
    );
    await s.expect(NOW, (state) => {
      assert.deepEqual(queueTexts(state, "a"), ["m1", "m2", "m3", "m4", "m5"]);
      assert.deepEqual(sessionOf(state, "a").outbound.map((e) => e.seq), [10, 20, 30, 40, 50]);
      assert.equal(state.nextMessageId, 106);
    });
  });

  test("a queueOutbound for a seq already stored is ignored", async (s) => {
    await s.write([
      { type: "putSession", session: session("a") },
      { type: "putMessage", id: 1, message: message("t", "first") },
      { type: "putMessage", id: 2, message: message("t", "second") },
      { type: "queueOutbound", clientId: "a", seq: 1, messageId: 1, qos: 1 },
      { type: "queueOutbound", clientId: "a", seq: 1, messageId: 2, qos: 2 },
    ]);
    await s.expect(NOW, (state) => {
      assert.deepEqual(queueTexts(state, "a"), ["first"]);
      assert.deepEqual([...state.messages.keys()], [1], "the unreferenced message is not kept");
    });
  });

  test("QoS 1 and 2 outbound states: queued, publish sent with packet id, pubrel sent, done", async (s) => {
    await s.write([
      { type: "putSession", session: session("a") },
      { type: "putMessage", id: 1, message: message("t", "q1") },
      { type: "putMessage", id: 2, message: message("t", "q2", { qos: 2 }) },
      { type: "putMessage", id: 3, message: message("t", "q2b", { qos: 2 }) },
      { type: "queueOutbound", clientId: "a", seq: 1, messageId: 1, qos: 1 },
      { type: "queueOutbound", clientId: "a", seq: 2, messageId: 2, qos: 2 },
      { type: "queueOutbound", clientId: "a", seq: 3, messageId: 3, qos: 2 },
    ]);
    await s.write([
      { type: "sendOutbound", clientId: "a", seq: 1, packetId: 65535 },
      { type: "sendOutbound", clientId: "a", seq: 2, packetId: 7 },
      { type: "pubrelOutbound", clientId: "a", seq: 2 },
      { type: "sendOutbound", clientId: "a", seq: 3, packetId: 8 },
    ]);
    await s.expect(NOW, (state) => {
      assert.deepEqual(sessionOf(state, "a").outbound, [
        { seq: 1, qos: 1, state: "publish", packetId: 65535, messageId: 1 },
        { seq: 2, qos: 2, state: "pubrel", packetId: 7, messageId: undefined },
        { seq: 3, qos: 2, state: "publish", packetId: 8, messageId: 3 },
      ]);
      // The message of an entry in pubrel state is no longer needed [MQTT-4.3.3-2].
      assert.deepEqual([...state.messages.keys()].sort(), [1, 3]);
    });
    await s.write([
      { type: "deleteOutbound", clientId: "a", seq: 1 },
      { type: "deleteOutbound", clientId: "a", seq: 2 },
    ]);
    await s.expect(NOW, (state) => {
      assert.deepEqual(sessionOf(state, "a").outbound.map((e) => e.seq), [3]);
      assert.deepEqual([...state.messages.keys()], [3]);
    });
  });

  test("queueOutbound with a packet id stores the entry as sent", async (s) => {
    await s.write([
      { type: "putSession", session: session("a") },
      { type: "putMessage", id: 1, message: message("t", "m", { qos: 2 }) },
      { type: "queueOutbound", clientId: "a", seq: 1, messageId: 1, qos: 2, packetId: 12 },
    ]);
    await s.expect(NOW, (state) => {
      assert.deepEqual(sessionOf(state, "a").outbound, [
        { seq: 1, qos: 2, state: "publish", packetId: 12, messageId: 1 },
      ]);
    });
    assert.throws(
      () =>
        s.store.apply([{
          type: "queueOutbound",
          clientId: "a",
          seq: 2,
          messageId: 1,
          qos: 0,
          packetId: 1,
        }]),
      RangeError,
    );
  });

  test("a message keeps the RETAIN flag and Subscription Identifiers of its deliveries [MQTT-3.3.1-8] [MQTT-3.3.4-3]", async (s) => {
    const retainedForNew = message("r", "sent for a new subscription", {
      retain: true,
      retainOut: true,
    });
    const published = message("r", "live, retain as published", {
      retain: true,
      retainOut: true,
      subscriptionIdentifiers: [1, 268_435_455],
    });
    const live = message("r", "live", { retain: true });
    await s.write([
      { type: "putSession", session: session("a") },
      { type: "putMessage", id: 1, message: retainedForNew },
      { type: "putMessage", id: 2, message: published },
      { type: "putMessage", id: 3, message: live },
      { type: "queueOutbound", clientId: "a", seq: 1, messageId: 1, qos: 1, packetId: 4 },
      { type: "queueOutbound", clientId: "a", seq: 2, messageId: 2, qos: 1 },
      { type: "queueOutbound", clientId: "a", seq: 3, messageId: 3, qos: 1 },
    ]);
    await s.expect(NOW, (state) => {
      assert.deepEqual(state.messages.get(1), retainedForNew);
      assert.deepEqual(state.messages.get(2), published);
      assert.deepEqual(state.messages.get(3), live);
    });
    assert.throws(
      () =>
        s.store.apply([{
          type: "putMessage",
          id: 9,
          message: message("r", "x", { subscriptionIdentifiers: [0] }),
        }]),
      RangeError,
    );
  });

  test("a message goes as soon as its last reference goes, even within a batch", async (s) => {
    await s.write([
      { type: "putSession", session: session("a") },
      { type: "putSession", session: session("b") },
      { type: "putMessage", id: 1, message: message("t", "m") },
      { type: "queueOutbound", clientId: "a", seq: 1, messageId: 1, qos: 1 },
      { type: "deleteOutbound", clientId: "a", seq: 1 },
      // Message 1 is gone: this reference is ignored.
      { type: "queueOutbound", clientId: "b", seq: 1, messageId: 1, qos: 1 },
    ]);
    await s.expect(NOW, (state) => {
      assert.equal(state.messages.size, 0);
      assert.deepEqual(sessionOf(state, "b").outbound, []);
    });
  });

  test("outbound transitions that do not apply are ignored", async (s) => {
    await s.write([
      { type: "putSession", session: session("a") },
      { type: "putMessage", id: 1, message: message("t", "q1") },
      { type: "putMessage", id: 2, message: message("t", "q0", { qos: 0 }) },
      { type: "putMessage", id: 3, message: message("t", "q2", { qos: 2 }) },
      { type: "queueOutbound", clientId: "a", seq: 1, messageId: 1, qos: 1 },
      { type: "queueOutbound", clientId: "a", seq: 2, messageId: 2, qos: 0 },
      { type: "queueOutbound", clientId: "a", seq: 3, messageId: 3, qos: 2 },
    ]);
    await s.write([
      { type: "pubrelOutbound", clientId: "a", seq: 1 }, // QoS 1 has no PUBREL
      { type: "sendOutbound", clientId: "a", seq: 2, packetId: 5 }, // QoS 0 has no packet id
      { type: "pubrelOutbound", clientId: "a", seq: 3 }, // not sent yet
      { type: "sendOutbound", clientId: "a", seq: 9, packetId: 5 }, // no such entry
      { type: "deleteOutbound", clientId: "b", seq: 1 }, // no such session
    ]);
    await s.write([
      { type: "sendOutbound", clientId: "a", seq: 3, packetId: 6 },
      { type: "pubrelOutbound", clientId: "a", seq: 3 },
      { type: "sendOutbound", clientId: "a", seq: 3, packetId: 9 }, // PUBREL already sent
    ]);
    await s.expect(NOW, (state) => {
      assert.deepEqual(sessionOf(state, "a").outbound, [
        { seq: 1, qos: 1, state: "queued", packetId: undefined, messageId: 1 },
        { seq: 2, qos: 0, state: "queued", packetId: undefined, messageId: 2 },
        { seq: 3, qos: 2, state: "pubrel", packetId: 6, messageId: undefined },
      ]);
    });
  });

  test("a message shared by many sessions is stored once and deleted with its last reference", async (s) => {
    const batch: StoreMutation[] = [{
      type: "putMessage",
      id: 9,
      message: message("fan/out", "shared", { qos: 2 }),
    }];
    for (const id of ["a", "b", "c"]) {
      batch.unshift({ type: "putSession", session: session(id) });
      batch.push({
        type: "queueOutbound",
        clientId: id,
        seq: 1,
        messageId: 9,
        qos: id === "c" ? 2 : 1,
      });
    }
    await s.write(batch);
    await s.expect(NOW, (state) => {
      assert.equal(state.messages.size, 1);
      for (const id of ["a", "b", "c"]) {
        assert.equal(sessionOf(state, id).outbound[0]?.messageId, 9);
      }
    });
    await s.write([
      { type: "deleteOutbound", clientId: "a", seq: 1 },
      { type: "deleteSession", clientId: "b" },
      { type: "sendOutbound", clientId: "c", seq: 1, packetId: 1 },
    ]);
    await s.expect(NOW, (state) => {
      assert.deepEqual([...state.messages.keys()], [9], "c still references it");
    });
    await s.write([{ type: "pubrelOutbound", clientId: "c", seq: 1 }]);
    await s.expect(NOW, (state) => {
      assert.equal(state.messages.size, 0, "deleted with its last reference");
      assert.deepEqual(sessionOf(state, "c").outbound[0]?.state, "pubrel");
    });
  });

  test("a message no entry references at the end of its batch is not kept", async (s) => {
    await s.write(
      [
        { type: "putMessage", id: 1, message: message("t", "orphan") },
        { type: "putSession", session: session("a") },
        { type: "putMessage", id: 2, message: message("t", "kept") },
        { type: "queueOutbound", clientId: "a", seq: 1, messageId: 2, qos: 1 },
        { type: "putMessage", id: 3, message: message("t", "late") },
      ],
      // Same turn, next batch: message 3 is already gone, so this reference is ignored.
      [{ type: "queueOutbound", clientId: "a", seq: 2, messageId: 3, qos: 1 }],
    );
    await s.expect(NOW, (state) => {
      assert.deepEqual([...state.messages.keys()], [2]);
      assert.deepEqual(queueTexts(state, "a"), ["kept"]);
    });
  });

  test("deleteSession takes its subscriptions, outbound entries and inbound ids with it", async (s) => {
    await s.write([
      { type: "putSession", session: session("a") },
      { type: "putSubscription", clientId: "a", subscription: subscription("t") },
      { type: "putMessage", id: 1, message: message("t", "m") },
      { type: "queueOutbound", clientId: "a", seq: 1, messageId: 1, qos: 1 },
      { type: "putInbound", clientId: "a", packetId: 3 },
    ]);
    await s.write([
      { type: "deleteSession", clientId: "a" },
      { type: "putSession", session: session("a") },
    ]);
    await s.expect(NOW, (state) => {
      const a = sessionOf(state, "a");
      assert.deepEqual([a.subscriptions, a.outbound, a.inbound], [[], [], []]);
      assert.equal(state.messages.size, 0);
    });
  });

  test("inbound QoS 2 ids awaiting PUBREL [MQTT-4.3.3-2]", async (s) => {
    await s.write([
      { type: "putSession", session: session("a") },
      { type: "putInbound", clientId: "a", packetId: 65535 },
      { type: "putInbound", clientId: "a", packetId: 1 },
      { type: "putInbound", clientId: "a", packetId: 300 },
      { type: "putInbound", clientId: "a", packetId: 1 },
    ]);
    await s.write([{ type: "deleteInbound", clientId: "a", packetId: 300 }]);
    await s.expect(NOW, (state) => assert.deepEqual(sessionOf(state, "a").inbound, [1, 65535]));
  });

  test("writes for a session that does not exist are ignored", async (s) => {
    await s.write([
      { type: "putMessage", id: 1, message: message("t", "m") },
      { type: "putSubscription", clientId: "ghost", subscription: subscription("t") },
      { type: "queueOutbound", clientId: "ghost", seq: 1, messageId: 1, qos: 1 },
      { type: "putInbound", clientId: "ghost", packetId: 1 },
      { type: "deleteSession", clientId: "ghost" },
      { type: "putSession", session: session("a") },
      { type: "queueOutbound", clientId: "a", seq: 1, messageId: 77, qos: 1 }, // no such message
    ]);
    await s.write([{ type: "putSession", session: session("ghost") }]);
    await s.expect(NOW, (state) => {
      const ghost = sessionOf(state, "ghost");
      assert.deepEqual([ghost.subscriptions, ghost.outbound, ghost.inbound], [[], [], []]);
      assert.deepEqual(sessionOf(state, "a").outbound, []);
      assert.equal(state.messages.size, 0);
    });
  });

  test("retained messages: set, replaced, cleared, with properties, origin and binary payloads", async (s) => {
    const binary = new Uint8Array(256).map((_, i) => i);
    await s.write([
      { type: "putRetained", message: message("a/b", "old", { retain: true }) },
      {
        type: "putRetained",
        message: { topic: "bin", payload: binary, qos: 0, retain: true, origin: "c1" },
      },
      {
        type: "putRetained",
        message: message("empty/props", "x", {
          retain: true,
          qos: 2,
          properties: { payloadFormatIndicator: 1, responseTopic: "r" },
        }),
      },
      { type: "putRetained", message: message("gone", "x", { retain: true }) },
      {
        type: "putRetained",
        message: { topic: "zero", payload: new Uint8Array(0), qos: 1, retain: true },
      },
    ]);
    await s.write([
      {
        type: "putRetained",
        message: message("a/b", "new", { retain: true, expiresAt: NOW + 60_000 }),
      },
      { type: "deleteRetained", topic: "gone" },
      { type: "deleteRetained", topic: "never-there" },
    ]);
    await s.expect(NOW, (state) => {
      assert.deepEqual(state.retained, [
        message("a/b", "new", { retain: true, expiresAt: NOW + 60_000 }),
        { topic: "bin", payload: binary, qos: 0, retain: true, origin: "c1" },
        message("empty/props", "x", {
          retain: true,
          qos: 2,
          properties: { payloadFormatIndicator: 1, responseTopic: "r" },
        }),
        { topic: "zero", payload: new Uint8Array(0), qos: 1, retain: true },
      ]);
    });
  });

  test("large payloads and unicode names round-trip", async (s) => {
    const big = crypto.getRandomValues(new Uint8Array(65536)).map((b) => b);
    const payload = new Uint8Array(1024 * 1024);
    for (let i = 0; i < payload.length; i += big.length) payload.set(big, i);
    await s.write([
      { type: "putSession", session: session("клиент-😀") },
      { type: "putSubscription", clientId: "клиент-😀", subscription: subscription("温度/+/😀") },
      {
        type: "putMessage",
        id: 1,
        message: { topic: "温度/x/😀", payload, qos: 1, retain: false, origin: "клиент-😀" },
      },
      { type: "queueOutbound", clientId: "клиент-😀", seq: 1, messageId: 1, qos: 1 },
      // A payload that is a view into a larger buffer (as read from a socket) keeps only its bytes.
      {
        type: "putRetained",
        message: { topic: "view", payload: big.subarray(100, 110), qos: 0, retain: true },
      },
    ]);
    await s.expect(NOW, (state) => {
      assert.deepEqual(state.retained[0]?.payload, big.slice(100, 110));
      const stored = sessionOf(state, "клиент-😀");
      assert.equal(stored.subscriptions[0]?.filter, "温度/+/😀");
      const m = state.messages.get(1);
      assert.equal(m?.topic, "温度/x/😀");
      assert.equal(m?.origin, "клиент-😀");
      assert.deepEqual(m?.payload, payload);
    });
  });

  test("counters survive and are overwritten", async (s) => {
    await s.write(
      [{ type: "setCounter", name: "clients/maximum", value: 10 }, {
        type: "setCounter",
        name: "messages/total",
        value: 2 ** 50,
      }],
      [{ type: "setCounter", name: "clients/maximum", value: 12 }, {
        type: "setCounter",
        name: "ratio",
        value: 0.5,
      }],
    );
    await s.expect(NOW, (state) => {
      assert.deepEqual(Object.fromEntries(state.counters), {
        "clients/maximum": 12,
        "messages/total": 2 ** 50,
        ratio: 0.5,
      });
    });
  });

  test("clear deletes sessions, messages and retained messages, and keeps counters", async (s) => {
    await s.write([
      { type: "putSession", session: session("a") },
      { type: "putMessage", id: 1, message: message("t", "m") },
      { type: "queueOutbound", clientId: "a", seq: 1, messageId: 1, qos: 1 },
      { type: "putRetained", message: message("r", "m", { retain: true }) },
      { type: "setCounter", name: "clients/maximum", value: 4 },
    ]);
    await s.write([{ type: "clear" }, { type: "putSession", session: session("b") }]);
    await s.expect(NOW, (state) => {
      assert.deepEqual(state.sessions.map((x) => x.session.clientId), ["b"]);
      assert.equal(state.messages.size, 0);
      assert.deepEqual(state.retained, []);
      assert.equal(state.counters.get("clients/maximum"), 4);
    });
  });

  test("rewrite (without it: the batch applied, as the broker's writer does) replaces the state with a clear and the whole state, keeping messages by id, after what was applied before it", async (s) => {
    await s.write([
      { type: "putSession", session: session("a") },
      { type: "putSession", session: session("gone") },
      { type: "putSubscription", clientId: "a", subscription: subscription("old/#") },
      { type: "putMessage", id: 1, message: message("t", "one") },
      { type: "putMessage", id: 2, message: message("t", "two") },
      { type: "queueOutbound", clientId: "a", seq: 1, messageId: 1, qos: 1 },
      { type: "queueOutbound", clientId: "a", seq: 2, messageId: 2, qos: 1, packetId: 7 },
      { type: "queueOutbound", clientId: "gone", seq: 1, messageId: 1, qos: 1 },
      { type: "putInbound", clientId: "a", packetId: 3 },
      { type: "putRetained", message: message("r/old", "x", { retain: true }) },
    ]);
    // Applied before the rewrite: written first.
    s.store.apply([{ type: "setCounter", name: "clients/maximum", value: 9 }]);
    const rewrite = (batch: StoreMutation[]) => {
      if (s.store.rewrite !== undefined) return s.store.rewrite(batch);
      s.store.apply(batch);
      return s.store.commit();
    };
    await rewrite([
      { type: "clear" },
      { type: "setCounter", name: "packet-ids/next", value: 1024 },
      { type: "putRetained", message: message("r/new", "y", { retain: true }) },
      { type: "putSession", session: session("a", { expiryInterval: 60 }) },
      { type: "putSubscription", clientId: "a", subscription: subscription("new/#") },
      { type: "putInbound", clientId: "a", packetId: 4 },
      { type: "putMessage", id: 2, message: message("t", "two") },
      { type: "queueOutbound", clientId: "a", seq: 3, messageId: 2, qos: 2, packetId: 7 },
      { type: "pubrelOutbound", clientId: "a", seq: 3 },
      { type: "putMessage", id: 5, message: message("t", "five") },
      { type: "queueOutbound", clientId: "a", seq: 4, messageId: 5, qos: 1 },
      { type: "putMessage", id: 1, message: message("t", "one") },
      { type: "queueOutbound", clientId: "a", seq: 5, messageId: 1, qos: 1 },
    ]);
    // Changes after it apply to the new state.
    await s.write([{ type: "deleteOutbound", clientId: "a", seq: 5 }]);
    await s.expect(NOW, (state) => {
      assert.deepEqual(state.sessions.map((x) => x.session.clientId), ["a"]);
      const a = sessionOf(state, "a");
      assert.equal(a.session.expiryInterval, 60);
      assert.deepEqual(a.subscriptions.map((x) => x.filter), ["new/#"]);
      assert.deepEqual(a.inbound, [4]);
      assert.deepEqual(a.outbound.map((e) => [e.seq, e.state, e.packetId]), [
        [3, "pubrel", 7],
        [4, "queued", undefined],
      ]);
      assert.deepEqual(queueTexts(state, "a"), ["-", "five"]);
      assert.deepEqual([...state.messages.keys()], [5]);
      assert.deepEqual(state.retained.map((m) => m.topic), ["r/new"]);
      assert.equal(state.counters.get("clients/maximum"), 9);
      assert.equal(state.counters.get("packet-ids/next"), 1024);
    });
  });

  test("load expires sessions past their wall-clock deadline, with their rows, and returns their wills [MQTT-3.1.2-23]", async (s) => {
    const will = (text: string) => ({
      message: message("wills", text, { origin: "x" }),
      delayInterval: 5,
    });
    await s.write([
      // Offline 100 s with a 60 s expiry: gone, will due.
      {
        type: "putSession",
        session: session("expired", {
          offlineSince: NOW - 100_000,
          expiryInterval: 60,
          will: will("w-expired"),
        }),
      },
      // Offline 100 s with expiry 10 s: gone earlier, its will comes first.
      {
        type: "putSession",
        session: session("older", {
          offlineSince: NOW - 100_000,
          expiryInterval: 10,
          will: will("w-older"),
        }),
      },
      // Expiry 0 ends with the connection, and the restart ended every connection.
      { type: "putSession", session: session("clean", { expiryInterval: 0 }) },
      // Exactly at its deadline: expired.
      {
        type: "putSession",
        session: session("edge", { offlineSince: NOW - 60_000, expiryInterval: 60 }),
      },
      // Offline, not yet at its deadline.
      {
        type: "putSession",
        session: session("alive", { offlineSince: NOW - 59_999, expiryInterval: 60 }),
      },
      // Connected when stored: its expiry starts at load.
      {
        type: "putSession",
        session: session("online", { offlineSince: undefined, expiryInterval: 1 }),
      },
      // Never expires.
      {
        type: "putSession",
        session: session("forever", { offlineSince: 0, expiryInterval: undefined }),
      },
      { type: "putSubscription", clientId: "expired", subscription: subscription("t") },
      { type: "putMessage", id: 1, message: message("t", "m") },
      { type: "queueOutbound", clientId: "expired", seq: 1, messageId: 1, qos: 1 },
      { type: "putInbound", clientId: "expired", packetId: 1 },
    ]);
    const check = (state: StoredState) => {
      assert.deepEqual(state.sessions.map((x) => x.session.clientId), [
        "alive",
        "forever",
        "online",
      ]);
      assert.equal(state.messages.size, 0);
    };
    const first = await s.store.load(NOW);
    check(first);
    assert.deepEqual(first.dueWills.map((d) => [d.clientId, text(d.will.message.payload)]), [
      ["older", "w-older"],
      ["expired", "w-expired"],
    ]);
    // The deletions were written: loading again (even at an earlier time) does not bring the
    // sessions back, and the wills are not due twice.
    await s.expect(NOW - 200_000, (state) => {
      check(state);
      assert.deepEqual(state.dueWills, []);
    });
    const recreated = await s.store.load(NOW);
    assert.equal(sessionOf(recreated, "alive").subscriptions.length, 0);
  });

  test("an expired session's will whose own message expired is not due", async (s) => {
    await s.write([{
      type: "putSession",
      session: session("a", {
        offlineSince: NOW - 10_000,
        expiryInterval: 1,
        will: { message: message("w", "late", { expiresAt: NOW - 1 }), delayInterval: 0 },
      }),
    }]);
    const state = await s.store.load(NOW);
    assert.deepEqual([state.sessions, state.dueWills], [[], []]);
  });

  test("load drops queued copies of expired messages and keeps deliveries in flight [MQTT-3.3.2-5]", async (s) => {
    await s.write([
      { type: "putSession", session: session("a") },
      { type: "putSession", session: session("b") },
      { type: "putMessage", id: 1, message: message("t", "expired", { expiresAt: NOW }) },
      { type: "putMessage", id: 2, message: message("t", "fresh", { expiresAt: NOW + 1 }) },
      { type: "queueOutbound", clientId: "a", seq: 1, messageId: 1, qos: 1 },
      { type: "queueOutbound", clientId: "a", seq: 2, messageId: 2, qos: 1 },
      { type: "queueOutbound", clientId: "b", seq: 1, messageId: 1, qos: 1 },
      { type: "sendOutbound", clientId: "b", seq: 1, packetId: 4 },
      { type: "putRetained", message: message("r/old", "x", { retain: true, expiresAt: NOW - 1 }) },
      { type: "putRetained", message: message("r/new", "x", { retain: true, expiresAt: NOW + 1 }) },
    ]);
    await s.expect(NOW, (state) => {
      assert.deepEqual(queueTexts(state, "a"), ["fresh"]);
      assert.deepEqual(queueTexts(state, "b"), ["expired"], "its onward delivery had started");
      assert.deepEqual(state.retained.map((m) => m.topic), ["r/new"]);
    });
    // Deleted from the store, not only hidden: still gone when loaded at an earlier time.
    await s.expect(NOW - 10, (state) => {
      assert.deepEqual(queueTexts(state, "a"), ["fresh"]);
      assert.deepEqual(state.retained.map((m) => m.topic), ["r/new"]);
    });
  });

  test("a malformed batch is refused as a whole", async (s) => {
    const bad: StoreMutation[][] = [
      [{ type: "putSession", session: session("a") }, {
        type: "putInbound",
        clientId: "a",
        packetId: 0,
      }],
      [{ type: "putSession", session: session("a") }, {
        type: "queueOutbound",
        clientId: "a",
        seq: 1,
        messageId: 1,
        qos: 3 as 0,
      }],
      [{ type: "putSession", session: session("a") }, { type: "nope" } as unknown as StoreMutation],
      [{ type: "putSession", session: session("a") }, {
        type: "putMessage",
        id: -1,
        message: message("t", "m"),
      }],
      [{ type: "putSession", session: { ...session("a"), protocolVersion: 6 as 5 } }],
      [{
        type: "putRetained",
        message: { ...message("t", "m"), payload: "text" as unknown as Uint8Array },
      }],
      [{ type: "setCounter", name: "c", value: NaN }],
      [{ type: "putRetained", message: message("t", "m", { retain: false }) }],
    ];
    for (const batch of bad) {
      assert.throws(
        () => s.store.apply(batch),
        (e) => e instanceof TypeError || e instanceof RangeError,
      );
    }
    await s.store.commit();
    await s.expect(NOW, (state) => {
      assert.deepEqual([state.sessions, state.retained, state.counters.size], [[], [], 0]);
    });
  });

  test("batches applied in one turn commit together; commit resolves after them", async (s) => {
    for (let i = 1; i <= 100; i++) {
      s.store.apply([{ type: "putSession", session: session(`c${i}`) }]);
    }
    await s.store.commit();
    await s.store.commit(); // nothing pending: resolves
    await s.expect(NOW, (state) => assert.equal(state.sessions.length, 100));
  });

  test("apply after close throws TypeError; close is idempotent, also called twice at once", async (s) => {
    s.store.apply([{ type: "setCounter", name: "c", value: 1 }]);
    await Promise.all([s.store.close(), s.store.close()]);
    await s.store.close();
    assert.throws(() => s.store.apply([{ type: "clear" }]), TypeError);
  });
}

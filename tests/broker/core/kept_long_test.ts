/**
 * The core's sweep gives a payload of its own to a connected session's delivery that has waited
 * past a sweep (`Session.sweepKept`, `BrokerMessage.keptLong`): a small payload copied to the
 * shared slab while it waits behind a slow subscriber's window must not keep the whole slab alive.
 * Driven as the shell drives the core (FakeLink, injected clock).
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../../src/packet/mod.ts";
import type { PublishPacket, QoS } from "../../../src/packet/mod.ts";
import { BrokerMessage } from "../../../src/broker/message.ts";
import {
  connect,
  type FakeLink,
  subscribe,
  T0,
  type TestCore,
  testCore,
} from "../../_helpers/core.ts";
import { AGED_PER_SWEEP } from "../../../src/broker/core.ts";
import { connectPacket } from "../../_helpers/test_client.ts";

interface Setup {
  core: TestCore;
  pub: FakeLink;
  sub: FakeLink;
  routed: BrokerMessage[];
}

/**
 * A subscriber at `qos` with a window of 1, and a publisher. The subscriber's session outlives its
 * connection: a clean session's deliveries written out are never read again, and not copied
 * (`BrokerMessage.writtenOut`).
 */
function setup(qos: QoS): Setup {
  const routed: BrokerMessage[] = [];
  const core = testCore({ maxInflight: 1, maxQueuedMessages: 100 }, {
    events: { messageReceived: (_id, m) => void routed.push(m) },
  });
  const pub = connect(core, connectPacket({ clientId: "pub" }));
  const sub = connect(core, connectPacket({ clientId: "sub", clean: false }));
  core.handle(sub, {
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic: "t/#", qos }],
  }, T0);
  return { core, pub, sub, routed };
}

/**
 * Routes a 16-byte QoS `qos` PUBLISH whose payload is a view into a 1,024-byte read buffer; with
 * `release` false the shell keeps that buffer from reuse (as while a plugin's publish decision
 * holds the PUBLISH) and nothing is copied out.
 */
function route(s: Setup, qos: QoS, n: number, now = T0, release = true): Uint8Array {
  const buffer = new Uint8Array(1024).fill(n);
  const packet: PublishPacket = {
    type: PacketType.PUBLISH,
    topic: "t/1",
    payload: buffer.subarray(100, 116),
    qos,
    packetId: n,
    retain: false,
    dup: false,
  };
  s.core.handle(s.pub, packet, now);
  if (release) s.core.core.releaseReceived();
  return buffer;
}

/** Whether the payload has a buffer of its own (not a view into a slab or a read buffer). */
function own(m: BrokerMessage): boolean {
  return m.payload.byteOffset === 0 && m.payload.buffer.byteLength === m.payload.length;
}

for (const qos of [1, 2] as const) {
  Deno.test(`sweep: a QoS ${qos} message queued behind a connected session's window since the sweep before gets a payload of its own, intact when delivered [MQTT-4.6.0-6]`, () => {
    const s = setup(qos);
    const buffers = [route(s, qos, 1), route(s, qos, 2)];
    const [inFlight, queued] = s.routed;
    // Copied to the slab: a view, no buffer of its own.
    assert.equal(own(inFlight!), false);
    assert.equal(own(queued!), false);
    for (const b of buffers) b.fill(9); // the read buffers read into again
    s.core.tick(T0 + 1000);
    // The window is visited at every sweep; the queue from the sweep after it was queued.
    assert.equal(own(inFlight!), true);
    assert.equal(own(queued!), false);
    const later = route(s, qos, 3, T0 + 1200);
    later.fill(9);
    s.core.tick(T0 + 2000);
    assert.equal(own(queued!), true);
    assert.equal(own(s.routed[2]!), false, "queued after the previous sweep: left in the slab");
    s.core.tick(T0 + 3000);
    assert.equal(own(s.routed[2]!), true);
    // Acknowledged one by one: each delivered in order, its bytes intact though every read
    // buffer was read into again.
    for (let id = 1; id <= 3; id++) {
      const p = s.sub.published[id - 1]!;
      assert.equal(p.packetId, id);
      assert.deepEqual([...s.routed[id - 1]!.payload], new Array(16).fill(id));
      if (qos === 1) s.core.handle(s.sub, { type: PacketType.PUBACK, packetId: p.packetId! }, T0);
      else {
        s.core.handle(s.sub, { type: PacketType.PUBREC, packetId: p.packetId! }, T0);
        s.core.handle(s.sub, { type: PacketType.PUBCOMP, packetId: p.packetId! }, T0);
      }
    }
    assert.equal(s.sub.published.length, 3);
    assert.equal(s.sub.closed, undefined);
  });
}

Deno.test("sweep: a message kept from the read buffer's reuse (its PUBLISH not released) lets go of that buffer once it waited past a sweep [MQTT-4.6.0-6]", () => {
  const s = setup(1);
  route(s, 1, 1, T0, false);
  route(s, 1, 2, T0, false);
  const [inFlight, queued] = s.routed;
  // The buffer was not handed back, so nothing was copied: still views into the read buffers.
  assert.equal(inFlight!.payload.buffer.byteLength, 1024);
  s.core.tick(T0 + 1000);
  s.core.tick(T0 + 2000);
  assert.equal(own(inFlight!), true);
  assert.equal(own(queued!), true);
  assert.deepEqual([...queued!.payload], new Array(16).fill(2));
});

Deno.test("sweep: an offline session's deliveries are not visited (they have payloads of their own already)", () => {
  const s = setup(1);
  const sub2 = connect(s.core, connectPacket({ clientId: "off", clean: false }));
  s.core.handle(sub2, {
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic: "t/#", qos: 1 }],
  }, T0);
  s.core.handle(sub2, { type: PacketType.DISCONNECT }, T0);
  s.core.detach(sub2, T0);
  route(s, 1, 1);
  const m = s.routed[0]!;
  // The offline session detached it while routing: a buffer of its own at once.
  assert.equal(own(m), true);
  const payload = m.payload;
  s.core.tick(T0 + 1000);
  s.core.tick(T0 + 2000);
  assert.equal(m.payload, payload, "not copied again");
});

Deno.test("sweep: the payloads it gives buffers of their own are bounded per sweep, and the rest get theirs at the next sweeps [MQTT-4.6.0-6]", () => {
  const routed: BrokerMessage[] = [];
  const window = 10;
  const core = testCore({ maxInflight: window, maxQueuedMessages: 20 }, {
    events: { messageReceived: (_id, m) => void routed.push(m) },
  });
  const pub = connect(core, connectPacket({ clientId: "pub" }));
  // 300 sessions with a full window and 20 queued each: 9,000 deliveries to age, 3,000 of them in
  // flight, all visited by the first sweep without a bound.
  const sessions = 300;
  const subs: FakeLink[] = [];
  for (let i = 0; i < sessions; i++) {
    const sub = connect(core, connectPacket({ clientId: `s${i}`, clean: false }));
    subscribe(core, sub, `t/${i}`, 1);
    subs.push(sub);
  }
  const buffer = new Uint8Array(1024);
  let id = 0;
  for (let n = 0; n < window + 20; n++) {
    for (let i = 0; i < sessions; i++) {
      buffer.fill(n);
      id++;
      core.handle(pub, {
        type: PacketType.PUBLISH,
        topic: `t/${i}`,
        payload: buffer.subarray(100, 116),
        qos: 1,
        packetId: id,
        retain: false,
        dup: false,
      }, T0);
      core.core.releaseReceived();
    }
  }
  assert.equal(routed.length, sessions * (window + 20));
  const owned = () => routed.filter(own).length;
  assert.equal(owned(), 0);
  let before = 0;
  let sweeps = 0;
  while (owned() < routed.length) {
    sweeps++;
    core.tick(T0 + 500 * sweeps);
    const now = owned();
    // At most the bound, and one window past it (a window is visited whole).
    assert.ok(now - before <= AGED_PER_SWEEP + window, `sweep ${sweeps}: ${now - before} copies`);
    assert.ok(now > before, `sweep ${sweeps} aged nothing`);
    before = now;
    assert.ok(sweeps <= Math.ceil(routed.length / AGED_PER_SWEEP) + 2, "not all aged in time");
  }
  assert.ok(sweeps >= Math.ceil(routed.length / (AGED_PER_SWEEP + window)));
  // Every byte as published, though the read buffer was read into again after each PUBLISH.
  for (let k = 0; k < routed.length; k++) {
    assert.deepEqual([...routed[k]!.payload], new Array(16).fill(Math.floor(k / sessions)));
  }
  for (const sub of subs) assert.equal(sub.closed, undefined);
});

Deno.test("sweep: a cluster node's message in flight to a slow subscriber, a view into a read from Redis holding other frames, gets a payload of its own [MQTT-4.6.0-6]", () => {
  const s = setup(1);
  // The bytes of one read from Redis: this message's payload among other frames.
  const read = new Uint8Array(4096).fill(7);
  const message = new BrokerMessage("t/1", read.subarray(1000, 1016), {
    qos: 1,
    retain: false,
    view: true,
  });
  s.core.core.routeRemote(message);
  s.core.run();
  assert.equal(s.sub.published.length, 1);
  assert.equal(message.payload.buffer.byteLength, 4096, "in flight: still the view");
  s.core.tick(T0 + 1000);
  assert.ok(own(message));
  assert.deepEqual([...message.payload], new Array(16).fill(7));
  assert.equal(s.sub.closed, undefined);
});

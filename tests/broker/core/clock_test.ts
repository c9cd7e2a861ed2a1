/**
 * The broker core's timing rules driven by an injected clock, with no socket and no sleep:
 * connect timeout, keepalive expiry [MQTT-3.1.2-24], session expiry, and the ids it assigns.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../../src/packet/mod.ts";
import type { Packet } from "../../../src/packet/mod.ts";
import { connect, FakeLink, T0, testCore } from "../../_helpers/core.ts";
import { connectPacket } from "../../_helpers/test_client.ts";
import type { LinkState } from "../../../src/broker/link.ts";

/**
 * A link attached at `now` that has sent `packet` (a CONNECT), accepted at once: the policy
 * answers synchronously, so the core has answered before `handle` returns.
 */

Deno.test("core clock: no CONNECT within the connect timeout aborts the connection", () => {
  const core = testCore({ connectTimeout: 10 });
  const link = new FakeLink();
  core.attach(link, T0);
  core.tick(T0 + 10_000);
  assert.equal(link.closing, false, "closed at the deadline itself");
  core.tick(T0 + 10_001);
  assert.deepEqual(link.closed, {
    how: "abort",
    reason: "no CONNECT accepted within the connect timeout",
    code: 0x80,
  });
});

Deno.test("core clock: a CONNECT still waiting for a slow authentication times out too, refused as unchecked", () => {
  const core = testCore({ connectTimeout: 10 });
  const link = new FakeLink();
  link.answer = () => undefined;
  core.attach(link, T0);
  core.handle(link, connectPacket({ clientId: "slow", keepAlive: 60 }), T0);
  assert.equal(core.waiting(link), true);
  core.tick(T0 + 10_001);
  // The CONNECT came: the login was not checked, "server unavailable" (return code 3).
  assert.deepEqual(link.sent, [{ type: PacketType.CONNACK, sessionPresent: false, reasonCode: 3 }]);
  assert.equal(
    link.closed?.reason,
    "connection refused (return code 3): login not checked within the connect timeout",
  );
  // The late answer is ignored for a closed link: nothing more, no session.
  core.decided(link.asked[0]!.id, true, T0 + 10_002);
  assert.equal(link.sent.length, 1);
  assert.equal(core.sessions.size, 0);
});

Deno.test("core clock: a client silent for 1.5 x keepalive is aborted [MQTT-3.1.2-24]", () => {
  const core = testCore();
  const link = connect(core, connectPacket({ clientId: "k", keepAlive: 10 }));
  core.tick(T0 + 15_000);
  assert.equal(link.closing, false, "closed before 1.5 x keepalive");
  core.tick(T0 + 15_001);
  // 0x8D Keep Alive timeout: what an MQTT 5.0 client would be told.
  assert.deepEqual(link.closed, { how: "abort", reason: "keepalive timeout", code: 0x8d });
});

Deno.test("core clock: any control packet resets the keepalive allowance [MQTT-3.1.2-23]", () => {
  const core = testCore();
  const link = connect(core, connectPacket({ clientId: "k", keepAlive: 10 }));
  // A PINGREQ [MQTT-3.12.4-1] and a PUBLISH, each just inside the allowance.
  core.handle(link, { type: PacketType.PINGREQ }, T0 + 14_000);
  core.tick(T0 + 29_000);
  assert.equal(link.closing, false, "PINGREQ did not reset the allowance");
  const publish: Packet = {
    type: PacketType.PUBLISH,
    topic: "k/t",
    payload: new Uint8Array([1]),
    qos: 1,
    packetId: 1,
    retain: false,
    dup: false,
  };
  core.handle(link, publish, T0 + 29_000);
  core.tick(T0 + 44_000);
  assert.equal(link.closing, false, "PUBLISH did not reset the allowance");
  assert.deepEqual(link.sent.slice(1).map((p) => p.type), [PacketType.PINGRESP, PacketType.PUBACK]);
  core.tick(T0 + 44_001);
  assert.equal(link.closed?.reason, "keepalive timeout");
});

Deno.test("core clock: keepalive 0 turns the timeout off [MQTT-3.1.2-24]", () => {
  const core = testCore();
  const link = connect(core, connectPacket({ clientId: "k", keepAlive: 0 }));
  core.tick(T0 + 365 * 24 * 3600_000);
  assert.equal(link.closing, false);
});

Deno.test("core clock: keepalive is enforced to the ms after weeks of uptime, across the moves of the core's time base [MQTT-3.1.2-24]", () => {
  const core = testCore();
  const day = 24 * 3600_000;
  const quiet = connect(core, connectPacket({ clientId: "quiet", keepAlive: 0 }));
  const busy = connect(core, connectPacket({ clientId: "busy", keepAlive: 60 }));
  // 40 days of a PINGREQ every 50 s and a sweep between them: the links keep their times as ms
  // since a base that moves forward every few days (`_link_clock.ts`).
  let last = T0;
  for (let now = T0; now < T0 + 40 * day; now += 50_000) {
    core.handle(busy, { type: PacketType.PINGREQ }, now);
    last = now;
    core.tick(now + 25_000);
  }
  assert.equal(busy.closing, false, "closed while it pinged");
  assert.equal(quiet.closing, false, "keepalive 0 timed out");
  // The deadlines announced are ms since the epoch: after the connect timeout's, each 1.5 x
  // keepalive after a PINGREQ.
  assert.equal(busy.deadlines[0], T0 + 10_000);
  assert.ok(busy.deadlines.length > 1000);
  for (const at of busy.deadlines.slice(1)) {
    assert.equal((at - T0 - 90_000) % 50_000, 0, `deadline ${at}`);
  }
  assert.ok(busy.deadlines.at(-1)! > T0 + 39 * day);
  // A client connecting now times out after exactly 1.5 x keepalive, and so does the busy one
  // once silent.
  const now = last + 25_000;
  const late = connect(core, connectPacket({ clientId: "late", keepAlive: 10 }), now);
  assert.equal(late.deadlines.at(-1), now + 15_000);
  core.tick(now + 15_000);
  assert.equal(late.closing, false, "closed before 1.5 x keepalive");
  core.tick(now + 15_001);
  assert.equal(late.closed?.reason, "keepalive timeout");
  core.tick(last + 90_000);
  assert.equal(busy.closing, false, "closed before 1.5 x keepalive");
  core.tick(last + 90_001);
  assert.equal(busy.closed?.reason, "keepalive timeout");
  assert.equal(quiet.closing, false);
  // What a link keeps stays a small integer (a V8 Smi, no 16-byte box per link).
  const kept = (quiet.link as LinkState).deadline;
  assert.ok(Number.isInteger(kept) && kept >= -1 && kept < 2 ** 30, `kept ${kept}`);
  const kept2 = (late.link as LinkState).deadline;
  assert.ok(Number.isInteger(kept2) && kept2 >= 0 && kept2 < 2 ** 30, `kept ${kept2}`);
});

Deno.test("core clock: the keepalive of an MQTT 3.1 client is enforced too", () => {
  const core = testCore();
  const link = connect(
    core,
    connectPacket({ clientId: "old", keepAlive: 2, protocolVersion: 3 }),
  );
  assert.equal(link.sent[0]?.type, PacketType.CONNACK);
  core.tick(T0 + 3_000);
  assert.equal(link.closing, false);
  core.tick(T0 + 3_001);
  assert.equal(link.closed?.reason, "keepalive timeout");
});

Deno.test("core clock: timeoutDisconnectDelay extends the keepalive allowance", () => {
  const core = testCore({ timeoutDisconnectDelay: 2 });
  const link = connect(core, connectPacket({ clientId: "k", keepAlive: 10 }));
  core.tick(T0 + 17_000);
  assert.equal(link.closing, false, "closed before 1.5 x keepalive + 2 s");
  core.tick(T0 + 17_001);
  assert.equal(link.closed?.reason, "keepalive timeout");
});

Deno.test("core clock: an offline persistent session expires sessionExpiryInterval after its disconnect", () => {
  const core = testCore({ sessionExpiryInterval: 60 });
  const link = connect(core, connectPacket({ clientId: "p", clean: false }));
  core.detach(link, T0 + 5_000);
  assert.equal(core.sessions.get("p")?.link, undefined);
  core.tick(T0 + 64_999);
  assert.ok(core.sessions.has("p"), "expired early");
  core.tick(T0 + 65_000);
  assert.equal(core.sessions.has("p"), false, "not expired");
});

Deno.test("core clock: reconnecting before expiry keeps the session, and its clock restarts at the next disconnect", () => {
  const core = testCore({ sessionExpiryInterval: 60 });
  core.detach(connect(core, connectPacket({ clientId: "p", clean: false })), T0);
  const again = connect(core, connectPacket({ clientId: "p", clean: false }), T0 + 59_000);
  assert.deepEqual(again.sent[0], {
    type: PacketType.CONNACK,
    sessionPresent: true,
    reasonCode: 0,
  });
  core.tick(T0 + 61_000);
  assert.ok(core.sessions.has("p"), "a connected session expired");
  core.detach(again, T0 + 100_000);
  core.tick(T0 + 159_999);
  assert.ok(core.sessions.has("p"));
  core.tick(T0 + 160_000);
  assert.equal(core.sessions.has("p"), false);
});

Deno.test("core clock: without sessionExpiryInterval an offline session is kept", () => {
  const core = testCore({ sessionExpiryInterval: undefined });
  core.detach(connect(core, connectPacket({ clientId: "p", clean: false })), T0);
  core.tick(T0 + 365 * 24 * 3600_000);
  assert.ok(core.sessions.has("p"));
});

Deno.test("core client ids: an empty client id gets one from the injected source, skipping ids in use [MQTT-3.1.3-6]", () => {
  const proposals = ["taken", "", "fresh-1", "fresh-2"];
  const seen: number[] = [];
  const core = testCore({}, {
    clientIds: (now) => {
      seen.push(now);
      return proposals.shift()!;
    },
  });
  connect(core, connectPacket({ clientId: "taken", clean: false }));
  const link = connect(core, connectPacket({ clientId: "", clean: true }), T0 + 1);
  assert.equal(link.session?.clientId, "fresh-1");
  assert.equal(link.client?.clientId, "fresh-1");
  assert.deepEqual(seen, [T0 + 1, T0 + 1, T0 + 1], "the source was not given the CONNECT's time");
});

Deno.test("core client ids: the default source is built from the CONNECT's time, not a clock of its own", () => {
  const core = testCore();
  const a = connect(core, connectPacket({ clientId: "" }), T0);
  const b = connect(core, connectPacket({ clientId: "" }), T0);
  assert.equal(a.session?.clientId, `auto-${T0.toString(36)}-1`);
  assert.equal(b.session?.clientId, `auto-${T0.toString(36)}-2`);
});

Deno.test("core clock: each session expires after its own interval, not in disconnect order", () => {
  const core = testCore({ sessionExpiryInterval: 100 });
  const long = connect(core, connectPacket({ clientId: "long", clean: false }));
  const short = connect(core, connectPacket({ clientId: "short", clean: false }));
  // What an MQTT 5.0 CONNECT's Session Expiry Interval sets.
  core.sessions.get("short")!.expiryInterval = 10;
  core.detach(long, T0);
  core.detach(short, T0 + 1_000);
  core.tick(T0 + 10_999);
  assert.ok(core.sessions.has("short"), "expired early");
  core.tick(T0 + 11_000);
  assert.equal(core.sessions.has("short"), false, "waited behind a session disconnected earlier");
  assert.ok(core.sessions.has("long"));
  core.tick(T0 + 100_000);
  assert.equal(core.sessions.has("long"), false);
});

Deno.test("core clock: a session that reconnected and left again expires from its last disconnect", () => {
  const core = testCore({ sessionExpiryInterval: 60 });
  core.detach(connect(core, connectPacket({ clientId: "p", clean: false })), T0);
  const back = connect(core, connectPacket({ clientId: "p", clean: false }), T0 + 30_000);
  core.detach(back, T0 + 40_000);
  // The deadline of the first disconnect is stale.
  core.tick(T0 + 60_000);
  assert.ok(core.sessions.has("p"), "expired from an earlier disconnect");
  core.tick(T0 + 100_000);
  assert.equal(core.sessions.has("p"), false);
});

Deno.test("core clock: a client that reconnected 5000 times expires once, from its last disconnect", () => {
  const core = testCore({ sessionExpiryInterval: 3600 });
  let now = T0;
  for (let i = 0; i < 5000; i++) {
    core.detach(connect(core, connectPacket({ clientId: "flap", clean: false }), now), now + 1);
    now += 2;
  }
  assert.equal(core.sessions.size, 1);
  core.tick(now + 3_600_000);
  assert.equal(core.sessions.size, 0, "the last deadline was lost in compaction");
});

Deno.test("core clock: an expiring member's shared-group messages go to another member and are not counted as dropped", () => {
  const core = testCore({ sessionExpiryInterval: 60, maxInflight: 1 });
  const away = connect(core, connectPacket({ clientId: "away", clean: false }));
  core.handle(away, {
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic: "$share/g/t", qos: 1 }, { topic: "plain/t", qos: 1 }],
  }, T0);
  const pub = connect(core, connectPacket({ clientId: "pub" }));
  const publish = (topic: string, id: number) =>
    core.handle(pub, {
      type: PacketType.PUBLISH,
      topic,
      payload: new Uint8Array([id]),
      qos: 1,
      retain: false,
      dup: false,
      packetId: id,
    }, T0);
  // Two group messages (one in flight, one queued) and one of its own subscription.
  publish("t", 1);
  publish("t", 2);
  publish("plain/t", 3);
  assert.deepEqual(away.published.map((p) => p.topic), ["t"]);
  core.detach(away, T0 + 1_000);
  const here = connect(core, connectPacket({ clientId: "here" }), T0 + 2_000);
  core.handle(here, {
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic: "$share/g/t", qos: 1 }],
  }, T0 + 2_000);
  core.tick(T0 + 61_000);
  assert.equal(core.sessions.has("away"), false, "not expired");
  // The in-flight one went first; the window of 1 holds the other until the first is acked.
  assert.deepEqual(here.published.map((p) => p.topic), ["t"]);
  core.handle(here, { type: PacketType.PUBACK, packetId: here.published[0].packetId }, T0 + 61_001);
  assert.deepEqual(here.published.map((p) => p.topic), ["t", "t"]);
  assert.equal(core.stats.droppedBy.sessionExpired, 1, "only its plain message was dropped");
});

Deno.test("core clock: a keepalive deadline 1 ms or 0 ms after the sweep that moves the time base is kept to the ms [MQTT-3.1.2-24]", () => {
  for (const near of [1, 0]) {
    const core = testCore();
    const link = connect(core, connectPacket({ clientId: "edge", keepAlive: 10 }));
    const state = link.link as LinkState;
    // A PINGREQ every 15 s, the whole allowance, each followed by a sweep `near` ms before its
    // deadline: the base moves (every few days) at one of these sweeps. The second time it does,
    // the client falls silent: it is closed 1 ms past the deadline it had, not earlier or later.
    let moves = 0;
    let t = T0;
    for (; moves < 2; t += 15_000) {
      assert.ok(t < T0 + 30 * 24 * 3600_000, "the base never moved");
      core.handle(link, { type: PacketType.PINGREQ }, t);
      const before = state.deadline;
      core.tick(t + 15_000 - near);
      assert.equal(
        link.closing,
        false,
        `closed at ${t + 15_000 - near - T0} ms, before its deadline`,
      );
      if (state.deadline < before) moves++;
    }
    const deadline = t; // the last PINGREQ's, 15 s after it (t has moved on by 15 s)
    core.tick(deadline);
    assert.equal(link.closing, false, `near ${near}: closed at its deadline`);
    core.tick(deadline + 1);
    assert.equal(link.closed?.reason, "keepalive timeout", `near ${near}: not closed past it`);
  }
});

/**
 * The bound of a login's session preparation (`CoreOptions.prepareTimeout`) counts from its last
 * progress (`BrokerCore.progressed`: a part of a long session read came), not from its start: a
 * read of millions of queued entries outlasts any bound on the whole while it moves, and bounded
 * as a whole such a login was refused on every try, its client never getting its session. A
 * preparation that stops moving is still refused at its bound. Driven with FakeLink and an
 * injected clock; the preparation is kept pending until the test answers it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ConnackReturnCode, PacketType } from "../../../src/packet/mod.ts";
import type { ConnackPacket } from "../../../src/packet/mod.ts";
import type { DecisionRequest } from "../../../src/broker/decision.ts";
import { FakeLink, T0, type TestCore, testCore } from "../../_helpers/core.ts";
import { connectPacket } from "../../_helpers/test_client.ts";

const { test } = Deno;

/** A core with a 10 s connect timeout and a 19 s preparation bound (a cluster's defaults). */
function clusterCore(): TestCore {
  return testCore({ connectTimeout: 10, prepareTimeout: 19 }, {
    policy: { prepareLogin: () => undefined },
  });
}

/** A link whose CONNECT (Clean Session 0) is sent at `at`; its preparation is left pending. */
function login(core: TestCore, clientId: string, at: number): { link: FakeLink; id: number } {
  const link = new FakeLink(clientId);
  link.answer = (request: DecisionRequest) => request.kind === "prepare" ? undefined : true;
  core.attach(link, T0);
  core.handle(link, connectPacket({ clientId, clean: false, keepAlive: 30 }), at);
  const asked = link.asked.find((a) => a.request.kind === "prepare");
  assert.ok(asked !== undefined, "the session's preparation was asked");
  return { link, id: asked.id };
}

function connack(link: FakeLink): ConnackPacket | undefined {
  return link.sent.find((p): p is ConnackPacket => p.type === PacketType.CONNACK);
}

test("BrokerCore.progressed: a preparation moving all along outlasts its bound and is accepted when it ends", () => {
  const core = clusterCore();
  const { link, id } = login(core, "long", T0);
  // A part every 10 s for 100 s: five times the bound, never 19 s without one.
  for (let t = 10_000; t <= 100_000; t += 10_000) {
    core.core.progressed(id, T0 + t);
    core.tick(T0 + t + 18_999);
    assert.equal(connack(link), undefined, `not refused at ${t + 18_999} ms`);
    assert.equal(link.closing, false);
  }
  // The session read to its end: the login goes on.
  core.decided(id, true, T0 + 110_000);
  assert.equal(connack(link)?.reasonCode, ConnackReturnCode.ACCEPTED);
  assert.equal(link.closing, false);
});

test("BrokerCore.progressed: a preparation that stops moving is refused as server busy at its bound from its last progress", () => {
  const core = clusterCore();
  const { link, id } = login(core, "stalled", T0);
  core.core.progressed(id, T0 + 15_000);
  core.tick(T0 + 15_000 + 19_000 - 1);
  assert.equal(connack(link), undefined, "within the bound of the last progress");
  core.tick(T0 + 15_000 + 19_000);
  assert.equal(connack(link)?.reasonCode, ConnackReturnCode.SERVER_UNAVAILABLE);
  assert.equal(link.closing, true);
  // Progress after the refusal changes nothing.
  core.core.progressed(id, T0 + 40_000);
  core.decided(id, true, T0 + 40_000);
  assert.equal(link.sent.filter((p) => p.type === PacketType.CONNACK).length, 1);
});

test("BrokerCore.progressed: progress never shortens a bound, and moves no other decision's", () => {
  const core = clusterCore();
  const { link, id } = login(core, "early", T0 + 5000);
  // Reported with a clock behind the preparation's start: the bound stays 19 s from the start.
  core.core.progressed(id, T0);
  core.tick(T0 + 5000 + 19_000 - 1);
  assert.equal(connack(link), undefined);
  // An unknown id, or one of another kind: nothing.
  core.core.progressed(id + 100, T0 + 23_000);
  core.core.progressed(link.asked.find((a) => a.request.kind === "authenticate")!.id, T0 + 23_000);
  core.tick(T0 + 5000 + 19_000);
  assert.equal(connack(link)?.reasonCode, ConnackReturnCode.SERVER_UNAVAILABLE);
});

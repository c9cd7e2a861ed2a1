/**
 * The bounds of a login: the connect timeout covers the CONNECT's arrival and the broker's checks
 * of it (credentials, will, an enhanced authentication exchange), and ends when the session's
 * preparation starts (a cluster node loading the client's session, waiting for its previous
 * owner's handoff); the preparation has its own bound (`prepareTimeout`, the cluster's), after
 * which the login is refused as server busy. Driven with FakeLink and an injected clock; the
 * preparation is kept pending until the test answers it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ConnackReturnCode, PacketType, ReasonCode } from "../../src/packet/mod.ts";
import type { ConnackPacket } from "../../src/packet/mod.ts";
import type { DecisionRequest } from "../../src/broker/decision.ts";
import { FakeLink, T0, type TestCore, testCore } from "../_helpers/core.ts";
import { connectPacket } from "../_helpers/test_client.ts";

const { test } = Deno;

/** A core with a 10 s connect timeout and a 19 s preparation bound (a cluster's defaults). */
function clusterCore(): TestCore {
  return testCore({ connectTimeout: 10, prepareTimeout: 19 }, {
    // The hook's presence makes the core ask; the test answers in the FakeLink.
    policy: { prepareLogin: () => undefined },
  });
}

/**
 * Attaches a link (at `attached`, default `T0`), sends its CONNECT (keepalive 30 s) at `at`:
 * credentials are answered at once unless `holdAuth`, the preparation is kept pending; returns
 * the link.
 */
function login(
  core: TestCore,
  clientId: string,
  at: number,
  options: { protocolVersion?: 4 | 5; holdAuth?: boolean; attached?: number } = {},
): FakeLink {
  const link = new FakeLink(clientId);
  link.answer = (request: DecisionRequest) =>
    request.kind === "prepare" || (options.holdAuth === true && request.kind === "authenticate")
      ? undefined
      : true;
  core.attach(link, options.attached ?? T0);
  core.handle(
    link,
    connectPacket({
      clientId,
      clean: false,
      keepAlive: 30,
      protocolVersion: options.protocolVersion ?? 4,
    }),
    at,
  );
  return link;
}

function connack(link: FakeLink): ConnackPacket | undefined {
  return link.sent.find((p): p is ConnackPacket => p.type === PacketType.CONNACK);
}

/** The id of the link's pending preparation. */
function preparation(link: FakeLink): number {
  const asked = link.asked.find((a) => a.request.kind === "prepare");
  assert.ok(asked !== undefined, "the session's preparation was asked");
  return asked.id;
}

test("63 prepare timeout: a login whose session preparation outlasts the connect timeout is not refused at it; the CONNACK comes when the preparation ends", () => {
  const core = clusterCore();
  const link = login(core, "slow", T0 + 1000);
  assert.deepEqual(link.asked.map((a) => a.request.kind), ["authenticate", "prepare"]);
  // Past the connect timeout (10 s from the connection), the preparation still within its bound.
  core.tick(T0 + 10_500);
  core.tick(T0 + 15_000);
  assert.equal(connack(link), undefined, "no refusal at the connect timeout");
  assert.equal(link.closing, false, "still open while its session is prepared");
  // The cluster's wait ended (its 11 s handoff wait, then the session read): the login goes on.
  core.decided(preparation(link), true, T0 + 15_500);
  assert.equal(connack(link)?.reasonCode, ConnackReturnCode.ACCEPTED);
  assert.equal(link.closing, false);
  assert.ok(core.sessions.has("slow"));
  // From now on the keepalive bounds the connection (30 s, x 1.5) [MQTT-3.1.2-24].
  core.tick(T0 + 15_500 + 45_000);
  assert.equal(link.closing, false);
  core.tick(T0 + 15_500 + 45_001);
  assert.equal(link.closed?.code, ReasonCode.KEEP_ALIVE_TIMEOUT);
});

test("63 prepare timeout: a preparation that never ends is refused as server busy at its bound (0x89 at 5.0, return code 3 at 3.1.1), then closed [MQTT-3.2.2-6] [MQTT-3.2.2-7]", () => {
  for (const protocolVersion of [4, 5] as const) {
    const core = clusterCore();
    const link = login(core, `stuck${protocolVersion}`, T0 + 1000, { protocolVersion });
    const id = preparation(link);
    // The bound counts from the preparation's start (1 s after the connection).
    core.tick(T0 + 1000 + 19_000 - 1);
    assert.equal(connack(link), undefined, "nothing before the preparation's bound");
    assert.equal(link.closing, false);
    core.tick(T0 + 1000 + 19_000);
    const refusal = connack(link);
    assert.equal(
      refusal?.reasonCode,
      protocolVersion === 5 ? ReasonCode.SERVER_BUSY : ConnackReturnCode.SERVER_UNAVAILABLE,
    );
    assert.equal(refusal?.sessionPresent, false);
    if (protocolVersion === 5) {
      assert.equal(refusal?.properties?.reasonString, "session not prepared in time");
    }
    assert.equal(link.closed?.how, "close", "the CONNACK is written before the close");
    // A late answer finds nothing to decide: no second CONNACK, no session.
    core.decided(id, true, T0 + 25_000);
    assert.equal(link.sent.filter((p) => p.type === PacketType.CONNACK).length, 1);
    assert.equal(core.sessions.size, 0);
  }
});

test("63 prepare timeout: without its own bound the preparation gets the connect timeout's length from its start", () => {
  const core = testCore({ connectTimeout: 10 }, { policy: { prepareLogin: () => undefined } });
  const link = login(core, "plain", T0 + 4000);
  core.tick(T0 + 10_500);
  assert.equal(link.closing, false, "not refused 10 s after the connection");
  core.tick(T0 + 4000 + 10_000);
  assert.equal(connack(link)?.reasonCode, ConnackReturnCode.SERVER_UNAVAILABLE);
  assert.equal(link.closing, true);
});

test("63 prepare timeout: the connect timeout still bounds the credentials check; a login not checked by then gets return code 3 and its session is never prepared", () => {
  const core = clusterCore();
  const link = login(core, "unchecked", T0 + 1000, { holdAuth: true });
  assert.deepEqual(link.asked.map((a) => a.request.kind), ["authenticate"]);
  core.tick(T0 + 10_000);
  assert.equal(link.closing, false);
  core.tick(T0 + 10_001);
  assert.equal(connack(link)?.reasonCode, ConnackReturnCode.SERVER_UNAVAILABLE);
  assert.equal(link.closing, true);
  // A late yes does not go on to the preparation.
  core.decided(link.asked[0]!.id, true, T0 + 11_000);
  assert.deepEqual(link.asked.map((a) => a.request.kind), ["authenticate"]);
  assert.equal(core.sessions.size, 0);
});

test("63 prepare timeout: a client that leaves while its session is prepared: nothing more is done on its connection when the preparation ends or its bound passes, and its next login is prepared afresh", () => {
  const core = clusterCore();
  const gone = login(core, "left", T0 + 1000);
  const id = preparation(gone);
  core.detach(gone, T0 + 5000);
  const trace = [...gone.trace];
  core.tick(T0 + 1000 + 19_000);
  core.decided(id, true, T0 + 21_000);
  assert.deepEqual(gone.trace, trace, "no action on the closed connection");
  assert.equal(core.sessions.has("left"), false);
  assert.equal(core.links.size, 0);
  // The client comes back: a new login, prepared and accepted.
  const back = login(core, "left", T0 + 22_000, { attached: T0 + 21_500 });
  core.decided(preparation(back), true, T0 + 23_000);
  assert.equal(connack(back)?.reasonCode, ConnackReturnCode.ACCEPTED);
  assert.ok(core.sessions.has("left"));
});

/**
 * MQTT 5.0 enhanced authentication (§4.12) in the core, with FakeLink and an injected clock: the
 * plugin's steps are `ask` actions of kind `"enhanced"`, answered at once or later.
 *
 * @module
 */

import assert from "node:assert/strict";
import { enhancedDecision } from "../../../src/broker/enhanced_auth.ts";
import type { DecisionAnswer, DecisionRequest } from "../../../src/broker/decision.ts";
import { PacketType } from "../../../src/packet/mod.ts";
import type { Packet } from "../../../src/packet/mod.ts";
import type { TestCore } from "../../_helpers/core.ts";
import { FakeLink, T0, testCore } from "../../_helpers/core.ts";
import { connectPacket } from "../../_helpers/test_client.ts";

const encoder = new TextEncoder();

function auth(code: number, method = "m"): Packet {
  return { type: PacketType.AUTH, reasonCode: code, properties: { authenticationMethod: method } };
}

/** One challenge, then success; a step whose data is "no" is refused with `refuse`. */
function oneChallenge(refuse = 0x87) {
  return (request: DecisionRequest): DecisionAnswer | undefined => {
    if (request.kind !== "enhanced") return true;
    const step = request.step;
    if (step.step === 0) return enhancedDecision({ continue: encoder.encode("c") });
    return enhancedDecision(
      new TextDecoder().decode(step.data) === "no" ? { refuse } : { success: true },
    );
  };
}

function core5(options: { hookTimeout?: number } = {}): TestCore {
  return testCore(options, {
    policy: { hasPublishHooks: false, offersAuthenticationMethod: (m) => m === "m" },
  });
}

/** A CONNECT with method "m" on a new link whose plugin answers with `answer`. */
function connecting(core: TestCore, answer: FakeLink["answer"]): FakeLink {
  const link = new FakeLink();
  link.answer = answer;
  core.attach(link, T0);
  core.handle(
    link,
    connectPacket({ protocolVersion: 5, clientId: "e", properties: { authenticationMethod: "m" } }),
    T0,
  );
  return link;
}

/** A link logged in with method "m" after one challenge. */
function loggedIn(core: TestCore): FakeLink {
  const link = new FakeLink();
  link.answer = oneChallenge(0x86);
  core.attach(link, T0);
  core.handle(
    link,
    connectPacket({
      protocolVersion: 5,
      clientId: "e",
      keepAlive: 10,
      properties: { authenticationMethod: "m" },
    }),
    T0,
  );
  assert.deepEqual(link.sent.map((p) => p.type), [PacketType.AUTH]);
  core.handle(link, auth(0x18), T0 + 1);
  const connack = link.sent[1];
  assert.equal(connack?.type, PacketType.CONNACK);
  assert.equal(
    connack?.type === PacketType.CONNACK && connack.properties?.authenticationMethod,
    "m",
  );
  return link;
}

Deno.test("core enhanced auth: packets sent during a re-authentication wait behind the plugin's answer, then take effect in order [MQTT-4.12.0-5]", () => {
  const core = core5();
  const link = loggedIn(core);
  const answer = link.answer;
  link.answer = (r) => r.kind === "enhanced" && r.step.step === 1 ? undefined : answer(r);
  core.handle(link, auth(0x19), T0 + 2);
  assert.equal(link.sent.at(-1)?.type, PacketType.AUTH, "the challenge");
  core.handle(link, auth(0x18), T0 + 3);
  core.handle(link, { type: PacketType.PINGREQ }, T0 + 4);
  assert.equal(core.waiting(link), true);
  assert.equal(link.sent.at(-1)?.type, PacketType.AUTH, "the PINGREQ waits");
  const pending = link.asked.at(-1)!;
  assert.equal(pending.request.kind === "enhanced" && pending.request.step.reauthenticate, true);
  core.decided(pending.id, enhancedDecision({ success: true }), T0 + 5);
  const [ok, pong] = link.sent.slice(-2);
  assert.equal(ok?.type === PacketType.AUTH && (ok.reasonCode ?? 0), 0);
  assert.equal(pong?.type, PacketType.PINGRESP);
  assert.equal(link.closed, undefined);
});

Deno.test("core enhanced auth: a refused re-authentication closes with the plugin's code when DISCONNECT has it, else 0x87 [MQTT-4.12.1-2]", () => {
  const core = core5();
  const link = loggedIn(core);
  core.handle(link, auth(0x19), T0 + 2);
  core.handle(link, {
    type: PacketType.AUTH,
    reasonCode: 0x18,
    properties: { authenticationMethod: "m", authenticationData: encoder.encode("no") },
  }, T0 + 3);
  // 0x86 is a CONNACK code only: the DISCONNECT says 0x87 not authorized.
  assert.equal(link.closed?.code, 0x87);
});

Deno.test("core enhanced auth: an AUTH 0x19 during a re-authentication, or an AUTH 0x18 nobody asked for, is a protocol error", () => {
  const core = core5();
  const link = loggedIn(core);
  core.handle(link, auth(0x18), T0 + 2);
  assert.equal(link.closed?.code, 0x82);

  const other = core5();
  const l2 = loggedIn(other);
  other.handle(l2, auth(0x19), T0 + 2);
  other.handle(l2, auth(0x19), T0 + 3);
  assert.equal(l2.closed?.code, 0x82);
});

Deno.test("core enhanced auth: a plugin that never answers is bounded by the connect timeout when that is shorter than the hook timeout: CONNACK 0x88", () => {
  const core = core5({ hookTimeout: 60_000 });
  const link = new FakeLink();
  link.answer = () => undefined;
  core.attach(link, T0);
  core.handle(
    link,
    connectPacket({
      protocolVersion: 5,
      clientId: "slow",
      properties: { authenticationMethod: "m" },
    }),
    T0,
  );
  core.tick(T0 + 9_000);
  assert.equal(link.closed, undefined);
  core.tick(T0 + 10_001);
  // Its step was not answered: CONNACK 0x88 Server unavailable, as at the hook timeout.
  assert.equal((link.closed as FakeLink["closed"])?.how, "close");
  assert.deepEqual(link.sent.map((p) => [p.type, (p as { reasonCode?: number }).reasonCode]), [
    [PacketType.CONNACK, 0x88],
  ]);
});

Deno.test("core enhanced auth: a plugin that does not answer the first step within hookTimeout refuses the login with CONNACK 0x88; its late answer is ignored", () => {
  const core = core5({ hookTimeout: 2_000 });
  const link = connecting(core, () => undefined);
  const pending = link.asked.at(-1)!;
  assert.equal(pending.request.kind, "enhanced");
  core.tick(T0 + 1_999);
  assert.equal(link.closed, undefined);
  assert.equal(link.sent.length, 0);
  core.tick(T0 + 2_000);
  const connack = link.sent[0];
  assert.equal(connack?.type, PacketType.CONNACK);
  assert.equal(connack?.type === PacketType.CONNACK && connack.reasonCode, 0x88);
  assert.equal(
    connack?.type === PacketType.CONNACK && connack.properties?.reasonString,
    "authentication plugin did not answer in time",
  );
  assert.notEqual(link.closed, undefined, "closed after the CONNACK");
  core.decided(pending.id, enhancedDecision({ success: true }), T0 + 2_500);
  assert.equal(link.sent.length, 1, "nothing after the refusal");
});

Deno.test("core enhanced auth: the hook timeout covers every step, each from its own start", () => {
  const core = core5({ hookTimeout: 2_000 });
  // Step 0 answers at once with a challenge; step 1 never answers.
  const link = connecting(
    core,
    (r) =>
      r.kind === "enhanced" && r.step.step === 0
        ? enhancedDecision({ continue: encoder.encode("c") })
        : undefined,
  );
  assert.deepEqual(link.sent.map((p) => p.type), [PacketType.AUTH]);
  core.tick(T0 + 1_500);
  core.handle(link, auth(0x18), T0 + 1_500);
  core.tick(T0 + 3_000);
  assert.equal(link.closed, undefined, "step 1 started at 1.5 s: 2 s from then");
  core.tick(T0 + 3_500);
  const connack = link.sent.at(-1);
  assert.equal(connack?.type === PacketType.CONNACK && connack.reasonCode, 0x88);
});

Deno.test("core enhanced auth: a re-authentication whose plugin does not answer within hookTimeout ends with DISCONNECT 0x89; the packets behind it are dropped", () => {
  const core = core5({ hookTimeout: 2_000 });
  const link = loggedIn(core);
  link.answer = () => undefined;
  core.handle(link, auth(0x19), T0 + 10);
  core.handle(link, { type: PacketType.PINGREQ }, T0 + 20);
  core.tick(T0 + 2_009);
  assert.equal(link.closed, undefined);
  assert.equal(core.waiting(link), true);
  core.tick(T0 + 2_010);
  // Server unavailable is no DISCONNECT code; server busy says the broker could not go on.
  assert.equal((link.closed as FakeLink["closed"])?.code, 0x89);
  assert.ok(!link.sent.some((p) => p.type === PacketType.PINGRESP));
});

Deno.test("core enhanced auth: an answer before the hook timeout clears it", () => {
  const core = core5({ hookTimeout: 2_000 });
  const link = connecting(core, () => undefined);
  const pending = link.asked.at(-1)!;
  core.decided(pending.id, enhancedDecision({ success: true }), T0 + 1_000);
  assert.equal(link.sent[0]?.type === PacketType.CONNACK && link.sent[0].reasonCode, 0);
  core.tick(T0 + 5_000);
  assert.equal(link.closed, undefined);
  // hookTimeout 0: no limit but the connect timeout.
  const patient = core5({ hookTimeout: 0 });
  const slow = connecting(patient, () => undefined);
  patient.tick(T0 + 9_999);
  assert.equal(slow.closed, undefined);
});

/**
 * Session preparation (a cluster node loading and claiming a client's session) as its own step of
 * a login, after authentication: the core asks it (`prepare`) only once the plugins accepted the
 * credentials and the will, and only when the policy has the hook; the failed-login budget is
 * settled before it, so a slow preparation holds no unit of it and a busy refusal from it is no
 * failed login. Driven with FakeLink and an injected clock: the preparation's answers are a real
 * policy's (`askPolicy`), given when the test lets them through.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ConnackReturnCode, PacketType, ReasonCode } from "../../src/packet/mod.ts";
import type { ConnackPacket } from "../../src/packet/mod.ts";
import {
  askPolicy,
  type DecisionAnswer,
  type DecisionRequest,
  startDecision,
} from "../../src/broker/decision.ts";
import type { PolicyHost, Refused } from "../../src/broker/policy.ts";
import { FakeLink, T0, type TestCore, testCore } from "../_helpers/core.ts";
import { connectPacket } from "../_helpers/test_client.ts";

const { test } = Deno;

const BUSY: Refused = {
  allowed: false,
  reasonCode: ReasonCode.SERVER_BUSY,
  reasonString: "session not loaded",
};

/**
 * A policy whose credential check answers at once (password "right" passes) and whose session
 * preparation is slow: each `prepareLogin` waits until the test releases it with an answer.
 */
function slowPreparation() {
  const waiting: ((refused: Refused | undefined) => void)[] = [];
  const prepared: string[] = [];
  const policy: Partial<PolicyHost> = {
    authenticate: (client) => new TextDecoder().decode(client.password) === "right",
    prepareLogin: (client) =>
      new Promise<Refused | undefined>((resolve) =>
        waiting.push((refused) => {
          prepared.push(client.clientId);
          resolve(refused);
        })
      ),
  };
  return { policy, waiting, prepared };
}

/**
 * Attaches a link and sends its CONNECT. Credential checks (and every other decision but the
 * preparation) are answered at once by `policy`; preparations are kept pending in `held`.
 */
function login(
  core: TestCore,
  policy: PolicyHost,
  held: { id: number; request: DecisionRequest }[],
  clientId: string,
  options: { password?: string; protocolVersion?: 4 | 5; clean?: boolean } = {},
): FakeLink {
  const link = new FakeLink(clientId);
  link.answer = (request) => {
    if (request.kind === "prepare") {
      held.push(link.asked.at(-1)!);
      return undefined;
    }
    const answer = askPolicy(policy, request);
    assert.ok(!(answer instanceof Promise), "credentials are answered at once here");
    return answer;
  };
  core.attach(link, T0);
  core.handle(
    link,
    connectPacket({
      clientId,
      username: "u",
      password: new TextEncoder().encode(options.password ?? "right"),
      protocolVersion: options.protocolVersion ?? 4,
      clean: options.clean ?? true,
    }),
    T0,
  );
  return link;
}

/** Gives the pending preparations the slow policy's answers, in order. */
async function release(
  core: TestCore,
  policy: PolicyHost,
  held: { id: number; request: DecisionRequest }[],
  waiting: ((refused: Refused | undefined) => void)[],
  refused: Refused | undefined,
): Promise<void> {
  for (const { id, request } of held.splice(0)) {
    const answer = askPolicy(policy, request);
    waiting.shift()!(refused);
    core.decided(id, await answer, T0 + 1);
  }
}

function connack(link: FakeLink): ConnackPacket | undefined {
  return link.sent.find((p): p is ConnackPacket => p.type === PacketType.CONNACK);
}

/** The full policy: the test core's defaults with `policy`'s hooks. */
function full(policy: Partial<PolicyHost>): PolicyHost {
  return {
    hasPublishHooks: false,
    hasSubscribeHooks: false,
    hasReceiveHooks: false,
    authenticate: () => true,
    authorizePublish: () => true,
    authorizeSubscribe: () => true,
    authorizeReceive: () => true,
    ...policy,
  };
}

test("58 login prepare: more concurrent logins from one source than max_login_failures are all accepted once prepared", async () => {
  const { policy, waiting, prepared } = slowPreparation();
  const core = testCore({ maxLoginFailures: 3, loginFailureWindow: 60 }, { policy });
  const host = full(policy);
  const held: { id: number; request: DecisionRequest }[] = [];
  // Ten clients behind one address (FakeLink's 127.0.0.1), their sessions loading meanwhile.
  const links = Array.from({ length: 10 }, (_, i) => login(core, host, held, `c${i}`));
  for (const link of links) {
    assert.deepEqual(link.asked.map((a) => a.request.kind), ["authenticate", "prepare"]);
    assert.equal(connack(link), undefined, "no answer before the session is prepared");
    assert.equal(link.closing, false, "not refused while its session is prepared");
  }
  assert.equal(held.length, 10);
  await release(core, host, held, waiting, undefined);
  assert.deepEqual(prepared, links.map((_, i) => `c${i}`));
  for (const link of links) {
    assert.equal(connack(link)?.reasonCode, ConnackReturnCode.ACCEPTED);
    assert.equal(link.closing, false);
  }
  assert.equal(core.sessions.size, 10);
  // The budget is whole: three wrong passwords are still checked (and refused as such) before the
  // source is throttled.
  for (let i = 0; i < 3; i++) {
    const wrong = login(core, host, held, `w${i}`, { password: "wrong" });
    assert.equal(connack(wrong)?.reasonCode, ConnackReturnCode.BAD_USERNAME_OR_PASSWORD);
  }
  const throttled = login(core, host, held, "w3", { password: "wrong" });
  assert.equal(connack(throttled)?.reasonCode, ConnackReturnCode.SERVER_UNAVAILABLE);
  assert.deepEqual(throttled.asked, [], "a throttled login is not checked");
});

test("58 login prepare: a busy refusal from the preparation refuses the CONNECT (0x89) and spends no login budget", async () => {
  const { policy, waiting } = slowPreparation();
  const core = testCore({ maxLoginFailures: 3, loginFailureWindow: 60 }, { policy });
  const host = full(policy);
  const held: { id: number; request: DecisionRequest }[] = [];
  // Twice the budget, each refused as server busy by the preparation.
  const busy = Array.from(
    { length: 6 },
    (_, i) => login(core, host, held, `b${i}`, { protocolVersion: i % 2 === 0 ? 5 : 4 }),
  );
  await release(core, host, held, waiting, BUSY);
  busy.forEach((link, i) => {
    const refusal = connack(link);
    assert.equal(
      refusal?.reasonCode,
      i % 2 === 0 ? ReasonCode.SERVER_BUSY : ConnackReturnCode.SERVER_UNAVAILABLE,
    );
    assert.equal(refusal?.sessionPresent, false);
    assert.equal(link.closing, true);
  });
  assert.equal(core.sessions.size, 0, "a refused login makes no session");
  // Not one unit spent: the next logins from the source are checked, and three wrong passwords
  // are told so before the fourth is throttled.
  const ok = login(core, host, held, "ok");
  assert.deepEqual(ok.asked.map((a) => a.request.kind), ["authenticate", "prepare"]);
  await release(core, host, held, waiting, undefined);
  assert.equal(connack(ok)?.reasonCode, ConnackReturnCode.ACCEPTED);
  for (let i = 0; i < 3; i++) {
    const wrong = login(core, host, held, `w${i}`, { password: "wrong" });
    assert.equal(connack(wrong)?.reasonCode, ConnackReturnCode.BAD_USERNAME_OR_PASSWORD);
  }
  const throttled = login(core, host, held, "w3", { password: "wrong" });
  assert.equal(connack(throttled)?.reasonCode, ConnackReturnCode.SERVER_UNAVAILABLE);
});

test("58 login prepare: a CONNECT with wrong credentials never asks to prepare (take over) the session [MQTT-3.1.4-2] [MQTT-3.1.4-3]", () => {
  const { policy, prepared } = slowPreparation();
  const core = testCore({}, { policy });
  const host = full(policy);
  const held: { id: number; request: DecisionRequest }[] = [];
  const wrong = login(core, host, held, "x", { password: "wrong", clean: false });
  assert.deepEqual(wrong.asked.map((a) => a.request.kind), ["authenticate"]);
  assert.equal(connack(wrong)?.reasonCode, ConnackReturnCode.BAD_USERNAME_OR_PASSWORD);
  assert.deepEqual(held, []);
  assert.deepEqual(prepared, []);
});

test("58 login prepare: a will the plugins refuse is refused before the session is prepared", () => {
  const { policy } = slowPreparation();
  const core = testCore({}, { policy: { ...policy, hasPublishHooks: true } });
  const host = full({ ...policy, hasPublishHooks: true, authorizePublish: () => false });
  const held: { id: number; request: DecisionRequest }[] = [];
  const link = new FakeLink("x");
  link.answer = (request) => {
    if (request.kind === "prepare") held.push(link.asked.at(-1)!);
    return request.kind === "prepare" ? undefined : askPolicy(host, request) as boolean;
  };
  core.attach(link, T0);
  core.handle(
    link,
    connectPacket({
      clientId: "x",
      username: "u",
      password: new TextEncoder().encode("right"),
      will: { topic: "w", payload: new Uint8Array(), qos: 0, retain: false },
    }),
    T0,
  );
  assert.deepEqual(link.asked.map((a) => a.request.kind), ["authenticate", "will"]);
  assert.equal(connack(link)?.reasonCode, ConnackReturnCode.NOT_AUTHORIZED);
  assert.deepEqual(held, []);
});

test("58 login prepare: without the hook (a single broker) a login asks nothing more than its credentials", () => {
  const core = testCore();
  const link = new FakeLink("solo");
  core.attach(link, T0);
  core.handle(link, connectPacket({ clientId: "solo" }), T0);
  assert.deepEqual(link.asked.map((a) => a.request.kind), ["authenticate"]);
  assert.equal(connack(link)?.reasonCode, ConnackReturnCode.ACCEPTED);
});

test("58 login prepare: a connection closed while its session is prepared does not log in when the preparation answers", async () => {
  const { policy, waiting } = slowPreparation();
  const core = testCore({}, { policy });
  const host = full(policy);
  const held: { id: number; request: DecisionRequest }[] = [];
  const link = login(core, host, held, "gone");
  assert.equal(held.length, 1);
  core.detach(link, T0 + 1);
  await release(core, host, held, waiting, undefined);
  assert.equal(connack(link), undefined);
  assert.equal(core.sessions.has("gone"), false);
});

test("58 login prepare: askPolicy maps the hook's answer: nothing to go on, a refusal as it is, a throw as a refusal", async () => {
  const client = {
    clientId: "c",
    remoteAddress: "",
    transport: "tcp" as const,
    protocolVersion: 4 as const,
    anonymous: true,
  };
  assert.equal(
    askPolicy(full({ prepareLogin: () => undefined }), { kind: "prepare", client }),
    true,
  );
  assert.equal(
    await askPolicy(full({ prepareLogin: () => Promise.resolve(undefined) }), {
      kind: "prepare",
      client,
    }),
    true,
  );
  assert.deepEqual(
    await askPolicy(full({ prepareLogin: () => Promise.resolve(BUSY) }), {
      kind: "prepare",
      client,
    }),
    BUSY,
  );
  const logged: string[] = [];
  const throwing = full({
    prepareLogin: () => {
      throw new Error("no store");
    },
  });
  assert.equal(
    startDecision(throwing, { kind: "prepare", client }, { error: (l) => logged.push(l) }),
    false,
  );
  assert.deepEqual(logged, ["Preparing the session of c failed: no store"]);
});

test("58 login prepare: with MQTT 5.0 enhanced authentication the session is prepared only once the exchange succeeded, never after a refused one", () => {
  for (const data of ["yes", "no"]) {
    const { policy } = slowPreparation();
    const core = testCore({}, {
      policy: { ...policy, offersAuthenticationMethod: (m) => m === "m" },
    });
    const host = full({
      ...policy,
      offersAuthenticationMethod: (m) => m === "m",
      authenticateEnhanced: (step) =>
        step.step === 0
          ? { continue: new Uint8Array([1]) }
          : new TextDecoder().decode(step.data) === "yes"
          ? { success: true }
          : { refuse: ReasonCode.BAD_USER_NAME_OR_PASSWORD },
    });
    const held: { id: number; request: DecisionRequest }[] = [];
    const link = new FakeLink("e");
    link.answer = (request) => {
      if (request.kind === "prepare") {
        held.push(link.asked.at(-1)!);
        return undefined;
      }
      return askPolicy(host, request) as DecisionAnswer;
    };
    core.attach(link, T0);
    core.handle(
      link,
      connectPacket({
        protocolVersion: 5,
        clientId: "e",
        clean: false,
        properties: { authenticationMethod: "m" },
      }),
      T0,
    );
    assert.deepEqual(link.asked.map((a) => a.request.kind), ["enhanced"], "no preparation yet");
    core.handle(link, {
      type: PacketType.AUTH,
      reasonCode: ReasonCode.CONTINUE_AUTHENTICATION,
      properties: { authenticationMethod: "m", authenticationData: new TextEncoder().encode(data) },
    }, T0 + 1);
    if (data === "yes") {
      assert.deepEqual(link.asked.map((a) => a.request.kind), ["enhanced", "enhanced", "prepare"]);
      assert.equal(connack(link), undefined, "CONNACK waits for the session");
      core.decided(held[0]!.id, true, T0 + 2);
      assert.equal(connack(link)?.reasonCode, ReasonCode.SUCCESS);
    } else {
      assert.deepEqual(link.asked.map((a) => a.request.kind), ["enhanced", "enhanced"]);
      assert.equal(connack(link)?.reasonCode, ReasonCode.BAD_USER_NAME_OR_PASSWORD);
      assert.deepEqual(held, []);
    }
  }
});

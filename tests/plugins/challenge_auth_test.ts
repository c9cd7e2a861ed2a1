import assert from "node:assert/strict";
import { PluginHost } from "../../src/broker/plugin_host.ts";
import { ChallengeAuthPlugin, challengeResponse } from "../../src/plugins/challenge_auth.ts";
import type { EnhancedAuthAnswer, Logger } from "../../src/plugins/types.ts";
import { client } from "./_helpers.ts";

const encoder = new TextEncoder();
const logger: Logger = { debug() {}, info() {}, warning() {}, error() {} };

/** Runs step 0 for `user`, then answers the challenge with `secret`. */
async function exchange(
  plugin: ChallengeAuthPlugin,
  user: string | undefined,
  secret: string,
): Promise<EnhancedAuthAnswer> {
  const base = {
    method: "x-hmac-sha256",
    client: { ...client(), protocolVersion: 5 as const },
    reauthenticate: false,
  };
  const first = await plugin.authenticateEnhanced({
    ...base,
    step: 0,
    data: user === undefined ? undefined : encoder.encode(user),
  });
  if (!("continue" in first)) throw new Error("Expected a challenge");
  assert.equal(first.continue.length, 32, "a 32-byte nonce");
  return await plugin.authenticateEnhanced({
    ...base,
    step: 1,
    data: await challengeResponse(secret, first.continue),
    state: first.state,
  });
}

Deno.test("ChallengeAuthPlugin accepts the HMAC-SHA-256 of its nonce under the user's secret", async () => {
  const plugin = new ChallengeAuthPlugin({ secrets: { alice: "s3cret" } });
  assert.deepEqual(plugin.authenticationMethods, ["x-hmac-sha256"]);
  assert.deepEqual(await exchange(plugin, "alice", "s3cret"), { success: true });
});

Deno.test("ChallengeAuthPlugin refuses a wrong secret and an unknown user alike, after the challenge, with 0x86", async () => {
  const plugin = new ChallengeAuthPlugin({ secrets: { alice: "s3cret" } });
  const wrong = await exchange(plugin, "alice", "guess");
  const unknown = await exchange(plugin, "mallory", "s3cret");
  const nobody = await exchange(plugin, undefined, "s3cret");
  for (const answer of [wrong, unknown, nobody]) {
    assert.ok("refuse" in answer && answer.refuse === 0x86, JSON.stringify(answer));
  }
});

Deno.test("ChallengeAuthPlugin sends a fresh nonce each time and takes its method name from options", async () => {
  const plugin = new ChallengeAuthPlugin({ method: "x-custom", secrets: {} });
  assert.deepEqual(plugin.authenticationMethods, ["x-custom"]);
  const step0 = { method: "x-custom", client: client(), step: 0, reauthenticate: false };
  const a = await plugin.authenticateEnhanced(step0);
  const b = await plugin.authenticateEnhanced(step0);
  assert.ok("continue" in a && "continue" in b);
  assert.notDeepEqual(a.continue, b.continue);
});

Deno.test("PluginHost runs an authentication method with the first plugin that names it", async () => {
  const host = new PluginHost([
    { name: "a", authenticationMethods: ["m"], authenticateEnhanced: () => ({ success: true }) },
    {
      name: "b",
      authenticationMethods: ["m", "n"],
      authenticateEnhanced: () => ({ refuse: 0x87 }),
    },
    // Naming a method without the hook does not offer it.
    { name: "c", authenticationMethods: ["o"] },
  ], { logger });
  assert.equal(host.offersAuthenticationMethod("m"), true);
  assert.equal(host.offersAuthenticationMethod("n"), true);
  assert.equal(host.offersAuthenticationMethod("o"), false);
  assert.equal(host.offersAuthenticationMethod("SCRAM-SHA-1"), false);
  const step = { client: client(), step: 0, reauthenticate: false };
  assert.deepEqual(await host.authenticateEnhanced({ ...step, method: "m" }), { success: true });
  assert.deepEqual(await host.authenticateEnhanced({ ...step, method: "n" }), { refuse: 0x87 });
  assert.equal(await host.authenticateEnhanced({ ...step, method: "o" }), undefined);
});

Deno.test("ChallengeAuthPlugin rejects an empty secret", () => {
  assert.throws(() => new ChallengeAuthPlugin({ secrets: { bob: "" } }), TypeError);
});

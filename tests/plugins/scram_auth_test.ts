import assert from "node:assert/strict";
import { ScramAuthPlugin, scramCredentials } from "../../src/plugins/scram_auth.ts";
import type { EnhancedAuthAnswer } from "../../src/plugins/types.ts";
import { client } from "./_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// RFC 7677 §3, the SCRAM-SHA-256 example exchange.
const SALT = Uint8Array.from(atob("W22ZaJ0SNY7soEsUEjb6gQ=="), (c) => c.charCodeAt(0));
const CLIENT_FIRST = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const SERVER_FIRST = `r=rOprNGfwEbeRWgbNEkqO${SERVER_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`;
const CLIENT_FINAL = `c=biws,r=rOprNGfwEbeRWgbNEkqO${SERVER_NONCE},` +
  "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const SERVER_FINAL = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

async function rfcPlugin(): Promise<ScramAuthPlugin> {
  return new ScramAuthPlugin({
    users: { user: await scramCredentials("pencil", { salt: SALT, iterations: 4096 }) },
    nonce: () => SERVER_NONCE,
  });
}

const base = {
  method: "SCRAM-SHA-256",
  client: { ...client(), protocolVersion: 5 as const },
  reauthenticate: false,
};

async function step0(plugin: ScramAuthPlugin, first = CLIENT_FIRST): Promise<EnhancedAuthAnswer> {
  return await plugin.authenticateEnhanced({ ...base, step: 0, data: encoder.encode(first) });
}

Deno.test("ScramAuthPlugin runs the RFC 7677 SCRAM-SHA-256 example exchange byte for byte", async () => {
  const plugin = await rfcPlugin();
  const first = await step0(plugin);
  assert.ok("continue" in first);
  assert.equal(decoder.decode(first.continue), SERVER_FIRST);
  const last = await plugin.authenticateEnhanced({
    ...base,
    step: 1,
    data: encoder.encode(CLIENT_FINAL),
    state: first.state,
  });
  assert.ok("success" in last, JSON.stringify(last));
  assert.equal(decoder.decode(last.data), SERVER_FINAL);
});

Deno.test("ScramAuthPlugin refuses a wrong proof, an unknown user after its challenge, and channel binding, with 0x86", async () => {
  const plugin = await rfcPlugin();
  const first = await step0(plugin);
  assert.ok("continue" in first);
  const wrong = await plugin.authenticateEnhanced({
    ...base,
    step: 1,
    data: encoder.encode(CLIENT_FINAL.replace("p=dHzb", "p=dHzc")),
    state: first.state,
  });
  assert.ok("refuse" in wrong && wrong.refuse === 0x86);

  const unknown = await step0(plugin, "n,,n=mallory,r=abc");
  assert.ok("continue" in unknown, "an unknown user gets a challenge too");
  const final = `c=biws,r=abc${SERVER_NONCE},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=`;
  const refused = await plugin.authenticateEnhanced({
    ...base,
    step: 1,
    data: encoder.encode(final),
    state: unknown.state,
  });
  assert.ok("refuse" in refused && refused.refuse === 0x86);

  const bound = await step0(plugin, "p=tls-unique,,n=user,r=abc");
  assert.ok("refuse" in bound && bound.refuse === 0x86);
});

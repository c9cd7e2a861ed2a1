/**
 * The client's SCRAM-SHA-256 `auth` option against the broker's `ScramAuthPlugin`, step by step
 * (no socket): the exchange, the server signature check, and what it refuses from a server.
 *
 * @module
 */

import assert from "node:assert/strict";
import { scramSha256Auth } from "../../client.ts";
import { ScramAuthPlugin, scramCredentials } from "../../src/plugins/scram_auth.ts";
import type { EnhancedAuthRequest } from "../../src/plugins/types.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CLIENT = {
  clientId: "c",
  remoteAddress: "127.0.0.1:1",
  transport: "tcp" as const,
  protocolVersion: 5 as const,
  anonymous: true,
};

function step(n: number, data: Uint8Array | undefined, state?: unknown): EnhancedAuthRequest {
  return { method: "SCRAM-SHA-256", client: CLIENT, reauthenticate: false, step: n, data, state };
}

Deno.test("scramSha256Auth logs in with ScramAuthPlugin and checks its signature; a user name with , and = is escaped", async () => {
  const plugin = new ScramAuthPlugin({ users: { "a,b=c": await scramCredentials("pw") } });
  const auth = scramSha256Auth("a,b=c", "pw");
  const first = await auth.initial!(false);
  assert.match(decoder.decode(first), /^n,,n=a=2Cb=3Dc,r=/);
  const challenge = await plugin.authenticateEnhanced(step(0, first));
  assert.ok("continue" in challenge);
  const answer = await auth.challenge(challenge.continue, {});
  const last = await plugin.authenticateEnhanced(step(1, answer, challenge.state));
  assert.ok("success" in last, JSON.stringify(last));
  await auth.done!(last.data, {});
  // A server that does not hold the keys cannot sign: the client refuses it.
  await auth.initial!(true);
  const again = await plugin.authenticateEnhanced(step(0, await auth.initial!(true)));
  assert.ok("continue" in again);
  await auth.challenge(again.continue, {});
  assert.throws(() => auth.done!(encoder.encode("v=AAAA"), {}), /signature/);
  assert.throws(() => auth.done!(undefined, {}), /signature/);
});

Deno.test("scramSha256Auth refuses a server nonce that does not extend its own and an iteration count above its bound", async () => {
  const auth = scramSha256Auth("u", "pw", { maxIterations: 10_000 });
  const first = decoder.decode(await auth.initial!(false));
  const nonce = /r=(.*)$/.exec(first)![1]!;
  await assert.rejects(
    async () => await auth.challenge(encoder.encode("r=other,s=c2FsdA==,i=4096"), {}),
    /nonce/,
  );
  await assert.rejects(
    async () => await auth.challenge(encoder.encode(`r=${nonce}x,s=c2FsdA==,i=99999999`), {}),
    /iteration count 99999999 refused/,
  );
  assert.throws(() => scramSha256Auth("", "pw"), TypeError);
});

Deno.test("scramSha256Auth and ScramAuthPlugin prepare user names and passwords with SASLprep: the same login however it is typed (RFC 5802 §2.2, §5.1)", async () => {
  // Stored for "user" with the password "IX"; typed as full-width letters and ROMAN NUMERAL NINE
  // with a soft hyphen in front.
  const plugin = new ScramAuthPlugin({ users: { user: await scramCredentials("IX") } });
  const login = async (username: string, password: string) => {
    const auth = scramSha256Auth(username, password);
    const first = await auth.initial!(false);
    const challenge = await plugin.authenticateEnhanced(step(0, first));
    if (!("continue" in challenge)) return challenge;
    const answer = await auth.challenge(challenge.continue, {});
    return await plugin.authenticateEnhanced(step(1, answer, challenge.state));
  };
  assert.ok("success" in await login("\uFF55\uFF53\uFF45\uFF52", "\u00AD\u2168"));
  assert.ok("success" in await login("user", "I\u00ADX"));
  assert.deepEqual(await login("user", "IX "), {
    refuse: 0x86,
    reasonString: "SCRAM authentication failed",
  });
  // A user name SASLprep refuses, or one that is nothing once prepared, starts no exchange.
  assert.throws(() => scramSha256Auth("us\u0007er", "IX"), /U\+0007/);
  assert.throws(() => scramSha256Auth("\u00AD", "IX"), /empty/);
  // The broker refuses such a name sent by another client.
  const refused = await plugin.authenticateEnhanced(
    step(0, encoder.encode("n,,n=us\u0007er,r=abcdef")),
  );
  assert.deepEqual(refused, { refuse: 0x86, reasonString: "SCRAM authentication failed" });
});

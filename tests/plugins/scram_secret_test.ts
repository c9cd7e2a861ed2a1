/**
 * SCRAM-SHA-256 secrets in password files (RFC 5803 form), as `ScramAuthPlugin` and
 * `FileAuthPlugin` read them.
 *
 * @module
 */

import assert from "node:assert/strict";
import { identifyHash, verifyPassword } from "../../src/plugins/password_hash.ts";
import { ScramAuthPlugin, scramCredentials } from "../../src/plugins/scram_auth.ts";
import { formatScramSecret, parseScramSecret } from "../../src/plugins/scram_secret.ts";
import { parsePasswordFile } from "../../src/plugins/file_auth.ts";
import { client, context } from "./_helpers.ts";
import { tempDir } from "../_helpers/temp_dir.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// RFC 7677 §3: user "user", password "pencil"; its keys as PostgreSQL stores them.
const SALT = Uint8Array.from(atob("W22ZaJ0SNY7soEsUEjb6gQ=="), (c) => c.charCodeAt(0));
const RFC_SECRET = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$" +
  "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
const SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const CLIENT_FINAL = `c=biws,r=rOprNGfwEbeRWgbNEkqO${SERVER_NONCE},` +
  "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";

Deno.test("formatScramSecret writes RFC 7677's user in RFC 5803 form, and parseScramSecret reads it back", async () => {
  const credentials = await scramCredentials("pencil", { salt: SALT, iterations: 4096 });
  assert.equal(formatScramSecret(credentials), RFC_SECRET);
  assert.deepEqual(parseScramSecret(RFC_SECRET), credentials);
  assert.equal(identifyHash(RFC_SECRET), "scram-sha-256");
});

Deno.test("parseScramSecret names what is wrong, without echoing the secret", () => {
  const keys =
    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
  const cases: [string, RegExp][] = [
    ["SCRAM-SHA-256$4096:c2FsdA==", /^malformed SCRAM-SHA-256 secret/],
    [`SCRAM-SHA-256$0:c2FsdA==$${keys}`, /^iteration count 0 is outside 1 to 10000000$/],
    [`SCRAM-SHA-256$99999999:c2FsdA==$${keys}`, /^iteration count 99999999 is outside/],
    ["SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA", /32 bytes each/],
    [`SCRAM-SHA-256$4096:c2F=sdA==$${keys}`, /malformed|base-64/],
  ];
  for (const [secret, message] of cases) {
    const parsed = parseScramSecret(secret);
    assert.equal(typeof parsed, "string", secret);
    assert.match(parsed as string, message);
    assert.ok(!(parsed as string).includes("c2FsdA"), "the secret is not echoed");
  }
});

Deno.test("verifyPassword checks a CONNECT password against a SCRAM-SHA-256 secret", async () => {
  assert.equal(await verifyPassword("pencil", RFC_SECRET), true);
  assert.equal(await verifyPassword("Pencil", RFC_SECRET), false);
  const lines: string[] = [];
  const logger = { debug() {}, info() {}, warning: (m: string) => lines.push(m), error() {} };
  assert.equal(await verifyPassword("pencil", "SCRAM-SHA-256$1:x", { logger }), false);
  assert.match(lines[0]!, /malformed SCRAM-SHA-256 secret/);
  const { users, issues } = parsePasswordFile(`user:${RFC_SECRET}\nbad:SCRAM-SHA-256$1:x\n`);
  assert.deepEqual([...users.keys()], ["user"]);
  assert.equal(issues[0]?.line, 2);
});

Deno.test("ScramAuthPlugin with a passwordFile runs the RFC 7677 exchange from the file, skips crypt hashes with a warning, and keeps its users when a reload fails", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/passwd`;
  // openssl passwd -6 -salt abc hello
  await Deno.writeTextFile(
    file,
    `# users\nuser:${RFC_SECRET}\nalice:$6$abc$34O8oRzThM7onc3iRQAcdWBv2H/sMGJlnsnG6uIkasTEvQkG9apXR/oBhPpqIepkul8wg.bf4wxoel67eJND./\n`,
  );
  const plugin = new ScramAuthPlugin({ passwordFile: file, nonce: () => SERVER_NONCE });
  const ctx = context();
  await plugin.init(ctx);
  assert.equal(plugin.userCount, 1);
  assert.ok(ctx.lines.some((l) => l.includes("cannot use the hashes of alice (sha512-crypt)")));
  const base = {
    method: "SCRAM-SHA-256",
    client: { ...client(), protocolVersion: 5 as const },
    reauthenticate: false,
  };
  const first = await plugin.authenticateEnhanced({
    ...base,
    step: 0,
    data: encoder.encode("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"),
  });
  assert.ok("continue" in first);
  const last = await plugin.authenticateEnhanced({
    ...base,
    step: 1,
    data: encoder.encode(CLIENT_FINAL),
    state: first.state,
  });
  assert.ok("success" in last);
  assert.equal(decoder.decode(last.data), "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");

  await Deno.remove(file);
  await plugin.reload();
  assert.equal(plugin.userCount, 1, "the users loaded before stay");
  assert.ok(ctx.lines.some((l) => l.startsWith("error: Cannot read password file")));
  await Deno.writeTextFile(file, "");
  await plugin.reload();
  assert.equal(plugin.userCount, 0, "a reload that works replaces the users");
});

Deno.test("ScramAuthPlugin refuses a CONNECT User Name that is not the SCRAM user (ACLs go by the User Name)", async () => {
  const plugin = new ScramAuthPlugin({ users: { user: await scramCredentials("pencil") } });
  const answer = await plugin.authenticateEnhanced({
    method: "SCRAM-SHA-256",
    client: { ...client("admin"), protocolVersion: 5 },
    reauthenticate: false,
    step: 0,
    data: encoder.encode("n,,n=user,r=abc"),
  });
  assert.ok("refuse" in answer && answer.refuse === 0x86);
  const same = await plugin.authenticateEnhanced({
    method: "SCRAM-SHA-256",
    client: { ...client("user"), protocolVersion: 5 },
    reauthenticate: false,
    step: 0,
    data: encoder.encode("n,,n=user,r=abc"),
  });
  assert.ok("continue" in same);
});

Deno.test("ScramAuthPlugin gives an unknown user a salt of its own, the same at each attempt (RFC 5802 §9)", async () => {
  const plugin = new ScramAuthPlugin({ users: { user: await scramCredentials("pencil") } });
  const salt = async (name: string) => {
    const answer = await plugin.authenticateEnhanced({
      method: "SCRAM-SHA-256",
      client: { ...client(), protocolVersion: 5 },
      reauthenticate: false,
      step: 0,
      data: encoder.encode(`n,,n=${name},r=abc`),
    });
    assert.ok("continue" in answer);
    return /,s=([^,]+),i=4096$/.exec(decoder.decode(answer.continue))![1]!;
  };
  assert.equal(await salt("ghost"), await salt("ghost"));
  assert.notEqual(await salt("ghost"), await salt("phantom"));
  assert.equal(atob(await salt("ghost")).length, 16, "as long as a real salt");
});

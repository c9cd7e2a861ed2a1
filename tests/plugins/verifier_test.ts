// The worker-backed password verifier behind FileAuthPlugin: answers like verifyPassword, bounds
// its queue, and answers false once closed.
import assert from "node:assert/strict";
import { MAX_PENDING_CHECKS, PasswordVerifier } from "../../src/plugins/_verifier.ts";
import { AuthUnavailableError } from "../../src/plugins/auth_unavailable.ts";
import type { Logger } from "../../src/plugins/types.ts";

const enc = new TextEncoder();
// `htpasswd -nbB -C 4 bob 'pässwörd ✓'` (apache2-utils 2.4.71): a cheap bcrypt.
const BOB = "$2y$04$bSyqxAaex0hBHuFlJwo7C.tDbCY1k/PX6b0/.Xf0Fjsh010vTxXRi";

function logCapture(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const push = (m: string) => void lines.push(m);
  return { lines, debug: push, info: push, warning: push, error: push };
}

Deno.test("PasswordVerifier answers as verifyPassword does, with its warnings", async () => {
  const verifier = new PasswordVerifier();
  try {
    assert.equal(await verifier.verify(enc.encode("pässwörd ✓"), BOB), true);
    assert.equal(await verifier.verify(enc.encode("pässwörd"), BOB), false);
    const log = logCapture();
    assert.equal(await verifier.verify(enc.encode("x"), "$1$md5$hash", log), false);
    assert.match(log.lines[0] ?? "", /^Cannot verify password: unsupported hash format "\$1\$"/);
    assert.equal(verifier.pending, 0);
  } finally {
    verifier.close();
  }
});

Deno.test("PasswordVerifier does not check, and says so, when MAX_PENDING_CHECKS checks already wait", async () => {
  const log = logCapture();
  const verifier = new PasswordVerifier(log);
  try {
    const right = enc.encode("pässwörd ✓");
    const queued = Array.from({ length: MAX_PENDING_CHECKS }, () => verifier.verify(right, BOB));
    assert.equal(verifier.pending, MAX_PENDING_CHECKS);
    // One too many: not checked (the broker answers "server unavailable"), and not logged one
    // line per refusal.
    await assert.rejects(verifier.verify(right, BOB), AuthUnavailableError);
    assert.equal(log.lines.length, 0);
    assert.deepEqual(new Set(await Promise.all(queued)), new Set([true]), "the queued ones pass");
    assert.equal(await verifier.verify(right, BOB), true, "room again");
  } finally {
    verifier.close();
  }
});

Deno.test("PasswordVerifier.close answers waiting and later checks with false", async () => {
  const verifier = new PasswordVerifier();
  const right = enc.encode("pässwörd ✓");
  const waiting = [verifier.verify(right, BOB), verifier.verify(right, BOB)];
  verifier.close();
  assert.deepEqual(await Promise.all(waiting), [false, false]);
  assert.equal(await verifier.verify(right, BOB), false);
  verifier.close(); // idempotent
});

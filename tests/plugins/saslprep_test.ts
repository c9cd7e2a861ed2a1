/**
 * SASLprep (RFC 4013) for SCRAM user names and passwords: the RFC's examples, the prohibited
 * characters and the bidirectional rule, and what SCRAM derives its keys from. The logins that
 * depend on it are in tests/client/scram_auth_test.ts.
 *
 * @module
 */

import assert from "node:assert/strict";
import { preparedPassword, saslprep } from "../../src/plugins/_saslprep.ts";

Deno.test("saslprep gives RFC 4013 §3's examples", () => {
  assert.equal(saslprep("I\u00ADX"), "IX", "SOFT HYPHEN mapped to nothing");
  assert.equal(saslprep("user"), "user", "no transformation");
  assert.equal(saslprep("USER"), "USER", "case preserved, will not match #2");
  assert.equal(saslprep("\u00AA"), "a", "output is NFKC, input in ISO 8859-1");
  assert.equal(saslprep("\u2168"), "IX", "output is NFKC, will match #1");
  assert.throws(() => saslprep("\u0007"), /prohibited character U\+0007/, "Error - prohibited");
  assert.throws(() => saslprep("\u0627\u0031"), TypeError, "Error - bidirectional check");
});

Deno.test("saslprep maps non-ASCII spaces to SPACE and the commonly-mapped-to-nothing characters away (RFC 4013 §2.1)", () => {
  for (const space of ["\u00A0", "\u1680", "\u2002", "\u200A", "\u202F", "\u205F", "\u3000"]) {
    assert.equal(saslprep(`a${space}b`), "a b", `U+${space.codePointAt(0)!.toString(16)}`);
  }
  for (
    const gone of ["\u034F", "\u1806", "\u180B", "\u200C", "\u200D", "\u2060", "\uFE0F", "\uFEFF"]
  ) {
    assert.equal(saslprep(`a${gone}b`), "ab", `U+${gone.codePointAt(0)!.toString(16)}`);
  }
  // NFKC: full-width letters, ligatures, composed accents.
  assert.equal(saslprep("\uFF55\uFF53\uFF45\uFF52"), "user");
  assert.equal(saslprep("\uFB01"), "fi");
  assert.equal(saslprep("e\u0301"), "\u00E9");
  assert.equal(saslprep(""), "");
});

Deno.test("saslprep refuses every class of prohibited output (RFC 4013 §2.3)", () => {
  const prohibited = [
    "\u0000", // C.2.1 ASCII control
    "\u007F",
    "\u0085", // C.2.2 non-ASCII control
    "\u2028",
    "\u{1D173}",
    "\uE000", // C.3 private use
    "\u{F0000}",
    "\uFDD0", // C.4 non-character
    "\uFFFF",
    "\u{10FFFF}",
    "\uD800", // C.5 a lone surrogate
    "\uFFFD", // C.6 inappropriate for plain text
    "\u2FF0", // C.7 inappropriate for canonical representation
    "\u200E", // C.8 change display properties
    "\u202E",
    "\u{E0001}", // C.9 tagging
    "\u{E0041}",
  ];
  for (const c of prohibited) {
    assert.throws(
      () => saslprep(`ok${c}`),
      TypeError,
      `U+${c.codePointAt(0)!.toString(16).toUpperCase()}`,
    );
  }
  // Unassigned code points are allowed in a query (RFC 4013 §2.5).
  assert.equal(saslprep("a\u0378b"), "a\u0378b");
});

Deno.test("saslprep applies the bidirectional rule: right-to-left text alone, starting and ending right-to-left (RFC 3454 §6)", () => {
  assert.equal(saslprep("\u05D0\u05D1"), "\u05D0\u05D1");
  assert.equal(saslprep("\u0627\u0031\u0628"), "\u0627\u0031\u0628", "a digit inside is allowed");
  assert.throws(() => saslprep("\u05D0a\u05D1"), /mixes/, "Hebrew with a Latin letter");
  assert.throws(() => saslprep("1\u05D0"), /start and end/);
  assert.equal(saslprep("abc123"), "abc123");
});

Deno.test("preparedPassword: SCRAM salts the SASLprep form; a password SASLprep refuses, or bytes that are not UTF-8, as they are", () => {
  const bytes = (s: string) => new TextEncoder().encode(s);
  assert.deepEqual(preparedPassword("\u2168"), bytes("IX"));
  assert.deepEqual(preparedPassword(bytes("I\u00ADX")), bytes("IX"));
  assert.deepEqual(preparedPassword("pencil"), bytes("pencil"));
  assert.deepEqual(preparedPassword("bell\u0007"), bytes("bell\u0007"));
  const latin1 = new Uint8Array([0x70, 0xe9, 0x6e]);
  assert.equal(preparedPassword(latin1), latin1);
});

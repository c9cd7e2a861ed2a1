/**
 * SASLprep (RFC 4013), the stringprep profile (RFC 3454) SCRAM applies to user names and
 * passwords (RFC 5802 §2.2, §5.1), so that a user types the same name and password however the
 * keyboard composes them: non-ASCII spaces become SPACE, "commonly mapped to nothing" characters
 * go (soft hyphen, zero-width joiners, variation selectors), the result is NFKC-normalised, and a
 * string holding a prohibited character (controls, private use, non-characters, surrogates,
 * tagging, display-changing characters) or breaking the bidirectional rule is refused.
 *
 * Strings are prepared as queries: code points unassigned in Unicode 3.2 are allowed (RFC 4013
 * §2.5, as RFC 5802 asks for user names). NFKC is the runtime's current Unicode; it agrees with
 * 3.2's on every character 3.2 had. The bidirectional rule uses RFC 3454's table D.1 for RandALCat
 * characters and the Unicode letter categories (outside right-to-left scripts) for LCat.
 *
 * @module
 */

/** C.1.2 non-ASCII space characters, mapped to SPACE (§2.1). U+200B too, as libidn does. */
const NON_ASCII_SPACE = /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/gu;

/** B.1 commonly mapped to nothing (§2.1). */
const MAPPED_TO_NOTHING =
  /[\u00AD\u034F\u1806\u180B-\u180D\u200C\u200D\u2060\uFE00-\uFE0F\uFEFF]/gu;

/**
 * Prohibited output (§2.3): C.1.2 (none left after mapping, but NFKC must not bring one back),
 * C.2.1 and C.2.2 controls, C.3 private use, C.4 non-characters, C.5 surrogates (a lone one in a
 * JavaScript string), C.6 inappropriate for plain text, C.7 for canonical representation, C.8
 * change display properties or deprecated, C.9 tagging characters.
 */
const PROHIBITED = new RegExp(
  "[" +
    "\\u00A0\\u1680\\u2000-\\u200B\\u202F\\u205F\\u3000" + // C.1.2
    "\\u0000-\\u001F\\u007F" + // C.2.1
    "\\u0080-\\u009F\\u06DD\\u070F\\u180E\\u200C\\u200D\\u2028\\u2029\\u2060-\\u2063" +
    "\\u206A-\\u206F\\uFEFF\\uFFF9-\\uFFFC\\u{1D173}-\\u{1D17A}" + // C.2.2
    "\\uE000-\\uF8FF\\u{F0000}-\\u{FFFFD}\\u{100000}-\\u{10FFFD}" + // C.3
    "\\uFDD0-\\uFDEF\\uFFFE\\uFFFF\\u{1FFFE}\\u{1FFFF}\\u{2FFFE}\\u{2FFFF}\\u{3FFFE}\\u{3FFFF}" +
    "\\u{4FFFE}\\u{4FFFF}\\u{5FFFE}\\u{5FFFF}\\u{6FFFE}\\u{6FFFF}\\u{7FFFE}\\u{7FFFF}" +
    "\\u{8FFFE}\\u{8FFFF}\\u{9FFFE}\\u{9FFFF}\\u{AFFFE}\\u{AFFFF}\\u{BFFFE}\\u{BFFFF}" +
    "\\u{CFFFE}\\u{CFFFF}\\u{DFFFE}\\u{DFFFF}\\u{EFFFE}\\u{EFFFF}\\u{FFFFE}\\u{FFFFF}" +
    "\\u{10FFFE}\\u{10FFFF}" + // C.4
    "\\p{Cs}" + // C.5: a surrogate not paired
    "\\uFFF9-\\uFFFD" + // C.6
    "\\u2FF0-\\u2FFB" + // C.7
    "\\u0340\\u0341\\u200E\\u200F\\u202A-\\u202E\\u206A-\\u206F" + // C.8
    "\\u{E0001}\\u{E0020}-\\u{E007F}" + // C.9
    "]",
  "u",
);

/** RFC 3454 D.1: characters with bidirectional property R or AL (RandALCat). */
const RAND_AL_CAT = new RegExp(
  "[\\u05BE\\u05C0\\u05C3\\u05D0-\\u05EA\\u05F0-\\u05F4\\u061B\\u061F\\u0621-\\u063A" +
    "\\u0640-\\u064A\\u066D-\\u066F\\u0671-\\u06D5\\u06DD\\u06E5\\u06E6\\u06FA-\\u06FE" +
    "\\u0700-\\u070D\\u0710\\u0712-\\u072C\\u0780-\\u07A5\\u07B1\\u200F\\uFB1D\\uFB1F-\\uFB28" +
    "\\uFB2A-\\uFB36\\uFB38-\\uFB3C\\uFB3E\\uFB40\\uFB41\\uFB43\\uFB44\\uFB46-\\uFBB1" +
    "\\uFBD3-\\uFD3D\\uFD50-\\uFD8F\\uFD92-\\uFDC7\\uFDF0-\\uFDFC\\uFE70-\\uFE74\\uFE76-\\uFEFC]",
  "u",
);

/** LCat (D.2, bidirectional property L): letters and spacing marks of left-to-right scripts. */
const L_CAT = /[\p{L}\p{Mc}\p{Nl}]/u;
const RTL_SCRIPT =
  /[\p{Script=Hebrew}\p{Script=Arabic}\p{Script=Syriac}\p{Script=Thaana}\p{Script=Nko}\p{Script=Samaritan}\p{Script=Mandaic}\p{Script=Adlam}]/u;

/**
 * Prepares a user name or password with SASLprep (RFC 4013), as a query string.
 *
 * @param input the string as typed
 * @returns the prepared string
 * @throws {TypeError} when it holds a prohibited character or breaks the bidirectional rule
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { saslprep } from "./_saslprep.ts";
 *
 * assert.equal(saslprep("I\u00ADX"), "IX"); // soft hyphen mapped to nothing
 * assert.equal(saslprep("\u2168"), "IX"); // NFKC: ROMAN NUMERAL NINE
 * assert.equal(saslprep("a\u00A0b"), "a b"); // non-ASCII space
 * assert.throws(() => saslprep("\u0007"), TypeError); // a control character
 * ```
 */
export function saslprep(input: string): string {
  const mapped = input.replace(NON_ASCII_SPACE, " ").replace(MAPPED_TO_NOTHING, "");
  const normalized = mapped.normalize("NFKC");
  const prohibited = PROHIBITED.exec(normalized);
  if (prohibited !== null) {
    const code = prohibited[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");
    throw new TypeError(`SASLprep refuses the string: it holds the prohibited character U+${code}`);
  }
  // RFC 3454 §6: with any RandALCat character, no LCat character, and RandALCat first and last.
  const chars = [...normalized];
  if (chars.some((c) => RAND_AL_CAT.test(c))) {
    if (chars.some((c) => L_CAT.test(c) && !RTL_SCRIPT.test(c) && !RAND_AL_CAT.test(c))) {
      throw new TypeError(
        "SASLprep refuses the string: it mixes right-to-left and left-to-right characters",
      );
    }
    if (!RAND_AL_CAT.test(chars[0]!) || !RAND_AL_CAT.test(chars[chars.length - 1]!)) {
      throw new TypeError(
        "SASLprep refuses the string: right-to-left text must start and end with a right-to-left character",
      );
    }
  }
  return normalized;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/**
 * The bytes SCRAM derives its keys from: the password prepared with SASLprep (RFC 5802 §2.2),
 * as UTF-8. A password SASLprep refuses, or bytes that are not UTF-8, are used as they are (as
 * PostgreSQL does), so that any password still works and both sides derive the same keys.
 *
 * @param password the password, as text or as bytes
 * @returns the bytes to salt
 */
export function preparedPassword(password: string | Uint8Array): Uint8Array {
  let text: string;
  try {
    text = typeof password === "string" ? password : utf8.decode(password);
  } catch {
    return password as Uint8Array;
  }
  try {
    return encoder.encode(saslprep(text));
  } catch {
    return typeof password === "string" ? encoder.encode(password) : password;
  }
}

// Shared helpers for the codec tests.

import assert from "node:assert/strict";
import { MqttPacketError } from "../../src/packet/mod.ts";

/** Bytes from a hex string with optional spaces: `hex("30 02 00 00")`. */
export function hex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, "");
  assert.equal(clean.length % 2, 0, `odd hex string: ${text}`);
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** ASCII/UTF-8 bytes of a string, as hex pairs for building vectors. */
export function utf8(text: string): string {
  return [...new TextEncoder().encode(text)].map((b) => b.toString(16).padStart(2, "0")).join(
    " ",
  );
}

/** Asserts that `fn` throws an MqttPacketError with the given reason code; returns it. */
export function assertPacketError(fn: () => unknown, reasonCode: number): MqttPacketError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof MqttPacketError, `expected MqttPacketError, got ${caught}`);
  assert.equal(
    caught.reasonCode,
    reasonCode,
    `reason code 0x${caught.reasonCode.toString(16)} (${caught.message})`,
  );
  assert.equal(caught.name, "MqttPacketError");
  return caught;
}

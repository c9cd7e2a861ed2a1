/**
 * Checks shared by the broker fuzz tests (areas 16 and 34): the broker's counters stay sane and
 * nothing unexpected is logged at "error" level.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { TestBroker } from "./broker.ts";

/**
 * Log lines at "error" level other than plugin or configuration errors.
 *
 * @param b the broker under test
 * @returns their messages
 */
export function unexpectedErrors(b: TestBroker): string[] {
  return b.log.lines
    .filter((l) => l.level === "error" && !/plugin|config/i.test(l.message))
    .map((l) => l.message);
}

/**
 * Checks the broker's counters: none negative, `clientsConnected` equal to the connected sessions,
 * no offline clean session, no negative window or queue, no empty retained message.
 *
 * @param b the broker under test
 * @param when what just happened, for the failure message
 */
export function checkStats(b: TestBroker, when: string): void {
  const stats = b.broker.stats as unknown as Record<string, number | Record<string, number>>;
  for (const [key, value] of Object.entries(stats)) {
    // Counters are numbers, or records of numbers (by QoS, by reason).
    for (const n of typeof value === "number" ? [value] : Object.values(value)) {
      assert.ok(n >= 0, `${when}: stats.${key} is ${JSON.stringify(value)}`);
    }
  }
  const sessions = b.broker.clients();
  const connected = sessions.filter((s) => s.connected).length;
  assert.equal(b.broker.stats.clientsConnected, connected, `${when}: clientsConnected`);
  // A clean session ends with its connection [MQTT-3.1.2-6].
  for (const s of sessions) {
    assert.ok(s.connected || !s.cleanSession, `${when}: offline clean session ${s.clientId}`);
    assert.ok(s.inflight >= 0 && s.queued >= 0, `${when}: ${s.clientId} window counts`);
  }
  // A zero-byte retained message is never stored [MQTT-3.3.1-11].
  for (const m of b.broker.retainedMessages()) {
    assert.ok(m.payload.length > 0, `${when}: empty retained message on ${m.topic}`);
  }
}

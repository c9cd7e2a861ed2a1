// Message Expiry Interval (MQTT 5.0 §3.3.2.3.3): an absolute deadline on the message, the
// interval left computed when a copy is forwarded.

import assert from "node:assert/strict";
import {
  expiryDeadline,
  isExpired,
  remainingExpiryInterval,
} from "../../src/broker/message_expiry.ts";
import { BrokerMessage } from "../../src/broker/message.ts";

Deno.test("expiryDeadline counts the Message Expiry Interval from the time of receipt", () => {
  assert.equal(expiryDeadline({ messageExpiryInterval: 0 }, 7_000), 7_000);
  assert.equal(expiryDeadline({ messageExpiryInterval: 4_294_967_295 }, 0), 4_294_967_295_000);
  assert.equal(expiryDeadline(undefined, 7_000), undefined);
  assert.equal(expiryDeadline({ contentType: "x" }, 7_000), undefined);
});

Deno.test("remainingExpiryInterval (MQTT 5) is the received interval minus the wait, rounded up [MQTT-3.3.2-6]", () => {
  const deadline = expiryDeadline({ messageExpiryInterval: 30 }, 100_000)!;
  assert.equal(remainingExpiryInterval(deadline, 100_000), 30);
  assert.equal(remainingExpiryInterval(deadline, 100_001), 30);
  assert.equal(remainingExpiryInterval(deadline, 110_000), 20);
  assert.equal(remainingExpiryInterval(deadline, 129_999), 1);
  assert.equal(remainingExpiryInterval(deadline, 130_000), 0);
  assert.equal(remainingExpiryInterval(undefined, 130_000), undefined);
});

Deno.test("isExpired (MQTT 5) holds from the deadline on [MQTT-3.3.2-5]", () => {
  assert.equal(isExpired(1_000, 999), false);
  assert.equal(isExpired(1_000, 1_000), true);
  assert.equal(isExpired(undefined, Number.MAX_SAFE_INTEGER), false);
});

Deno.test("BrokerMessage keeps its expiry deadline in the retained copy and the store record", () => {
  const m = new BrokerMessage("t", new Uint8Array([1]), {
    qos: 1,
    retain: true,
    properties: { messageExpiryInterval: 10 },
    expiresAt: 25_000,
  });
  assert.equal(m.asRetained().expiresAt, 25_000);
  assert.equal(m.toRecord().expiresAt, 25_000);
  assert.equal(
    "expiresAt" in new BrokerMessage("t", new Uint8Array(), { qos: 0, retain: false }).toRecord(),
    false,
  );
});

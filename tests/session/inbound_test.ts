import assert from "node:assert/strict";
import { InboundQos2 } from "../../src/session/inbound.ts";

Deno.test("InboundQos2 delivers a QoS 2 message once until PUBREL [MQTT-4.3.3-2]", () => {
  const inbound = new InboundQos2();
  assert.equal(inbound.receive(1), true);
  assert.equal(inbound.receive(1), false);
  assert.equal(inbound.size, 1);
  assert.deepEqual(inbound.ids(), [1]);
  assert.equal(inbound.release(1), true);
  assert.equal(inbound.release(1), false);
  assert.equal(inbound.receive(1), true, "after PUBREL the id is a new message");
  inbound.clear();
  assert.equal(inbound.size, 0);
});

// checkInboundPublish: a 5.0 client's PUBLISH against the connection's aliases and the limits
// the broker announced.

import assert from "node:assert/strict";
import {
  checkInboundPublish,
  type InboundPublishVerdict,
} from "../../src/broker/inbound_publish.ts";
import { InboundTopicAliases } from "../../src/session/topic_aliases.ts";
import { PacketType, type PublishPacket, type QoS } from "../../src/packet/mod.ts";
import type { Properties } from "../../src/packet/types.ts";

function publish(
  topic: string,
  options: { qos?: QoS; retain?: boolean; properties?: Properties; payload?: Uint8Array } = {},
): PublishPacket {
  const qos = options.qos ?? 0;
  return {
    type: PacketType.PUBLISH,
    topic,
    payload: options.payload ?? new Uint8Array(),
    qos,
    retain: options.retain ?? false,
    dup: false,
    packetId: qos > 0 ? 1 : undefined,
    properties: options.properties,
  };
}

const aliases = () => new InboundTopicAliases(3, { peer: "Client" });

/** The reason code and whether to disconnect, of a verdict that must be a refusal. */
function refusal(verdict: InboundPublishVerdict): [number, boolean] {
  assert.notEqual(typeof verdict, "string", "refused");
  const v = verdict as Exclude<InboundPublishVerdict, string>;
  return [v.reasonCode, v.disconnect];
}

Deno.test("checkInboundPublish (MQTT 5) resolves a topic alias set earlier on the connection [MQTT-3.3.2-12]", () => {
  const a = aliases();
  assert.equal(checkInboundPublish(publish("x/y", { properties: { topicAlias: 3 } }), a), "x/y");
  assert.equal(checkInboundPublish(publish("", { properties: { topicAlias: 3 } }), a), "x/y");
  // Without an alias the topic is taken as it is.
  assert.equal(checkInboundPublish(publish("p/q"), a), "p/q");
});

Deno.test("checkInboundPublish (MQTT 5) disconnects with 0x94 for alias 0 or above the maximum [MQTT-3.3.2-8]", () => {
  for (const topicAlias of [0, 4]) {
    const v = checkInboundPublish(publish("t", { properties: { topicAlias } }), aliases());
    assert.deepEqual(refusal(v), [0x94, true]);
  }
});

Deno.test("checkInboundPublish disconnects with 0x82 for an alias not mapped yet", () => {
  const v = checkInboundPublish(publish("", { properties: { topicAlias: 1 } }), aliases());
  assert.deepEqual(refusal(v), [0x82, true]);
});

Deno.test("checkInboundPublish disconnects with 0x9B above the Maximum QoS and 0x9A for RETAIN without retain", () => {
  const qos = checkInboundPublish(publish("t", { qos: 2 }), aliases(), { maximumQoS: 1 });
  assert.deepEqual(refusal(qos), [0x9b, true]);
  assert.equal(
    checkInboundPublish(publish("t", { qos: 1 }), aliases(), { maximumQoS: 1 }),
    "t",
  );
  const retain = checkInboundPublish(publish("t", { retain: true }), aliases(), {
    retainAvailable: false,
  });
  assert.deepEqual(refusal(retain), [0x9a, true]);
  assert.equal(checkInboundPublish(publish("t", { retain: true }), aliases()), "t");
});

Deno.test("checkInboundPublish refuses a payload said to be UTF-8 that is not, when asked to check", () => {
  const bad = new Uint8Array([0x61, 0xff, 0x62]);
  const properties = { payloadFormatIndicator: 1 };
  const limits = { checkPayloadFormat: true };
  const q1 = checkInboundPublish(
    publish("t", { qos: 1, properties, payload: bad }),
    aliases(),
    limits,
  );
  assert.deepEqual(refusal(q1), [0x99, false]);
  const q0 = checkInboundPublish(publish("t", { properties, payload: bad }), aliases(), limits);
  assert.deepEqual(refusal(q0), [0x99, true]);
  const good = new TextEncoder().encode("héllo");
  assert.equal(
    checkInboundPublish(publish("t", { properties, payload: good }), aliases(), limits),
    "t",
  );
  // Not checked unless asked.
  assert.equal(checkInboundPublish(publish("t", { properties, payload: bad }), aliases()), "t");
});

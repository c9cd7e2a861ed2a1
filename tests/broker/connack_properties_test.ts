// connackProperties, sessionExpiryFor, keepAliveFor: the CONNACK that accepts a 5.0 client,
// checked by encoding and decoding it with the codec.

import assert from "node:assert/strict";
import {
  connackProperties,
  keepAliveFor,
  type ServerCapabilities,
  serverCapabilities,
  SESSION_NEVER_EXPIRES,
  sessionExpiryFor,
} from "../../src/broker/connack_properties.ts";
import { decodePacket, encodePacket, PacketType } from "../../src/packet/mod.ts";
import type { ConnectPacket, Properties } from "../../src/packet/types.ts";

const server: ServerCapabilities = {
  receiveMaximum: 1024,
  maximumPacketSize: 2 * 1024 * 1024,
  topicAliasMaximum: 10,
};

function connect(properties?: Properties, clientId = "c", keepAlive = 60) {
  return { clientId, keepAlive, properties } satisfies Partial<ConnectPacket>;
}

Deno.test("connackProperties (MQTT 5) announces the broker's limits and omits what absence already says", () => {
  assert.deepEqual(connackProperties(server, connect()), {
    receiveMaximum: 1024,
    maximumPacketSize: 2 * 1024 * 1024,
    topicAliasMaximum: 10,
  });
  assert.equal(
    connackProperties(
      { receiveMaximum: 65535, maximumPacketSize: 268_435_460, topicAliasMaximum: 0 },
      connect(),
    ),
    undefined,
  );
});

Deno.test("connackProperties (MQTT 5) carries the Assigned Client Identifier for an empty ClientID [MQTT-3.2.2-16]", () => {
  const p = connackProperties(server, connect(undefined, ""), {
    assignedClientIdentifier: "auto-7",
  });
  assert.equal(p?.assignedClientIdentifier, "auto-7");
});

Deno.test("connackProperties (MQTT 5) says Maximum QoS only below 2 [MQTT-3.2.2-9]", () => {
  assert.equal(connackProperties({ ...server, maximumQoS: 1 }, connect())?.maximumQoS, 1);
  assert.equal(connackProperties({ ...server, maximumQoS: 0 }, connect())?.maximumQoS, 0);
  assert.equal("maximumQoS" in connackProperties({ ...server, maximumQoS: 2 }, connect())!, false);
});

Deno.test("connackProperties (MQTT 5) says which features are missing", () => {
  const p = connackProperties({
    ...server,
    retainAvailable: false,
    wildcardSubscriptionAvailable: false,
    subscriptionIdentifiersAvailable: false,
    sharedSubscriptionAvailable: false,
  }, connect())!;
  assert.deepEqual(
    [
      p.retainAvailable,
      p.wildcardSubscriptionAvailable,
      p.subscriptionIdentifiersAvailable,
      p.sharedSubscriptionAvailable,
    ],
    [0, 0, 0, 0],
  );
});

Deno.test("connackProperties (MQTT 5) sends the Server Keep Alive, which the session then uses [MQTT-3.2.2-22]", () => {
  const imposed = { ...server, serverKeepAlive: 30 };
  assert.equal(connackProperties(imposed, connect())?.serverKeepAlive, 30);
  assert.equal(keepAliveFor(imposed, connect()), 30);
  // Without one, the client's own keep alive applies.
  assert.equal("serverKeepAlive" in connackProperties(server, connect())!, false);
  assert.equal(keepAliveFor(server, connect(undefined, "c", 45)), 45);
});

Deno.test("connackProperties (MQTT 5) says the Session Expiry Interval when it caps the client's", () => {
  const capped = { ...server, maximumSessionExpiryInterval: 3600 };
  assert.equal(
    connackProperties(capped, connect({ sessionExpiryInterval: 86400 }))?.sessionExpiryInterval,
    3600,
  );
  assert.equal(
    sessionExpiryFor(capped, connect({ sessionExpiryInterval: SESSION_NEVER_EXPIRES })),
    3600,
  );
  assert.equal(
    "sessionExpiryInterval" in connackProperties(capped, connect({ sessionExpiryInterval: 60 }))!,
    false,
  );
  assert.equal(
    sessionExpiryFor(server, connect({ sessionExpiryInterval: SESSION_NEVER_EXPIRES })),
    SESSION_NEVER_EXPIRES,
  );
  assert.equal(sessionExpiryFor(server, connect()), 0);
});

Deno.test("connackProperties (MQTT 5) gives Response Information only when requested [MQTT-3.1.2-28]", () => {
  const offering = { ...server, responseInformation: "replies/" };
  assert.equal(
    connackProperties(offering, connect({ requestResponseInformation: 1 }))?.responseInformation,
    "replies/",
  );
  for (const asked of [undefined, 0]) {
    const p = connackProperties(offering, connect({ requestResponseInformation: asked }))!;
    assert.equal("responseInformation" in p, false);
  }
});

Deno.test("connackProperties (MQTT 5) drops a Reason String or User Properties that would exceed the client's Maximum Packet Size [MQTT-3.2.2-19] [MQTT-3.2.2-20]", () => {
  const details = {
    reasonString: "r".repeat(100),
    userProperties: [["k", "v".repeat(100)]] as [string, string][],
  };
  const roomy = connackProperties(server, connect({ maximumPacketSize: 1000 }), details)!;
  assert.equal(roomy.reasonString, details.reasonString);
  assert.deepEqual(roomy.userProperties, details.userProperties);
  const tight = connackProperties(server, connect({ maximumPacketSize: 60 }), details)!;
  assert.equal("reasonString" in tight, false);
  assert.equal("userProperties" in tight, false);
  const bytes = encodePacket({
    type: PacketType.CONNACK,
    sessionPresent: false,
    reasonCode: 0,
    properties: tight,
  }, 5);
  assert.ok(bytes.length <= 60);
  // Room for the reason string alone: it stays, the user property goes.
  const some = connackProperties(server, connect({ maximumPacketSize: 140 }), details)!;
  assert.equal(some.reasonString, details.reasonString);
  assert.equal("userProperties" in some, false);
});

Deno.test("connackProperties output encodes and decodes as a CONNACK", () => {
  const properties = connackProperties(
    { ...server, serverKeepAlive: 20, maximumQoS: 1 },
    connect(undefined, ""),
    {
      assignedClientIdentifier: "auto-1",
      reasonString: "welcome",
    },
  );
  const packet = {
    type: PacketType.CONNACK,
    sessionPresent: false,
    reasonCode: 0,
    properties,
  } as const;
  const decoded = decodePacket(encodePacket(packet, 5), { protocolVersion: 5 })?.packet;
  assert.deepEqual(decoded, packet);
});

Deno.test("serverCapabilities takes the 5.0 limits, max_packet_size and session_expiry_interval from the configuration", async () => {
  const { resolveBrokerConfig } = await import("../../src/config/mod.ts");
  assert.deepEqual(serverCapabilities(resolveBrokerConfig({})), {
    receiveMaximum: 1024,
    maximumPacketSize: 2 * 1024 * 1024,
    topicAliasMaximum: 10,
    maximumSessionExpiryInterval: 259200,
  });
  assert.deepEqual(
    serverCapabilities(resolveBrokerConfig({
      receive_maximum: 16,
      max_packet_size: 65536,
      topic_alias_maximum: 0,
      server_keep_alive: 30,
      session_expiry_interval: "never",
    })),
    { receiveMaximum: 16, maximumPacketSize: 65536, topicAliasMaximum: 0, serverKeepAlive: 30 },
  );
});

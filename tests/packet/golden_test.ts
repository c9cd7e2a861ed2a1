// Golden byte vectors written by hand from the MQTT 3.1, 3.1.1 and 5.0 specifications. Each is
// checked three ways: decode(bytes) equals the packet, encode(packet) equals the bytes, and
// decode(encode(packet)) equals the packet.

import assert from "node:assert/strict";
import {
  decodePacket,
  encodedLength,
  encodePacket,
  type Packet,
  PACKET_NAMES,
  packetLength,
  PacketType,
  PROPERTY_TABLE,
  type ProtocolVersion,
} from "../../src/packet/mod.ts";
import { hex, utf8 } from "./_helpers.ts";

const T = PacketType;
const bytesOf = (...b: number[]) => new Uint8Array(b);

/** `level:type` of every three-way vector, and every property name they carry. */
const coveredTypes = new Set<string>();
const coveredProperties = new Set<string>();

function golden(name: string, v: ProtocolVersion, packet: Packet, bytes: string): void {
  coveredTypes.add(`${v}:${packet.type}`);
  const props = [
    (packet as { properties?: object }).properties,
    packet.type === PacketType.CONNECT ? packet.will?.properties : undefined,
  ];
  for (const p of props) for (const key of Object.keys(p ?? {})) coveredProperties.add(key);
  Deno.test(`golden level ${v}: ${name}`, () => {
    const expected = hex(bytes);
    const decoded = decodePacket(expected, { protocolVersion: v });
    assert.deepEqual(decoded, { packet, length: expected.length }, "decode(bytes)");
    assert.deepEqual(encodePacket(packet, v), expected, "encode(packet)");
    assert.equal(encodedLength(packet, v), expected.length, "encodedLength(packet)");
    assert.equal(packetLength(expected), expected.length, "packetLength(bytes)");
    assert.deepEqual(
      decodePacket(encodePacket(packet, v), { protocolVersion: v })?.packet,
      packet,
      "decode(encode(packet))",
    );
  });
}

/**
 * Vectors that only decode: a longer form the encoder never produces. The packet re-encodes to
 * `shortest`, the form the spec allows when the reason code is Success and there are no
 * properties (§3.4.2.1, §3.14.2.1).
 */
function decodeOnly(
  name: string,
  v: ProtocolVersion,
  packet: Packet,
  bytes: string,
  shortest: string,
): void {
  Deno.test(`golden level ${v} (decode only): ${name}`, () => {
    const expected = hex(bytes);
    assert.deepEqual(decodePacket(expected, { protocolVersion: v }), {
      packet,
      length: expected.length,
    });
    assert.equal(packetLength(expected), expected.length, "packetLength(bytes)");
    assert.deepEqual(encodePacket(packet, v), hex(shortest));
  });
}

// ---- CONNECT -------------------------------------------------------------------------------

golden(
  "CONNECT MQIsdp, clean session, client id",
  3,
  {
    type: T.CONNECT,
    protocolName: "MQIsdp",
    protocolVersion: 3,
    clean: true,
    keepAlive: 30,
    clientId: "abc",
  },
  `10 11 00 06 ${utf8("MQIsdp")} 03 02 00 1e 00 03 ${utf8("abc")}`,
);

golden(
  "CONNECT MQIsdp with will, user name and password",
  3,
  {
    type: T.CONNECT,
    protocolName: "MQIsdp",
    protocolVersion: 3,
    clean: false,
    keepAlive: 10,
    clientId: "c1",
    will: { topic: "w/t", payload: bytesOf(0x62, 0x79, 0x65), qos: 1, retain: true },
    username: "u",
    password: bytesOf(0x70, 0x77),
  },
  `10 21 00 06 ${utf8("MQIsdp")} 03 ec 00 0a 00 02 63 31 00 03 77 2f 74 00 03 62 79 65
   00 01 75 00 02 70 77`,
);

golden(
  "CONNECT minimal with empty client id",
  4,
  {
    type: T.CONNECT,
    protocolName: "MQTT",
    protocolVersion: 4,
    clean: true,
    keepAlive: 60,
    clientId: "",
  },
  "10 0c 00 04 4d 51 54 54 04 02 00 3c 00 00",
);

golden(
  "CONNECT with will (QoS 1, retain), user name and password",
  4,
  {
    type: T.CONNECT,
    protocolName: "MQTT",
    protocolVersion: 4,
    clean: false,
    keepAlive: 10,
    clientId: "c1",
    will: { topic: "w/t", payload: bytesOf(0x62, 0x79, 0x65), qos: 1, retain: true },
    username: "u",
    password: bytesOf(0x70, 0x77),
  },
  `10 1f 00 04 4d 51 54 54 04 ec 00 0a 00 02 63 31 00 03 77 2f 74 00 03 62 79 65
   00 01 75 00 02 70 77`,
);

golden(
  "CONNECT with properties, will properties and user property",
  5,
  {
    type: T.CONNECT,
    protocolName: "MQTT",
    protocolVersion: 5,
    clean: true,
    keepAlive: 60,
    clientId: "c",
    properties: { sessionExpiryInterval: 120, userProperties: [["k", "v"]] },
    will: {
      topic: "t",
      payload: bytesOf(1),
      qos: 0,
      retain: false,
      properties: { willDelayInterval: 5, contentType: "text" },
    },
    username: "u",
    password: bytesOf(0x70),
  },
  `10 33 00 04 4d 51 54 54 05 c6 00 3c
   0c 11 00 00 00 78 26 00 01 6b 00 01 76
   00 01 63
   0c 18 00 00 00 05 03 00 04 74 65 78 74
   00 01 74 00 01 01
   00 01 75 00 01 70`,
);

golden(
  "CONNECT with every CONNECT property and every will property",
  5,
  {
    type: T.CONNECT,
    protocolName: "MQTT",
    protocolVersion: 5,
    clean: true,
    keepAlive: 30,
    clientId: "ci",
    properties: {
      sessionExpiryInterval: 3600,
      receiveMaximum: 20,
      maximumPacketSize: 16384,
      topicAliasMaximum: 10,
      requestResponseInformation: 1,
      requestProblemInformation: 0,
      userProperties: [["a", "b"]],
      authenticationMethod: "m1",
      authenticationData: bytesOf(1, 2),
    },
    will: {
      topic: "w",
      payload: bytesOf(),
      qos: 1,
      retain: false,
      properties: {
        willDelayInterval: 30,
        payloadFormatIndicator: 1,
        messageExpiryInterval: 120,
        contentType: "json",
        responseTopic: "r/1",
        correlationData: bytesOf(0xff),
        userProperties: [["k", "v"]],
      },
    },
  },
  `10 5e 00 04 4d 51 54 54 05 0e 00 1e
   25 11 00 00 0e 10 21 00 14 27 00 00 40 00 22 00 0a 19 01 17 00
      26 00 01 61 00 01 62 15 00 02 6d 31 16 00 02 01 02
   00 02 63 69
   24 18 00 00 00 1e 01 01 02 00 00 00 78 03 00 04 ${utf8("json")}
      08 00 03 ${utf8("r/1")} 09 00 01 ff 26 00 01 6b 00 01 76
   00 01 77 00 00`,
);

golden(
  "CONNECT with password and no user name (allowed in 5.0)",
  5,
  {
    type: T.CONNECT,
    protocolName: "MQTT",
    protocolVersion: 5,
    clean: true,
    keepAlive: 0,
    clientId: "c",
    password: bytesOf(0x70),
  },
  "10 11 00 04 4d 51 54 54 05 42 00 00 00 00 01 63 00 01 70",
);

// ---- CONNACK -------------------------------------------------------------------------------

golden(
  "CONNACK accepted",
  3,
  { type: T.CONNACK, sessionPresent: false, reasonCode: 0 },
  "20 02 00 00",
);
golden(
  "CONNACK identifier rejected",
  3,
  { type: T.CONNACK, sessionPresent: false, reasonCode: 2 },
  "20 02 00 02",
);
golden(
  "CONNACK session present",
  4,
  { type: T.CONNACK, sessionPresent: true, reasonCode: 0 },
  "20 02 01 00",
);
golden(
  "CONNACK bad user name or password",
  4,
  { type: T.CONNACK, sessionPresent: false, reasonCode: 4 },
  "20 02 00 04",
);
golden(
  "CONNACK success without properties",
  5,
  { type: T.CONNACK, sessionPresent: false, reasonCode: 0 },
  "20 03 00 00 00",
);
golden(
  "CONNACK unsupported protocol version",
  5,
  { type: T.CONNACK, sessionPresent: false, reasonCode: 0x84 },
  "20 03 00 84 00",
);
golden(
  "CONNACK with properties",
  5,
  {
    type: T.CONNACK,
    sessionPresent: true,
    reasonCode: 0,
    properties: {
      receiveMaximum: 10,
      maximumQoS: 1,
      assignedClientIdentifier: "id",
      topicAliasMaximum: 5,
    },
  },
  "20 10 01 00 0d 21 00 0a 24 01 12 00 02 69 64 22 00 05",
);

golden(
  "CONNACK with every other CONNACK property",
  5,
  {
    type: T.CONNACK,
    sessionPresent: false,
    reasonCode: 0,
    properties: {
      sessionExpiryInterval: 60,
      serverKeepAlive: 30,
      responseInformation: "r/",
      serverReference: "s",
      reasonString: "ok",
      retainAvailable: 0,
      maximumPacketSize: 65536,
      wildcardSubscriptionAvailable: 0,
      subscriptionIdentifiersAvailable: 1,
      sharedSubscriptionAvailable: 0,
      authenticationMethod: "m1",
      authenticationData: bytesOf(7),
      userProperties: [["k", ""]],
    },
  },
  `20 35 00 00 32
   11 00 00 00 3c 13 00 1e 1a 00 02 72 2f 1c 00 01 73 1f 00 02 6f 6b 25 00
   27 00 01 00 00 28 00 29 01 2a 00 15 00 02 6d 31 16 00 01 07 26 00 01 6b 00 00`,
);

// ---- PUBLISH -------------------------------------------------------------------------------

for (const v of [3, 4] as const) {
  golden(
    "PUBLISH QoS 0",
    v,
    {
      type: T.PUBLISH,
      topic: "a/b",
      payload: bytesOf(0x68, 0x69),
      qos: 0,
      retain: false,
      dup: false,
    },
    "30 07 00 03 61 2f 62 68 69",
  );
  golden(
    "PUBLISH QoS 1 retained",
    v,
    {
      type: T.PUBLISH,
      topic: "a/b",
      payload: bytesOf(0x68, 0x69),
      qos: 1,
      retain: true,
      dup: false,
      packetId: 10,
    },
    "33 09 00 03 61 2f 62 00 0a 68 69",
  );
  golden(
    "PUBLISH QoS 2 duplicate",
    v,
    {
      type: T.PUBLISH,
      topic: "a/b",
      payload: bytesOf(0x68, 0x69),
      qos: 2,
      retain: false,
      dup: true,
      packetId: 0x1234,
    },
    "3c 09 00 03 61 2f 62 12 34 68 69",
  );
  golden(
    "PUBLISH empty payload",
    v,
    { type: T.PUBLISH, topic: "t", payload: bytesOf(), qos: 0, retain: false, dup: false },
    "30 03 00 01 74",
  );
  golden(
    "PUBLISH non-ASCII topic",
    v,
    {
      type: T.PUBLISH,
      topic: "é/\u{1F600}",
      payload: bytesOf(),
      qos: 0,
      retain: false,
      dup: false,
    },
    `30 09 00 07 ${utf8("é/\u{1F600}")}`,
  );
}

golden(
  "PUBLISH QoS 0 without properties",
  5,
  { type: T.PUBLISH, topic: "t", payload: bytesOf(0x78), qos: 0, retain: false, dup: false },
  "30 05 00 01 74 00 78",
);
golden(
  "PUBLISH QoS 1 with properties and repeated user property names in order",
  5,
  {
    type: T.PUBLISH,
    topic: "t",
    payload: bytesOf(0x78),
    qos: 1,
    retain: false,
    dup: false,
    packetId: 1,
    properties: {
      payloadFormatIndicator: 1,
      messageExpiryInterval: 60,
      responseTopic: "r",
      correlationData: bytesOf(1, 2),
      userProperties: [["a", "1"], ["a", "2"]],
    },
  },
  `32 25 00 01 74 00 01 1e
   01 01 02 00 00 00 3c 08 00 01 72 09 00 02 01 02
   26 00 01 61 00 01 31 26 00 01 61 00 01 32
   78`,
);
golden(
  "PUBLISH empty topic with topic alias",
  5,
  {
    type: T.PUBLISH,
    topic: "",
    payload: bytesOf(0x78),
    qos: 0,
    retain: false,
    dup: false,
    properties: { topicAlias: 5 },
  },
  "30 07 00 00 03 23 00 05 78",
);
golden(
  "PUBLISH with two subscription identifiers (server to client)",
  5,
  {
    type: T.PUBLISH,
    topic: "t",
    payload: bytesOf(0x78),
    qos: 0,
    retain: false,
    dup: false,
    properties: { subscriptionIdentifier: [1, 300] },
  },
  "30 0a 00 01 74 05 0b 01 0b ac 02 78",
);

// ---- PUBACK, PUBREC, PUBREL, PUBCOMP -------------------------------------------------------

for (const v of [3, 4, 5] as const) {
  golden("PUBACK", v, { type: T.PUBACK, packetId: 1 }, "40 02 00 01");
  golden("PUBREC", v, { type: T.PUBREC, packetId: 2 }, "50 02 00 02");
  golden("PUBREL", v, { type: T.PUBREL, packetId: 3 }, "62 02 00 03");
  golden("PUBCOMP", v, { type: T.PUBCOMP, packetId: 4 }, "70 02 00 04");
  golden("PINGREQ", v, { type: T.PINGREQ }, "c0 00");
  golden("PINGRESP", v, { type: T.PINGRESP }, "d0 00");
  golden("DISCONNECT", v, { type: T.DISCONNECT }, "e0 00");
}

golden(
  "PUBACK reason code only (remaining length 3)",
  5,
  { type: T.PUBACK, packetId: 1, reasonCode: 0x10 },
  "40 03 00 01 10",
);
golden(
  "PUBACK reason code and reason string",
  5,
  { type: T.PUBACK, packetId: 1, reasonCode: 0x87, properties: { reasonString: "x" } },
  "40 08 00 01 87 04 1f 00 01 78",
);
golden(
  "PUBREC unspecified error",
  5,
  { type: T.PUBREC, packetId: 5, reasonCode: 0x80 },
  "50 03 00 05 80",
);
golden(
  "PUBREL packet identifier not found",
  5,
  { type: T.PUBREL, packetId: 6, reasonCode: 0x92 },
  "62 03 00 06 92",
);
golden(
  "PUBCOMP with user property",
  5,
  { type: T.PUBCOMP, packetId: 7, reasonCode: 0, properties: { userProperties: [["k", "v"]] } },
  "70 0b 00 07 00 07 26 00 01 6b 00 01 76",
);
decodeOnly(
  "PUBREL with DUP set, as MQTT 3.1 retries it",
  3,
  { type: T.PUBREL, packetId: 7 },
  "6a 02 00 07",
  "62 02 00 07",
);
decodeOnly(
  "PUBACK success written out (remaining length 3)",
  5,
  { type: T.PUBACK, packetId: 1, reasonCode: 0 },
  "40 03 00 01 00",
  "40 02 00 01",
);
decodeOnly(
  "PUBACK success with empty properties (remaining length 4)",
  5,
  { type: T.PUBACK, packetId: 1, reasonCode: 0 },
  "40 04 00 01 00 00",
  "40 02 00 01",
);

// ---- SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK ------------------------------------------------

for (const v of [3, 4] as const) {
  golden(
    "SUBSCRIBE two filters",
    v,
    {
      type: T.SUBSCRIBE,
      packetId: 1,
      subscriptions: [{ topic: "a/#", qos: 1 }, { topic: "b", qos: 2 }],
    },
    "82 0c 00 01 00 03 61 2f 23 01 00 01 62 02",
  );
  golden(
    "UNSUBSCRIBE two filters",
    v,
    { type: T.UNSUBSCRIBE, packetId: 3, topics: ["a", "b"] },
    "a2 08 00 03 00 01 61 00 01 62",
  );
  golden("UNSUBACK", v, { type: T.UNSUBACK, packetId: 3 }, "b0 02 00 03");
}
decodeOnly(
  "SUBSCRIBE with DUP set, as MQTT 3.1 retries it",
  3,
  { type: T.SUBSCRIBE, packetId: 1, subscriptions: [{ topic: "t", qos: 1 }] },
  "8a 06 00 01 00 01 74 01",
  "82 06 00 01 00 01 74 01",
);
decodeOnly(
  "UNSUBSCRIBE with DUP set, as MQTT 3.1 retries it",
  3,
  { type: T.UNSUBSCRIBE, packetId: 1, topics: ["t"] },
  "aa 05 00 01 00 01 74",
  "a2 05 00 01 00 01 74",
);
golden(
  "SUBACK granted QoS 0 and 2",
  3,
  { type: T.SUBACK, packetId: 1, reasonCodes: [0, 2] },
  "90 04 00 01 00 02",
);
golden(
  "SUBACK with failure",
  4,
  { type: T.SUBACK, packetId: 1, reasonCodes: [0, 1, 0x80] },
  "90 05 00 01 00 01 80",
);
golden(
  "SUBSCRIBE with subscription identifier, user property and options",
  5,
  {
    type: T.SUBSCRIBE,
    packetId: 2,
    properties: { subscriptionIdentifier: [5], userProperties: [["k", "v"]] },
    subscriptions: [
      { topic: "a", qos: 1, noLocal: true, retainAsPublished: true, retainHandling: 2 },
      { topic: "$share/g/t", qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 },
    ],
  },
  `82 1d 00 02 09 0b 05 26 00 01 6b 00 01 76
   00 01 61 2d 00 0a ${utf8("$share/g/t")} 00`,
);
golden(
  "SUBACK with reason string and reason codes",
  5,
  { type: T.SUBACK, packetId: 2, reasonCodes: [0x01, 0x97], properties: { reasonString: "" } },
  "90 08 00 02 03 1f 00 00 01 97",
);
golden(
  "UNSUBSCRIBE with user property",
  5,
  {
    type: T.UNSUBSCRIBE,
    packetId: 3,
    topics: ["a"],
    properties: { userProperties: [["k", "v"]] },
  },
  "a2 0d 00 03 07 26 00 01 6b 00 01 76 00 01 61",
);
golden(
  "UNSUBACK with reason codes",
  5,
  { type: T.UNSUBACK, packetId: 3, reasonCodes: [0x00, 0x11] },
  "b0 05 00 03 00 00 11",
);

// ---- DISCONNECT, AUTH ----------------------------------------------------------------------

golden(
  "DISCONNECT with will message (reason code only)",
  5,
  { type: T.DISCONNECT, reasonCode: 0x04 },
  "e0 01 04",
);
golden(
  "DISCONNECT with session expiry and reason string",
  5,
  {
    type: T.DISCONNECT,
    reasonCode: 0,
    properties: { sessionExpiryInterval: 0, reasonString: "bye" },
  },
  "e0 0d 00 0b 11 00 00 00 00 1f 00 03 62 79 65",
);
golden(
  "DISCONNECT use another server, with server reference",
  5,
  { type: T.DISCONNECT, reasonCode: 0x9c, properties: { serverReference: "s" } },
  "e0 06 9c 04 1c 00 01 73",
);
decodeOnly(
  "DISCONNECT normal written out",
  5,
  { type: T.DISCONNECT, reasonCode: 0 },
  "e0 01 00",
  "e0 00",
);
golden("AUTH success, nothing else", 5, { type: T.AUTH }, "f0 00");
golden(
  "AUTH continue with method and data",
  5,
  {
    type: T.AUTH,
    reasonCode: 0x18,
    properties: { authenticationMethod: "abc", authenticationData: bytesOf(1, 2) },
  },
  "f0 0d 18 0b 15 00 03 61 62 63 16 00 02 01 02",
);
golden(
  "AUTH re-authenticate with only its method",
  5,
  { type: T.AUTH, reasonCode: 0x19, properties: { authenticationMethod: "abc" } },
  "f0 08 19 06 15 00 03 61 62 63",
);

// ---- Coverage of the vectors above ---------------------------------------------------------

Deno.test("golden vectors cover every packet type at every level it exists in", () => {
  const missing: string[] = [];
  for (const v of [3, 4, 5] as const) {
    // AUTH (15) exists only in MQTT 5.0.
    for (let type = 1; type <= (v === 5 ? 15 : 14); type++) {
      if (!coveredTypes.has(`${v}:${type}`)) missing.push(`level ${v} ${PACKET_NAMES[type]}`);
    }
  }
  assert.deepEqual(missing, []);
});

Deno.test("golden vectors cover every MQTT 5.0 property, checking its identifier and data type", () => {
  const missing = PROPERTY_TABLE.map((p) => p.name).filter((n) => !coveredProperties.has(n));
  assert.deepEqual(missing, []);
});

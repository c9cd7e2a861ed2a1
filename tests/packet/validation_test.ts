// One test per decoder validation rule, named after the rule and its normative id.

import assert from "node:assert/strict";
import {
  type DecodeOptions,
  decodePacket,
  type MqttPacketError,
  PacketDecoder,
  PacketType,
  type ProtocolVersion,
} from "../../src/packet/mod.ts";
import { assertPacketError, hex, utf8 } from "./_helpers.ts";

const MALFORMED = 0x81;
const PROTOCOL_ERROR = 0x82;
const UNSUPPORTED = 0x84;
const TOO_LARGE = 0x95;

function rejects(bytes: string, reasonCode: number, options: DecodeOptions): MqttPacketError {
  return assertPacketError(() => decodePacket(hex(bytes), options), reasonCode);
}

function accepts(bytes: string, options: DecodeOptions) {
  const result = decodePacket(hex(bytes), options);
  assert.ok(result !== undefined, "expected a packet");
  assert.equal(result.length, hex(bytes).length);
  return result.packet;
}

const v4 = { protocolVersion: 4 } as const;
const v5 = { protocolVersion: 5 } as const;
const ALL: ProtocolVersion[] = [3, 4, 5];

/** A CONNECT at level 4 with the given connect flags and payload after the client id "c". */
function connect4(flags: number, rest = ""): string {
  const body = hex(
    `00 04 4d 51 54 54 04 ${flags.toString(16).padStart(2, "0")} 00 3c 00 01 63 ${rest}`,
  );
  return `10 ${body.length.toString(16).padStart(2, "0")} ${
    [...body].map((b) => b.toString(16).padStart(2, "0")).join(" ")
  }`;
}

// ---- Fixed header ---------------------------------------------------------------------------

Deno.test("decodePacket rejects reserved fixed-header flags [MQTT-2.2.2-2]", () => {
  for (const v of ALL) {
    const o = { protocolVersion: v };
    rejects("60 02 00 01", MALFORMED, o); // PUBREL must be 0b0010
    rejects("63 02 00 01", MALFORMED, o);
    rejects("80 06 00 01 00 01 74 00", MALFORMED, o); // SUBSCRIBE must be 0b0010
    rejects("a0 05 00 01 00 01 74", MALFORMED, o); // UNSUBSCRIBE must be 0b0010
    rejects("42 02 00 01", MALFORMED, o); // PUBACK must be 0
    rejects("c1 00", MALFORMED, o); // PINGREQ
    rejects("e8 00", MALFORMED, o); // DISCONNECT
    rejects("21 02 00 00", MALFORMED, o); // CONNACK
    rejects("b4 02 00 01", MALFORMED, o); // UNSUBACK
  }
  rejects("18 0c 00 04 4d 51 54 54 04 02 00 3c 00 00", MALFORMED, {});
  rejects("f1 00", MALFORMED, v5);
});

Deno.test("decodePacket ignores DUP on PUBREL, SUBSCRIBE and UNSUBSCRIBE only at MQTT 3.1 [MQTT-2.2.2-2]", () => {
  // MQTT 3.1 sets DUP when it retries these packets; 3.1.1 and 5.0 reserve the bit.
  const v3 = { protocolVersion: 3 } as const;
  assert.deepEqual(accepts("6a 02 00 07", v3), { type: PacketType.PUBREL, packetId: 7 });
  assert.deepEqual(accepts("8a 06 00 01 00 01 74 01", v3), {
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic: "t", qos: 1 }],
  });
  assert.deepEqual(accepts("aa 05 00 01 00 01 74", v3), {
    type: PacketType.UNSUBSCRIBE,
    packetId: 1,
    topics: ["t"],
  });
  // The QoS bits stay checked at level 3, and DUP stays reserved on the other packets.
  rejects("68 02 00 07", MALFORMED, v3);
  rejects("6c 02 00 07", MALFORMED, v3);
  rejects("48 02 00 07", MALFORMED, v3);
  for (const v of [4, 5] as const) {
    const o = { protocolVersion: v };
    rejects("6a 02 00 07", MALFORMED, o);
    rejects(`8a ${v === 5 ? "07" : "06"} 00 01 ${v === 5 ? "00 " : ""}00 01 74 01`, MALFORMED, o);
    rejects(`aa ${v === 5 ? "06" : "05"} 00 01 ${v === 5 ? "00 " : ""}00 01 74`, MALFORMED, o);
  }
});

Deno.test("decodePacket rejects the reserved packet type 0 and AUTH before 5.0", () => {
  rejects("00 00", MALFORMED, v4);
  // Known from the first byte alone.
  assertPacketError(() => decodePacket(hex("00"), v4), MALFORMED);
  rejects("f0 00", MALFORMED, v4);
  rejects("f0 00", MALFORMED, { protocolVersion: 3 });
});

Deno.test("decodePacket rejects a remaining length with a 5th byte as soon as seen", () => {
  // The 4th byte has its continuation bit set: the body is not needed to know.
  const error = rejects("30 ff ff ff ff", MALFORMED, v4);
  assert.equal(error.offset, 4);
  rejects("30 80 80 80 80 01 00 01 74", MALFORMED, v4);
  // Four bytes are fine: only incomplete.
  assert.equal(decodePacket(hex("30 ff ff ff 7f"), v4), undefined);
});

Deno.test("decodePacket rejects a packet over maxPacketSize from its header (0x95)", () => {
  const error = rejects("30 ff ff ff 7f", TOO_LARGE, {
    protocolVersion: 4,
    maxPacketSize: 1 << 20,
  });
  assert.equal(error.packetType, PacketType.PUBLISH);
  // Exactly at the limit is accepted: 2 header bytes + 3 body bytes.
  accepts("30 03 00 01 74", { protocolVersion: 4, maxPacketSize: 5 });
  rejects("30 03 00 01 74", TOO_LARGE, { protocolVersion: 4, maxPacketSize: 4 });
});

// ---- PUBLISH --------------------------------------------------------------------------------

Deno.test("decodePublish rejects QoS 3 [MQTT-3.3.1-4]", () => {
  for (const v of ALL) rejects("36 05 00 01 74 00 01", MALFORMED, { protocolVersion: v });
});

Deno.test("decodePublish rejects DUP with QoS 0 [MQTT-3.3.1-2]", () => {
  for (const v of ALL) rejects("38 03 00 01 74", MALFORMED, { protocolVersion: v });
});

Deno.test("decodePacket rejects packet identifier 0 [MQTT-2.3.1-1]", () => {
  for (const v of ALL) {
    const o = { protocolVersion: v };
    rejects("32 05 00 01 74 00 00", PROTOCOL_ERROR, o); // PUBLISH QoS 1
    rejects("34 05 00 01 74 00 00", PROTOCOL_ERROR, o); // PUBLISH QoS 2
    rejects("82 06 00 00 00 01 74 00", PROTOCOL_ERROR, v === 5 ? { ...o, protocolVersion: 4 } : o);
    rejects("a2 05 00 00 00 01 74", PROTOCOL_ERROR, v === 5 ? { ...o, protocolVersion: 4 } : o);
    rejects("40 02 00 00", PROTOCOL_ERROR, o);
    rejects("50 02 00 00", PROTOCOL_ERROR, o);
    rejects("62 02 00 00", PROTOCOL_ERROR, o);
    rejects("70 02 00 00", PROTOCOL_ERROR, o);
  }
  rejects("82 07 00 00 00 00 01 74 00", PROTOCOL_ERROR, v5);
});

Deno.test("decodePublish rejects wildcards in the topic name [MQTT-3.3.2-2]", () => {
  for (const v of ALL) {
    const o = { protocolVersion: v };
    const props = v === 5 ? "00" : "";
    rejects(`30 ${v === 5 ? "06" : "05"} 00 03 61 2f 2b ${props}`, PROTOCOL_ERROR, o);
    rejects(`30 ${v === 5 ? "04" : "03"} 00 01 23 ${props}`, PROTOCOL_ERROR, o);
  }
  // A long non-ASCII topic takes the TextDecoder path and is still checked.
  const topic = utf8("é".repeat(40) + "/#");
  const len = topic.split(" ").length;
  rejects(`30 ${(len + 2).toString(16)} 00 ${len.toString(16)} ${topic}`, PROTOCOL_ERROR, v4);
});

Deno.test("decodePublish rejects an empty topic name [MQTT-4.7.3-1] unless 5.0 gives a topic alias", () => {
  rejects("30 02 00 00", PROTOCOL_ERROR, v4);
  rejects("30 02 00 00", PROTOCOL_ERROR, { protocolVersion: 3 });
  rejects("30 04 00 00 00 78", PROTOCOL_ERROR, v5);
  const p = accepts("30 07 00 00 03 23 00 05 78", v5);
  assert.equal(p.type === PacketType.PUBLISH && p.properties?.topicAlias, 5);
});

Deno.test("decodePacket rejects wildcards in a Response Topic [MQTT-3.3.2-14]", () => {
  const plus = rejects("30 0a 00 01 74 05 08 00 02 61 2b 78", PROTOCOL_ERROR, v5);
  assert.match(plus.message, /responseTopic contains wildcard "\+" \[MQTT-3\.3\.2-14\]/);
  assert.equal(plus.offset, 10);
  rejects("30 09 00 01 74 04 08 00 01 23 78", PROTOCOL_ERROR, v5);
  // In the will properties too.
  const will = rejects(
    "10 17 00 04 4d 51 54 54 05 06 00 3c 00 00 00 04 08 00 01 23 00 01 74 00 00",
    PROTOCOL_ERROR,
    {},
  );
  assert.match(will.message, /MQTT-3\.3\.2-14/);
  const p = accepts("30 0a 00 01 74 05 08 00 02 61 2f 78", v5);
  assert.equal(p.type === PacketType.PUBLISH && p.properties?.responseTopic, "a/");
});

Deno.test("decodeDisconnect rejects a Session Expiry Interval sent by a server [MQTT-3.14.2-2]", () => {
  const bytes = "e0 07 00 05 11 00 00 00 0a";
  const error = rejects(bytes, PROTOCOL_ERROR, { protocolVersion: 5, side: "client" });
  assert.match(error.message, /MQTT-3\.14\.2-2/);
  const p = accepts(bytes, { protocolVersion: 5, side: "server" });
  assert.deepEqual(p, {
    type: PacketType.DISCONNECT,
    reasonCode: 0,
    properties: { sessionExpiryInterval: 10 },
  });
});

Deno.test("decodePublish rejects a subscription identifier sent by a client [MQTT-3.3.4-6]", () => {
  const bytes = "30 07 00 01 74 02 0b 01 78";
  rejects(bytes, PROTOCOL_ERROR, { protocolVersion: 5, side: "server" });
  accepts(bytes, { protocolVersion: 5, side: "client" });
});

// ---- SUBSCRIBE / UNSUBSCRIBE ------------------------------------------------------------------

Deno.test("decodeSubscribe rejects an empty payload [MQTT-3.8.3-3]", () => {
  rejects("82 02 00 01", PROTOCOL_ERROR, v4);
  rejects("82 02 00 01", PROTOCOL_ERROR, { protocolVersion: 3 });
  rejects("82 03 00 01 00", PROTOCOL_ERROR, v5);
});

Deno.test("decodeUnsubscribe rejects an empty payload [MQTT-3.10.3-2]", () => {
  rejects("a2 02 00 01", PROTOCOL_ERROR, v4);
  rejects("a2 03 00 01 00", PROTOCOL_ERROR, v5);
});

Deno.test("decodeSubscribe rejects requested QoS 3 and reserved bits at 3.1/3.1.1 [MQTT-3.8.3-4]", () => {
  for (const v of [3, 4] as const) {
    const o = { protocolVersion: v };
    rejects("82 06 00 01 00 01 74 03", MALFORMED, o);
    rejects("82 06 00 01 00 01 74 04", MALFORMED, o);
    rejects("82 06 00 01 00 01 74 80", MALFORMED, o);
    accepts("82 06 00 01 00 01 74 02", o);
  }
});

Deno.test("decodeSubscribe rejects reserved subscription option bits at 5.0 [MQTT-3.8.3-5]", () => {
  rejects("82 07 00 01 00 00 01 74 40", MALFORMED, v5);
  rejects("82 07 00 01 00 00 01 74 80", MALFORMED, v5);
});

Deno.test("decodeSubscribe rejects maximum QoS 3 at 5.0 as a Protocol Error (§3.8.3.1)", () => {
  rejects("82 07 00 01 00 00 01 74 03", PROTOCOL_ERROR, v5);
  rejects("82 07 00 01 00 00 01 74 2f", PROTOCOL_ERROR, v5);
});

Deno.test("decodeSubscribe rejects retain handling 3 (§3.8.3.1)", () => {
  rejects("82 07 00 01 00 00 01 74 30", PROTOCOL_ERROR, v5);
});

Deno.test("decodeSubscribe rejects No Local on a shared subscription [MQTT-3.8.3-4]", () => {
  rejects(`82 10 00 01 00 00 0a ${utf8("$share/g/t")} 04`, PROTOCOL_ERROR, v5);
  accepts(`82 10 00 01 00 00 0a ${utf8("$share/g/t")} 00`, v5);
});

Deno.test("decodeSuback rejects reserved return codes [MQTT-3.9.3-2] and an empty list", () => {
  rejects("90 03 00 01 03", PROTOCOL_ERROR, v4);
  rejects("90 02 00 01", PROTOCOL_ERROR, v4);
  rejects("90 04 00 01 00 8b", PROTOCOL_ERROR, v5); // 0x8B is not a SUBACK reason code
});

// ---- CONNECT ---------------------------------------------------------------------------------

Deno.test("decodeConnect rejects the reserved flag [MQTT-3.1.2-3]", () => {
  rejects(connect4(0x03), MALFORMED, {});
  rejects(`10 0f 00 06 ${utf8("MQIsdp")} 03 03 00 1e 00 01 61`, MALFORMED, {});
});

Deno.test("decodeConnect rejects will QoS without the will flag [MQTT-3.1.2-11] [MQTT-3.1.2-13]", () => {
  rejects(connect4(0x0a), MALFORMED, {});
  rejects(connect4(0x12), MALFORMED, {});
});

Deno.test("decodeConnect rejects will QoS 3 [MQTT-3.1.2-14]", () => {
  rejects(connect4(0x1e, "00 01 77 00 00"), MALFORMED, {});
});

Deno.test("decodeConnect rejects will retain without the will flag [MQTT-3.1.2-15]", () => {
  rejects(connect4(0x22), MALFORMED, {});
  // With the will flag, retain is fine.
  accepts(connect4(0x26, "00 01 77 00 00"), {});
});

Deno.test("decodeConnect rejects wildcards [MQTT-3.3.2-2] and emptiness [MQTT-4.7.3-1] in the will topic", () => {
  rejects(connect4(0x06, "00 03 61 2f 2b 00 00"), PROTOCOL_ERROR, {});
  rejects(connect4(0x06, "00 01 23 00 00"), PROTOCOL_ERROR, {});
  rejects(connect4(0x06, "00 00 00 00"), PROTOCOL_ERROR, {});
});

Deno.test("decodeConnect rejects a password without a user name at 3.1/3.1.1 [MQTT-3.1.2-22]", () => {
  rejects(connect4(0x42, "00 01 70"), MALFORMED, {});
  rejects(`10 12 00 06 ${utf8("MQIsdp")} 03 42 00 1e 00 01 61 00 01 70`, MALFORMED, {});
  accepts("10 11 00 04 4d 51 54 54 05 42 00 00 00 00 01 63 00 01 70", {});
});

Deno.test("decodeConnect rejects unsupported protocol name/level pairs with 0x84 [MQTT-3.1.2-2]", () => {
  const cases: [string, number][] = [
    [`00 04 ${utf8("MQTT")} 03`, 3],
    [`00 04 ${utf8("MQTT")} 06`, 6],
    [`00 06 ${utf8("MQIsdp")} 04`, 4],
    [`00 03 ${utf8("FOO")} 04`, 4],
  ];
  for (const [head, level] of cases) {
    const body = hex(`${head} 02 00 3c 00 00`);
    const bytes = new Uint8Array([0x10, body.length, ...body]);
    const error = assertPacketError(() => decodePacket(bytes, { side: "server" }), UNSUPPORTED);
    assert.equal(error.protocolVersion, level);
    assert.equal(error.packetType, PacketType.CONNECT);
  }
});

Deno.test("decodeConnect accepts level 3 client ids longer than 23 characters and empty ids", () => {
  const id = "x".repeat(40);
  const p = accepts(`10 36 00 06 ${utf8("MQIsdp")} 03 02 00 1e 00 28 ${utf8(id)}`, {});
  assert.equal(p.type === PacketType.CONNECT && p.clientId, id);
  const empty = accepts(`10 0e 00 06 ${utf8("MQIsdp")} 03 02 00 1e 00 00`, {});
  assert.equal(empty.type === PacketType.CONNECT && empty.clientId, "");
  accepts(connect4(0x00).replace("00 01 63", "00 00").replace("10 0d", "10 0c"), {});
});

Deno.test("decodePacket on the server side requires CONNECT first [MQTT-3.1.0-1]", () => {
  rejects("c0 00", PROTOCOL_ERROR, { side: "server" });
  // Known from the first byte.
  assertPacketError(() => decodePacket(hex("30"), { side: "server" }), PROTOCOL_ERROR);
  accepts(connect4(0x02), { side: "server" });
});

Deno.test("decodePacket refuses packets sent in the wrong direction", () => {
  rejects("20 02 00 00", PROTOCOL_ERROR, { protocolVersion: 4, side: "server" });
  rejects("d0 00", PROTOCOL_ERROR, { protocolVersion: 4, side: "server" });
  rejects("c0 00", PROTOCOL_ERROR, { protocolVersion: 4, side: "client" });
  rejects("82 06 00 01 00 01 74 00", PROTOCOL_ERROR, { protocolVersion: 4, side: "client" });
  rejects(connect4(0x02), PROTOCOL_ERROR, { side: "client" });
  // A server sends DISCONNECT only in 5.0.
  rejects("e0 00", PROTOCOL_ERROR, { protocolVersion: 4, side: "client" });
  accepts("e0 00", { protocolVersion: 5, side: "client" });
});

Deno.test("decodeConnack rejects reserved acknowledge flags [MQTT-3.2.2-1] and return codes", () => {
  rejects("20 02 02 00", MALFORMED, v4);
  rejects("20 02 00 06", PROTOCOL_ERROR, v4);
  rejects("20 03 00 10 00", PROTOCOL_ERROR, v5); // 0x10 is not a CONNACK reason code
});

// ---- Strings and lengths -----------------------------------------------------------------------

Deno.test("decodePacket rejects ill-formed UTF-8 [MQTT-1.5.3-1]", () => {
  rejects("30 04 00 01 ff 78", MALFORMED, v4);
  rejects("30 04 00 02 c0 80", MALFORMED, v4); // overlong U+0000
  rejects("30 05 00 03 ed a0 80", MALFORMED, v4); // UTF-16 surrogate D800
  rejects("30 04 00 02 e2 82", MALFORMED, v4); // truncated sequence
  rejects(connect4(0x02).replace("00 01 63", "00 01 80").replace("10 0d", "10 0d"), MALFORMED, {});
  const error = rejects("30 05 00 03 ed a0 80", MALFORMED, v4);
  assert.equal(error.offset, 4);
});

Deno.test("decodePacket rejects U+0000 in strings [MQTT-1.5.3-2]", () => {
  rejects("30 04 00 02 61 00", MALFORMED, v4);
  rejects(connect4(0x02).replace("00 01 63", "00 01 00"), MALFORMED, {});
  // Long non-ASCII string with U+0000 (TextDecoder path).
  const s = utf8("é".repeat(30)) + " 00";
  const n = s.split(" ").length;
  rejects(`30 ${(n + 2).toString(16)} 00 ${n.toString(16)} ${s}`, MALFORMED, v4);
});

Deno.test("decodePacket accepts U+FFFF and keeps a leading BOM [MQTT-1.5.3-3]", () => {
  const p = accepts("30 05 00 03 ef bf bf", v4);
  assert.equal(p.type === PacketType.PUBLISH && p.topic, "\uffff");
  const bom = accepts("30 06 00 04 ef bb bf 61", v4);
  assert.equal(bom.type === PacketType.PUBLISH && bom.topic, "\ufeffa");
});

Deno.test("decodePacket rejects strings and fields past the end of the packet", () => {
  rejects("30 03 00 05 61", MALFORMED, v4);
  rejects("32 04 00 01 74 00", MALFORMED, v4); // packet id cut short
  rejects("82 05 00 01 00 01 74", MALFORMED, v4); // options byte missing
  rejects(connect4(0x80).replace("10 0d", "10 0d"), MALFORMED, {}); // user name missing
  rejects("40 01 00", MALFORMED, v4);
});

Deno.test("decodePacket rejects bytes after the last field", () => {
  rejects("40 03 00 01 00", MALFORMED, v4);
  rejects("c0 01 00", MALFORMED, v4);
  rejects("e0 01 00", MALFORMED, v4);
  rejects("b0 03 00 01 00", MALFORMED, v4);
  rejects("20 03 00 00 00", MALFORMED, v4);
  rejects(connect4(0x02, "00"), MALFORMED, {});
  rejects("40 05 00 01 00 00 00", MALFORMED, v5);
  rejects("f0 03 00 00 00", MALFORMED, v5);
});

// ---- MQTT 5.0 properties -------------------------------------------------------------------

Deno.test("decodePacket rejects a property not allowed in the packet (§2.2.2.2)", () => {
  rejects("30 0a 00 01 74 05 11 00 00 00 01 78", MALFORMED, v5); // session expiry in PUBLISH
  rejects("40 07 00 01 00 03 23 00 01", MALFORMED, v5); // topic alias in PUBACK
  // Will delay interval belongs in the will properties, not the CONNECT properties.
  rejects("10 12 00 04 4d 51 54 54 05 02 00 3c 05 18 00 00 00 01 00 00", MALFORMED, {});
  // Session expiry is not a will property.
  rejects(
    "10 18 00 04 4d 51 54 54 05 06 00 3c 00 00 00 05 11 00 00 00 01 00 01 74 00 00",
    MALFORMED,
    {},
  );
  rejects("30 06 00 01 74 01 7f 78", MALFORMED, v5); // undefined identifier
  rejects("30 07 00 01 74 02 80 01 78", MALFORMED, v5); // multi-byte identifier
});

Deno.test("decodePacket rejects duplicated properties except user property and PUBLISH subscription identifier", () => {
  rejects("30 0b 00 01 74 06 23 00 01 23 00 02 78", PROTOCOL_ERROR, v5);
  rejects("40 0b 00 01 00 07 1f 00 00 1f 00 01 61", PROTOCOL_ERROR, v5);
  rejects("82 0b 00 01 04 0b 01 0b 02 00 01 74 00", PROTOCOL_ERROR, v5);
  accepts("30 09 00 01 74 04 0b 01 0b 02 78", v5);
  const p = accepts("30 11 00 01 74 0c 26 00 01 62 00 00 26 00 01 61 00 00 78", v5);
  assert.deepEqual(p.type === PacketType.PUBLISH && p.properties?.userProperties, [
    ["b", ""],
    ["a", ""],
  ]);
});

Deno.test("decodePacket rejects subscription identifier 0 (§3.3.2.3.8)", () => {
  rejects("30 07 00 01 74 02 0b 00 78", PROTOCOL_ERROR, v5);
  rejects("82 09 00 01 02 0b 00 00 01 74 00", PROTOCOL_ERROR, v5);
});

Deno.test("decodePacket rejects variable byte integers over 4 bytes (§1.5.5)", () => {
  rejects("30 0a 00 01 74 06 0b 80 80 80 80 01", MALFORMED, v5);
  rejects("30 08 00 01 74 ff ff ff ff 01", MALFORMED, v5); // property length
});

Deno.test("decodePacket rejects a property list longer than the packet", () => {
  rejects("30 05 00 01 74 09 78", MALFORMED, v5);
  rejects("30 08 00 01 74 02 1f 00 03 61", MALFORMED, v5); // string past the property list
});

Deno.test("decodePacket rejects out-of-range property values (§3.1.2.11, §3.3.2.3)", () => {
  rejects("30 08 00 01 74 03 23 00 00 78", 0x94, v5); // topic alias 0: Topic Alias invalid
  rejects("30 06 00 01 74 02 01 02", PROTOCOL_ERROR, v5); // payload format indicator 2
  rejects("20 06 00 00 03 21 00 00", PROTOCOL_ERROR, v5); // receive maximum 0
  rejects("20 08 00 00 05 27 00 00 00 00", PROTOCOL_ERROR, v5); // maximum packet size 0
  rejects("20 05 00 00 02 24 02", PROTOCOL_ERROR, v5); // maximum QoS 2
});

Deno.test("decodePacket rejects reason codes not defined for the packet (§2.4)", () => {
  rejects("40 03 00 01 04", PROTOCOL_ERROR, v5);
  rejects("62 03 00 01 10", PROTOCOL_ERROR, v5);
  rejects("e0 01 84", PROTOCOL_ERROR, v5);
  rejects("f0 08 01 06 15 00 03 61 62 63", PROTOCOL_ERROR, v5);
  rejects("b0 04 00 01 00 02", PROTOCOL_ERROR, v5);
  rejects("b0 03 00 01 00", PROTOCOL_ERROR, v5); // UNSUBACK needs a reason code per filter
});

Deno.test("decodeAuth rejects an AUTH other than the empty one without an Authentication Method (§3.15.2.2.2)", () => {
  const missing = rejects("f0 02 19 00", PROTOCOL_ERROR, v5);
  assert.match(missing.message, /authentication method is missing/);
  rejects("f0 01 18", PROTOCOL_ERROR, v5);
  rejects("f0 06 18 04 16 00 01 01", PROTOCOL_ERROR, v5); // data without method
  accepts("f0 00", v5);
  accepts("f0 08 18 06 15 00 03 61 62 63", v5);
});

Deno.test("decodeConnect rejects Authentication Data without an Authentication Method (§3.1.2.11.10)", () => {
  const error = rejects(
    "10 11 00 04 4d 51 54 54 05 02 00 3c 04 16 00 01 01 00 00",
    PROTOCOL_ERROR,
    {},
  );
  assert.match(error.message, /authentication data without an authentication method/);
  assert.equal(error.offset, 12);
  accepts("10 15 00 04 4d 51 54 54 05 02 00 3c 08 15 00 01 6d 16 00 01 01 00 00", {});
});

// ---- Streaming decoder: the same rules through PacketDecoder ----------------------------------

Deno.test("PacketDecoder keeps throwing the first error after a malformed packet", () => {
  const d = new PacketDecoder({ protocolVersion: 4 });
  d.push(hex("c0 00 36 05 00 01 74 00 01 c0 00"));
  assert.deepEqual(d.next(), { type: PacketType.PINGREQ });
  const first = assertPacketError(() => d.next(), MALFORMED);
  assert.equal(assertPacketError(() => d.next(), MALFORMED), first);
});

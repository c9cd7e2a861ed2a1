// Encoder behaviour beyond the golden vectors: misuse errors, writing into a buffer, fan-out.

import assert from "node:assert/strict";
import {
  decodePacket,
  encodedLength,
  encodePacket,
  encodePacketInto,
  type Packet,
  PacketType,
  type PublishPacket,
  publishPacketIdOffset,
} from "../../src/packet/mod.ts";

const T = PacketType;
/** A PUBLISH with `over` applied; keys set to undefined are removed. */
function publish(over: Partial<PublishPacket> = {}): PublishPacket {
  const p: Record<string, unknown> = {
    type: T.PUBLISH,
    topic: "a/b",
    payload: new Uint8Array([1, 2, 3]),
    qos: 1,
    retain: false,
    dup: false,
    packetId: 1,
    ...over,
  };
  for (const key of Object.keys(p)) if (p[key] === undefined) delete p[key];
  return p as unknown as PublishPacket;
}

function throwsType(packet: unknown, v: 3 | 4 | 5, pattern: RegExp): void {
  assert.throws(
    () => encodePacket(packet as Packet, v),
    (e) => e instanceof TypeError && pattern.test(e.message),
  );
}

function throwsRange(packet: unknown, v: 3 | 4 | 5, pattern: RegExp): void {
  assert.throws(
    () => encodePacket(packet as Packet, v),
    (e) => e instanceof RangeError && pattern.test(e.message),
  );
}

Deno.test("encodePacket rejects QoS 3 with RangeError [MQTT-3.3.1-4]", () => {
  throwsRange(publish({ qos: 3 as 0 }), 4, /QoS 3/);
  throwsRange(
    { type: T.SUBSCRIBE, packetId: 1, subscriptions: [{ topic: "a", qos: 3 }] },
    4,
    /requested QoS 3/,
  );
  throwsRange(
    {
      type: T.CONNECT,
      protocolName: "MQTT",
      protocolVersion: 4,
      clean: true,
      keepAlive: 0,
      clientId: "",
      will: { topic: "w", payload: new Uint8Array(), qos: 3, retain: false },
    },
    4,
    /will QoS 3/,
  );
});

Deno.test("encodePacket rejects packet identifier 0 (RangeError) or missing (TypeError) [MQTT-2.3.1-1]", () => {
  throwsRange(publish({ packetId: 0 }), 4, /packet identifier 0/);
  throwsRange(publish({ packetId: 65536 }), 4, /packet identifier 65536/);
  throwsType(publish({ packetId: undefined }), 4, /missing/);
  throwsRange({ type: T.PUBACK, packetId: 0 }, 5, /packet identifier 0/);
  throwsType({ type: T.SUBSCRIBE, subscriptions: [{ topic: "a", qos: 0 }] }, 4, /missing/);
  // QoS 0 carries no identifier, so one given is left out [MQTT-2.3.1-5].
  assert.deepEqual(
    encodePacket(publish({ qos: 0, packetId: 5 }), 4),
    encodePacket(publish({ qos: 0, packetId: undefined }), 4),
  );
});

Deno.test("encodePacket rejects DUP on QoS 0 [MQTT-3.3.1-2]", () => {
  throwsType(publish({ qos: 0, dup: true, packetId: undefined }), 4, /DUP/);
});

Deno.test("encodePacket rejects wildcards and empty PUBLISH topics [MQTT-3.3.2-2] [MQTT-4.7.3-1]", () => {
  throwsType(publish({ topic: "a/+" }), 4, /wildcard "\+"/);
  throwsType(publish({ topic: "#" }), 5, /wildcard "#"/);
  throwsType(publish({ topic: "" }), 4, /empty/);
  // The Response Topic is a topic name too [MQTT-3.3.2-14].
  throwsType(publish({ properties: { responseTopic: "r/+" } }), 5, /MQTT-3.3.2-14/);
  throwsType(publish({ topic: "" }), 5, /topic alias/);
  assert.ok(encodePacket(publish({ topic: "", properties: { topicAlias: 1 } }), 5).length > 0);
});

Deno.test("encodePacket rejects strings over 65535 bytes, U+0000 and lone surrogates [MQTT-1.5.3-1] [MQTT-1.5.3-2]", () => {
  throwsRange(publish({ topic: "a".repeat(65536) }), 4, /65536 bytes/);
  throwsRange(publish({ topic: "é".repeat(32768) }), 4, /65536 bytes/);
  assert.equal(
    encodePacket(publish({ topic: "a".repeat(65535), qos: 0, packetId: undefined }), 4).length,
    65544,
  );
  throwsType(publish({ topic: "a\0" }), 4, /U\+0000/);
  throwsType(publish({ topic: "a\ud800" }), 4, /lone surrogate/);
  throwsType(publish({ topic: "\udc00a" }), 4, /lone surrogate/);
  throwsRange(
    {
      type: T.CONNECT,
      protocolName: "MQTT",
      protocolVersion: 4,
      clean: true,
      keepAlive: 0,
      clientId: "",
      username: "u",
      password: new Uint8Array(65536),
    },
    4,
    /password is 65536 bytes/,
  );
});

Deno.test("encodePacket rejects properties not allowed in the packet (§2.2.2.2)", () => {
  throwsType(
    publish({ properties: { sessionExpiryInterval: 1 } }),
    5,
    /sessionExpiryInterval is not allowed in PUBLISH/,
  );
  throwsType({ type: T.PUBACK, packetId: 1, properties: { topicAlias: 1 } }, 5, /not allowed/);
  throwsType(publish({ properties: { bogus: 1 } as never }), 5, /unknown property bogus/);
  throwsType(
    {
      type: T.CONNECT,
      protocolName: "MQTT",
      protocolVersion: 5,
      clean: true,
      keepAlive: 0,
      clientId: "",
      will: {
        topic: "w",
        payload: new Uint8Array(),
        qos: 0,
        retain: false,
        properties: { sessionExpiryInterval: 1 },
      },
    },
    5,
    /not allowed in will properties/,
  );
  throwsType(
    {
      type: T.SUBSCRIBE,
      packetId: 1,
      subscriptions: [{ topic: "a", qos: 0 }],
      properties: { subscriptionIdentifier: [1, 2] },
    },
    5,
    /only once/,
  );
  throwsRange(publish({ properties: { topicAlias: 0 } }), 5, /topicAlias is 0/);
  throwsRange(
    publish({ properties: { subscriptionIdentifier: [0] } }),
    5,
    /subscriptionIdentifier 0/,
  );
  throwsRange(publish({ properties: { payloadFormatIndicator: 2 } }), 5, /out of range/);
  // Properties are ignored below level 5.
  assert.deepEqual(
    encodePacket(publish({ properties: { sessionExpiryInterval: 1 } }), 4),
    encodePacket(publish(), 4),
  );
});

Deno.test("encodePacket rejects reason codes the packet may not carry (§2.4)", () => {
  throwsRange({ type: T.PUBACK, packetId: 1, reasonCode: 0x04 }, 5, /reason code 0x4/);
  throwsRange({ type: T.CONNACK, sessionPresent: false, reasonCode: 6 }, 4, /return code 6/);
  throwsRange({ type: T.SUBACK, packetId: 1, reasonCodes: [3] }, 4, /return code 3/);
  throwsRange({ type: T.DISCONNECT, reasonCode: 0x84 }, 5, /reason code 0x84/);
});

Deno.test("encodePacket requires an Authentication Method where 5.0 does (§3.15.2.2.2, §3.1.2.11.10)", () => {
  throwsType({ type: T.AUTH, reasonCode: 0x18 }, 5, /authentication method is missing/);
  throwsType(
    { type: T.AUTH, reasonCode: 0, properties: { reasonString: "x" } },
    5,
    /authentication method is missing/,
  );
  assert.deepEqual(encodePacket({ type: T.AUTH, reasonCode: 0 }, 5), new Uint8Array([0xf0, 0]));
  throwsType(
    {
      type: T.CONNECT,
      protocolName: "MQTT",
      protocolVersion: 5,
      clean: true,
      keepAlive: 0,
      clientId: "",
      properties: { authenticationData: new Uint8Array([1]) },
    },
    5,
    /authentication data without an authentication method/,
  );
});

Deno.test("encodePacket rejects other misuse", () => {
  throwsType({ type: T.AUTH }, 4, /only in MQTT 5.0/);
  throwsType({ type: 0 }, 4, /unknown packet type/);
  throwsType({ type: T.SUBSCRIBE, packetId: 1, subscriptions: [] }, 4, /no subscriptions/);
  throwsType({ type: T.UNSUBSCRIBE, packetId: 1, topics: [] }, 4, /no topic filters/);
  throwsType({ type: T.UNSUBACK, packetId: 1 }, 5, /no reason codes/);
  throwsType(
    {
      type: T.CONNECT,
      protocolName: "MQTT",
      protocolVersion: 4,
      clean: true,
      keepAlive: 0,
      clientId: "",
      password: new Uint8Array(1),
    },
    4,
    /MQTT-3.1.2-22/,
  );
  throwsType(
    {
      type: T.CONNECT,
      protocolName: "MQTT",
      protocolVersion: 3,
      clean: true,
      keepAlive: 0,
      clientId: "",
    },
    3,
    /protocol name "MQTT" is not "MQIsdp"/,
  );
  throwsType(
    {
      type: T.CONNECT,
      protocolName: "MQTT",
      protocolVersion: 4,
      clean: true,
      keepAlive: 0,
      clientId: "",
    },
    5,
    /differs from the encoding level/,
  );
  throwsRange(
    {
      type: T.CONNECT,
      protocolName: "MQTT",
      protocolVersion: 4,
      clean: true,
      keepAlive: 70000,
      clientId: "",
    },
    4,
    /keepAlive 70000/,
  );
  throwsType(publish({ payload: "text" as never }), 4, /payload is not a Uint8Array/);
  assert.throws(() => encodePacket(publish(), 6 as 5), RangeError);
});

Deno.test("encodePacketInto writes at an offset and refuses a target that is too small", () => {
  const p = publish();
  const n = encodedLength(p, 4);
  const out = new Uint8Array(n + 10).fill(0xee);
  assert.equal(encodePacketInto(p, 4, out, 5), 5 + n);
  assert.deepEqual(out.subarray(5, 5 + n), encodePacket(p, 4));
  assert.equal(out[4], 0xee);
  assert.equal(out[5 + n], 0xee);
  const small = new Uint8Array(n - 1).fill(0xee);
  assert.throws(() => encodePacketInto(p, 4, small, 0), RangeError);
  assert.ok(small.every((b) => b === 0xee), "nothing written on failure");
  assert.throws(() => encodePacketInto(p, 4, out, -1), RangeError);
});

Deno.test("encodePacket sizes the remaining length field across its 1-4 byte boundaries", () => {
  for (const size of [0, 120, 121, 122, 16377, 16378, 16379, 2097145, 2097146]) {
    const p = publish({ qos: 0, packetId: undefined, topic: "t", payload: new Uint8Array(size) });
    const bytes = encodePacket(p, 4);
    assert.equal(bytes.length, encodedLength(p, 4));
    assert.deepEqual(decodePacket(bytes, { protocolVersion: 4 })?.packet, p);
  }
});

Deno.test("publishPacketIdOffset lets one encoded PUBLISH be patched per subscriber", () => {
  for (const v of [3, 4, 5] as const) {
    for (const size of [0, 200, 20000]) {
      const p = publish({
        qos: 2,
        packetId: 1,
        payload: new Uint8Array(size).fill(7),
        properties: { userProperties: [["k", "v"]] },
      });
      const bytes = encodePacket(p, v);
      const at = publishPacketIdOffset(bytes);
      for (const id of [2, 0x1234, 0xffff]) {
        bytes[at] = id >> 8;
        bytes[at + 1] = id & 0xff;
        const { properties, ...withoutProperties } = p;
        const expected = v === 5 ? { ...p, packetId: id } : { ...withoutProperties, packetId: id };
        assert.ok(properties !== undefined);
        assert.deepEqual(decodePacket(bytes, { protocolVersion: v })?.packet, expected);
      }
    }
  }
  assert.throws(
    () => publishPacketIdOffset(encodePacket(publish({ qos: 0, packetId: undefined }), 4)),
    RangeError,
  );
  assert.throws(() => publishPacketIdOffset(encodePacket({ type: T.PINGREQ }, 4)), TypeError);
  assert.throws(() => publishPacketIdOffset(new Uint8Array([0x32, 0x05, 0x00, 0x01])), RangeError);
});

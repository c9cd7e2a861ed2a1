/**
 * Encoding MQTT packets to bytes: one exactly-sized allocation per packet, or straight into a
 * caller's buffer.
 *
 * @module
 */

import {
  MAX_REMAINING_LENGTH,
  PACKET_NAMES,
  PacketType,
  type ProtocolVersion,
} from "./constants.ts";
import type {
  AckPacket,
  ConnackPacket,
  ConnectPacket,
  DisconnectPacket,
  Packet,
  Properties,
  PublishPacket,
  SubackPacket,
  SubscribePacket,
  UnsubackPacket,
  UnsubscribePacket,
  UserProperty,
} from "./types.ts";
import { PROPERTY_BY_NAME, REASON_CODE_MASK, WILL_CONTEXT } from "./_tables.ts";

const TEXT = new TextEncoder();

/**
 * Encodes a packet into a new `Uint8Array` of exactly its size.
 *
 * Fields that do not exist at the given level (properties, 5.0 reason codes and subscription
 * options at levels 3 and 4) are ignored. At level 5 the acknowledgements, DISCONNECT and AUTH
 * take their shortest form: a Success reason code with no properties is left out.
 *
 * @param packet The packet.
 * @param protocolVersion The level of the connection: 3, 4 or 5. A CONNECT must carry the same
 * level and its matching protocol name (`"MQIsdp"` for 3, `"MQTT"` for 4 and 5).
 * @returns The encoded packet.
 * @throws {TypeError} When the packet breaks the spec in kind: a missing packet identifier, a
 * wildcard in a PUBLISH topic, a property not allowed in that packet, a string with U+0000 or a
 * lone surrogate, an unknown packet type.
 * @throws {RangeError} When a value is out of range: QoS 3, packet identifier 0, a string or
 * binary field over 65,535 bytes, a reason code not valid for the packet, a packet over the
 * protocol's maximum size.
 *
 * @example Encoding a QoS 1 PUBLISH
 * ```ts
 * import { encodePacket, PacketType } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = encodePacket({
 *   type: PacketType.PUBLISH,
 *   topic: "a/b",
 *   payload: new Uint8Array([1, 2]),
 *   qos: 1,
 *   retain: false,
 *   dup: false,
 *   packetId: 10,
 * }, 4);
 * assert.deepEqual(
 *   bytes,
 *   new Uint8Array([0x32, 0x09, 0x00, 0x03, 0x61, 0x2f, 0x62, 0x00, 0x0a, 0x01, 0x02]),
 * );
 * ```
 */
export function encodePacket(packet: Packet, protocolVersion: ProtocolVersion): Uint8Array {
  checkVersion(protocolVersion);
  const rem = measure(packet, protocolVersion);
  const out = new Uint8Array(1 + varintSize(rem) + rem);
  write(packet, protocolVersion, rem, out, 0);
  return out;
}

/**
 * The number of bytes {@linkcode encodePacket} would produce for a packet.
 *
 * @param packet The packet.
 * @param protocolVersion The level of the connection: 3, 4 or 5.
 * @returns The encoded size in bytes, fixed header included.
 * @throws {TypeError} As {@linkcode encodePacket}.
 * @throws {RangeError} As {@linkcode encodePacket}.
 */
export function encodedLength(packet: Packet, protocolVersion: ProtocolVersion): number {
  checkVersion(protocolVersion);
  const rem = measure(packet, protocolVersion);
  return 1 + varintSize(rem) + rem;
}

/**
 * Encodes a packet into `target` at `offset`, so a connection can write straight into its output
 * buffer. Nothing is written when the packet is invalid or does not fit.
 *
 * @param packet The packet.
 * @param protocolVersion The level of the connection: 3, 4 or 5.
 * @param target The buffer to write into.
 * @param offset Where the packet starts in `target`.
 * @returns The offset just past the packet.
 * @throws {RangeError} When the packet does not fit in `target` from `offset`, and as
 * {@linkcode encodePacket}.
 * @throws {TypeError} As {@linkcode encodePacket}.
 *
 * @example Writing two packets into one buffer
 * ```ts
 * import { encodedLength, encodePacketInto, PacketType } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const ping = { type: PacketType.PINGREQ } as const;
 * const out = new Uint8Array(encodedLength(ping, 4) * 2);
 * const end = encodePacketInto(ping, 4, out, encodePacketInto(ping, 4, out, 0));
 * assert.equal(end, 4);
 * assert.deepEqual(out, new Uint8Array([0xc0, 0x00, 0xc0, 0x00]));
 * ```
 */
export function encodePacketInto(
  packet: Packet,
  protocolVersion: ProtocolVersion,
  target: Uint8Array,
  offset: number,
): number {
  checkVersion(protocolVersion);
  const rem = measure(packet, protocolVersion);
  const total = 1 + varintSize(rem) + rem;
  if (!Number.isInteger(offset) || offset < 0 || offset + total > target.length) {
    throw new RangeError(
      `Cannot encode ${
        name(packet)
      }: ${total} bytes do not fit in the target at offset ${offset} (length ${target.length})`,
    );
  }
  return write(packet, protocolVersion, rem, target, offset);
}

/**
 * The byte offset of the 2-byte packet identifier in an encoded QoS 1 or QoS 2 PUBLISH. A broker
 * encodes a PUBLISH once and patches the identifier for each subscriber (with a copy per
 * subscriber, or a buffer it does not share).
 *
 * @param encodedPublish An encoded PUBLISH with QoS 1 or 2.
 * @returns The offset of the identifier's high byte.
 * @throws {TypeError} When the bytes are not a PUBLISH.
 * @throws {RangeError} When the PUBLISH has QoS 0 (no identifier) or is truncated.
 *
 * @example Patching the packet identifier
 * ```ts
 * import { encodePacket, PacketType, publishPacketIdOffset } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = encodePacket({
 *   type: PacketType.PUBLISH, topic: "t", payload: new Uint8Array(0),
 *   qos: 1, retain: false, dup: false, packetId: 1,
 * }, 4);
 * const at = publishPacketIdOffset(bytes);
 * bytes[at] = 0x12;
 * bytes[at + 1] = 0x34;
 * assert.deepEqual(bytes, new Uint8Array([0x32, 0x05, 0x00, 0x01, 0x74, 0x12, 0x34]));
 * ```
 */
export function publishPacketIdOffset(encodedPublish: Uint8Array): number {
  const b = encodedPublish;
  if (b.length < 2 || b[0] >> 4 !== PacketType.PUBLISH) {
    throw new TypeError("Cannot find packet identifier: the bytes are not a PUBLISH");
  }
  const qos = (b[0] >> 1) & 3;
  if (qos !== 1 && qos !== 2) {
    throw new RangeError(`Cannot find packet identifier: the PUBLISH has QoS ${qos}`);
  }
  let p = 1;
  while (b[p] & 0x80) {
    if (++p > 4) throw new RangeError("Cannot find packet identifier: invalid remaining length");
  }
  p++;
  if (p + 2 > b.length) throw new RangeError("Cannot find packet identifier: PUBLISH is truncated");
  const at = p + 2 + ((b[p] << 8) | b[p + 1]);
  if (at + 2 > b.length) {
    throw new RangeError("Cannot find packet identifier: PUBLISH is truncated");
  }
  return at;
}

// ---------------------------------------------------------------------------------------------
// Measuring (validates everything, so writing cannot fail half-way)

function checkVersion(v: ProtocolVersion): void {
  if (v !== 3 && v !== 4 && v !== 5) {
    throw new RangeError(`Cannot encode packet: protocol version ${v} is not 3, 4 or 5`);
  }
}

function name(packet: Packet): string {
  return PACKET_NAMES[packet.type] ?? "packet";
}

function varintSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : 4;
}

/** Remaining length of a packet; throws on anything the spec forbids. */
function measure(packet: Packet, v: ProtocolVersion): number {
  if (packet === null || typeof packet !== "object") {
    throw new TypeError("Cannot encode packet: not a packet object");
  }
  let rem: number;
  switch (packet.type) {
    case PacketType.CONNECT:
      rem = measureConnect(packet, v);
      break;
    case PacketType.CONNACK:
      rem = measureConnack(packet, v);
      break;
    case PacketType.PUBLISH:
      rem = measurePublish(packet, v);
      break;
    case PacketType.PUBACK:
    case PacketType.PUBREC:
    case PacketType.PUBREL:
    case PacketType.PUBCOMP:
      checkId(packet, packet.packetId);
      rem = 2 + measureReasonAndProps(packet, v, 1);
      break;
    case PacketType.SUBSCRIBE:
      rem = measureSubscribe(packet, v);
      break;
    case PacketType.SUBACK:
      rem = measureSuback(packet, v);
      break;
    case PacketType.UNSUBSCRIBE:
      rem = measureUnsubscribe(packet, v);
      break;
    case PacketType.UNSUBACK:
      rem = measureUnsuback(packet, v);
      break;
    case PacketType.PINGREQ:
    case PacketType.PINGRESP:
      rem = 0;
      break;
    case PacketType.DISCONNECT:
      rem = v === 5 ? measureReasonAndProps(packet, v, 1) : 0;
      break;
    case PacketType.AUTH:
      if (v !== 5) {
        throw new TypeError(`Cannot encode AUTH: it exists only in MQTT 5.0, not level ${v}`);
      }
      // A reason code alone is followed by an empty property length (§3.15.2).
      rem = measureReasonAndProps(packet, v, 2);
      if (rem > 0 && packet.properties?.authenticationMethod === undefined) {
        // §3.15.2.2.2: only the empty AUTH (Success, no properties) omits the method.
        fail(packet, "authentication method is missing (§3.15.2.2.2)");
      }
      break;
    default:
      throw new TypeError(
        `Cannot encode packet: unknown packet type ${(packet as { type: unknown }).type}`,
      );
  }
  if (rem > MAX_REMAINING_LENGTH) {
    throw new RangeError(
      `Cannot encode ${name(packet)}: remaining length ${rem} exceeds ${MAX_REMAINING_LENGTH}`,
    );
  }
  return rem;
}

function fail(packet: Packet, message: string, range = false): never {
  const text = `Cannot encode ${name(packet)}: ${message}`;
  throw range ? new RangeError(text) : new TypeError(text);
}

function checkId(packet: Packet, id: number | undefined): void {
  if (id === undefined) fail(packet, "packet identifier is missing [MQTT-2.3.1-1]");
  if (!Number.isInteger(id) || id < 1 || id > 0xffff) {
    fail(packet, `packet identifier ${id} is not in 1..65535 [MQTT-2.3.1-1]`, true);
  }
}

function checkQos(packet: Packet, qos: unknown, what: string): void {
  if (qos !== 0 && qos !== 1 && qos !== 2) fail(packet, `${what} ${qos} is not 0, 1 or 2`, true);
}

function checkByte(packet: Packet, value: unknown, what: string, max = 0xff): void {
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > max) {
    fail(packet, `${what} ${value} is out of range`, true);
  }
}

/**
 * UTF-8 length of a string field, checking [MQTT-1.5.3-1] (no lone surrogates), [MQTT-1.5.3-2]
 * (no U+0000), the 65,535-byte limit and, for topic names, wildcards (citing `wildcardRule`).
 */
function strLen(packet: Packet, s: unknown, what: string, wildcardRule?: string): number {
  if (typeof s !== "string") fail(packet, `${what} is not a string`);
  const n = s.length;
  let bytes = n;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      if (c === 0) fail(packet, `${what} contains U+0000 [MQTT-1.5.3-2]`);
      if (wildcardRule !== undefined && (c === 0x2b || c === 0x23)) {
        fail(packet, `${what} contains wildcard "${s[i]}" [${wildcardRule}]`);
      }
    } else if (c < 0x800) {
      bytes += 1;
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const d = s.charCodeAt(i + 1);
      if (c > 0xdbff || !(d >= 0xdc00 && d <= 0xdfff)) {
        fail(packet, `${what} contains a lone surrogate [MQTT-1.5.3-1]`);
      }
      // A surrogate pair: 2 UTF-16 units, 4 UTF-8 bytes.
      bytes += 2;
      i++;
    } else {
      bytes += 2;
    }
  }
  if (bytes > 0xffff) fail(packet, `${what} is ${bytes} bytes, more than 65535`, true);
  return bytes;
}

function binLen(packet: Packet, b: unknown, what: string): number {
  if (!(b instanceof Uint8Array)) fail(packet, `${what} is not a Uint8Array`);
  if (b.length > 0xffff) fail(packet, `${what} is ${b.length} bytes, more than 65535`, true);
  return b.length;
}

/** Size of the property list body (without its length prefix); 0 when there is nothing to send. */
function propsBodyLen(packet: Packet, props: Properties | undefined, context: number): number {
  if (props === undefined) return 0;
  if (props === null || typeof props !== "object") fail(packet, "properties is not an object");
  const bit = 1 << context;
  const where = context === WILL_CONTEXT ? "will properties" : name(packet);
  let n = 0;
  for (const key in props) {
    const value = (props as Record<string, unknown>)[key];
    if (value === undefined) continue;
    const entry = PROPERTY_BY_NAME.get(key);
    if (entry === undefined) fail(packet, `unknown property ${key}`);
    // §2.2.2.2: each property may appear only in some packets.
    if ((entry.mask & bit) === 0) fail(packet, `property ${key} is not allowed in ${where}`);
    switch (entry.type) {
      case "byte":
        // Every byte property is a 0/1 flag (Maximum QoS 2 is expressed by leaving it out).
        checkByte(packet, value, `property ${key}`, 1);
        n += 2;
        break;
      case "u16":
        checkByte(packet, value, `property ${key}`, 0xffff);
        if (value === 0 && (key === "receiveMaximum" || key === "topicAlias")) {
          fail(packet, `property ${key} is 0`, true);
        }
        n += 3;
        break;
      case "u32":
        checkByte(packet, value, `property ${key}`, 0xffffffff);
        if (value === 0 && key === "maximumPacketSize") fail(packet, `property ${key} is 0`, true);
        n += 5;
        break;
      case "varint": {
        if (!Array.isArray(value)) fail(packet, `property ${key} is not an array`);
        if (value.length > 1 && packet.type !== PacketType.PUBLISH) {
          fail(packet, `property ${key} may appear only once here`);
        }
        for (const id of value) {
          if (!Number.isInteger(id) || id < 1 || id > MAX_REMAINING_LENGTH) {
            fail(packet, `property ${key} ${id} is not in 1..268435455`, true);
          }
          n += 1 + varintSize(id);
        }
        break;
      }
      case "string":
        // The Response Topic is a topic name: no wildcards [MQTT-3.3.2-14].
        n += 3 +
          strLen(
            packet,
            value,
            `property ${key}`,
            entry.id === 0x08 ? "MQTT-3.3.2-14" : undefined,
          );
        break;
      case "binary":
        n += 3 + binLen(packet, value, `property ${key}`);
        break;
      case "pair": {
        if (!Array.isArray(value)) fail(packet, `property ${key} is not an array`);
        for (const pair of value as UserProperty[]) {
          if (!Array.isArray(pair) || pair.length !== 2) {
            fail(packet, "a user property is not a [name, value] pair");
          }
          n += 5 + strLen(packet, pair[0], "user property name") +
            strLen(packet, pair[1], "user property value");
        }
        break;
      }
    }
  }
  return n;
}

function checkReason(packet: Packet, code: unknown): void {
  checkByte(packet, code, "reason code");
  if ((REASON_CODE_MASK[code as number] & (1 << packet.type)) === 0) {
    fail(packet, `reason code 0x${(code as number).toString(16)} is not valid in it (§2.4)`, true);
  }
}

/**
 * Reason code and properties of the 5.0 acknowledgements, DISCONNECT and AUTH, in their shortest
 * form: nothing for Success without properties; `aloneSize` bytes for a reason code alone.
 */
function measureReasonAndProps(
  packet: AckPacket | DisconnectPacket | Packet & { reasonCode?: number; properties?: Properties },
  v: ProtocolVersion,
  aloneSize: number,
): number {
  if (v !== 5) return 0;
  const p = packet as { reasonCode?: number; properties?: Properties };
  if (p.reasonCode !== undefined) checkReason(packet, p.reasonCode);
  const body = propsBodyLen(packet, p.properties, packet.type);
  if (body > 0) return 1 + varintSize(body) + body;
  if (p.reasonCode !== undefined && p.reasonCode !== 0) return aloneSize;
  return 0;
}

function fullProps(packet: Packet, props: Properties | undefined, context: number): number {
  const body = propsBodyLen(packet, props, context);
  return varintSize(body) + body;
}

function measureConnect(p: ConnectPacket, v: ProtocolVersion): number {
  const expected = v === 3 ? "MQIsdp" : "MQTT";
  if (p.protocolVersion !== v) {
    fail(p, `protocolVersion ${p.protocolVersion} differs from the encoding level ${v}`);
  }
  if (p.protocolName !== expected) {
    fail(p, `protocol name "${p.protocolName}" is not "${expected}" at level ${v} [MQTT-3.1.2-1]`);
  }
  checkByte(p, p.keepAlive, "keepAlive", 0xffff);
  let n = 2 + expected.length + 1 + 1 + 2 + 2 + strLen(p, p.clientId, "clientId");
  if (v === 5) {
    n += fullProps(p, p.properties, PacketType.CONNECT);
    if (
      p.properties?.authenticationData !== undefined &&
      p.properties.authenticationMethod === undefined
    ) {
      // §3.1.2.11.10: Authentication Data needs an Authentication Method.
      fail(p, "authentication data without an authentication method (§3.1.2.11.10)");
    }
  }
  const will = p.will;
  if (will !== undefined) {
    checkQos(p, will.qos, "will QoS");
    if (v === 5) n += fullProps(p, will.properties, WILL_CONTEXT);
    n += 4 + strLen(p, will.topic, "will topic", "MQTT-3.3.2-2") +
      binLen(p, will.payload, "will payload");
    if (will.topic === "") fail(p, "will topic is empty [MQTT-4.7.3-1]");
  }
  if (p.username !== undefined) n += 2 + strLen(p, p.username, "username");
  if (p.password !== undefined) {
    // [MQTT-3.1.2-22] before 5.0 a password needs a user name.
    if (p.username === undefined && v < 5) fail(p, "password without username [MQTT-3.1.2-22]");
    n += 2 + binLen(p, p.password, "password");
  }
  return n;
}

function measureConnack(p: ConnackPacket, v: ProtocolVersion): number {
  if (v === 5) {
    checkReason(p, p.reasonCode);
    return 2 + fullProps(p, p.properties, PacketType.CONNACK);
  }
  checkByte(p, p.reasonCode, "return code", 5);
  return 2;
}

function measurePublish(p: PublishPacket, v: ProtocolVersion): number {
  checkQos(p, p.qos, "QoS");
  // [MQTT-3.3.1-2] DUP must be 0 for QoS 0.
  if (p.dup && p.qos === 0) fail(p, "DUP is set on a QoS 0 message [MQTT-3.3.1-2]");
  let n = 2 + strLen(p, p.topic, "topic", "MQTT-3.3.2-2") + binLenAny(p, p.payload);
  if (p.qos > 0) {
    checkId(p, p.packetId);
    n += 2;
  }
  if (v === 5) {
    const body = propsBodyLen(p, p.properties, PacketType.PUBLISH);
    n += varintSize(body) + body;
    if (p.topic === "" && p.properties?.topicAlias === undefined) {
      fail(p, "topic is empty and there is no topic alias");
    }
  } else if (p.topic === "") {
    fail(p, "topic is empty [MQTT-4.7.3-1]");
  }
  return n;
}

function binLenAny(p: Packet, payload: unknown): number {
  if (!(payload instanceof Uint8Array)) fail(p, "payload is not a Uint8Array");
  return payload.length;
}

function measureSubscribe(p: SubscribePacket, v: ProtocolVersion): number {
  checkId(p, p.packetId);
  if (!Array.isArray(p.subscriptions) || p.subscriptions.length === 0) {
    fail(p, "no subscriptions [MQTT-3.8.3-3]");
  }
  let n = 2 + (v === 5 ? fullProps(p, p.properties, PacketType.SUBSCRIBE) : 0);
  for (const s of p.subscriptions) {
    checkQos(p, s.qos, "requested QoS");
    if (v === 5) {
      const rh = s.retainHandling ?? 0;
      if (rh !== 0 && rh !== 1 && rh !== 2) fail(p, `retain handling ${rh} is not 0, 1 or 2`, true);
      if (s.noLocal && s.topic.startsWith("$share/")) {
        fail(p, "no local on a shared subscription [MQTT-3.8.3-4]");
      }
    }
    n += 3 + strLen(p, s.topic, "topic filter");
  }
  return n;
}

function measureSuback(p: SubackPacket, v: ProtocolVersion): number {
  checkId(p, p.packetId);
  if (!Array.isArray(p.reasonCodes) || p.reasonCodes.length === 0) fail(p, "no return codes");
  for (const code of p.reasonCodes) {
    if (v === 5) checkReason(p, code);
    else if (code !== 0 && code !== 1 && code !== 2 && code !== 0x80) {
      fail(p, `return code ${code} is not 0, 1, 2 or 0x80 [MQTT-3.9.3-2]`, true);
    }
  }
  return 2 + (v === 5 ? fullProps(p, p.properties, PacketType.SUBACK) : 0) + p.reasonCodes.length;
}

function measureUnsubscribe(p: UnsubscribePacket, v: ProtocolVersion): number {
  checkId(p, p.packetId);
  if (!Array.isArray(p.topics) || p.topics.length === 0) {
    fail(p, "no topic filters [MQTT-3.10.3-2]");
  }
  let n = 2 + (v === 5 ? fullProps(p, p.properties, PacketType.UNSUBSCRIBE) : 0);
  for (const t of p.topics) n += 2 + strLen(p, t, "topic filter");
  return n;
}

function measureUnsuback(p: UnsubackPacket, v: ProtocolVersion): number {
  checkId(p, p.packetId);
  if (v < 5) return 2;
  const codes = p.reasonCodes;
  if (!Array.isArray(codes) || codes.length === 0) {
    fail(p, "no reason codes (one per topic filter is required in 5.0)");
  }
  for (const code of codes) checkReason(p, code);
  return 2 + fullProps(p, p.properties, PacketType.UNSUBACK) + codes.length;
}

// ---------------------------------------------------------------------------------------------
// Writing (all checks are done; only byte stores here)

function writeVarint(b: Uint8Array, p: number, n: number): number {
  while (n >= 0x80) {
    b[p++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  b[p++] = n;
  return p;
}

function writeU16(b: Uint8Array, p: number, n: number): number {
  b[p] = n >> 8;
  b[p + 1] = n;
  return p + 2;
}

function writeU32(b: Uint8Array, p: number, n: number): number {
  b[p] = n >>> 24;
  b[p + 1] = n >>> 16;
  b[p + 2] = n >>> 8;
  b[p + 3] = n;
  return p + 4;
}

function writeStr(b: Uint8Array, p: number, s: string): number {
  const n = s.length;
  let ascii = true;
  for (let i = 0; i < n; i++) {
    if (s.charCodeAt(i) >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) {
    b[p] = n >> 8;
    b[p + 1] = n;
    p += 2;
    for (let i = 0; i < n; i++) b[p + i] = s.charCodeAt(i);
    return p + n;
  }
  const { written } = TEXT.encodeInto(s, b.subarray(p + 2));
  b[p] = written >> 8;
  b[p + 1] = written;
  return p + 2 + written;
}

function writeBin(b: Uint8Array, p: number, data: Uint8Array): number {
  b[p] = data.length >> 8;
  b[p + 1] = data.length;
  b.set(data, p + 2);
  return p + 2 + data.length;
}

function writeProps(
  packet: Packet,
  b: Uint8Array,
  p: number,
  props: Properties | undefined,
  context: number,
): number {
  const body = propsBodyLen(packet, props, context);
  p = writeVarint(b, p, body);
  if (body === 0) return p;
  for (const key in props) {
    const value = (props as Record<string, unknown>)[key];
    if (value === undefined) continue;
    const entry = PROPERTY_BY_NAME.get(key)!;
    switch (entry.type) {
      case "byte":
        b[p++] = entry.id;
        b[p++] = value as number;
        break;
      case "u16":
        b[p++] = entry.id;
        p = writeU16(b, p, value as number);
        break;
      case "u32":
        b[p++] = entry.id;
        p = writeU32(b, p, value as number);
        break;
      case "varint":
        for (const id of value as number[]) {
          b[p++] = entry.id;
          p = writeVarint(b, p, id);
        }
        break;
      case "string":
        b[p++] = entry.id;
        p = writeStr(b, p, value as string);
        break;
      case "binary":
        b[p++] = entry.id;
        p = writeBin(b, p, value as Uint8Array);
        break;
      case "pair":
        for (const [k, val] of value as UserProperty[]) {
          b[p++] = entry.id;
          p = writeStr(b, p, k);
          p = writeStr(b, p, val);
        }
        break;
    }
  }
  return p;
}

function writeReasonAndProps(
  packet: Packet,
  b: Uint8Array,
  p: number,
  rest: number,
): number {
  // `rest` is what measureReasonAndProps allowed: 0 (nothing), 1 or 2 (reason code alone, plus an
  // empty property length when 2), or more (reason code and properties).
  if (rest === 0) return p;
  const q = packet as { reasonCode?: number; properties?: Properties };
  b[p++] = q.reasonCode ?? 0;
  if (rest === 1) return p;
  return writeProps(packet, b, p, q.properties, packet.type);
}

function write(packet: Packet, v: ProtocolVersion, rem: number, b: Uint8Array, p: number): number {
  const type = packet.type;
  switch (type) {
    case PacketType.PUBLISH: {
      b[p++] = 0x30 | (packet.dup ? 8 : 0) | (packet.qos << 1) | (packet.retain ? 1 : 0);
      p = writeVarint(b, p, rem);
      p = writeStr(b, p, packet.topic);
      if (packet.qos > 0) p = writeU16(b, p, packet.packetId!);
      if (v === 5) p = writeProps(packet, b, p, packet.properties, type);
      b.set(packet.payload, p);
      return p + packet.payload.length;
    }
    case PacketType.PUBACK:
    case PacketType.PUBREC:
    case PacketType.PUBREL:
    case PacketType.PUBCOMP:
      b[p++] = (type << 4) | (type === PacketType.PUBREL ? 2 : 0);
      p = writeVarint(b, p, rem);
      p = writeU16(b, p, packet.packetId);
      return writeReasonAndProps(packet, b, p, rem - 2);
    case PacketType.CONNECT:
      return writeConnect(packet, v, rem, b, p);
    case PacketType.CONNACK:
      b[p++] = 0x20;
      p = writeVarint(b, p, rem);
      b[p++] = v >= 4 && packet.sessionPresent ? 1 : 0;
      b[p++] = packet.reasonCode;
      return v === 5 ? writeProps(packet, b, p, packet.properties, type) : p;
    case PacketType.SUBSCRIBE: {
      b[p++] = 0x82;
      p = writeVarint(b, p, rem);
      p = writeU16(b, p, packet.packetId);
      if (v === 5) p = writeProps(packet, b, p, packet.properties, type);
      for (const s of packet.subscriptions) {
        p = writeStr(b, p, s.topic);
        b[p++] = v === 5
          ? s.qos | (s.noLocal ? 4 : 0) | (s.retainAsPublished ? 8 : 0) |
            ((s.retainHandling ?? 0) << 4)
          : s.qos;
      }
      return p;
    }
    case PacketType.SUBACK:
      b[p++] = 0x90;
      p = writeVarint(b, p, rem);
      p = writeU16(b, p, packet.packetId);
      if (v === 5) p = writeProps(packet, b, p, packet.properties, type);
      for (const code of packet.reasonCodes) b[p++] = code;
      return p;
    case PacketType.UNSUBSCRIBE:
      b[p++] = 0xa2;
      p = writeVarint(b, p, rem);
      p = writeU16(b, p, packet.packetId);
      if (v === 5) p = writeProps(packet, b, p, packet.properties, type);
      for (const t of packet.topics) p = writeStr(b, p, t);
      return p;
    case PacketType.UNSUBACK:
      b[p++] = 0xb0;
      p = writeVarint(b, p, rem);
      p = writeU16(b, p, packet.packetId);
      if (v === 5) {
        p = writeProps(packet, b, p, packet.properties, type);
        for (const code of packet.reasonCodes!) b[p++] = code;
      }
      return p;
    case PacketType.PINGREQ:
    case PacketType.PINGRESP:
      b[p++] = type << 4;
      b[p++] = 0;
      return p;
    case PacketType.DISCONNECT:
    case PacketType.AUTH:
      b[p++] = type << 4;
      p = writeVarint(b, p, rem);
      return v === 5 ? writeReasonAndProps(packet, b, p, rem) : p;
  }
}

function writeConnect(
  c: ConnectPacket,
  v: ProtocolVersion,
  rem: number,
  b: Uint8Array,
  p: number,
): number {
  b[p++] = 0x10;
  p = writeVarint(b, p, rem);
  p = writeStr(b, p, v === 3 ? "MQIsdp" : "MQTT");
  b[p++] = v;
  const will = c.will;
  b[p++] = (c.username !== undefined ? 0x80 : 0) | (c.password !== undefined ? 0x40 : 0) |
    (will !== undefined ? 0x04 | (will.qos << 3) | (will.retain ? 0x20 : 0) : 0) |
    (c.clean ? 0x02 : 0);
  p = writeU16(b, p, c.keepAlive);
  if (v === 5) p = writeProps(c, b, p, c.properties, PacketType.CONNECT);
  p = writeStr(b, p, c.clientId);
  if (will !== undefined) {
    if (v === 5) p = writeProps(c, b, p, will.properties, WILL_CONTEXT);
    p = writeStr(b, p, will.topic);
    p = writeBin(b, p, will.payload);
  }
  if (c.username !== undefined) p = writeStr(b, p, c.username);
  if (c.password !== undefined) p = writeBin(b, p, c.password);
  return p;
}

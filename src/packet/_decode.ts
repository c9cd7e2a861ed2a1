// The decoder core shared by decodePacket, PacketDecoder and PacketDecoderStream. Internal.

import {
  MAX_PACKET_SIZE,
  PACKET_NAMES,
  PacketType,
  type ProtocolVersion,
  type QoS,
} from "./constants.ts";
import { MqttPacketError } from "./packet_error.ts";
import { bodyStart, frameLength } from "./_frame.ts";
import {
  CLIENT_RECEIVES,
  FIXED_FLAGS,
  PROPERTY_BY_ID,
  REASON_CODE_MASK,
  SERVER_RECEIVES,
  WILL_CONTEXT,
} from "./_tables.ts";
import type {
  AckPacket,
  ConnackPacket,
  ConnectPacket,
  DisconnectPacket,
  Packet,
  Properties,
  PublishPacket,
  Subscription,
  UserProperty,
  Will,
} from "./types.ts";

const EMPTY = new Uint8Array(0);
const MALFORMED = 0x81;
const PROTOCOL_ERROR = 0x82;
const TOPIC_ALIAS_INVALID = 0x94;
const UNSUPPORTED_VERSION = 0x84;

// fatal: ill-formed UTF-8 is a Malformed Packet [MQTT-1.5.3-1]; ignoreBOM: a leading U+FEFF must
// not be stripped [MQTT-1.5.3-3].
const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Strings up to this many bytes take the ASCII fast path (TextDecoder is slow on tiny inputs). */
const ASCII_FAST_MAX = 48;
/** Longest PUBLISH topic name (bytes) a Reader remembers for the next PUBLISH. */
const TOPIC_CACHE_BYTES = 128;

/** Options the core needs, already resolved. */
export interface CoreOptions {
  protocolVersion: ProtocolVersion | undefined;
  maxPacketSize: number;
  side: "server" | "client" | undefined;
}

/** User decode options, as the decoders take them. */
export interface ReaderOptions {
  protocolVersion?: ProtocolVersion;
  maxPacketSize?: number;
  side?: "server" | "client";
}

/**
 * Checks user decode options (a Reader takes them as they are, with their defaults: no resolved
 * object of their own, made per connection and dropped at once).
 *
 * @throws {RangeError} a protocol level other than 3, 4 or 5, or a maximum packet size below 2
 * @throws {TypeError} a side other than "server" or "client"
 */
export function checkOptions(options: ReaderOptions | undefined): void {
  const version = options?.protocolVersion;
  if (version !== undefined && version !== 3 && version !== 4 && version !== 5) {
    throw new RangeError(`Cannot create decoder: protocol version ${version} is not 3, 4 or 5`);
  }
  const max = options?.maxPacketSize ?? MAX_PACKET_SIZE;
  if (!(max >= 2)) {
    throw new RangeError(`Cannot create decoder: maxPacketSize ${max} is below 2 bytes`);
  }
  const side = options?.side;
  if (side !== undefined && side !== "server" && side !== "client") {
    throw new TypeError(`Cannot create decoder: side "${side}" is not "server" or "client"`);
  }
}

/**
 * A cursor over one packet, and the options it decodes with. Reused across packets by a streaming
 * decoder so the hot path allocates nothing but the packet itself; the options are its fields, not
 * an object of their own (memory per idle connection counts).
 */
export class Reader implements CoreOptions {
  /** The protocol level in use: from the options or the CONNECT decoded, undefined before. */
  protocolVersion: ProtocolVersion | undefined;
  maxPacketSize: number;
  side: "server" | "client" | undefined;
  // A shared empty array: allocating an ArrayBuffer per Reader costs more than a whole decode.
  buf: Uint8Array = EMPTY;
  pos = 0;
  end = 0;
  /** Start of the packet in `buf` (offsets in errors are relative to it). */
  base = 0;
  type = 0;
  version: ProtocolVersion = 4;
  /** Total bytes of the last decoded packet. */
  length = 0;
  // The last PUBLISH topic name read, its bytes and its string: a connection mostly publishes to
  // a few topics, and a topic seen again is neither checked nor decoded again. Allocated at the
  // first PUBLISH (a Reader per one-shot decode must stay cheap).
  #topicBytes: Uint8Array | undefined;
  #topicLength = -1;
  #topic = "";

  /** @param options decode options, checked (see {@linkcode checkOptions}) */
  constructor(options: ReaderOptions | undefined) {
    this.protocolVersion = options?.protocolVersion;
    this.maxPacketSize = options?.maxPacketSize ?? MAX_PACKET_SIZE;
    this.side = options?.side;
  }

  /** A PUBLISH topic name at s..e: as `text` with the topic-name rule, from the cache if seen. */
  topicName(s: number, e: number): string {
    const n = e - s;
    const b = this.buf;
    const cached = this.#topicBytes;
    if (n === this.#topicLength && cached !== undefined) {
      let i = 0;
      while (i < n && cached[i] === b[s + i]) i++;
      if (i === n) return this.#topic;
    }
    const topic = this.text(s, e, "topic name", "MQTT-3.3.2-2");
    if (n <= TOPIC_CACHE_BYTES) {
      const into = this.#topicBytes ??= new Uint8Array(TOPIC_CACHE_BYTES);
      for (let i = 0; i < n; i++) into[i] = b[s + i];
      this.#topicLength = n;
      this.#topic = topic;
    }
    return topic;
  }

  fail(reasonCode: number, message: string, at: number = this.pos): never {
    const name = this.type === 0 ? "packet" : PACKET_NAMES[this.type];
    throw new MqttPacketError(`Cannot decode ${name}: ${message}`, {
      reasonCode,
      offset: at - this.base,
      packetType: this.type === 0 ? undefined : this.type,
    });
  }

  short(what: string): never {
    return this.fail(MALFORMED, `${what} runs past the end of the packet`);
  }

  u8(what: string): number {
    if (this.pos >= this.end) this.short(what);
    return this.buf[this.pos++];
  }

  u16(what: string): number {
    const p = this.pos;
    if (p + 2 > this.end) this.short(what);
    this.pos = p + 2;
    return (this.buf[p] << 8) | this.buf[p + 1];
  }

  u32(what: string): number {
    const p = this.pos;
    if (p + 4 > this.end) this.short(what);
    this.pos = p + 4;
    const b = this.buf;
    return ((b[p] << 24) >>> 0) + ((b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]);
  }

  /** Variable byte integer (§1.5.5): at most 4 bytes. */
  varint(what: string): number {
    const start = this.pos;
    let value = 0;
    let mult = 1;
    for (let i = 0; i < 4; i++) {
      const byte = this.u8(what);
      value += (byte & 0x7f) * mult;
      if ((byte & 0x80) === 0) return value;
      mult *= 128;
    }
    return this.fail(MALFORMED, `${what} is a variable byte integer longer than 4 bytes`, start);
  }

  /**
   * A UTF-8 encoded string (§1.5.4). With `wildcardRule` (the normative id to cite), the string is
   * a topic name and may not contain wildcards.
   */
  str(what: string, wildcardRule?: string): string {
    const len = this.u16(what);
    const s = this.pos;
    const e = s + len;
    if (e > this.end) this.short(what);
    this.pos = e;
    return this.text(s, e, what, wildcardRule);
  }

  /**
   * The protocol name at the read position when it is "MQTT" or "MQIsdp" (then read past), as the
   * one string every CONNECT shares; else `undefined`, with nothing read.
   */
  knownName(): string | undefined {
    const b = this.buf, p = this.pos;
    if (p + 6 > this.end || b[p] !== 0) return undefined;
    if (
      b[p + 1] === 4 && b[p + 2] === 0x4d && b[p + 3] === 0x51 && b[p + 4] === 0x54 &&
      b[p + 5] === 0x54
    ) {
      this.pos = p + 6;
      return "MQTT";
    }
    if (
      b[p + 1] === 6 && p + 8 <= this.end && b[p + 2] === 0x4d && b[p + 3] === 0x51 &&
      b[p + 4] === 0x49 && b[p + 5] === 0x73 && b[p + 6] === 0x64 && b[p + 7] === 0x70
    ) {
      this.pos = p + 8;
      return "MQIsdp";
    }
    return undefined;
  }

  /**
   * Decodes bytes s..e as a UTF-8 string without U+0000 [MQTT-1.5.3-1] [MQTT-1.5.3-2]. With
   * `wildcardRule`, the string is a topic name and wildcards are refused too, citing that rule
   * (the same byte scan finds them: '+' and '#' are ASCII and never occur inside a multi-byte
   * sequence).
   */
  text(s: number, e: number, what: string, wildcardRule: string | undefined): string {
    const b = this.buf;
    let ascii = true;
    for (let i = s; i < e; i++) {
      const c = b[i];
      if (c >= 0x80) ascii = false;
      else if (c === 0) this.fail(MALFORMED, `${what} contains U+0000 [MQTT-1.5.3-2]`, i);
      else if (wildcardRule !== undefined && (c === 0x2b || c === 0x23)) {
        this.fail(
          PROTOCOL_ERROR,
          `${what} contains wildcard "${String.fromCharCode(c)}" [${wildcardRule}]`,
          i,
        );
      }
    }
    if (ascii && e - s <= ASCII_FAST_MAX) {
      // Measured faster than concatenation or TextDecoder for short strings, and the result is
      // a flat string (cheap to hash when used as a topic key).
      const n = e - s;
      const codes = new Array<number>(n);
      for (let i = 0; i < n; i++) codes[i] = b[s + i];
      return String.fromCharCode.apply(null, codes);
    }
    try {
      return UTF8.decode(b.subarray(s, e));
    } catch (cause) {
      throw new MqttPacketError(
        `Cannot decode ${PACKET_NAMES[this.type]}: ${what} is not well-formed UTF-8 [MQTT-1.5.3-1]`,
        { reasonCode: MALFORMED, offset: s - this.base, packetType: this.type, cause },
      );
    }
  }

  /** Binary data (§1.5.6): a view of the input (never a copy, see PacketDecoder). */
  bin(what: string): Uint8Array {
    const len = this.u16(what);
    const s = this.pos;
    const e = s + len;
    if (e > this.end) this.short(what);
    this.pos = e;
    return this.bytes(s, e);
  }

  bytes(s: number, e: number): Uint8Array {
    return this.buf.subarray(s, e);
  }

  /** No bytes may follow the last field. */
  done(): void {
    if (this.pos !== this.end) {
      this.fail(MALFORMED, `${this.end - this.pos} unexpected bytes after the last field`);
    }
  }

  /**
   * MQTT 5.0 properties (§2.2.2) for packet type `context` (or WILL_CONTEXT). Returns undefined
   * for an empty property list so decoded packets stay small.
   */
  props(context: number): Properties | undefined {
    const len = this.varint("property length");
    if (len === 0) return undefined;
    const stop = this.pos + len;
    if (stop > this.end) this.short("property list");
    const outerEnd = this.end;
    // Bound every value read by the property list, not the packet.
    this.end = stop;
    const bit = 1 << context;
    const props: Record<string, unknown> = {};
    while (this.pos < stop) {
      const at = this.pos;
      // Identifiers are variable byte integers, but every defined one fits in one byte: a byte
      // with the continuation bit can only start an undefined identifier.
      const id = this.buf[this.pos++];
      const entry = PROPERTY_BY_ID[id];
      const where = context === WILL_CONTEXT ? "will properties" : PACKET_NAMES[context];
      if (entry === undefined) {
        this.fail(MALFORMED, `unknown property identifier 0x${hex(id)}`, at);
      }
      if ((entry.mask & bit) === 0) {
        // §2.2.2.2: an identifier not valid for the packet type is a Malformed Packet.
        this.fail(MALFORMED, `property ${entry.name} is not allowed in ${where}`, at);
      }
      const name = entry.name;
      const seen = props[name] !== undefined;
      if (seen && (!entry.repeatable || (id === 0x0b && context !== PacketType.PUBLISH))) {
        this.fail(PROTOCOL_ERROR, `property ${name} appears more than once`, at);
      }
      switch (entry.type) {
        case "byte": {
          const v = this.u8(name);
          // Every byte property is a 0/1 flag except Maximum QoS, which is 0 or 1 as well (2 is
          // expressed by leaving it out): anything else is a Protocol Error.
          if (v > 1) this.fail(PROTOCOL_ERROR, `property ${name} has invalid value ${v}`, at);
          props[name] = v;
          break;
        }
        case "u16": {
          const v = this.u16(name);
          // Receive Maximum 0 is a Protocol Error (§3.1.2.11.3); Topic Alias 0 is "Topic Alias
          // invalid", 0x94 (§3.3.2.3.4, [MQTT-3.3.2-8]).
          if (v === 0 && (id === 0x21 || id === 0x23)) {
            this.fail(
              id === 0x23 ? TOPIC_ALIAS_INVALID : PROTOCOL_ERROR,
              `property ${name} is 0`,
              at,
            );
          }
          props[name] = v;
          break;
        }
        case "u32": {
          const v = this.u32(name);
          // Maximum Packet Size 0 is a Protocol Error (§3.1.2.11.4).
          if (v === 0 && id === 0x27) this.fail(PROTOCOL_ERROR, `property ${name} is 0`, at);
          props[name] = v;
          break;
        }
        case "varint": {
          // Only Subscription Identifier: 1..268,435,455; 0 is a Protocol Error (§3.3.2.3.8).
          const v = this.varint(name);
          if (v === 0) this.fail(PROTOCOL_ERROR, `property ${name} is 0`, at);
          if (seen) (props[name] as number[]).push(v);
          else props[name] = [v];
          break;
        }
        case "string":
          // The Response Topic is a topic name: no wildcards [MQTT-3.3.2-14].
          props[name] = this.str(name, id === 0x08 ? "MQTT-3.3.2-14" : undefined);
          break;
        case "binary":
          props[name] = this.bin(name);
          break;
        case "pair": {
          const pair: UserProperty = [
            this.str("user property name"),
            this.str("user property value"),
          ];
          if (seen) (props[name] as UserProperty[]).push(pair);
          else props[name] = [pair];
          break;
        }
      }
    }
    this.end = outerEnd;
    return props as Properties;
  }

  /** A 5.0 reason code, checked against the packets that may carry it (§2.4). */
  reason(): number {
    const at = this.pos;
    const code = this.u8("reason code");
    if ((REASON_CODE_MASK[code] & (1 << this.type)) === 0) {
      this.fail(PROTOCOL_ERROR, `reason code 0x${hex(code)} is not valid here`, at);
    }
    return code;
  }

  packetId(): number {
    const at = this.pos;
    const id = this.u16("packet identifier");
    // [MQTT-2.3.1-1] packet identifiers are non-zero; acknowledgements echo one.
    if (id === 0) this.fail(PROTOCOL_ERROR, "packet identifier is 0 [MQTT-2.3.1-1]", at);
    return id;
  }
}

function hex(n: number): string {
  return n.toString(16).padStart(2, "0");
}

/**
 * Decodes one packet from `buf[start..end)`. Returns undefined when more bytes are needed, and
 * sets `r.length` to the packet's size otherwise. Throws only MqttPacketError (callers wrap it to
 * make that a guarantee).
 */
export function decodeOne(
  r: Reader,
  buf: Uint8Array,
  start: number,
  end: number,
): Packet | undefined {
  if (end - start < 2) {
    if (end > start) checkType(r, buf, start);
    return undefined;
  }
  r.buf = buf;
  r.base = start;
  r.type = 0;
  const type = checkType(r, buf, start);
  // Refuses a malformed remaining length, and an oversized packet before its body is buffered.
  const total = frameLength(buf, start, end, r.maxPacketSize);
  if (total === undefined || end - start < total) return undefined;
  r.pos = bodyStart(buf, start);
  r.end = start + total;
  r.length = total;
  const flags = buf[start] & 0x0f;
  if (type === PacketType.CONNECT) return connect(r);
  // Without a known level (checkType refused this on the server side), decode as 3.1.1.
  const version = r.protocolVersion ?? 4;
  r.version = version;
  if (type === PacketType.AUTH && version < 5) {
    r.pos = start;
    r.fail(MALFORMED, "packet type 15 is reserved before MQTT 5.0");
  }
  if (type === PacketType.DISCONNECT && version < 5 && r.side === "client") {
    r.pos = start;
    r.fail(PROTOCOL_ERROR, "a server sends DISCONNECT only in MQTT 5.0");
  }
  switch (type) {
    case PacketType.PUBLISH:
      return publish(r, flags);
    case PacketType.PUBACK:
    case PacketType.PUBREC:
    case PacketType.PUBREL:
    case PacketType.PUBCOMP:
      return ack(r, type);
    case PacketType.CONNACK:
      return connack(r);
    case PacketType.SUBSCRIBE:
      return subscribe(r);
    case PacketType.SUBACK:
      return suback(r);
    case PacketType.UNSUBSCRIBE:
      return unsubscribe(r);
    case PacketType.UNSUBACK:
      return unsuback(r);
    case PacketType.PINGREQ:
    case PacketType.PINGRESP:
      r.done();
      return { type };
    case PacketType.DISCONNECT:
      return disconnect(r);
    default:
      return auth(r);
  }
}

/** Checks the first byte: packet type, direction and fixed-header flags. */
function checkType(r: Reader, buf: Uint8Array, start: number): number {
  const b0 = buf[start];
  const type = b0 >> 4;
  r.buf = buf;
  r.base = start;
  r.pos = start;
  r.type = 0;
  if (type === 0) r.fail(MALFORMED, "packet type 0 is reserved");
  r.type = type;
  const side = r.side;
  if (
    (side === "server" && (SERVER_RECEIVES & (1 << type)) === 0) ||
    (side === "client" && (CLIENT_RECEIVES & (1 << type)) === 0)
  ) {
    r.fail(PROTOCOL_ERROR, `a ${side === "server" ? "client" : "server"} does not send it`);
  }
  if (side === "server" && type !== PacketType.CONNECT && r.protocolVersion === undefined) {
    // [MQTT-3.1.0-1] the first packet from a client must be CONNECT.
    r.fail(PROTOCOL_ERROR, "the first packet must be CONNECT [MQTT-3.1.0-1]");
  }
  const required = FIXED_FLAGS[type];
  // MQTT 3.1 sets DUP on a retried PUBREL, SUBSCRIBE or UNSUBSCRIBE (3.1 §2.1 "DUP"; libmosquitto
  // did so): at level 3 only their QoS bits (0b0010) are checked, DUP is ignored.
  const flags = required === 2 && r.protocolVersion === 3 ? b0 & 0x07 : b0 & 0x0f;
  if (required >= 0 && flags !== required) {
    // [MQTT-2.2.2-2] reserved flags must hold their fixed value, else the packet is malformed.
    r.fail(
      MALFORMED,
      `fixed header flags are 0b${(b0 & 0x0f).toString(2).padStart(4, "0")}, expected 0b${
        required.toString(2).padStart(4, "0")
      } [MQTT-2.2.2-2]`,
    );
  }
  return type;
}

function connect(r: Reader): ConnectPacket {
  const nameAt = r.pos;
  // The two names a CONNECT may carry are not decoded into a new string each time.
  const protocolName = r.knownName() ?? r.str("protocol name");
  const levelAt = r.pos;
  const level = r.u8("protocol level");
  if (
    !((level === 3 && protocolName === "MQIsdp") ||
      ((level === 4 || level === 5) && protocolName === "MQTT"))
  ) {
    // [MQTT-3.1.2-2] unsupported level: the server answers CONNACK 0x01 (0x84 in 5.0).
    throw new MqttPacketError(
      `Cannot decode CONNECT: protocol "${protocolName}" level ${level} is not supported [MQTT-3.1.2-2]`,
      {
        reasonCode: UNSUPPORTED_VERSION,
        offset: (protocolName === "MQTT" || protocolName === "MQIsdp" ? levelAt : nameAt) - r.base,
        packetType: PacketType.CONNECT,
        protocolVersion: level,
      },
    );
  }
  const version = level as ProtocolVersion;
  r.version = version;
  const flagsAt = r.pos;
  const flags = r.u8("connect flags");
  // [MQTT-3.1.2-3] the reserved flag must be 0.
  if (flags & 0x01) r.fail(MALFORMED, "reserved connect flag is set [MQTT-3.1.2-3]", flagsAt);
  const willFlag = (flags & 0x04) !== 0;
  const willQos = (flags >> 3) & 0x03;
  const willRetain = (flags & 0x20) !== 0;
  const passwordFlag = (flags & 0x40) !== 0;
  const usernameFlag = (flags & 0x80) !== 0;
  if (!willFlag && willQos !== 0) {
    // [MQTT-3.1.2-11] [MQTT-3.1.2-13] no will: will QoS must be 0.
    r.fail(MALFORMED, "will QoS is set without the will flag [MQTT-3.1.2-13]", flagsAt);
  }
  if (!willFlag && willRetain) {
    // [MQTT-3.1.2-15] no will: will retain must be 0.
    r.fail(MALFORMED, "will retain is set without the will flag [MQTT-3.1.2-15]", flagsAt);
  }
  if (willQos === 3) r.fail(MALFORMED, "will QoS is 3 [MQTT-3.1.2-14]", flagsAt);
  if (passwordFlag && !usernameFlag && version < 5) {
    // [MQTT-3.1.2-22] before 5.0 a password needs a user name.
    r.fail(MALFORMED, "password flag is set without the user name flag [MQTT-3.1.2-22]", flagsAt);
  }
  const keepAlive = r.u16("keep alive");
  const properties = version === 5 ? r.props(PacketType.CONNECT) : undefined;
  const clientId = r.str("client identifier");
  const packet: ConnectPacket = {
    type: PacketType.CONNECT,
    protocolName,
    protocolVersion: version,
    clean: (flags & 0x02) !== 0,
    keepAlive,
    clientId,
  };
  if (willFlag) {
    const willProps = version === 5 ? r.props(WILL_CONTEXT) : undefined;
    const topicAt = r.pos;
    const topicLen = r.u16("will topic");
    if (topicAt + 2 + topicLen > r.end) r.short("will topic");
    r.pos = topicAt + 2 + topicLen;
    // The will topic is a topic name: no wildcards [MQTT-3.3.2-2], not empty [MQTT-4.7.3-1].
    const topic = r.text(topicAt + 2, r.pos, "will topic", "MQTT-3.3.2-2");
    if (topicLen === 0) r.fail(PROTOCOL_ERROR, "will topic is empty [MQTT-4.7.3-1]", topicAt);
    const payload = r.bin("will payload");
    const will: Will = { topic, payload, qos: willQos as QoS, retain: willRetain };
    if (willProps !== undefined) will.properties = willProps;
    packet.will = will;
  }
  if (usernameFlag) packet.username = r.str("user name");
  if (passwordFlag) packet.password = r.bin("password");
  if (properties !== undefined) {
    if (
      properties.authenticationData !== undefined && properties.authenticationMethod === undefined
    ) {
      // §3.1.2.11.10: Authentication Data without an Authentication Method is a Protocol Error.
      r.fail(PROTOCOL_ERROR, "authentication data without an authentication method", flagsAt + 3);
    }
    packet.properties = properties;
  }
  r.done();
  return packet;
}

function connack(r: Reader): ConnackPacket {
  const at = r.pos;
  const ackFlags = r.u8("acknowledge flags");
  let sessionPresent = false;
  // MQTT 3.1 has no session present flag: the byte is unused there.
  if (r.version >= 4) {
    // [MQTT-3.2.2-1] bits 7-1 are reserved.
    if (ackFlags & 0xfe) r.fail(MALFORMED, "reserved acknowledge flags are set [MQTT-3.2.2-1]", at);
    sessionPresent = (ackFlags & 1) === 1;
  }
  let reasonCode: number;
  if (r.version === 5) {
    reasonCode = r.reason();
  } else {
    const codeAt = r.pos;
    reasonCode = r.u8("return code");
    // §3.2.2.3: return codes 6-255 are reserved.
    if (reasonCode > 5) r.fail(PROTOCOL_ERROR, `return code ${reasonCode} is reserved`, codeAt);
  }
  const packet: ConnackPacket = { type: PacketType.CONNACK, sessionPresent, reasonCode };
  if (r.version === 5) {
    const properties = r.props(PacketType.CONNACK);
    if (properties !== undefined) packet.properties = properties;
  }
  r.done();
  return packet;
}

function publish(r: Reader, flags: number): PublishPacket {
  const qos = (flags >> 1) & 0x03;
  const fixedAt = r.base;
  // [MQTT-3.3.1-4] QoS 3 is malformed.
  if (qos === 3) r.fail(MALFORMED, "QoS is 3 [MQTT-3.3.1-4]", fixedAt);
  const dup = (flags & 0x08) !== 0;
  // [MQTT-3.3.1-2] DUP must be 0 for QoS 0.
  if (dup && qos === 0) r.fail(MALFORMED, "DUP is set on a QoS 0 message [MQTT-3.3.1-2]", fixedAt);
  const len = r.u16("topic name");
  const s = r.pos;
  const e = s + len;
  if (e > r.end) r.short("topic name");
  r.pos = e;
  const topic = r.topicName(s, e);
  let packet: PublishPacket;
  if (qos > 0) {
    const packetId = r.packetId();
    packet = {
      type: PacketType.PUBLISH,
      topic,
      payload: EMPTY,
      qos: qos as QoS,
      retain: (flags & 1) === 1,
      dup,
      packetId,
    };
  } else {
    packet = {
      type: PacketType.PUBLISH,
      topic,
      payload: EMPTY,
      qos: 0,
      retain: (flags & 1) === 1,
      dup,
    };
  }
  if (r.version === 5) {
    const propsAt = r.pos;
    let properties: Properties | undefined;
    // Most PUBLISH packets have an empty property list: its one byte, 0, is read here directly.
    if (propsAt < r.end && r.buf[propsAt] === 0) r.pos++;
    else properties = r.props(PacketType.PUBLISH);
    if (properties !== undefined) {
      packet.properties = properties;
      // [MQTT-3.3.4-6] a client never sends a subscription identifier.
      if (properties.subscriptionIdentifier !== undefined && r.side === "server") {
        r.fail(
          PROTOCOL_ERROR,
          "a client PUBLISH carries a subscription identifier [MQTT-3.3.4-6]",
          propsAt,
        );
      }
    }
    if (len === 0 && properties?.topicAlias === undefined) {
      // §3.3.2.1: a zero-length topic name needs a topic alias.
      r.fail(PROTOCOL_ERROR, "topic name is empty and there is no topic alias", s - 2);
    }
  } else if (len === 0) {
    // [MQTT-4.7.3-1] topic names are at least one character long.
    r.fail(PROTOCOL_ERROR, "topic name is empty [MQTT-4.7.3-1]", s - 2);
  }
  packet.payload = r.bytes(r.pos, r.end);
  r.pos = r.end;
  return packet;
}

function ack(r: Reader, type: AckPacket["type"]): AckPacket {
  const packetId = r.packetId();
  const packet: AckPacket = { type, packetId };
  if (r.version === 5) {
    // §3.4.2.1: reason code and properties may be left out (remaining length 2 = Success, 3 = no
    // properties).
    if (r.pos < r.end) packet.reasonCode = r.reason();
    if (r.pos < r.end) {
      const properties = r.props(type);
      if (properties !== undefined) packet.properties = properties;
    }
  }
  r.done();
  return packet;
}

function subscribe(r: Reader): Packet {
  const packetId = r.packetId();
  const v5 = r.version === 5;
  const properties = v5 ? r.props(PacketType.SUBSCRIBE) : undefined;
  const subscriptions: Subscription[] = [];
  while (r.pos < r.end) {
    const topic = r.str("topic filter");
    const at = r.pos;
    const opts = r.u8("subscription options");
    const qos = opts & 0x03;
    if (v5) {
      // [MQTT-3.8.3-5] bits 7-6 are reserved.
      if (opts & 0xc0) {
        r.fail(MALFORMED, "reserved subscription option bits are set [MQTT-3.8.3-5]", at);
      }
      // §3.8.3.1: a Maximum QoS of 3 is a Protocol Error in 5.0 (it was malformed in 3.1.1).
      if (qos === 3) r.fail(PROTOCOL_ERROR, "maximum QoS is 3 (§3.8.3.1)", at);
      const retainHandling = (opts >> 4) & 0x03;
      // §3.8.3.1: retain handling 3 is a Protocol Error.
      if (retainHandling === 3) r.fail(PROTOCOL_ERROR, "retain handling is 3", at);
      const noLocal = (opts & 0x04) !== 0;
      if (noLocal && topic.startsWith("$share/")) {
        // [MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error.
        r.fail(PROTOCOL_ERROR, "no local is set on a shared subscription [MQTT-3.8.3-4]", at);
      }
      subscriptions.push({
        topic,
        qos: qos as QoS,
        noLocal,
        retainAsPublished: (opts & 0x08) !== 0,
        retainHandling: retainHandling as 0 | 1 | 2,
      });
    } else {
      // [MQTT-3-8.3-4] reserved bits must be 0 and QoS 0, 1 or 2.
      if (opts & 0xfc) r.fail(MALFORMED, "reserved requested QoS bits are set [MQTT-3-8.3-4]", at);
      if (qos === 3) r.fail(MALFORMED, "requested QoS is 3 [MQTT-3-8.3-4]", at);
      subscriptions.push({ topic, qos: qos as QoS });
    }
  }
  // [MQTT-3.8.3-3] at least one topic filter.
  if (subscriptions.length === 0) r.fail(PROTOCOL_ERROR, "no topic filters [MQTT-3.8.3-3]");
  const packet: Packet = { type: PacketType.SUBSCRIBE, packetId, subscriptions };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function suback(r: Reader): Packet {
  const packetId = r.packetId();
  const v5 = r.version === 5;
  const properties = v5 ? r.props(PacketType.SUBACK) : undefined;
  const reasonCodes: number[] = [];
  while (r.pos < r.end) {
    if (v5) {
      reasonCodes.push(r.reason());
    } else {
      const at = r.pos;
      const code = r.u8("return code");
      // [MQTT-3.9.3-2] only 0x00, 0x01, 0x02 and 0x80 are defined.
      if (code > 2 && code !== 0x80) {
        r.fail(PROTOCOL_ERROR, `return code 0x${hex(code)} is reserved [MQTT-3.9.3-2]`, at);
      }
      reasonCodes.push(code);
    }
  }
  // A SUBACK answers a SUBSCRIBE, which has at least one filter [MQTT-3.8.4-6].
  if (reasonCodes.length === 0) r.fail(PROTOCOL_ERROR, "no return codes [MQTT-3.8.4-6]");
  const packet: Packet = { type: PacketType.SUBACK, packetId, reasonCodes };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function unsubscribe(r: Reader): Packet {
  const packetId = r.packetId();
  const properties = r.version === 5 ? r.props(PacketType.UNSUBSCRIBE) : undefined;
  const topics: string[] = [];
  while (r.pos < r.end) topics.push(r.str("topic filter"));
  // [MQTT-3.10.3-2] at least one topic filter.
  if (topics.length === 0) r.fail(PROTOCOL_ERROR, "no topic filters [MQTT-3.10.3-2]");
  const packet: Packet = { type: PacketType.UNSUBSCRIBE, packetId, topics };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function unsuback(r: Reader): Packet {
  const packetId = r.packetId();
  if (r.version < 5) {
    r.done();
    return { type: PacketType.UNSUBACK, packetId };
  }
  const properties = r.props(PacketType.UNSUBACK);
  const reasonCodes: number[] = [];
  while (r.pos < r.end) reasonCodes.push(r.reason());
  // One reason code per filter of the UNSUBSCRIBE, which has at least one [MQTT-3.11.3-1].
  if (reasonCodes.length === 0) r.fail(PROTOCOL_ERROR, "no reason codes [MQTT-3.11.3-1]");
  const packet: Packet = { type: PacketType.UNSUBACK, packetId, reasonCodes };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function disconnect(r: Reader): DisconnectPacket {
  const packet: DisconnectPacket = { type: PacketType.DISCONNECT };
  if (r.version === 5) {
    // §3.14.2.1: remaining length 0 means Normal disconnection; below 2, no properties.
    if (r.pos < r.end) packet.reasonCode = r.reason();
    if (r.pos < r.end) {
      const at = r.pos;
      const properties = r.props(PacketType.DISCONNECT);
      if (properties !== undefined) {
        packet.properties = properties;
        if (properties.sessionExpiryInterval !== undefined && r.side === "client") {
          // [MQTT-3.14.2-2] a server never sends a Session Expiry Interval in DISCONNECT.
          r.fail(
            PROTOCOL_ERROR,
            "a server DISCONNECT carries a session expiry interval [MQTT-3.14.2-2]",
            at,
          );
        }
      }
    }
  }
  r.done();
  return packet;
}

function auth(r: Reader): Packet {
  const packet: Packet = { type: PacketType.AUTH };
  // §3.15.2.1: remaining length 0 means Success with no properties.
  if (r.pos === r.end) return packet;
  packet.reasonCode = r.reason();
  const propsAt = r.pos;
  const properties = r.pos < r.end ? r.props(PacketType.AUTH) : undefined;
  r.done();
  if (properties?.authenticationMethod === undefined) {
    // §3.15.2.2.2: omitting the Authentication Method is a Protocol Error; only the empty AUTH
    // (remaining length 0) stands without one.
    r.fail(PROTOCOL_ERROR, "authentication method is missing (§3.15.2.2.2)", propsAt);
  }
  packet.properties = properties;
  return packet;
}

/**
 * Runs `decodeOne` and turns anything that is not an MqttPacketError (which would be a bug) into
 * one, so the decoder's contract holds whatever the bytes.
 */
export function decodeSafely(
  r: Reader,
  buf: Uint8Array,
  start: number,
  end: number,
): Packet | undefined {
  try {
    return decodeOne(r, buf, start, end);
  } catch (error) {
    if (error instanceof MqttPacketError) throw error;
    throw new MqttPacketError("Cannot decode packet: internal decoder failure", {
      reasonCode: MALFORMED,
      offset: r.pos - r.base,
      packetType: r.type === 0 ? undefined : r.type,
      cause: error,
    });
  }
}

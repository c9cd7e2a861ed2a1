// fast-check arbitraries for valid packets at each protocol level, in the codec's normal form
// (what decode(encode(p)) returns unchanged): empty property lists are left out, and a 5.0
// Success reason code without properties is left out on the packets that may omit it.

import fc from "fast-check";
import {
  type AckPacket,
  type ConnectPacket,
  type Packet,
  PacketType,
  type PacketTypeNumber,
  type Properties,
  PROPERTY_TABLE,
  type PropertyContext,
  type PropertyInfo,
  type ProtocolVersion,
  type QoS,
  REASON_CODE_PACKETS,
  type Subscription,
} from "../../src/packet/mod.ts";

const T = PacketType;

/** Drops keys whose value is undefined, so packets compare equal to decoded ones. */
function clean<P extends object>(p: P): P {
  for (const key of Object.keys(p) as (keyof P)[]) if (p[key] === undefined) delete p[key];
  return p;
}

/** Strings the codec accepts: no U+0000; a mix of ASCII and any Unicode scalar values. */
export const str = (maxLength = 12): fc.Arbitrary<string> =>
  fc.oneof(
    fc.string({ maxLength }),
    fc.string({ unit: "binary", maxLength: Math.min(maxLength, 6) }),
    fc.string({ unit: "binary-ascii", maxLength }),
  ).map((s) => s.replaceAll("\0", "_"));

/** Topic names: non-empty, no wildcards. */
export const topicName: fc.Arbitrary<string> = fc.oneof(
  str(20),
  fc.constantFrom("a/b/c", "$SYS/broker/uptime", "sensors/é/温度"),
).map((s) => s.replace(/[+#]/g, "x")).filter((s) => s.length > 0);

/** Topic filters (the codec does not check filter syntax, only UTF-8). */
export const topicFilter: fc.Arbitrary<string> = fc.oneof(
  str(20),
  fc.constantFrom("a/+/c", "#", "$share/group/a/#", "+"),
).filter((s) => s.length > 0);

const qos = fc.constantFrom<QoS>(0, 1, 2);
const packetId = fc.integer({ min: 1, max: 0xffff });
const bytes = (maxLength = 16) => fc.uint8Array({ maxLength });

function valueOf(p: PropertyInfo, context: PropertyContext): fc.Arbitrary<unknown> {
  switch (p.type) {
    case "byte":
      return fc.constantFrom(0, 1);
    case "u16":
      return fc.integer({ min: 1, max: 0xffff });
    case "u32":
      return fc.integer({ min: 1, max: 0xffffffff });
    case "varint":
      return fc.array(fc.integer({ min: 1, max: 268_435_455 }), {
        minLength: 1,
        maxLength: context === T.PUBLISH ? 3 : 1,
      });
    case "string":
      // The Response Topic is a topic name: no wildcards [MQTT-3.3.2-14].
      return p.id === 0x08 ? str(10).map((s) => s.replace(/[+#]/g, "x")) : str(10);
    case "binary":
      return bytes(10);
    case "pair":
      return fc.array(fc.tuple(str(6), str(6)), { minLength: 1, maxLength: 3 });
  }
}

/** Properties for a packet or the will, or undefined (no properties). */
export function properties(context: PropertyContext): fc.Arbitrary<Properties | undefined> {
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  for (const p of PROPERTY_TABLE) {
    if (p.contexts.includes(context)) model[p.name] = valueOf(p, context);
  }
  return fc.oneof(
    { weight: 1, arbitrary: fc.constant(undefined) },
    {
      weight: 2,
      arbitrary: fc.record(model, { requiredKeys: [] }).map((o) =>
        Object.keys(o).length === 0 ? undefined : o as Properties
      ),
    },
  );
}

const nonEmptyProperties = (context: PropertyContext) =>
  properties(context).filter((p): p is Properties => p !== undefined);

function codesFor(type: PacketTypeNumber): number[] {
  return Object.entries(REASON_CODE_PACKETS).filter(([, packets]) => packets.includes(type)).map((
    [code],
  ) => Number(code));
}

/** Reason code and properties of 5.0 acks, DISCONNECT and AUTH, in the shortest form. */
function reasonAndProperties(type: PacketTypeNumber) {
  const codes = codesFor(type);
  if (type === T.AUTH) {
    // Every AUTH but the empty one carries an Authentication Method (§3.15.2.2.2).
    return fc.oneof(
      fc.constant({} as { reasonCode?: number; properties?: Properties }),
      fc.tuple(fc.constantFrom(...codes), nonEmptyProperties(type), str(10)).map((
        [reasonCode, properties, method],
      ) => ({
        reasonCode,
        properties: {
          ...properties,
          authenticationMethod: properties.authenticationMethod ?? method,
        },
      })),
    );
  }
  return fc.oneof(
    fc.constant({} as { reasonCode?: number; properties?: Properties }),
    fc.constantFrom(...codes.filter((c) => c !== 0)).map((reasonCode) => ({ reasonCode })),
    fc.tuple(fc.constantFrom(...codes), nonEmptyProperties(type)).map((
      [reasonCode, properties],
    ) => ({
      reasonCode,
      properties,
    })),
  );
}

function connect(v: ProtocolVersion): fc.Arbitrary<Packet> {
  const will = fc.record({
    topic: topicName,
    payload: bytes(),
    qos,
    retain: fc.boolean(),
    properties: v === 5 ? properties("will") : fc.constant(undefined),
  }).map(clean);
  return fc.record({
    clean: fc.boolean(),
    keepAlive: fc.integer({ min: 0, max: 0xffff }),
    clientId: str(30),
    will: fc.option(will, { nil: undefined }),
    username: fc.option(str(), { nil: undefined }),
    password: fc.option(bytes(), { nil: undefined }),
    properties: v === 5 ? properties(T.CONNECT) : fc.constant(undefined),
  }).map((r) => {
    const p: ConnectPacket = {
      type: T.CONNECT,
      protocolName: v === 3 ? "MQIsdp" : "MQTT",
      protocolVersion: v,
      ...r,
    };
    // Before 5.0 a password needs a user name [MQTT-3.1.2-22].
    if (v < 5 && p.username === undefined) p.password = undefined;
    // Authentication Data needs an Authentication Method (§3.1.2.11.10).
    if (p.properties?.authenticationMethod === undefined && p.properties?.authenticationData) {
      p.properties = { ...p.properties, authenticationMethod: "m" };
    }
    return clean(p);
  });
}

function connack(v: ProtocolVersion): fc.Arbitrary<Packet> {
  return fc.record({
    sessionPresent: v === 3 ? fc.constant(false) : fc.boolean(),
    reasonCode: v === 5 ? fc.constantFrom(...codesFor(T.CONNACK)) : fc.integer({ min: 0, max: 5 }),
    properties: v === 5 ? properties(T.CONNACK) : fc.constant(undefined),
  }).map((r) => clean({ type: T.CONNACK, ...r }));
}

function publish(v: ProtocolVersion): fc.Arbitrary<Packet> {
  return fc.record({
    topic: topicName,
    payload: fc.oneof({ weight: 4, arbitrary: bytes(64) }, { weight: 1, arbitrary: bytes(400) }),
    qos,
    retain: fc.boolean(),
    dup: fc.boolean(),
    packetId,
    properties: v === 5 ? properties(T.PUBLISH) : fc.constant(undefined),
    emptyTopic: fc.boolean(),
  }).map(({ emptyTopic, ...r }) => {
    const p = { type: T.PUBLISH, ...r } as Packet & { type: 3 };
    if (p.qos === 0) {
      p.dup = false;
      p.packetId = undefined;
    }
    // 5.0 allows an empty topic name with a topic alias.
    if (v === 5 && emptyTopic && p.properties?.topicAlias !== undefined) p.topic = "";
    return clean(p);
  });
}

function ack(v: ProtocolVersion, type: AckPacket["type"]): fc.Arbitrary<Packet> {
  const extra = v === 5 ? reasonAndProperties(type) : fc.constant({});
  return fc.tuple(packetId, extra).map(([id, e]) => ({ type, packetId: id, ...e }) as Packet);
}

function subscribe(v: ProtocolVersion): fc.Arbitrary<Packet> {
  const sub: fc.Arbitrary<Subscription> = v === 5
    ? fc.record({
      topic: topicFilter,
      qos,
      noLocal: fc.boolean(),
      retainAsPublished: fc.boolean(),
      retainHandling: fc.constantFrom<0 | 1 | 2>(0, 1, 2),
    }).map((s) => ({ ...s, noLocal: s.noLocal && !s.topic.startsWith("$share/") }))
    : fc.record({ topic: topicFilter, qos });
  return fc.record({
    packetId,
    subscriptions: fc.array(sub, { minLength: 1, maxLength: 4 }),
    properties: v === 5 ? properties(T.SUBSCRIBE) : fc.constant(undefined),
  }).map((r) => clean({ type: T.SUBSCRIBE, ...r }));
}

function suback(v: ProtocolVersion): fc.Arbitrary<Packet> {
  const code = v === 5 ? fc.constantFrom(...codesFor(T.SUBACK)) : fc.constantFrom(0, 1, 2, 0x80);
  return fc.record({
    packetId,
    reasonCodes: fc.array(code, { minLength: 1, maxLength: 4 }),
    properties: v === 5 ? properties(T.SUBACK) : fc.constant(undefined),
  }).map((r) => clean({ type: T.SUBACK, ...r }));
}

function unsubscribe(v: ProtocolVersion): fc.Arbitrary<Packet> {
  return fc.record({
    packetId,
    topics: fc.array(topicFilter, { minLength: 1, maxLength: 4 }),
    properties: v === 5 ? properties(T.UNSUBSCRIBE) : fc.constant(undefined),
  }).map((r) => clean({ type: T.UNSUBSCRIBE, ...r }));
}

function unsuback(v: ProtocolVersion): fc.Arbitrary<Packet> {
  if (v < 5) return packetId.map((id) => ({ type: T.UNSUBACK, packetId: id }));
  return fc.record({
    packetId,
    reasonCodes: fc.array(fc.constantFrom(...codesFor(T.UNSUBACK)), { minLength: 1, maxLength: 4 }),
    properties: properties(T.UNSUBACK),
  }).map((r) => clean({ type: T.UNSUBACK, ...r }));
}

/** Any valid packet at level `v` (AUTH only at 5). */
export function packet(v: ProtocolVersion): fc.Arbitrary<Packet> {
  const all: fc.Arbitrary<Packet>[] = [
    connect(v),
    connack(v),
    publish(v),
    publish(v),
    publish(v),
    ack(v, T.PUBACK),
    ack(v, T.PUBREC),
    ack(v, T.PUBREL),
    ack(v, T.PUBCOMP),
    subscribe(v),
    suback(v),
    unsubscribe(v),
    unsuback(v),
    fc.constantFrom<Packet>({ type: T.PINGREQ }, { type: T.PINGRESP }),
    v === 5
      ? reasonAndProperties(T.DISCONNECT).map((e) => ({ type: T.DISCONNECT, ...e }) as Packet)
      : fc.constant<Packet>({ type: T.DISCONNECT }),
  ];
  if (v === 5) {
    all.push(reasonAndProperties(T.AUTH).map((e) => ({ type: T.AUTH, ...e }) as Packet));
  }
  return fc.oneof(...all);
}

// PacketDecoder remembers the last PUBLISH topic name: a topic seen again gives the same string,
// and a different topic (even one of the same length, or a bad one) is checked and decoded anew.

import assert from "node:assert/strict";
import {
  encodePacket,
  MqttPacketError,
  PacketDecoder,
  PacketType,
  type PublishPacket,
} from "../../src/packet/mod.ts";

function publish(topic: string): Uint8Array {
  return encodePacket({
    type: PacketType.PUBLISH,
    topic,
    payload: new Uint8Array([1]),
    qos: 0,
    retain: false,
    dup: false,
  }, 4);
}

function next(decoder: PacketDecoder, bytes: Uint8Array): PublishPacket {
  decoder.push(bytes);
  return decoder.next() as PublishPacket;
}

Deno.test("PacketDecoder gives the topic of the previous PUBLISH again for the same bytes, and decodes others anew", () => {
  const decoder = new PacketDecoder({ protocolVersion: 4 });
  const a = next(decoder, publish("s/1/temp"));
  const b = next(decoder, publish("s/1/temp"));
  assert.equal(a.topic, "s/1/temp");
  assert.equal(b.topic, "s/1/temp");
  assert.equal(next(decoder, publish("s/2/temp")).topic, "s/2/temp", "same length, other bytes");
  assert.equal(next(decoder, publish("s/1/temp")).topic, "s/1/temp");
  assert.equal(next(decoder, publish("é/x")).topic, "é/x");
  assert.equal(next(decoder, publish("é/x")).topic, "é/x");
  const long = "l/".repeat(100);
  assert.equal(next(decoder, publish(long)).topic, long, "too long to remember, decoded");
  assert.equal(next(decoder, publish(long)).topic, long);
});

Deno.test("PacketDecoder checks a topic of the same length as the remembered one [MQTT-3.3.2-2]", () => {
  const decoder = new PacketDecoder({ protocolVersion: 4 });
  next(decoder, publish("a/b"));
  // "a/+" encoded by hand: the encoder refuses wildcards in a topic name.
  const bytes = publish("a/b");
  bytes[bytes.length - 2] = 0x2b;
  decoder.push(bytes);
  assert.throws(() => decoder.next(), MqttPacketError);
});

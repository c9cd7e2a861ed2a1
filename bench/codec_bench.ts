// Codec benchmarks: `deno bench bench/codec_bench.ts`.
//
// The "64 KiB chunk" case decodes 1024 PUBLISH packets of 64 bytes each per iteration: packets per
// second = 1024 x iterations per second.

import {
  type ConnectPacket,
  decodePacket,
  encodePacket,
  encodePacketInto,
  type Packet,
  PacketDecoder,
  PacketType,
  type PublishPacket,
  type SubscribePacket,
} from "../src/packet/mod.ts";

const connect: ConnectPacket = {
  type: PacketType.CONNECT,
  protocolName: "MQTT",
  protocolVersion: 4,
  clean: true,
  keepAlive: 60,
  clientId: "bench-client-0001",
  username: "user",
  password: new TextEncoder().encode("secret"),
  will: { topic: "clients/bench/status", payload: new Uint8Array(8), qos: 1, retain: true },
};

const publish64: PublishPacket = {
  type: PacketType.PUBLISH,
  topic: "sensors/room1/temperature",
  payload: new Uint8Array(64).fill(0x41),
  qos: 1,
  retain: false,
  dup: false,
  packetId: 42,
};

const publish16k: PublishPacket = { ...publish64, payload: new Uint8Array(16 * 1024).fill(0x42) };

const subscribe: SubscribePacket = {
  type: PacketType.SUBSCRIBE,
  packetId: 7,
  subscriptions: [
    { topic: "sensors/+/temperature", qos: 1 },
    { topic: "alerts/#", qos: 2 },
  ],
};

const puback: Packet = { type: PacketType.PUBACK, packetId: 42 };

const cases: [string, Packet][] = [
  ["CONNECT", connect],
  ["PUBLISH 64 B", publish64],
  ["PUBLISH 16 KB", publish16k],
  ["SUBSCRIBE", subscribe],
  ["PUBACK", puback],
];

let sink = 0;

for (const [name, packet] of cases) {
  Deno.bench(`encode ${name}`, { group: `encode` }, () => {
    sink += encodePacket(packet, 4).length;
  });
}

// What a connection does: write straight into its output buffer (no allocation per packet).
const out = new Uint8Array(1 << 20);
let at = 0;
for (const [name, packet] of cases) {
  Deno.bench(`encodePacketInto ${name}`, { group: `encodeInto` }, () => {
    at = encodePacketInto(packet, 4, out, at);
    if (at > out.length - 32 * 1024) at = 0;
  });
}

for (const [name, packet] of cases) {
  const bytes = encodePacket(packet, 4);
  Deno.bench(`decode ${name}`, { group: `decode` }, () => {
    sink += decodePacket(bytes, { protocolVersion: 4 })!.length;
  });
}

// A 64 KiB chunk of 64-byte QoS 0 PUBLISH packets: 2 header + 2 + 6 topic + 54 payload bytes.
const small: PublishPacket = {
  type: PacketType.PUBLISH,
  topic: "t/0123",
  payload: new Uint8Array(54).fill(0x43),
  qos: 0,
  retain: false,
  dup: false,
};
const one = encodePacket(small, 4);
if (one.length !== 64) throw new Error(`expected 64-byte packets, got ${one.length}`);
const chunk = new Uint8Array(64 * 1024);
for (let i = 0; i < chunk.length; i += 64) chunk.set(one, i);
const decoder = new PacketDecoder({ protocolVersion: 4 });

Deno.bench(
  "decode 64 KiB chunk of 1024 x 64 B PUBLISH (PacketDecoder)",
  { group: "stream" },
  () => {
    decoder.push(chunk);
    let n = 0;
    while (decoder.next() !== undefined) n++;
    if (n !== 1024) throw new Error(`decoded ${n} packets`);
    sink += n;
  },
);

// The same stream arriving in 1500-byte pieces (one TCP segment each), split mid-packet.
const pieces: Uint8Array[] = [];
for (let i = 0; i < chunk.length; i += 1500) pieces.push(chunk.subarray(i, i + 1500));
Deno.bench("decode 64 KiB of 64 B PUBLISH in 1500-byte pieces", { group: "stream" }, () => {
  let n = 0;
  for (const piece of pieces) {
    decoder.push(piece);
    while (decoder.next() !== undefined) n++;
  }
  if (n !== 1024) throw new Error(`decoded ${n} packets`);
  sink += n;
});

globalThis.addEventListener("unload", () => {
  if (sink === -1) console.log(sink);
});

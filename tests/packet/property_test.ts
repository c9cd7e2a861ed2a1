// Property tests (fast-check) and fuzzing of the codec: round trips of random valid packets at
// every level, streams split at every offset and in random chunks, and random or mutated bytes
// that must only ever produce MqttPacketError.

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type DecodeOptions,
  decodePacket,
  encodedLength,
  encodePacket,
  MqttPacketError,
  type Packet,
  PacketDecoder,
  type ProtocolVersion,
} from "../../src/packet/mod.ts";
import { packet } from "./_arbitraries.ts";

const LEVELS: ProtocolVersion[] = [3, 4, 5];

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Feeds chunks to a fresh decoder and returns every packet, asserting progress each call. */
function decodeChunks(chunks: Uint8Array[], options: DecodeOptions): Packet[] {
  const d = new PacketDecoder(options);
  const out: Packet[] = [];
  for (const chunk of chunks) {
    d.push(chunk);
    for (;;) {
      const before = d.bufferedBytes;
      const p = d.next();
      if (p === undefined) break;
      // Every packet consumes at least 2 bytes: the loop cannot spin.
      assert.ok(d.bufferedBytes <= before - 2);
      out.push(p);
    }
  }
  return out;
}

for (const v of LEVELS) {
  Deno.test(`random valid packets round-trip at level ${v}`, () => {
    fc.assert(
      fc.property(packet(v), (p) => {
        const bytes = encodePacket(p, v);
        assert.equal(bytes.length, encodedLength(p, v));
        assert.deepEqual(decodePacket(bytes, { protocolVersion: v }), {
          packet: p,
          length: bytes.length,
        });
      }),
      { numRuns: 20_000 },
    );
  });

  Deno.test(`a stream of packets split at every offset decodes the same at level ${v}`, () => {
    fc.assert(
      fc.property(fc.array(packet(v), { minLength: 1, maxLength: 5 }), (packets) => {
        const bytes = concat(packets.map((p) => encodePacket(p, v)));
        const options = { protocolVersion: v };
        for (let i = 0; i <= bytes.length; i++) {
          const got = decodeChunks([bytes.slice(0, i), bytes.slice(i)], options);
          assert.deepEqual(got, packets, `split at ${i}`);
        }
      }),
      { numRuns: 300 },
    );
  });

  Deno.test(`a stream of packets in random chunks decodes the same at level ${v}`, () => {
    fc.assert(
      fc.property(
        fc.array(packet(v), { minLength: 1, maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }),
        (packets, sizes) => {
          const bytes = concat(packets.map((p) => encodePacket(p, v)));
          const chunks: Uint8Array[] = [];
          for (let at = 0, i = 0; at < bytes.length; i++) {
            const n = sizes[i % sizes.length];
            chunks.push(bytes.slice(at, at + n));
            at += n;
          }
          assert.deepEqual(decodeChunks(chunks, { protocolVersion: v }), packets);
        },
      ),
      { numRuns: 2000 },
    );
  });
}

// ---- Fuzzing: only MqttPacketError, never a hang ----------------------------------------------

const OPTION_SETS: DecodeOptions[] = [
  { protocolVersion: 3 },
  { protocolVersion: 4 },
  { protocolVersion: 5 },
  { protocolVersion: 5, side: "server" },
  { protocolVersion: 4, side: "client" },
  { side: "server" },
  { protocolVersion: 5, maxPacketSize: 64 },
];

let failures = 0;
/** Inputs decoded by `probe`, so each fuzz test can prove it ran its full count. */
let probes = 0;

// The bar is a million random and mutated byte strings: these three add up to exactly
// 1,000,000 single inputs, plus STREAM_RUNS multi-packet streams through PacketDecoder.
const RANDOM_RUNS = 100_000;
const PLAUSIBLE_RUNS = 350_000;
const MUTATED_RUNS = 550_000;
const STREAM_RUNS = 20_000;

/**
 * Decodes `bytes` and checks the contract: a result, undefined, or MqttPacketError. A decoded
 * packet must encode again and decode to a packet (the encoder accepts what the decoder accepts).
 */
function probe(bytes: Uint8Array, options: DecodeOptions): void {
  probes++;
  let result;
  try {
    result = decodePacket(bytes, options);
  } catch (error) {
    if (!(error instanceof MqttPacketError)) {
      failures++;
      throw new Error(`decodePacket threw ${error} for ${[...bytes]}`, { cause: error });
    }
    assert.equal(typeof error.reasonCode, "number");
    assert.ok(error.offset >= 0 && error.offset <= bytes.length, `offset ${error.offset}`);
    return;
  }
  if (result === undefined) return;
  assert.ok(result.length >= 2 && result.length <= bytes.length);
  const p = result.packet;
  const level = p.type === 1 ? p.protocolVersion : options.protocolVersion ?? 4;
  const again = encodePacket(p, level);
  assert.ok(decodePacket(again, { protocolVersion: level }) !== undefined);
}

/** Small deterministic PRNG (xorshift32) so fuzz failures reproduce. */
function rng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

/** A pool of valid encoded packets at every level, as seeds for mutation. */
function seedPool(): { bytes: Uint8Array; v: ProtocolVersion }[] {
  const pool: { bytes: Uint8Array; v: ProtocolVersion }[] = [];
  for (const v of LEVELS) {
    for (const p of fc.sample(packet(v), { numRuns: 400, seed: 42 + v })) {
      pool.push({ bytes: encodePacket(p, v), v });
    }
  }
  return pool;
}

Deno.test("random byte strings never throw anything but MqttPacketError (fast-check)", () => {
  const before = probes;
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 48 }), fc.constantFrom(...OPTION_SETS), (b, o) => {
      probe(b, o);
    }),
    { numRuns: RANDOM_RUNS },
  );
  assert.equal(probes - before, RANDOM_RUNS);
});

Deno.test("random byte strings with plausible headers never throw anything but MqttPacketError", () => {
  const rand = rng(0x5eed);
  const flagsFor = [0, 0, 0, -1, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, 0];
  const buf = new Uint8Array(80);
  const before = probes;
  for (let i = 0; i < PLAUSIBLE_RUNS; i++) {
    const type = 1 + Math.floor(rand() * 15);
    const flags = flagsFor[type] === -1 || rand() < 0.05 ? Math.floor(rand() * 16) : flagsFor[type];
    const len = Math.floor(rand() * 70);
    buf[0] = (type << 4) | flags;
    buf[1] = len;
    for (let j = 2; j < 2 + len; j++) {
      // Bias towards small values so lengths often land inside the packet.
      buf[j] = rand() < 0.5 ? Math.floor(rand() * 8) : Math.floor(rand() * 256);
    }
    const end = rand() < 0.9 ? 2 + len : Math.floor(rand() * (2 + len));
    probe(buf.subarray(0, end), OPTION_SETS[i % OPTION_SETS.length]);
  }
  assert.equal(failures, 0);
  assert.equal(probes - before, PLAUSIBLE_RUNS);
});

Deno.test("mutated valid packets never throw anything but MqttPacketError", () => {
  const rand = rng(0xbadc0de);
  const pool = seedPool();
  const before = probes;
  for (let i = 0; i < MUTATED_RUNS; i++) {
    const { bytes: seed, v } = pool[i % pool.length];
    const b = seed.slice();
    const kind = Math.floor(rand() * 5);
    const at = Math.floor(rand() * b.length);
    let out = b;
    if (kind === 0) {
      b[at] ^= 1 << Math.floor(rand() * 8); // flip one bit
    } else if (kind === 1) {
      b[at] = Math.floor(rand() * 256); // replace a byte
    } else if (kind === 2) {
      // Replace several bytes after the fixed header, keeping the lengths consistent.
      for (let k = 0; k < 3; k++) {
        b[2 + Math.floor(rand() * (b.length - 2))] = Math.floor(rand() * 256);
      }
    } else if (kind === 3) {
      out = b.subarray(0, at); // truncate
    } else {
      // Insert a random byte and fix up a one-byte remaining length.
      out = new Uint8Array(b.length + 1);
      out.set(b.subarray(0, at), 0);
      out[at] = Math.floor(rand() * 256);
      out.set(b.subarray(at), at + 1);
      if (at >= 2 && out[1] < 0x7f) out[1]++;
    }
    probe(out, i % 4 === 0 ? { side: "server" } : { protocolVersion: v });
  }
  assert.equal(failures, 0);
  assert.equal(probes - before, MUTATED_RUNS);
});

Deno.test("mutated streams through PacketDecoder in random chunks only throw MqttPacketError", () => {
  const rand = rng(0xfeed);
  const pool = seedPool();
  let streams = 0;
  for (let i = 0; i < STREAM_RUNS; i++) {
    const v = LEVELS[i % 3];
    const parts = [];
    for (let k = 0; k < 4; k++) {
      const s = pool[Math.floor(rand() * pool.length)];
      if (s.v === v) parts.push(s.bytes);
    }
    const stream = concat(parts);
    if (stream.length === 0) continue;
    stream[Math.floor(rand() * stream.length)] = Math.floor(rand() * 256);
    const chunks: Uint8Array[] = [];
    for (let at = 0; at < stream.length;) {
      const n = 1 + Math.floor(rand() * 40);
      chunks.push(stream.slice(at, at + n));
      at += n;
    }
    streams++;
    try {
      decodeChunks(chunks, { protocolVersion: v });
    } catch (error) {
      if (!(error instanceof MqttPacketError)) throw error;
    }
  }
  // Most iterations find at least one seed of their level; a broken pool would skip them all.
  assert.ok(streams > STREAM_RUNS / 2, `only ${streams} streams were fed`);
});

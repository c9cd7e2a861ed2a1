/** FrameDecoder: packets cut from a stream by their fixed header, split at every offset. */

import assert from "node:assert/strict";
import { FrameDecoder } from "../../cli/bench/_frames.ts";

// PINGREQ, PUBLISH QoS 1 to "t" (id 7, payload "xy"), SUBACK with a 2-byte remaining length.
const suback = [0x90, 0x82, 0x01, 0, 1, ...new Array(128).fill(0)];
const stream = new Uint8Array([0xc0, 0, 0x32, 7, 0, 1, 0x74, 0, 7, 0x78, 0x79, ...suback]);

Deno.test("FrameDecoder frames packets split at every offset, with their body offsets", () => {
  for (let cut = 0; cut <= stream.length; cut++) {
    const decoder = new FrameDecoder();
    const frames: { type: number; body: number[] }[] = [];
    for (const part of [stream.slice(0, cut), stream.slice(cut)]) {
      decoder.push(part);
      for (let f = decoder.next(); f !== undefined; f = decoder.next()) {
        frames.push({ type: f.buf[f.start]! >> 4, body: [...f.buf.subarray(f.body, f.end)] });
      }
    }
    assert.deepEqual(frames.map((f) => f.type), [12, 3, 9], `cut at ${cut}`);
    assert.deepEqual(frames[1]!.body, [0, 1, 0x74, 0, 7, 0x78, 0x79]);
    assert.equal(frames[2]!.body.length, 130);
    assert.equal(decoder.bufferedBytes, 0);
  }
});

Deno.test("FrameDecoder refuses a remaining length over 4 bytes [MQTT-1.5.5-1]", () => {
  const decoder = new FrameDecoder();
  decoder.push(new Uint8Array([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]));
  assert.throws(() => decoder.next(), /remaining length is longer than 4 bytes/);
});

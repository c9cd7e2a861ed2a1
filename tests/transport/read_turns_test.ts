/**
 * PacketChannel read turns over real sockets: a light connection is served while two others flood
 * (their peers in another process keep the kernel's buffers full). Asserted by counts, not time.
 */

import assert from "node:assert/strict";
import { type ChannelDecoder, PacketChannel } from "../../src/transport/packet_channel.ts";
import { socketConnection } from "../../src/transport/socket.ts";
import { readTurns } from "../../src/transport/_read_turns.ts";

/**
 * Hands over each chunk's length after some work on every byte (as a real decoder and router do),
 * so that the reader is slower than the flooding peers and their kernel buffers stay full.
 */
class ChunkCounter implements ChannelDecoder<number> {
  #pending = 0;
  checksum = 0;
  push(chunk: Uint8Array): void {
    for (let round = 0; round < 8; round++) {
      for (let i = 0; i < chunk.length; i++) {
        this.checksum = (this.checksum + chunk[i]! + round) | 0;
      }
    }
    this.#pending += chunk.length;
  }
  next(): number | undefined {
    const n = this.#pending;
    this.#pending = 0;
    return n > 0 ? n : undefined;
  }
  get bufferedBytes(): number {
    return this.#pending;
  }
}

const FLOOD_BYTES = 64 * 1024 * 1024;
const LIGHT_BYTES = 10;

// Connects two flooding sockets, then a light one that sends one byte at a time.
const PEERS = `
const port = Number(Deno.args[0]);
const flood = async (conn) => {
  const block = new Uint8Array(1 << 20);
  for (let sent = 0; sent < ${FLOOD_BYTES};) sent += await conn.write(block.subarray(0, Math.min(block.length, ${FLOOD_BYTES} - sent)));
};
const a = await Deno.connect({ hostname: "127.0.0.1", port });
const b = await Deno.connect({ hostname: "127.0.0.1", port });
const light = await Deno.connect({ hostname: "127.0.0.1", port });
const floods = [flood(a), flood(b)];
for (let i = 0; i < ${LIGHT_BYTES}; i++) await light.write(new Uint8Array([i]));
await Promise.all(floods);
await Deno.stdin.readable.pipeTo(new WritableStream());
`;

Deno.test("PacketChannel serves a light connection while two others flood", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", PEERS, String(listener.addr.port)],
    stdin: "piped",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const channels: PacketChannel<number>[] = [];
  const received = [0, 0, 0];
  for (let i = 0; i < 3; i++) {
    const conn = socketConnection(await listener.accept(), {
      transport: "tcp",
      remoteAddress: "peer",
    });
    channels.push(new PacketChannel(conn, new ChunkCounter()));
  }
  // When the light connection's bytes are all in: what each flood had delivered by then.
  let floodsAtLight: number[] | undefined;
  const runs = channels.map((channel, i) =>
    channel.run({
      receive: (n) => {
        received[i] += n;
        if (i === 2 && received[2] === LIGHT_BYTES) floodsAtLight = [received[0], received[1]];
        if (received[0] + received[1] === 2 * FLOOD_BYTES && received[2] === LIGHT_BYTES) {
          for (const c of channels) c.close();
        }
      },
    })
  );
  await Promise.all(runs);
  await Promise.all(channels.map((c) => c.finish()));
  child.stdin.close();
  await child.status;
  assert.deepEqual(received, [FLOOD_BYTES, FLOOD_BYTES, LIGHT_BYTES]);
  assert.ok(floodsAtLight !== undefined);
  // Served while the floods went on: neither flood had been read to its end.
  assert.ok(floodsAtLight[0]! < FLOOD_BYTES && floodsAtLight[1]! < FLOOD_BYTES, `${floodsAtLight}`);
});

Deno.test("PacketChannel never waits for a turn while its reads take all the peer sent", async () => {
  // A steady sender (a publisher at 5k msg/s) whose every read drains the socket: its next read
  // waits for the event loop's poll anyway, so the budget must not add up across turns. Sixty-four
  // pieces of 16 KiB, each sent once the previous one is in: 1 MiB against a 64 KiB budget.
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  using client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const conn = socketConnection(await listener.accept(), {
    transport: "tcp",
    remoteAddress: "peer",
  });
  const channel = new PacketChannel(conn, new ChunkCounter(), { readBudget: 64 * 1024 });
  const piece = new Uint8Array(16 * 1024);
  let received = 0;
  let arrived: (() => void) | undefined;
  const running = channel.run({
    receive: (n) => {
      received += n;
      if (received % piece.length === 0) arrived?.();
    },
  });
  const turnBefore = readTurns.turn;
  for (let i = 1; i <= 64; i++) {
    const wait = new Promise<void>((resolve) => arrived = resolve);
    for (let sent = 0; sent < piece.length;) sent += await client.write(piece.subarray(sent));
    await wait;
    assert.equal(received, i * piece.length);
  }
  assert.equal(readTurns.turn, turnBefore, "the channel waited for a timer turn");
  channel.close();
  await running;
  await channel.finish();
});

/**
 * Child process of `89_async_route_buffer_test.ts` (run with `--v8-flags=--expose-gc`): a broker
 * whose `authorizePublish` answers topics under `slow/` later, a publisher handed to it through an
 * external listener whose transport reads each chunk into a 64 KiB buffer of its own, watched by
 * a `WeakRef`. Arguments: the scenario, and a directory for a SQLite store (or `-` for none).
 * Prints `{ collected, held }` as JSON: whether the buffer that carried the PUBLISHes was collected
 * once they were routed, acknowledged and delivered, and whether the subscriber still holds a
 * delivery unacknowledged (so that the message was still kept in flight when the GC ran).
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType, type PublishPacket } from "../../src/packet/mod.ts";
import type { BrokerPlugin } from "../../src/plugins/types.ts";
import { socketConnection } from "../../src/transport/socket.ts";
import type { ByteConnection, ReadReceiver } from "../../src/transport/types.ts";
import { delay, startBroker, waitFor } from "../_helpers/broker.ts";
import { publishPacket, subscribe5, TestClient } from "../_helpers/test_client.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("Run with --v8-flags=--expose-gc");
const [scenario, dir] = Deno.args;

/** The buffers the publisher's chunks were read into, each with its first byte. */
const reads: { buffer: WeakRef<ArrayBuffer>; first: number }[] = [];

/** `conn`, with every chunk copied into a 64 KiB buffer of its own (as a large read would be). */
function watched(conn: ByteConnection): ByteConnection {
  return {
    info: conn.info,
    readable: conn.readable,
    closed: conn.closed,
    get isClosed() {
      return conn.isClosed;
    },
    readThen(_reuse: Uint8Array | undefined, to: ReadReceiver): void {
      conn.readThen!(undefined, {
        readDone(chunk) {
          if (chunk === null) return to.readDone(null);
          const own = new Uint8Array(65536);
          own.set(chunk);
          reads.push({ buffer: new WeakRef(own.buffer), first: chunk[0]! });
          to.readDone(own.subarray(0, chunk.length));
        },
      });
    },
    // The channel reads through readThen only when it has read too.
    async read(_reuse?: Uint8Array): Promise<Uint8Array | null> {
      return await new Promise((resolve) => this.readThen!(undefined, { readDone: resolve }));
    },
    write: (bytes) => conn.write(bytes),
    closeWrite: () => conn.closeWrite?.(),
    close: () => conn.close(),
  };
}

const plugin: BrokerPlugin = {
  name: "slow_topics",
  authorizePublish: (_client, topic) =>
    topic.startsWith("slow/") ? delay(20).then(() => true) : true,
};
const config: Record<string, unknown> = {
  listeners: { default: { bind: "127.0.0.1:0" }, host: { type: "external" } },
};
if (dir !== "-") config.persistence = { path: `${dir}/state.db` };
const b = await startBroker(config, { plugins: [plugin] });
const own = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const accepting = own.accept().then((conn) =>
  b.broker.acceptConnection(
    watched(socketConnection(conn, { transport: "tcp", remoteAddress: "watched" })),
    "host",
  )
);
// A subscriber that keeps its QoS 1 deliveries unacknowledged: the broker keeps them in flight to
// send them again [MQTT-4.4.0-1].
const keeper = await TestClient.connect(b.port, { clientId: "keeper", clean: false });
await keeper.subscribe({ "#": 1 });
// A 5.0 subscriber with a Subscription Identifier at QoS 0: its deliveries are copies of the
// message (the identifier is its own [MQTT-3.3.4-3]), written out at once.
const copies = await TestClient.connect(b.port, { clientId: "copies", protocolVersion: 5 });
await subscribe5(copies, [{ topic: "#", qos: 0 }], { identifier: 7 });
const pub = await TestClient.connect((own.addr as Deno.NetAddr).port, { clientId: "pub" });
await accepting;

const packets: PublishPacket[] = scenario === "backlog"
  // The second waits behind the first and is authorized at once once it is answered: both are
  // routed in the same turn.
  ? [
    publishPacket("slow/a", "first", { qos: 1, packetId: 1 }),
    publishPacket("fast/b", "second", { qos: 1, packetId: 2 }),
  ]
  : [publishPacket("slow/a", "only", { qos: 1, packetId: 1 })];
await pub.send(...packets);
for (const p of packets) {
  const ack = await pub.expect(PacketType.PUBACK);
  assert.equal(ack.packetId, p.packetId);
}
const kept = [];
for (const _ of packets) kept.push(await keeper.expect(PacketType.PUBLISH));
for (const _ of packets) await copies.expect(PacketType.PUBLISH);
assert.deepEqual(
  kept.map((p) => new TextDecoder().decode(p.payload)),
  packets.map((p) => new TextDecoder().decode(p.payload)),
);
// Nothing else arrives from the publisher: no later PUBLISH lets go of what the routing noted.
await waitFor(() => reads.some((r) => r.first === 0x32), 10_000, "the PUBLISH's read");
for (let i = 0; i < 3; i++) {
  await delay(0);
  gc();
}
const read = reads.find((r) => r.first === 0x32)!;
const collected = read.buffer.deref() === undefined;
// Still open and still owed: the deliveries are in flight while the GC ran.
assert.ok(!pub.socketEnded && !keeper.socketEnded);
for (const p of kept) await keeper.send({ type: PacketType.PUBACK, packetId: p.packetId! });
await pub.disconnect();
await keeper.disconnect();
await copies.disconnect();
await b[Symbol.asyncDispose]();
own.close();
console.log(JSON.stringify({ collected, held: kept.length }));

/**
 * Broker: the memory budget (`max_memory`) notices deliveries held for sessions between two of
 * the sweep's samples. One message read fans out to every subscriber's queue: a hundred kilobytes
 * read can hold tens of megabytes of deliveries, which the bytes read (sampled every 16 MiB) do
 * not show, and which the sweep, far below the limit, samples only every 5 s.
 *
 * @module
 */

import assert from "node:assert/strict";
import { HELD_BYTES, SAMPLE_EVERY_BYTES } from "../../src/broker/memory_budget.ts";
import { encodePacket, PacketType } from "../../src/packet/mod.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import { publishPacket, TestClient } from "../_helpers/test_client.ts";

const SESSIONS = 100;
/** Held deliveries between two samples of the held count. */
const PER_SAMPLE = Math.ceil(SAMPLE_EVERY_BYTES / HELD_BYTES);
/** Messages that hold twice that many deliveries once fanned out to every session. */
const MESSAGES = 2 * Math.ceil(PER_SAMPLE / SESSIONS);

Deno.test({
  name: "memory budget: deliveries fanned out to offline queues are sampled before the next sweep",
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    let used = 0;
    let samples = 0;
    const memoryProbe = () => {
      samples++;
      return used;
    };
    // Unbounded queues (aMQTT's 0): only the budget stops them growing.
    await using b = await startBroker(
      { max_memory: 1024 * 1024 * 1024, max_queued_messages: 0 },
      { memoryProbe },
    );
    for (let i = 0; i < SESSIONS; i++) {
      const c = await TestClient.connect(b.port, { clientId: `s${i}`, clean: false });
      await c.subscribe({ "fan/#": 1 });
      await c.disconnect();
    }
    await waitFor(
      () => b.broker.clients().filter((c) => !c.connected).length === SESSIONS,
      10_000,
      "the sessions offline",
    );
    await using pub = await TestClient.connect(b.port, { clientId: "pub" });
    // Right after one of the sweep's samples (far below the limit: the next is 5 s away), memory
    // is past the limit, and the flood comes: a few bytes each, 100 deliveries each.
    const seen = samples;
    await waitFor(() => samples > seen, 15_000, "a sample of the sweep");
    used = 2 * 1024 * 1024 * 1024;
    const one = encodePacket(publishPacket("fan/x", "m", { qos: 1, packetId: 1 }), 4);
    const flood = new Uint8Array(one.length * MESSAGES);
    for (let i = 0; i < MESSAGES; i++) {
      flood.set(one, i * one.length);
      // The packet id, after the 2-byte fixed header and the topic ("fan/x" with its length).
      const at = i * one.length + 2 + 2 + 5;
      flood[at] = (i + 1) >> 8;
      flood[at + 1] = (i + 1) & 0xff;
    }
    await pub.sendBytes(flood);
    for (let i = 0; i < MESSAGES; i++) {
      assert.equal((await pub.expect(PacketType.PUBACK)).packetId, i + 1);
    }

    let held = 0;
    for (const c of b.broker.clients()) if (c.clientId !== "pub") held += c.inflight + c.queued;
    const total = SESSIONS * MESSAGES;
    // Past the limit from the first sample of the held deliveries on: the rest are dropped.
    assert.ok(held <= PER_SAMPLE + SESSIONS, `${held} of ${total} deliveries held`);
    assert.equal(b.broker.stats.dropped, total - held);
    // The publisher is still served.
    await pub.send({ type: PacketType.PINGREQ });
    await pub.expect(PacketType.PINGRESP);
  },
});

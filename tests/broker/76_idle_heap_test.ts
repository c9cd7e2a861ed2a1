// Broker, area 76: what an idle MQTT 3.1.1 connection keeps in the broker's heap and buffers
// (after compacting collections), pinned under a bound. Here (1,000 → 5,000 connections, busy
// machine, 2026-12-07): 3,578 / 3,605 B of heap and 277 B of buffers per idle connection (before
// the pending read went into a slot of a shared slab, src/transport/socket.ts: 3,641 / 3,528 B and
// 263 / 240 B, within this measure's noise; bench/idle_heap.ts --usage saw 3,690 → 3,450 B of heap
// and 5,800 → 5,440 B of RSS). Deno's own part, which no change in amqtt can take away: 2,613 B of
// heap and a 256-byte buffer (the program of bench/idle_floor.ts --serve). The bound leaves about
// 200 B of margin. Measured in a broker of its own process.

import assert from "node:assert/strict";
import { BrokerProcess } from "../_helpers/memory_broker_process.ts";
import { openIdle } from "./_idle.ts";

Deno.test({
  name:
    "76 idle heap: an idle 3.1.1 connection keeps less than 4,100 bytes of heap and buffers in the broker",
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    const N1 = 1000, N2 = 5000;
    await using broker = await BrokerProcess.start({});
    const conns: Deno.TcpConn[] = [];
    const openUpTo = async (n: number) => {
      while (conns.length < n) {
        const first = conns.length;
        conns.push(
          ...await Promise.all(
            Array.from({ length: 100 }, (_, i) => openIdle(broker.port, `idle-${first + i}`)),
          ),
        );
      }
    };
    try {
      await openUpTo(N1);
      const a = await broker.measure(true);
      await openUpTo(N2);
      const b = await broker.measure(true);
      assert.equal(b.sessions, N2);
      const heap = (b.heapUsed - a.heapUsed) / (N2 - N1);
      const buffers = (b.external - a.external) / (N2 - N1);
      assert.ok(
        heap + buffers < 4100,
        `per idle connection: ${heap.toFixed(0)} B of heap and ${buffers.toFixed(0)} B of buffers`,
      );
    } finally {
      for (const c of conns) c.close();
    }
  },
});

// Broker, area 75: memory given back after many idle connections have closed. Once at least 1,000
// connections and half of the most held have gone, the broker's sweep collects V8's heap and then
// asks glibc to give back the free pages of its arenas (src/broker/_memory_release.ts,
// src/broker/_malloc_trim.ts): the runtime keeps each socket's native state there, and without the
// trim a broker kept 25 MB of RSS after 8,000 idle connections had closed (Mosquitto 5.6 MB).
// Measured in a broker of its own process (run with -A: it may call the C library).

import assert from "node:assert/strict";
import { BrokerProcess } from "../_helpers/memory_broker_process.ts";
import { waitFor } from "../_helpers/broker.ts";
import { openIdle } from "./_idle.ts";

const MB = 1024 * 1024;

Deno.test({
  name:
    "75 memory after close: RSS a broker kept after 5,000 idle connections closed is given back, the C allocator's free pages included",
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    const N = 5000;
    await using broker = await BrokerProcess.start({});
    const conns: Deno.TcpConn[] = [];
    try {
      // Once through before the baseline (code compiled, pools grown), then the baseline.
      for (let i = 0; i < 200; i++) conns.push(await openIdle(broker.port, `warm-${i}`));
      for (const c of conns.splice(0)) c.close();
      await waitFor(async () => (await broker.measure()).sessions === 0, 30_000, "warm-up gone");
      const before = await broker.measure();
      while (conns.length < N) {
        const first = conns.length;
        conns.push(
          ...await Promise.all(
            Array.from({ length: 100 }, (_, i) => openIdle(broker.port, `idle-${first + i}`)),
          ),
        );
      }
      const held = await broker.measure();
      assert.equal(held.sessions, N);
      for (const c of conns.splice(0)) c.close();
      // The sweep's collection, then the trim in the same call.
      await waitFor(
        async () => {
          const m = await broker.measure();
          return m.sessions === 0 && m.releases > before.releases;
        },
        60_000,
        "the collection after the close",
      );
      const after = await broker.measure();
      const grown = (held.rss - before.rss) / MB, kept = (after.rss - before.rss) / MB;
      // 5,000 idle connections grew the RSS by ~52 MB; -1.2 and -0.6 MB stayed with the trim, 11.7
      // and 12.2 MB without it (the trim's call taken out).
      assert.ok(grown > 20, `${N} idle connections grew the RSS by ${grown.toFixed(1)} MB`);
      assert.ok(
        kept < 6,
        `RSS kept after all closed: ${kept.toFixed(1)} MB (grown ${grown.toFixed(1)} MB)`,
      );
    } finally {
      for (const c of conns) c.close();
    }
  },
});

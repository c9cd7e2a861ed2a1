// A dead node's stream is rescued twice (at the reap, and again after the grace for what nodes
// that had not heard of it wrote meanwhile): a shared-group message it held that finds no member
// anywhere is given up (`shareLost`) once, not once per rescue. Real redis-server and buses; the
// bus's clock is the test's.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { encodeFrame } from "../../src/cluster/bus_frame.ts";
import { SHARE_WAIT_MS } from "../../src/cluster/cluster_bus.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { collect, inspect, startBus, until } from "./_bus_helpers.ts";

/** The grace after which a dead node's streams are rescued again (`DEPARTED_GRACE_MS`). */
const GRACE_MS = 30_000;

Deno.test("ClusterBus: a dead node's shared-group message that finds no member is reported lost once, though its stream is rescued twice", async () => {
  await using server = await RedisServer.start();
  let now = 1_000_000;
  await using a = await startBus(server, "a", { livenessTtl: 60_000, clock: () => now });
  const lost = collect(a, "shareLost");
  const c = await startBus(server, "c", { livenessTtl: 1000 });
  await using _c = { [Symbol.asyncDispose]: () => c.abandon() };
  await c.abandon();
  // Chosen for a group by nodes that lagged; C, dead, never read them; nobody has members.
  await inspect(server, async (r) => {
    for (const body of ["one", "two"]) {
      const frame = encodeFrame({
        type: "message",
        origin: "p",
        publisher: "pub",
        seq: body.length,
        shares: ["$share/g/t"],
        message: { topic: "t", payload: new TextEncoder().encode(body), qos: 1, retain: false },
      });
      await r.xadd("test:s:c", "*", "f", Buffer.from(frame));
    }
  });
  await until(async () => await inspect(server, (r) => r.exists("test:alive:c")) === 0);
  await a.heartbeat(); // reaps C and rescues its stream
  await a.heartbeat(); // the rescue's read (sent before) is answered by now
  assert.equal(lost.length, 0);
  // The wait for a member and the grace end together: given up, and rescued again.
  now += Math.max(SHARE_WAIT_MS, GRACE_MS);
  await a.heartbeat();
  await until(() => lost.length === 2);
  await a.heartbeat();
  // What the second rescue would have passed on again waits for a member as long, and ends.
  for (let i = 0; i < 3; i++) {
    now += SHARE_WAIT_MS;
    await a.heartbeat();
  }
  const payloads = lost.map(({ frame, share }) =>
    `${new TextDecoder().decode(frame.message.payload)} ${share}`
  );
  assert.deepEqual(payloads.sort(), ["one $share/g/t", "two $share/g/t"]);
  assert.ok(a.ready, "the bus is still connected");
});

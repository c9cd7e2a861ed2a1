/**
 * Broker, area 51: the rewrite after a store outage needs room for what changed, not for a second
 * copy of the state. A real SQLite file of 1 MiB holds an offline persistent session's queue of
 * 576 KiB (more than half the file) and a ballast; a retained message of 300 KiB does not fit, and
 * the outage starts. The ballast drains, so the state in memory (queue and retained message,
 * 876 KiB) fits the file again: the probe works, and the rewrite (the retained message and the
 * records; the queued messages are held already) fits too, where one row of the whole state on
 * top of the file's 576 KiB would not. After a restart on the file the queue and the retained
 * message are there.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import { publishPacket, TestClient } from "../_helpers/test_client.ts";
import {
  count,
  drainSession,
  FAILURE_LINE,
  fill,
  GUARD_MS,
  named,
  nameOf,
  next,
  offlineSubscribers,
  RECOVERY_LINE,
  startOnSizedFile,
} from "../_helpers/store_full.ts";
import { tempDir } from "../cli/_helpers.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const KIB = 1024;
const KEPT = 36;
const BALLAST = 14;

test("51 store rewrite bounded: a state larger than half the file leaves the outage once it fits, and is all there after a restart [MQTT-3.1.2-4]", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/state.db`;
  {
    await using b = await startOnSizedFile(path, 1024 * KIB);
    const log = b.log;
    await offlineSubscribers(b.port, { keeper: { "keep/#": 1 }, ballast: { "ballast/#": 1 } });
    await fill(b.port, "keep/x", "k", KEPT);
    await fill(b.port, "ballast/x", "b", BALLAST);
    assert.equal(count(log, FAILURE_LINE), 0, "the queue and the ballast fit");

    // A retained message that does not fit starts the outage.
    await using p0 = await TestClient.connect(b.port, { clientId: "p0" });
    await p0.send(publishPacket("ret/big", named("ret", 300 * KIB), { retain: true }));
    await waitFor(() => count(log, FAILURE_LINE) === 1, GUARD_MS, "the outage");
    assert.equal(b.broker.ready, false);

    // The ballast drains: what memory holds fits the file again.
    const drained = await drainSession(b.port, "ballast", BALLAST);
    assert.deepEqual(drained, Array.from({ length: BALLAST }, (_, i) => `b${i + 1}`));
    await waitFor(() => count(log, RECOVERY_LINE) === 1, GUARD_MS, "the end of the outage");
    assert.equal(b.broker.ready, true);
    // QoS 1 work is accepted again, and acknowledged once stored.
    await using p1 = await TestClient.connect(b.port, { clientId: "p1" });
    await p1.send(publishPacket("keep/x", named("after", 100), { qos: 1, packetId: 1 }));
    const ack = await next(p1, PacketType.PUBACK);
    assert.deepEqual([ack.packetId, ack.reasonCode ?? 0], [1, 0]);
    assert.equal(count(log, FAILURE_LINE), 1, "nothing failed after the outage");
  }

  // A restart on the same file: the whole queue in order, and the retained message.
  await using b2 = await startBroker({}, { store: SqliteStore.open(path) });
  await using keeper = await TestClient.connect(b2.port, { clientId: "keeper", clean: false });
  for (let i = 1; i <= KEPT; i++) {
    const p = await next(keeper, PacketType.PUBLISH);
    assert.equal(nameOf(p), `k${i}`);
    await keeper.send({ type: PacketType.PUBACK, packetId: p.packetId! });
  }
  assert.equal(nameOf(await next(keeper, PacketType.PUBLISH)), "after");
  await using watcher = await TestClient.connect(b2.port, { clientId: "watcher" });
  await watcher.subscribe({ "ret/#": 0 });
  const retained = await next(watcher, PacketType.PUBLISH);
  assert.deepEqual([nameOf(retained), retained.retain, retained.payload.length], [
    "ret",
    true,
    300 * KIB,
  ]);
});

/**
 * Broker, area 55: a QoS 2 PUBREC waiting for the store to be written again holds only the
 * PUBRECs of its connection. The MQTT 5.0 publisher whose QoS 2 message reveals a store outage
 * gets its PUBREC once the store is written again from memory (test 51); meanwhile the rest of
 * its output goes on: PINGRESP to its PINGREQ, QoS 0 deliveries to its subscription, PUBACK 0x80
 * to a QoS 1 message during the outage. The ordering rules set an order among PUBRECs
 * [MQTT-4.6.0-3], none between a PUBREC and other packets. A real SQLite file at its size limit.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { waitFor } from "../_helpers/broker.ts";
import { publishPacket, TestClient, text } from "../_helpers/test_client.ts";
import {
  count,
  drainSession,
  FAILURE_LINE,
  fill,
  GUARD_MS,
  named,
  next,
  offlineSubscribers,
  RECOVERY_LINE,
  startOnSizedFile,
} from "../_helpers/store_full.ts";
import { tempDir } from "../cli/_helpers.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const KIB = 1024;

test("55 a PUBREC waiting for the store to be written again holds no other output: PINGRESP, QoS 0 deliveries and PUBACK 0x80 go on [MQTT-4.6.0-3] [MQTT-3.12.4-1]", async () => {
  await using dir = await tempDir();
  await using b = await startOnSizedFile(`${dir.path}/state.db`, 512 * KIB);
  const log = b.log;
  await offlineSubscribers(b.port, { keeper: { "keep/#": 1 }, ballast: { "ballast/#": 1 } });
  await fill(b.port, "ballast/x", "b", 20);
  await using p5 = await TestClient.connect(b.port, { clientId: "p5", protocolVersion: 5 });
  await p5.subscribe({ "news/#": 0 });
  await using other = await TestClient.connect(b.port, { clientId: "other" });

  // A QoS 2 message that does not fit: the write fails, and its PUBREC waits for the rewrite
  // (memory does not fit the file until the ballast is taken).
  await p5.send(publishPacket("keep/q", named("q", 300 * KIB), { qos: 2, packetId: 3 }));
  await waitFor(() => count(log, FAILURE_LINE) === 1, GUARD_MS, "the outage");

  // The rest of p5's output goes on meanwhile.
  await p5.send({ type: PacketType.PINGREQ });
  await next(p5, PacketType.PINGRESP);
  await other.send(publishPacket("news/a", "zero"));
  const delivered = await next(p5, PacketType.PUBLISH);
  assert.deepEqual([delivered.topic, text(delivered), delivered.qos], ["news/a", "zero", 0]);
  await p5.send(publishPacket("keep/x", "small", { qos: 1, packetId: 4 }));
  const refused = await next(p5, PacketType.PUBACK);
  assert.deepEqual([refused.packetId, refused.reasonCode], [4, 0x80]);
  assert.equal(count(log, RECOVERY_LINE), 0, "the store is not written again yet");
  assert.equal(p5.socketEnded, false, "the publisher is still connected");

  // The ballast goes: memory fits the file, the store is written again, then the PUBREC.
  await drainSession(b.port, "ballast", 20);
  const rec = await next(p5, PacketType.PUBREC);
  assert.deepEqual([rec.packetId, rec.reasonCode ?? 0], [3, 0]);
  assert.equal(count(log, RECOVERY_LINE), 1, "the outage ended before the PUBREC");
  await p5.send({ type: PacketType.PUBREL, packetId: 3 });
  assert.equal((await next(p5, PacketType.PUBCOMP)).packetId, 3);
  assert.deepEqual(await drainSession(b.port, "keeper", 1), ["q"]);
});

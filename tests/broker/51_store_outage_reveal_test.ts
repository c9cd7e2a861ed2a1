/**
 * Broker, area 51: the MQTT 5.0 publisher whose message reveals a store outage. Its PUBLISH is
 * handled before the write fails, so its success acknowledgement was already queued behind the
 * commit: it is taken back, and the publisher is answered as the others during the outage, on an
 * open connection. QoS 1: PUBACK 0x80 with a Reason String. QoS 2: the message stays routed and
 * its packet id held (a 0x80 would let the client send it again, and live QoS 2 subscribers would
 * get it twice), so its PUBREC comes once the store is written again from memory. A real SQLite
 * file at its size limit. (A 3.1.1 publisher is closed instead: test 46.)
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
  nameOf,
  next,
  offlineSubscribers,
  receiveQos2,
  RECOVERY_LINE,
  startOnSizedFile,
} from "../_helpers/store_full.ts";
import { tempDir } from "../cli/_helpers.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const KIB = 1024;

test("51 store outage revealed by a 5.0 publish: QoS 1 gets PUBACK 0x80 [MQTT-3.4.2-1], QoS 2 gets its PUBREC once the store is written again [MQTT-4.3.3-2], the connection stays open; live QoS 2 subscribers get the message once", async () => {
  await using dir = await tempDir();
  await using b = await startOnSizedFile(`${dir.path}/state.db`, 512 * KIB);
  const log = b.log;
  await offlineSubscribers(b.port, { keeper: { "keep/#": 1 }, ballast: { "ballast/#": 1 } });
  await using live = await TestClient.connect(b.port, { clientId: "live" });
  await live.subscribe({ "keep/#": 2 });
  await fill(b.port, "ballast/x", "b", 20);
  await using p5 = await TestClient.connect(b.port, { clientId: "p5", protocolVersion: 5 });

  // QoS 1: the write of a message that does not fit fails; PUBACK 0x80, still connected.
  await p5.send(publishPacket("keep/a", named("a", 300 * KIB), { qos: 1, packetId: 1 }));
  const ack = await next(p5, PacketType.PUBACK);
  assert.deepEqual([ack.packetId, ack.reasonCode], [1, 0x80]);
  assert.equal(ack.properties?.reasonString, "the broker cannot store messages now");
  assert.equal(count(log, FAILURE_LINE), 1, "the outage started");
  await p5.send({ type: PacketType.PINGREQ });
  await next(p5, PacketType.PINGRESP);
  assert.equal(p5.socketEnded, false, "the publisher is still connected");
  // During the outage, as before: 0x80.
  await p5.send(publishPacket("keep/x", "small", { qos: 1, packetId: 2 }));
  assert.deepEqual((await next(p5, PacketType.PUBACK)).reasonCode, 0x80);
  assert.equal((await drainSession(b.port, "ballast", 20)).length, 20);
  await waitFor(() => count(log, RECOVERY_LINE) === 1, GUARD_MS, "the end of the first outage");
  assert.equal(nameOf(await next(live, PacketType.PUBLISH)), "a");

  // QoS 2: the file holds "a" for keeper now; a second message of 300 KiB does not fit.
  await p5.send(publishPacket("keep/b", named("b", 300 * KIB), { qos: 2, packetId: 3 }));
  await waitFor(() => count(log, FAILURE_LINE) === 2, GUARD_MS, "the second outage");
  assert.equal(nameOf(await receiveQos2(live)), "b");
  assert.equal(await p5.poll(1_500), undefined, "no PUBREC while the message is not stored");
  assert.equal(p5.socketEnded, false, "the publisher is still connected");

  // keeper takes its messages: memory fits the file again, the store is written again, and
  // then the PUBREC goes out.
  assert.deepEqual(await drainSession(b.port, "keeper", 2), ["a", "b"]);
  const rec = await next(p5, PacketType.PUBREC);
  assert.deepEqual([rec.packetId, rec.reasonCode ?? 0], [3, 0]);
  assert.equal(count(log, RECOVERY_LINE), 2, "the second outage ended before the PUBREC");
  await p5.send({ type: PacketType.PUBREL, packetId: 3 });
  assert.equal((await next(p5, PacketType.PUBCOMP)).packetId, 3);

  // Negative check: the live subscriber got "b" once; the marker is the next thing it gets.
  await p5.send(publishPacket("keep/mark", "mark"));
  assert.equal(text(await next(live, PacketType.PUBLISH)), "mark");
  assert.equal(live.socketEnded, false);
  assert.equal(count(log, FAILURE_LINE), 2, "nothing more failed");
});

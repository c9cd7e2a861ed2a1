/**
 * Broker, area 60: the receive gate on a single broker with a SQLite store. A QoS 1/2 PUBLISH
 * whose delivery to a persistent session waits on a receive authorization answered late (a
 * plugin waiting on a slow lookup) is acknowledged (PUBACK, PUBREC) only once that authorization
 * is answered and the delivery it allowed is committed to the store file: the broker killed with
 * SIGKILL right after the acknowledgement and restarted on the same file delivers the message.
 * The broker is a real process (`_late_receive_broker.ts`, a plugin that answers when it gets
 * SIGUSR1) on a real store file; the clients speak MQTT over real sockets.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import type { PublishPacket } from "../../src/packet/mod.ts";
import { publishPacket, TestClient, text } from "../_helpers/test_client.ts";
import { LateBroker, nothingYet, resumeSession } from "./_late_receive.ts";

Deno.test({
  name:
    "60 receive gate: with a SQLite store, PUBACK and PUBREC wait for a late receive authorization, and a SIGKILL right after them loses nothing acknowledged [MQTT-4.3.2-1] [MQTT-4.3.3-1]",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    await using broker = await LateBroker.start();
    {
      await using sub = await TestClient.connect(broker.port, { clientId: "sub", clean: false });
      await sub.subscribe({ "late/#": 2 });
    }
    await using pub = await TestClient.connect(broker.port, { clientId: "pub" });
    await pub.send(publishPacket("late/1", "one", { qos: 1, packetId: 1 }));
    await broker.proc.waitForStderr(/receive asked late\/1/, 60_000);
    await pub.send(publishPacket("late/2", "two", { qos: 2, packetId: 2 }));
    await broker.proc.waitForStderr(/receive asked late\/2/, 60_000);
    // The message is stored, its delivery to `sub` is not (in memory until the answer).
    await nothingYet(pub, "before the receive authorization answered");

    broker.proc.kill("SIGUSR1");
    assert.equal((await pub.expect(PacketType.PUBACK, 60_000)).packetId, 1);
    assert.equal((await pub.expect(PacketType.PUBREC, 60_000)).packetId, 2);
    await broker.restart();
    await using back = await resumeSession(broker.port, "sub");
    const got: string[] = [];
    for (let i = 0; i < 2; i++) {
      const p = await back.expect(PacketType.PUBLISH, 60_000) as PublishPacket;
      got.push(`${p.topic}=${text(p)} qos ${p.qos}`);
      if (p.qos === 1) await back.send({ type: PacketType.PUBACK, packetId: p.packetId! });
      else await back.send({ type: PacketType.PUBREC, packetId: p.packetId! });
    }
    assert.deepEqual(got, ["late/1=one qos 1", "late/2=two qos 2"]);
  },
});

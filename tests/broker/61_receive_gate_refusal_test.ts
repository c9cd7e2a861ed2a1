/**
 * Broker, area 61: the receive gate on a single broker with a SQLite store, with a refusal. A
 * QoS 1 PUBLISH whose delivery to a persistent session is refused late by the receive
 * authorization is acknowledged once the refusal came, and nothing of it is stored for the
 * session; another publisher's message to another session, allowed at once, is acknowledged
 * meanwhile (a reply waits for its own message's deliveries, not for every answer pending). After a SIGKILL and a restart on the same file the session gets every
 * allowed message that was acknowledged, and nothing else. Real broker process
 * (`_late_receive_broker.ts`), real store file, MQTT over real sockets.
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
    "61 receive gate: a late refusal holds the PUBACK until it comes and stores nothing for the session; a publisher to another session is acknowledged meanwhile; after SIGKILL only the allowed messages arrive [MQTT-4.3.2-1]",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    await using broker = await LateBroker.start();
    {
      await using sub = await TestClient.connect(broker.port, { clientId: "sub", clean: false });
      await sub.subscribe({ "deny/#": 1, "late/#": 1 });
      await using other = await TestClient.connect(broker.port, {
        clientId: "other",
        clean: false,
      });
      await other.subscribe({ "free/#": 1 });
    }
    await using held = await TestClient.connect(broker.port, { clientId: "held" });
    await using free = await TestClient.connect(broker.port, { clientId: "free" });
    await held.send(publishPacket("deny/1", "refused", { qos: 1, packetId: 1 }));
    await broker.proc.waitForStderr(/receive asked deny\/1/, 60_000);
    // For another session, answered at once: acknowledged while the other publisher's message
    // waits (a delivery to the same session would wait behind the first, in order).
    await free.send(publishPacket("free/1", "at once", { qos: 1, packetId: 7 }));
    assert.equal((await free.expect(PacketType.PUBACK, 60_000)).packetId, 7);
    await held.send(publishPacket("late/1", "allowed", { qos: 1, packetId: 2 }));
    await broker.proc.waitForStderr(/receive asked late\/1/, 60_000);
    await nothingYet(held, "before the receive authorizations answered");

    broker.proc.kill("SIGUSR1");
    assert.equal((await held.expect(PacketType.PUBACK, 60_000)).packetId, 1);
    assert.equal((await held.expect(PacketType.PUBACK, 60_000)).packetId, 2);
    await broker.restart();
    await using back = await resumeSession(broker.port, "sub");
    const p = await back.expect(PacketType.PUBLISH, 60_000) as PublishPacket;
    assert.equal(`${p.topic}=${text(p)}`, "late/1=allowed");
    await back.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    await using other = await resumeSession(broker.port, "other");
    const q = await other.expect(PacketType.PUBLISH, 60_000) as PublishPacket;
    assert.equal(`${q.topic}=${text(q)}`, "free/1=at once");
    // The refused one is not there (its receive authorization was asked again on delivery).
    await nothingYet(back, "after the allowed messages");
    assert.doesNotMatch(broker.proc.stderr(), /receive asked deny\/1/);
  },
});

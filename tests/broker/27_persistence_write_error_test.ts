/**
 * Broker, area 27: the store cannot be written (a full disk, here a store file at its size
 * limit). The failure is logged; the publisher whose message could not be stored gets no PUBACK
 * and its connection is closed (MQTT 3.1.1 has no other way to refuse a PUBLISH), a 5.0
 * publisher gets PUBACK/PUBREC 0x80; QoS 0 is still served; and every message acknowledged
 * before is in the file.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Packet, PacketType } from "../../src/packet/mod.ts";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { MemoryLogger, startBroker, waitFor } from "../_helpers/broker.ts";
import { type PacketOf, publishPacket, TestClient, text } from "../_helpers/test_client.ts";
import { tempDir } from "../_helpers/temp_dir.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

/** A payload of about 16 KiB that starts with its sequence number. */
function payload(seq: number): Uint8Array {
  const bytes = new Uint8Array(16 * 1024).fill(0x2e);
  bytes.set(new TextEncoder().encode(`${seq}:`));
  return bytes;
}

/**
 * A reply, or `undefined` when the broker closed the connection without one. The wait is a
 * failure guard only: either comes at once, however busy the machine.
 */
function replyOrClose(client: TestClient): Promise<Packet | undefined> {
  return client.poll(60_000);
}

function seqOf(bytes: Uint8Array): number {
  return Number(new TextDecoder().decode(bytes.subarray(0, 12)).split(":")[0]);
}

test("27 write error: no PUBACK for what cannot be stored, the publisher is closed, QoS 0 goes on, nothing acknowledged is lost", async () => {
  await using dir = await tempDir("amqtt-full-");
  const path = `${dir.path}/state.db`;
  const acked: number[] = [];
  {
    const log = new MemoryLogger();
    await using b = await startBroker({}, {
      store: SqliteStore.open(path, { maxBytes: 512 * 1024 }),
      logger: log,
    });
    const sub = await TestClient.connect(b.port, { clientId: "sub", clean: false });
    await sub.subscribe({ "t/#": 1 });
    await sub.disconnect();
    await using watcher = await TestClient.connect(b.port, { clientId: "watcher" });
    await watcher.subscribe({ "z/#": 0 });

    // The stored queue grows until the file is full.
    await using pub = await TestClient.connect(b.port, { clientId: "pub" });
    let refused = false;
    for (let seq = 1; seq <= 200 && !refused; seq++) {
      await pub.send(publishPacket("t/a", payload(seq), { qos: 1, packetId: seq }));
      const reply = await pub.poll(60_000);
      if (reply === undefined) {
        assert.ok(pub.socketEnded, "no PUBACK, and the connection is still open");
        refused = true;
      } else {
        assert.equal(reply.type, PacketType.PUBACK);
        acked.push(seq);
      }
    }
    await waitFor(() => pub.socketEnded, undefined, "the publisher to be closed");
    assert.ok(acked.length > 5, `some messages were stored first (${acked.length})`);
    assert.ok(log.has("Cannot write to the store"), "the failure is logged");
    // A load balancer's readiness probe says so (`/readyz` answers 503 with these reasons)
    // while the failure stands: until a probe as large as the failed message works.
    assert.deepEqual(b.broker.notReady, ["the store cannot be written"]);

    // New QoS 1 work is refused the same way: closed, no PUBACK.
    await using late = await TestClient.connect(b.port, { clientId: "late" });
    await late.send(publishPacket("t/b", payload(1000), { qos: 1, packetId: 1 }));
    assert.equal(await replyOrClose(late), undefined, "no PUBACK");
    assert.ok(late.socketEnded, "the publisher is closed");

    // A 5.0 publisher is refused with a reason code instead, and stays connected.
    await using v5 = await TestClient.connect(b.port, { clientId: "v5", protocolVersion: 5 });
    await v5.send(publishPacket("t/c", payload(2000), { qos: 1, packetId: 1 }));
    const puback = await replyOrClose(v5);
    assert.equal(puback?.type, PacketType.PUBACK);
    const ack = puback as PacketOf<typeof PacketType.PUBACK>;
    assert.deepEqual([ack.packetId, ack.reasonCode], [1, 0x80]);
    assert.equal(ack.properties?.reasonString, "the broker cannot store messages now");
    await v5.send(publishPacket("t/c", payload(3000), { qos: 2, packetId: 2 }));
    const pubrec = await replyOrClose(v5);
    assert.equal(pubrec?.type, PacketType.PUBREC);
    const rec = pubrec as PacketOf<typeof PacketType.PUBREC>;
    assert.deepEqual([rec.packetId, rec.reasonCode], [2, 0x80]);
    assert.equal(v5.socketEnded, false, "the 5.0 publisher is still connected");

    // QoS 0 is still served.
    await using other = await TestClient.connect(b.port, { clientId: "other" });
    await other.send(publishPacket("z/1", "still here"));
    const p = await watcher.expect(PacketType.PUBLISH);
    assert.equal(text(p), "still here");
  }
  // Every acknowledged message is in the file, queued for the persistent session.
  await using store = SqliteStore.open(path);
  const state = await store.load(Date.now());
  const queued = state.sessions.find((s) => s.session.clientId === "sub")!.outbound
    .map((e) => seqOf(state.messages.get(e.messageId!)!.payload));
  const stored = new Set(queued);
  assert.deepEqual(acked.filter((n) => !stored.has(n)), [], "acknowledged messages missing");
});

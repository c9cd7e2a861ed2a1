import assert from "node:assert/strict";
import { PACKET_ID_BLOCK, PacketIdMark } from "../../src/broker/packet_id_mark.ts";
import { PacketType } from "../../src/packet/mod.ts";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import { publishPacket, TestClient } from "../_helpers/test_client.ts";
import { tempDir } from "../_helpers/temp_dir.ts";

function marked(first?: number): { mark: PacketIdMark; written: number[] } {
  const written: number[] = [];
  const mark = new PacketIdMark((next) => written.push(next));
  if (first !== undefined) mark.start(first);
  return { mark, written };
}

Deno.test("PacketIdMark journals the end of a block when an id enters it, once per block", () => {
  const { mark, written } = marked();
  assert.equal(mark.first, undefined, "no stored mark: flows start at 1");
  for (let id = 1; id <= PACKET_ID_BLOCK; id++) mark.used(id);
  assert.deepEqual(written, [1 + PACKET_ID_BLOCK]);
  mark.used(PACKET_ID_BLOCK + 1);
  mark.used(PACKET_ID_BLOCK + 2);
  assert.deepEqual(written, [1 + PACKET_ID_BLOCK, 1 + 2 * PACKET_ID_BLOCK]);
  // A session behind the furthest one writes nothing.
  mark.used(5);
  assert.equal(written.length, 2);
});

Deno.test("PacketIdMark counts from where the stored mark starts the run, across 65535", () => {
  const { mark, written } = marked(65000);
  assert.equal(mark.first, 65000);
  mark.used(65000);
  assert.deepEqual(written, [65000 + PACKET_ID_BLOCK - 65535]);
  mark.used(65535);
  mark.used(1);
  assert.equal(written.length, 1, "ids past 65535 go on from 1 in the same block");
  // A full round comes back to where the run started.
  mark.used(64999);
  assert.equal(written.at(-1), 65000);
});

Deno.test("PacketIdMark ignores a stored mark out of range", () => {
  const { mark } = marked(0);
  assert.equal(mark.first, undefined);
  mark.start(70000);
  assert.equal(mark.first, undefined);
});

Deno.test("broker restarted on its store starts a persistent session's packet ids past those of its previous run", async () => {
  await using dir = await tempDir("amqtt-packet-ids-");
  const path = `${dir.path}/state.db`;
  const first: number[] = [];
  for (let run = 0; run < 3; run++) {
    await using b = await startBroker({}, { store: SqliteStore.open(path) });
    await using sub = await TestClient.connect(b.port, { clientId: "sub", clean: false });
    if (run === 0) await sub.subscribe({ "t/#": 2 });
    await using pub = await TestClient.connect(b.port, { clientId: "pub" });
    for (let i = 1; i <= 3; i++) {
      await pub.send(publishPacket("t/1", `m${i}`, { qos: 2, packetId: i }));
      await pub.expect(PacketType.PUBREC);
      await pub.send({ type: PacketType.PUBREL, packetId: i });
      await pub.expect(PacketType.PUBCOMP);
      const p = await sub.expect(PacketType.PUBLISH);
      if (i === 1) first.push(p.packetId!);
      await sub.send({ type: PacketType.PUBREC, packetId: p.packetId! });
      await sub.expect(PacketType.PUBREL);
      await sub.send({ type: PacketType.PUBCOMP, packetId: p.packetId! });
    }
    await sub.disconnect();
    // Stopped once the broker has handled the last PUBCOMP (and the DISCONNECT behind it).
    await waitFor(
      () => b.broker.clients().some((c) => c.clientId === "sub" && !c.connected),
      undefined,
      "the subscriber's DISCONNECT to be handled",
    );
  }
  // Each run's window was empty at its end; ids still go on a block further each time.
  assert.deepEqual(first, [1, 1 + PACKET_ID_BLOCK, 1 + 2 * PACKET_ID_BLOCK]);
});

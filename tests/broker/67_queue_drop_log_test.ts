// Queue-full drops told per session: an offline persistent session past max_queued_messages under
// a publisher gets one warning naming its client at the first drop (not one per message), the
// count reaches $SYS, and its return is logged with how many were dropped for it.
import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/constants.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import type { MemoryLogger } from "../_helpers/broker.ts";
import { publishPacket, TestClient, text } from "../_helpers/test_client.ts";

function queueLines(log: MemoryLogger): string[] {
  return log.lines.filter((l) => l.fields?.event === "queue_full").map((l) => l.message);
}

Deno.test("67 queue drops: an offline session past max_queued_messages is named once at its first drop, in $SYS, and again with the count when its client is back", async () => {
  // An interval far beyond the test's length: the only lines are the first one and the return's.
  await using b = await startBroker({
    max_inflight: 2,
    max_queued_messages: 5,
    log_summary_interval: 3600,
    sys_interval: 1,
  });
  {
    const s = await TestClient.connect(b.port, { clientId: "offline-1", clean: false });
    await s.subscribe({ "q/#": 1 });
    await s.disconnect();
  }
  await waitFor(() => b.broker.clients()[0]?.connected === false);
  await using watcher = await TestClient.connect(b.port, { clientId: "watcher" });
  await watcher.subscribe({ "$SYS/broker/publish/messages/dropped/queue-full": 0 });

  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  for (let i = 1; i <= 30; i++) {
    await pub.send(publishPacket("q/a", `m${i}`, { qos: 1, packetId: i }));
    assert.equal((await pub.expect(PacketType.PUBACK)).packetId, i);
  }
  // 2 in the window, 5 queued: 23 dropped, one at a time.
  assert.equal(b.broker.stats.droppedBy.queueFull, 23);
  const first = queueLines(b.log);
  assert.equal(first.length, 1, first.join("\n"));
  assert.match(
    first[0],
    /^Queue of "offline-1" \(offline\) full at max_queued_messages 5: dropping its oldest messages, 1 so far$/,
  );
  const line = b.log.lines.find((l) => l.fields?.event === "queue_full")!;
  assert.equal(line.level, "warning");
  assert.equal(line.fields!.clientId, "offline-1");

  // The node's figure under aMQTT's dropped-by-reason topic.
  for (;;) {
    const p = await watcher.expect(PacketType.PUBLISH);
    if (text(p) === "23") break;
    assert.equal(text(p), "0", "the figure before the drops");
  }

  await using back = await TestClient.connect(b.port, { clientId: "offline-1", clean: false });
  const got: string[] = [];
  for (let i = 0; i < 7; i++) {
    const p = await back.expect(PacketType.PUBLISH);
    got.push(text(p));
    await back.send({ type: PacketType.PUBACK, packetId: p.packetId! });
  }
  // The window's two, then the newest five: the oldest queued went first.
  assert.deepEqual(got, ["m1", "m2", "m26", "m27", "m28", "m29", "m30"]);
  const lines = queueLines(b.log);
  assert.equal(lines.length, 2, lines.join("\n"));
  assert.match(
    lines[1],
    /^"offline-1" is connected again: 23 of its queued messages were dropped since \S+ \(queue full at max_queued_messages 5\)$/,
  );
  // Delivered to now: more publishing drops nothing and logs nothing.
  await pub.send(publishPacket("q/a", "m31", { qos: 1, packetId: 31 }));
  await pub.expect(PacketType.PUBACK);
  const p = await back.expect(PacketType.PUBLISH);
  assert.equal(text(p), "m31");
  await back.send({ type: PacketType.PUBACK, packetId: p.packetId! });
  assert.equal(queueLines(b.log).length, 2);
  assert.equal(b.broker.stats.droppedBy.queueFull, 23);
  await back.disconnect();
  await pub.disconnect();
  await watcher.disconnect();
});

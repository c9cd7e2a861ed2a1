/**
 * Broker, area 46: a full store over time, twice. A store file at its size limit (a real SQLite
 * file, `max_page_count`) fails while publishers keep trying: one outage, one error line, not
 * ready for all of it; every 5.0 QoS 1/2 PUBLISH gets PUBACK/PUBREC 0x80 on a connection that
 * stays open, 3.1.1 QoS 1/2 publishers are closed, QoS 0 flows at both levels; room made by a
 * subscriber that drains its queue ends the outage once (one "work again" line), and a restart on
 * the same file delivers every message acknowledged before, during and after.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { delay, startBroker, waitFor } from "../_helpers/broker.ts";
import { publishPacket, TestClient, text } from "../_helpers/test_client.ts";
import {
  count,
  FAILURE_LINE,
  GUARD_MS,
  named,
  nameOf,
  next,
  offlineSubscribers,
  RECOVERY_LINE,
  startOnSizedFile,
} from "../_helpers/store_full.ts";
import { tempDir } from "../_helpers/temp_dir.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

/** A payload of 16 KiB that starts with its name. */
function big(name: string): Uint8Array {
  return named(name, 16 * 1024);
}

/** An acknowledgement's reason code; a short one (no code) is 0x00 Success. */
function code(p: { reasonCode?: number }): number {
  return p.reasonCode ?? 0;
}

test("46 store full: each of two outages logged once and left once; 5.0 QoS 1/2 refused with 0x80 and still connected [MQTT-3.4.2-1] [MQTT-3.5.2-1]; 3.1.1 QoS 1/2 publishers closed; QoS 0 served; nothing acknowledged lost across a restart", async () => {
  await using dir = await tempDir("amqtt-46-");
  const path = `${dir.path}/state.db`;
  /** What the persistent subscriber "keeper" must get after the restart, in order. */
  const kept: string[] = [];
  {
    await using b = await startOnSizedFile(path, 512 * 1024);
    const log = b.log;
    // Readiness as seen at each step: it must go false once and come back once per outage.
    const readiness: boolean[] = [];
    const look = () => readiness.push(b.broker.ready);

    // "keeper" holds small messages across the restart; "filler" holds the big ones that
    // fill the file, and drains them later to make room.
    await offlineSubscribers(b.port, { keeper: { "keep/#": 1 }, filler: { "fill/#": 1 } });
    await using w4 = await TestClient.connect(b.port, { clientId: "w4" });
    await w4.subscribe({ "z/#": 0 });
    await using w5 = await TestClient.connect(b.port, { clientId: "w5", protocolVersion: 5 });
    await w5.subscribe({ "z/#": 0, "keep/#": 1, "mark/#": 0 });
    await using p5 = await TestClient.connect(b.port, { clientId: "p5", protocolVersion: 5 });
    await using p4 = await TestClient.connect(b.port, { clientId: "p4" });
    // Idle through each outage: its first publish after one is accepted like any other.
    await using idle5 = await TestClient.connect(b.port, {
      clientId: "idle5",
      protocolVersion: 5,
    });

    /** w5's next PUBLISH, acknowledged when QoS 1. */
    const w5Next = async () => {
      const p = await next(w5, PacketType.PUBLISH);
      if (p.qos === 1) await w5.send({ type: PacketType.PUBACK, packetId: p.packetId! });
      return p;
    };

    await p5.send(publishPacket("keep/a", "before-1", { qos: 1, packetId: 1 }));
    assert.equal(code(await next(p5, PacketType.PUBACK)), 0);
    kept.push("before-1");
    assert.equal(text(await w5Next()), "before-1");
    // A QoS 2 message accepted before the outage, its PUBREL not sent yet.
    await p5.send(publishPacket("keep/q", "before-q2", { qos: 2, packetId: 7 }));
    assert.equal(code(await next(p5, PacketType.PUBREC)), 0);
    kept.push("before-q2");
    assert.equal(text(await w5Next()), "before-q2");
    look();

    for (const episode of [1, 2]) {
      // The filler's stored queue grows until the file is full: the publisher whose message
      // could not be stored gets no PUBACK and is closed.
      const filled: string[] = [];
      {
        await using f = await TestClient.connect(b.port, { clientId: `f${episode}` });
        for (let seq = 1; seq <= 200; seq++) {
          const name = `fill-${episode}-${seq}`;
          await f.send(publishPacket("fill/x", big(name), { qos: 1, packetId: seq }));
          const reply = await f.poll(GUARD_MS);
          if (reply === undefined) break;
          assert.equal(reply.type, PacketType.PUBACK);
          filled.push(name);
          look();
        }
        assert.ok(f.socketEnded, "the 3.1.1 publisher whose message was not stored is closed");
      }
      assert.ok(filled.length > 5, `some messages were stored first (${filled.length})`);
      assert.equal(count(log, FAILURE_LINE), episode, "the failure is logged");

      // The outage stands while publishers keep trying, over several probes (1 s, then 2 s).
      const until = Date.now() + 4_000;
      for (let round = 1; Date.now() < until || round <= 3; round++) {
        assert.deepEqual(b.broker.notReady, ["the store cannot be written"]);
        look();
        // 5.0: refused with 0x80 and a reason, big or small, QoS 1 or 2; still connected.
        const tag = `${episode}-${round}`;
        const id = episode * 1000 + round * 4;
        await p5.send(publishPacket("keep/b", big(`refused-${tag}`), { qos: 1, packetId: id }));
        const ack = await next(p5, PacketType.PUBACK);
        assert.deepEqual([ack.packetId, code(ack)], [id, 0x80]);
        assert.equal(ack.properties?.reasonString, "the broker cannot store messages now");
        await p5.send(publishPacket("keep/c", `small-${tag}`, { qos: 1, packetId: id + 1 }));
        const small = await next(p5, PacketType.PUBACK);
        assert.deepEqual([small.packetId, code(small)], [id + 1, 0x80]);
        await p5.send(publishPacket("keep/d", `q2-${tag}`, { qos: 2, packetId: id + 2 }));
        const rec = await next(p5, PacketType.PUBREC);
        assert.deepEqual([rec.packetId, code(rec)], [id + 2, 0x80]);
        if (episode === 1 && round === 1) {
          // Sent again, the QoS 2 message accepted before is no new work: PUBREC, not 0x80
          // (the id stays held until PUBREL [MQTT-4.3.3-10]), and it is not delivered again.
          await p5.send(publishPacket("keep/q", "before-q2", { qos: 2, packetId: 7, dup: true }));
          const again = await next(p5, PacketType.PUBREC);
          assert.deepEqual([again.packetId, code(again)], [7, 0]);
        }
        // Negative check: none of the refused messages reached the live subscriber. The QoS 0
        // marker sent after them, on the same connection, is the next thing it gets.
        await p5.send(publishPacket(`mark/${round}`, `mark-${tag}`));
        assert.equal(text(await w5Next()), `mark-${tag}`);
        assert.equal(p5.socketEnded, false, "the 5.0 publisher is still connected");
        assert.equal(w5.socketEnded, false, "the subscriber is still connected");
        // QoS 0 flows at both levels, a retained one too (its store write fails unseen).
        await p4.send(publishPacket("z/r", big(`retained-${tag}`), { retain: true }));
        assert.equal(nameOf(await next(w4, PacketType.PUBLISH)), `retained-${tag}`);
        assert.equal(nameOf(await w5Next()), `retained-${tag}`);
        await p5.send(publishPacket("z/5", `zero5-${tag}`));
        assert.equal(text(await next(w4, PacketType.PUBLISH)), `zero5-${tag}`);
        assert.equal(text(await w5Next()), `zero5-${tag}`);
        assert.equal(p4.socketEnded, false, "the 3.1.1 QoS 0 publisher is still connected");
        await delay(500);
      }
      // 3.1.1 QoS 1 and QoS 2 publishers are closed without an acknowledgement.
      for (const qos of [1, 2] as const) {
        await using late = await TestClient.connect(b.port, { clientId: `late-${qos}` });
        await late.send(publishPacket("keep/e", `late-${episode}-${qos}`, { qos, packetId: 1 }));
        assert.equal(await late.poll(GUARD_MS), undefined, "no acknowledgement");
        assert.ok(late.socketEnded, `the 3.1.1 QoS ${qos} publisher is closed`);
      }
      assert.equal(count(log, FAILURE_LINE), episode, "one failure line for the whole outage");
      assert.equal(count(log, RECOVERY_LINE), episode - 1, "no recovery while the file is full");
      look();

      // The filler drains its queue: every message acknowledged to its publisher is there.
      {
        await using filler = await TestClient.connect(b.port, {
          clientId: "filler",
          clean: false,
        });
        const got = new Set<string>();
        while (!filled.every((n) => got.has(n))) {
          const p = await next(filler, PacketType.PUBLISH);
          got.add(nameOf(p));
          await filler.send({ type: PacketType.PUBACK, packetId: p.packetId! });
        }
        // The outage ends once a probe finds room for a message as large as the one that
        // failed.
        await waitFor(() => count(log, RECOVERY_LINE) === episode, GUARD_MS, "writes to work");
        await filler.disconnect();
      }
      assert.equal(b.broker.ready, true);
      look();

      // Work is accepted again, on the 5.0 connection that was refused all along.
      if (episode === 1) {
        await p5.send({ type: PacketType.PUBREL, packetId: 7 });
        const comp = await next(p5, PacketType.PUBCOMP);
        assert.deepEqual([comp.packetId, code(comp)], [7, 0]);
      }
      const id = episode * 1000 + 900;
      await p5.send(publishPacket("keep/f", `after-${episode}-1`, { qos: 1, packetId: id }));
      assert.equal(code(await next(p5, PacketType.PUBACK)), 0);
      kept.push(`after-${episode}-1`);
      await p5.send(publishPacket("keep/g", `after-${episode}-2`, { qos: 2, packetId: id + 1 }));
      assert.equal(code(await next(p5, PacketType.PUBREC)), 0);
      await p5.send({ type: PacketType.PUBREL, packetId: id + 1 });
      assert.equal(code(await next(p5, PacketType.PUBCOMP)), 0);
      kept.push(`after-${episode}-2`);
      {
        await using again = await TestClient.connect(b.port, { clientId: "again" });
        await again.send(publishPacket("keep/h", `after-${episode}-3`, { qos: 1, packetId: 1 }));
        await next(again, PacketType.PUBACK);
        kept.push(`after-${episode}-3`);
      }
      for (let i = 1; i <= 3; i++) assert.equal(text(await w5Next()), `after-${episode}-${i}`);
      await idle5.send(publishPacket("keep/i", `after-${episode}-idle`, { qos: 1, packetId: 1 }));
      const idleAck = await next(idle5, PacketType.PUBACK);
      assert.equal(code(idleAck), 0, "a client idle through the outage is served");
      kept.push(`after-${episode}-idle`);
      assert.equal(text(await w5Next()), `after-${episode}-idle`);
    }
    look();
    assert.equal(count(log, FAILURE_LINE), 2, "exactly one failure line per outage");
    assert.equal(count(log, RECOVERY_LINE), 2, "exactly one recovery line per outage");
    const flips = readiness.filter((r, i) => i > 0 && r !== readiness[i - 1]).length;
    assert.equal(readiness[0], true);
    assert.equal(flips, 4, `readiness went down once and up once per outage: ${readiness}`);
  }

  // A restart on the same file: the keeper gets every message acknowledged to a publisher, in
  // order, and none of the refused ones.
  await using b2 = await startBroker({}, { store: SqliteStore.open(path) });
  await using keeper = await TestClient.connect(b2.port, { clientId: "keeper", clean: false });
  const got: string[] = [];
  while (got.length < kept.length) {
    const p = await next(keeper, PacketType.PUBLISH);
    got.push(text(p));
    if (p.qos === 1) await keeper.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    else {
      await keeper.send({ type: PacketType.PUBREC, packetId: p.packetId! });
      await next(keeper, PacketType.PUBREL);
      await keeper.send({ type: PacketType.PUBCOMP, packetId: p.packetId! });
    }
  }
  assert.deepEqual(got, kept);
  await using last = await TestClient.connect(b2.port, { clientId: "last" });
  await last.send(publishPacket("keep/end", "end"));
  assert.equal(text(await next(keeper, PacketType.PUBLISH)), "end", "nothing else was queued");
  assert.equal(keeper.socketEnded, false, "the keeper is still connected");
});

/**
 * The PUBRECs a connection holds while the store is written again after an outage keep their
 * order with the PUBRECs that follow them [MQTT-4.6.0-3], also when a later one is already
 * queued behind a write still in flight at the moment the store is written again. A real SQLite
 * file at its size limit; the MQTT 5.0 publisher is a raw socket that reads only when told.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, type Packet, PacketDecoder, PacketType } from "../../src/packet/mod.ts";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { MemoryLogger, startBroker, waitFor } from "../_helpers/broker.ts";
import { publishPacket, TestClient } from "../_helpers/test_client.ts";
import {
  count,
  FAILURE_LINE,
  GUARD_MS,
  named,
  next,
  RECOVERY_LINE,
} from "../_helpers/store_full.ts";
import { tempDir } from "../_helpers/temp_dir.ts";

const KIB = 1024;
const MIB = 1024 * KIB;

/** An MQTT 5.0 client on a plain socket that reads only when asked to. */
class RawClient implements AsyncDisposable {
  readonly #conn: Deno.TcpConn;
  readonly #decoder = new PacketDecoder({ protocolVersion: 5, side: "client" });
  readonly #buf = new Uint8Array(256 * KIB);

  constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  async send(packet: Packet): Promise<void> {
    const bytes = encodePacket(packet, 5);
    let done = 0;
    while (done < bytes.length) done += await this.#conn.write(bytes.subarray(done));
  }

  async read(): Promise<Packet> {
    for (;;) {
      const p = this.#decoder.next();
      if (p !== undefined) return p;
      const n = await this.#conn.read(this.#buf);
      assert.ok(n !== null, "the connection is still open");
      this.#decoder.push(this.#buf.slice(0, n));
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.#conn.close();
    return Promise.resolve();
  }
}

Deno.test("a PUBREC held for the store's rewrite goes before a later PUBREC queued behind a write in flight [MQTT-4.6.0-3]", async () => {
  await using dir = await tempDir("amqtt-pubrec-order-");
  const log = new MemoryLogger();
  await using b = await startBroker({
    max_packet_size: 4 * MIB,
    max_outbound_bytes: 256 * MIB,
  }, {
    store: SqliteStore.open(`${dir.path}/state.db`, { maxBytes: 512 * KIB }),
    logger: log,
  });
  for (const [id, filter] of [["keeper", "keep/#"], ["ballast", "ballast/#"]]) {
    const c = await TestClient.connect(b.port, { clientId: id, clean: false });
    await c.subscribe({ [filter]: 1 });
    await c.disconnect();
  }
  {
    await using f = await TestClient.connect(b.port, { clientId: "filler" });
    for (let i = 1; i <= 20; i++) {
      await f.send(publishPacket("ballast/x", named(`b${i}`, 16 * KIB), { qos: 1, packetId: i }));
      assert.equal((await next(f, PacketType.PUBACK)).packetId, i);
    }
  }
  await using watcher = await TestClient.connect(b.port, { clientId: "watcher" });
  await watcher.subscribe({ "probe/#": 0 });
  await using other = await TestClient.connect(b.port, { clientId: "other" });

  await using p5 = new RawClient(await Deno.connect({ hostname: "127.0.0.1", port: b.port }));
  await p5.send({
    type: PacketType.CONNECT,
    protocolName: "MQTT",
    protocolVersion: 5,
    clean: true,
    keepAlive: 0,
    clientId: "p5",
  });
  assert.equal((await p5.read()).type, PacketType.CONNACK);
  await p5.send({
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic: "news/#", qos: 0 }],
  } as Packet);
  assert.equal((await p5.read()).type, PacketType.SUBACK);

  // A QoS 2 message that does not fit: the write fails, its PUBREC waits for the rewrite.
  await p5.send(publishPacket("keep/q", named("q", 300 * KIB), { qos: 2, packetId: 3 }));
  await waitFor(() => count(log, FAILURE_LINE) === 1, GUARD_MS, "the outage");

  // p5 reads nothing: QoS 0 deliveries fill the socket, a write stays in flight.
  for (let i = 0; i < 12; i++) {
    await other.send(publishPacket("news/big", named(`n${i}`, 2 * MIB)));
  }
  // A second QoS 2 message during the outage: its PUBREC (0x80) is queued behind that write.
  await p5.send(publishPacket("keep/y", "small", { qos: 2, packetId: 5 }));
  // Handled in order: once the probe is out, the PUBREC of packet 5 is queued.
  await p5.send(publishPacket("probe/p5", "after"));
  await next(watcher, PacketType.PUBLISH);

  // The ballast goes: the store is written again and the held PUBREC 3 is released.
  {
    await using ballast = await TestClient.connect(b.port, { clientId: "ballast", clean: false });
    for (let i = 0; i < 20; i++) {
      const p = await next(ballast, PacketType.PUBLISH);
      await ballast.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    }
    await ballast.disconnect();
  }
  await waitFor(() => count(log, RECOVERY_LINE) === 1, GUARD_MS, "the store written again");
  // The reads below wait for the PUBRECs released (no turn to wait for before them).

  const pubrecs: [number, number][] = [];
  let news = 0;
  while (pubrecs.length < 2) {
    const p = await p5.read();
    if (p.type === PacketType.PUBREC) pubrecs.push([p.packetId, p.reasonCode ?? 0]);
    else if (p.type === PacketType.PUBLISH) news++;
    else assert.fail(`unexpected packet type ${p.type}`);
  }
  assert.deepEqual(pubrecs, [[3, 0], [5, 0x80]], "PUBRECs in the order of their PUBLISHes");
  assert.ok(news > 0);
  await p5.send({ type: PacketType.PUBREL, packetId: 3 });
  let comp: Packet;
  do comp = await p5.read(); while (comp.type === PacketType.PUBLISH);
  assert.equal(comp.type, PacketType.PUBCOMP);
});

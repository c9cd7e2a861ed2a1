// $SYS topics: the retained version at start, then the counters every sys_interval, with values
// checked against known traffic.
import assert from "node:assert/strict";
import { PacketType, type QoS } from "../../src/packet/constants.ts";
import { encodePacket } from "../../src/packet/encode.ts";
import type { Packet } from "../../src/packet/types.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import { connectPacket, publishPacket, TestClient, text } from "../_helpers/test_client.ts";

Deno.test("14 sys: $SYS/broker/version is retained at start", async () => {
  await using b = await startBroker({ sys_interval: 0 });
  const c = await TestClient.connect(b.port, { clientId: "v" });
  await c.subscribe({ "$SYS/broker/version": 0 });
  const p = await c.expect(PacketType.PUBLISH);
  assert.equal(p.retain, true);
  assert.match(text(p), /^amqtt version \d+\.\d+\.\d+/);
  await c.disconnect();
});

/** The topics published every sys_interval, as aMQTT names them, in publication order. */
const PERIODIC = [
  "load/bytes/received",
  "load/bytes/sent",
  "messages/received",
  "messages/sent",
  "time",
  "uptime",
  "uptime/formatted",
  "clients/connected",
  "clients/disconnected",
  "clients/maximum",
  "clients/total",
  "messages/inflight",
  "messages/inflight/in",
  "messages/inflight/out",
  "messages/inflight/stored",
  "messages/publish/received",
  "messages/publish/sent",
  "messages/retained/count",
  "messages/subscriptions/count",
  "heap/size",
  "heap/maximum",
  "cpu/percent",
  "cpu/maximum",
  "publish/messages/dropped",
  "publish/messages/dropped/queue-full",
  "publish/messages/dropped/outbound-full",
  "publish/messages/dropped/not-authorized",
  "publish/messages/dropped/session-expired",
  "publish/messages/dropped/expired",
  "publish/messages/dropped/too-large",
  "publish/messages/dropped/no-share-member",
  "refused/topic-levels",
  "refused/subscriptions",
  "refused/sessions",
  "refused/retained",
  "refused/memory",
];

/** One batch of periodic topics, and what the watcher had received before it began. */
interface Batch {
  values: Map<string, string>;
  retained: boolean[];
  watcherBytes: number;
  watcherPackets: number;
  watcherPublishes: number;
  receivedAt: number;
}

/** Bytes and packets one side wrote, counted from the packets themselves. */
class Tally {
  bytes = 0;
  packets = 0;
  publishes = 0;
  add(...packets: Packet[]): void {
    for (const p of packets) {
      this.bytes += encodePacket(p, 4).length;
      this.packets++;
      if (p.type === PacketType.PUBLISH) this.publishes++;
    }
  }
}

Deno.test("14 sys: every periodic topic after known traffic, exact counters; clients/maximum is never reset", async () => {
  await using b = await startBroker({ sys_interval: 1, max_inflight: 1 });
  const fromClients = new Tally(); // what the clients sent
  const toOthers = new Tally(); // what the broker sent to every client but the watcher
  const open = async (clientId: string, clean = true, tally = toOthers) => {
    const c = await TestClient.open(b.port);
    const ack = await c.handshake({ clientId, clean });
    assert.equal(ack.reasonCode, 0);
    fromClients.add(connectPacket({ clientId, clean }));
    tally.add(ack);
    return c;
  };
  const subscribe = async (c: TestClient, topic: string, qos: QoS, tally = toOthers) => {
    tally.add(await c.subscribe({ [topic]: qos }));
    fromClients.add({ type: PacketType.SUBSCRIBE, packetId: 1, subscriptions: [{ topic, qos }] });
  };
  const disconnect = async (c: TestClient) => {
    await c.disconnect();
    fromClients.add({ type: PacketType.DISCONNECT });
  };

  // The watcher's own CONNACK and SUBACK are counted with everything it receives, further down.
  const watcherStart = new Tally();
  const watcher = await open("watcher", true, watcherStart);
  await subscribe(watcher, "$SYS/broker/#", 0, watcherStart);
  const offline = await open("offline", false);
  await subscribe(offline, "data/#", 1);
  await disconnect(offline);
  await waitFor(() => b.broker.clients().some((c) => c.clientId === "offline" && !c.connected));
  const slow = await open("slow");
  await subscribe(slow, "data/#", 1);
  const pub = await open("pub");
  const extra = [await open("x1"), await open("x2")]; // 5 connected at once: the peak

  const published = [
    publishPacket("data/a", "1", { retain: true }),
    publishPacket("data/b", "2", { qos: 1, packetId: 1 }),
    publishPacket("data/c", "3", { qos: 2, packetId: 2 }),
  ];
  await pub.send(published[0]!, published[1]!);
  toOthers.add(await pub.expect(PacketType.PUBACK));
  await pub.send(published[2]!);
  toOthers.add(await pub.expect(PacketType.PUBREC)); // no PUBREL: one message in flight inbound
  fromClients.add(...published);
  // slow gets data/a (QoS 0) and data/b (QoS 1) fills its window of 1: data/c waits in its queue.
  toOthers.add(await slow.expect(PacketType.PUBLISH), await slow.expect(PacketType.PUBLISH));
  await slow.expectNothing(200);
  for (const c of extra) await disconnect(c);
  await waitFor(() => b.broker.stats.clientsConnected === 3, 2000, "x1 and x2 gone");

  // Everything before the mark was received before the traffic ended; a batch that starts after
  // it may still have been measured before, so the first one is skipped.
  const watcherSeen = new Tally();
  watcherSeen.bytes = watcherStart.bytes;
  watcherSeen.packets = watcherStart.packets;
  for (let p = await watcher.poll(0); p !== undefined; p = await watcher.poll(0)) {
    watcherSeen.add(p);
  }
  const batches: Batch[] = [];
  let current: Batch | undefined;
  let starts = 0;
  const until = Date.now() + 8000;
  while (batches.length < 2 && Date.now() < until) {
    const p = await watcher.poll(until - Date.now());
    if (p === undefined) break;
    assert.equal(p.type, PacketType.PUBLISH);
    if (p.type !== PacketType.PUBLISH) continue;
    const topic = p.topic.slice("$SYS/broker/".length);
    if (topic === PERIODIC[0]) {
      if (current !== undefined) batches.push(current);
      current = starts++ === 0 ? undefined : {
        values: new Map(),
        retained: [],
        watcherBytes: watcherSeen.bytes,
        watcherPackets: watcherSeen.packets,
        watcherPublishes: watcherSeen.publishes,
        receivedAt: Date.now(),
      };
    }
    watcherSeen.add(p);
    if (current !== undefined) {
      assert.ok(!current.values.has(topic), `${topic} once per batch`);
      current.values.set(topic, text(p));
      current.retained.push(p.retain);
    }
  }
  assert.equal(batches.length, 2, "two complete batches after the traffic");

  for (const [i, batch] of batches.entries()) {
    const v = (topic: string) => batch.values.get(topic)!;
    const n = (topic: string) => Number(v(topic));
    const label = `batch ${i + 1}`;
    assert.deepEqual([...batch.values.keys()], PERIODIC, `${label}: every topic, in order`);
    assert.ok(batch.retained.every((r) => !r), `${label}: periodic topics are not retained`);
    // Exact counters: every byte and packet is accounted for.
    assert.equal(n("load/bytes/received"), fromClients.bytes, `${label} bytes received`);
    assert.equal(n("messages/received"), fromClients.packets, `${label} packets received`);
    assert.equal(n("messages/publish/received"), 3, label);
    assert.equal(n("load/bytes/sent"), toOthers.bytes + batch.watcherBytes, `${label} bytes sent`);
    assert.equal(n("messages/sent"), toOthers.packets + batch.watcherPackets, `${label} packets`);
    assert.equal(
      n("messages/publish/sent"),
      toOthers.publishes + batch.watcherPublishes,
      `${label} PUBLISH sent`,
    );
    assert.equal(n("clients/connected"), 3, `${label}: watcher, slow, pub`);
    assert.equal(n("clients/disconnected"), 1, `${label}: the offline persistent session`);
    assert.equal(n("clients/maximum"), 5, `${label}: the peak is kept, never reset`);
    assert.equal(n("clients/total"), 6, `${label}: connections accepted since start`);
    assert.equal(n("messages/inflight/in"), 1, `${label}: data/c awaits PUBREL`);
    assert.equal(n("messages/inflight/out"), 2, `${label}: data/b to slow and to offline`);
    assert.equal(n("messages/inflight/stored"), 2, `${label}: data/c queued for both`);
    assert.equal(n("messages/inflight"), 3, `${label}: in + out`);
    assert.equal(n("messages/retained/count"), 2, `${label}: data/a and the version`);
    assert.equal(n("messages/subscriptions/count"), 3, label);
    // Nothing was dropped or refused by a limit (tests/broker/17-19 and 23 cover those).
    for (
      const topic of PERIODIC.filter((t) =>
        t.startsWith("publish/messages/dropped") || t.startsWith("refused/")
      )
    ) {
      assert.equal(v(topic), "0", `${label} ${topic}`);
    }
    // Clock values.
    const startedAt = b.broker.startedAt;
    const now = Math.floor(batch.receivedAt / 1000);
    // The batch was measured at most a few seconds before it arrived, even on a loaded machine.
    assert.ok(n("time") >= now - 5 && n("time") <= now, `${label} time ${v("time")} near ${now}`);
    const up = Math.floor((batch.receivedAt - startedAt) / 1000);
    assert.ok(n("uptime") >= 1 && n("uptime") <= up, `${label} uptime ${v("uptime")} <= ${up}`);
    assert.equal(v("uptime/formatted"), new Date(startedAt).toISOString());
    // Resource figures: floats with 3 decimals, like aMQTT, and maxima not below current values.
    for (const topic of ["heap/size", "heap/maximum", "cpu/percent", "cpu/maximum"]) {
      assert.match(v(topic), /^\d+\.\d{3}$/, `${label} ${topic}`);
    }
    assert.ok(n("heap/size") > 0 && n("heap/size") < 4096, `${label} heap ${v("heap/size")} MB`);
    assert.ok(n("heap/maximum") >= n("heap/size"), label);
    assert.ok(n("cpu/maximum") >= n("cpu/percent"), label);
  }
  const [first, second] = batches as [Batch, Batch];
  assert.ok(Number(second.values.get("uptime")) > Number(first.values.get("uptime")) - 1);
  assert.ok(Number(second.values.get("heap/maximum")) >= Number(first.values.get("heap/maximum")));
  assert.ok(Number(second.values.get("cpu/maximum")) >= Number(first.values.get("cpu/maximum")));

  for (const c of [watcher, slow, pub]) await c.close();
  await offline.close();
});

Deno.test("14 sys: sys_interval 0 publishes the version only", async () => {
  await using b = await startBroker({ sys_interval: 0 });
  const c = await TestClient.connect(b.port, { clientId: "quiet" });
  await c.subscribe({ "$SYS/#": 0 });
  const version = await c.expect(PacketType.PUBLISH);
  assert.equal(version.topic, "$SYS/broker/version");
  await c.expectNothing(1500);
  await c.disconnect();
});

Deno.test("14 sys: clients may not publish into $SYS", async () => {
  await using b = await startBroker({ sys_interval: 0 });
  const watcher = await TestClient.connect(b.port, { clientId: "w" });
  await watcher.subscribe({ "$SYS/broker/fake": 0 });
  const pub = await TestClient.connect(b.port, { clientId: "p" });
  await pub.send(publishPacket("$SYS/broker/fake", "spoof", { qos: 1, packetId: 1 }));
  await pub.expect(PacketType.PUBACK);
  await watcher.expectNothing(200);
  await pub.disconnect();
  await watcher.disconnect();
});

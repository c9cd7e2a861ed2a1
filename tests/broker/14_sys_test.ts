// $SYS topics: the retained version at start, then the counters every sys_interval, with values
// checked against known traffic.
import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/constants.ts";
import { startBroker } from "../_helpers/broker.ts";
import { publishPacket, TestClient, text } from "../_helpers/test_client.ts";

async function collectSys(client: TestClient, wanted: string[], timeoutMs = 4000) {
  const values = new Map<string, string>();
  const until = Date.now() + timeoutMs;
  while (wanted.some((t) => !values.has(t)) && Date.now() < until) {
    const p = await client.poll(until - Date.now());
    if (p?.type === PacketType.PUBLISH) values.set(p.topic.slice("$SYS/broker/".length), text(p));
  }
  return values;
}

Deno.test("14 sys: $SYS/broker/version is retained at start", async () => {
  await using b = await startBroker({ sys_interval: 0 });
  const c = await TestClient.connect(b.port, { clientId: "v" });
  await c.subscribe({ "$SYS/broker/version": 0 });
  const p = await c.expect(PacketType.PUBLISH);
  assert.equal(p.retain, true);
  assert.match(text(p), /^amqtt version \d+\.\d+\.\d+/);
  await c.disconnect();
});

Deno.test("14 sys: counters after known traffic; clients/maximum is not reset", async () => {
  await using b = await startBroker({ sys_interval: 1 });
  const watcher = await TestClient.connect(b.port, { clientId: "watcher" });
  await watcher.subscribe({ "$SYS/broker/#": 0 });
  await watcher.expect(PacketType.PUBLISH); // the retained version
  const extra = await Promise.all(
    [1, 2, 3].map((i) => TestClient.connect(b.port, { clientId: `x${i}` })),
  );
  const pub = extra[0]!;
  await pub.send(publishPacket("data/a", "1", { retain: true }));
  await pub.send(publishPacket("data/b", "2", { qos: 1, packetId: 1 }));
  await pub.expect(PacketType.PUBACK);
  await Promise.all(extra.slice(1).map((c) => c.disconnect()));
  // Drain whatever batch was already under way, then read a complete fresh one.
  const wanted = [
    "clients/connected",
    "clients/maximum",
    "clients/total",
    "messages/publish/received",
    "messages/retained/count",
    "messages/subscriptions/count",
    "uptime",
    "load/bytes/received",
    "heap/size",
  ];
  await collectSys(watcher, ["cpu/maximum"], 2500);
  const v = await collectSys(watcher, wanted);
  assert.equal(v.get("clients/connected"), "2", "watcher and pub remain");
  assert.equal(v.get("clients/maximum"), "4", "the peak of 4 is kept");
  assert.equal(v.get("clients/total"), "4");
  assert.equal(v.get("messages/publish/received"), "2");
  // data/a plus $SYS/broker/version
  assert.equal(v.get("messages/retained/count"), "2");
  assert.equal(v.get("messages/subscriptions/count"), "1");
  assert.ok(Number(v.get("uptime")) >= 1);
  assert.ok(Number(v.get("load/bytes/received")) > 0);
  assert.match(v.get("heap/size") ?? "", /^\d+\.\d{3}$/, "floats with 3 decimals like aMQTT");
  await pub.disconnect();
  await watcher.disconnect();
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

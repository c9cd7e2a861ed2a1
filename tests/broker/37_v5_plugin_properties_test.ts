/**
 * Broker, area 37: plugins see MQTT 5.0 over TCP: the CONNECT's properties on the client they are
 * asked about, and the PUBLISH's (or will's) properties in `authorizePublish`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import type { Properties } from "../../src/packet/mod.ts";
import type { BrokerPlugin, ClientInfo } from "../../src/plugins/types.ts";
import { startBroker } from "../_helpers/broker.ts";
import { publishPacket, subscribe5, TestClient } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const V5 = { protocolVersion: 5 as const };

test("37 v5 plugins: authenticate sees the CONNECT's properties; a 3.1.1 client has none", async () => {
  const seen: ClientInfo[] = [];
  const plugin: BrokerPlugin = {
    name: "look",
    authenticate: (client) => {
      seen.push(client);
      return client.properties?.userProperties?.some(([k, v]) => k === "tier" && v === "gold") ??
        true;
    },
  };
  await using b = await startBroker({}, { plugins: [plugin] });
  await using gold = await TestClient.connect(b.port, {
    ...V5,
    clientId: "g",
    properties: { userProperties: [["tier", "gold"]], receiveMaximum: 7 },
  });
  assert.deepEqual(seen[0]!.properties, { userProperties: [["tier", "gold"]], receiveMaximum: 7 });
  await using other = await TestClient.open(b.port, V5);
  const connack = await other.handshake({
    ...V5,
    clientId: "o",
    properties: { userProperties: [["tier", "tin"]] },
  });
  assert.equal(connack.reasonCode, 0x87);
  await using old = await TestClient.connect(b.port, { clientId: "old" });
  assert.equal(seen.at(-1)!.properties, undefined);
  await gold.disconnect();
  await old.disconnect();
});

test("37 v5 plugins: authorizePublish sees the PUBLISH's and the will's properties and may refuse by them", async () => {
  const asked: (Properties | undefined)[] = [];
  const plugin: BrokerPlugin = {
    name: "acl",
    authorizePublish: (_client, _topic, _qos, _retain, properties) => {
      asked.push(properties);
      return properties?.contentType === "forbidden"
        ? { refuse: 0x99, reasonString: "no such content here" }
        : true;
    },
  };
  await using b = await startBroker({}, { plugins: [plugin] });
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  await subscribe5(sub, [{ topic: "t", qos: 0 }]);
  await using pub = await TestClient.connect(b.port, {
    ...V5,
    clientId: "p",
    will: {
      topic: "t",
      payload: new Uint8Array([1]),
      qos: 0,
      retain: false,
      properties: { contentType: "will/type" },
    },
  });
  assert.equal(asked[0]?.contentType, "will/type");
  const bad = publishPacket("t", "x", { qos: 1, packetId: 1 });
  bad.properties = { contentType: "forbidden", userProperties: [["a", "b"]] };
  await pub.send(bad);
  const puback = await pub.expect(PacketType.PUBACK);
  assert.equal(puback.reasonCode, 0x99);
  assert.equal(puback.properties?.reasonString, "no such content here");
  assert.deepEqual(asked.at(-1)?.userProperties, [["a", "b"]]);
  const good = publishPacket("t", "y", { qos: 1, packetId: 2 });
  good.properties = { contentType: "text/plain" };
  await pub.send(good);
  assert.equal((await pub.expect(PacketType.PUBACK)).reasonCode ?? 0, 0);
  const got = await sub.expect(PacketType.PUBLISH);
  assert.equal(got.properties?.contentType, "text/plain");
  await pub.disconnect();
  await sub.disconnect();
});

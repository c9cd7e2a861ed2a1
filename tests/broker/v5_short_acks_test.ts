/**
 * MQTT 5.0 acknowledgements of Success without properties go out in their short form: the packet
 * id alone, no reason code and no property length (remaining length 2), as 3.1.1's do: "The
 * Reason Code and Property Length can be omitted if the Reason Code is 0x00 (Success) and there
 * are no Properties" (MQTT 5.0 §3.4.2.1, §3.5.2.1, §3.7.2.1). The test client's decoder leaves `reasonCode`
 * unset only when the broker left the byte out (a long form would decode as reason code 0).
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { startBroker } from "../_helpers/broker.ts";
import { publishPacket, subscribe5, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const V5 = { protocolVersion: 5 as const };

test("v5 short acks: PUBACK of a delivered QoS 1 PUBLISH carries no reason code or properties (§3.4.2.1)", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  await subscribe5(sub, [{ topic: "sa/#", qos: 1 }]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  for (const packetId of [1, 2, 3]) {
    await pub.send(publishPacket("sa/1", `m${packetId}`, { qos: 1, packetId }));
    const puback = await pub.expect(PacketType.PUBACK);
    assert.deepEqual(puback, { type: PacketType.PUBACK, packetId });
    const got = await sub.expect(PacketType.PUBLISH);
    assert.equal(text(got), `m${packetId}`);
    await sub.send({ type: PacketType.PUBACK, packetId: got.packetId! });
  }
});

test("v5 short acks: PUBREC and PUBCOMP of a delivered QoS 2 PUBLISH carry no reason code or properties (§3.5.2.1, §3.7.2.1)", async () => {
  await using b = await startBroker();
  await using sub = await TestClient.connect(b.port, { ...V5, clientId: "s" });
  await subscribe5(sub, [{ topic: "sa/#", qos: 0 }]);
  await using pub = await TestClient.connect(b.port, { ...V5, clientId: "p" });
  await pub.send(publishPacket("sa/2", "x", { qos: 2, packetId: 7 }));
  assert.deepEqual(await pub.expect(PacketType.PUBREC), { type: PacketType.PUBREC, packetId: 7 });
  await pub.send({ type: PacketType.PUBREL, packetId: 7 });
  assert.deepEqual(await pub.expect(PacketType.PUBCOMP), { type: PacketType.PUBCOMP, packetId: 7 });
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "x");
});

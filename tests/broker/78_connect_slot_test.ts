/**
 * Broker, area 78: a connection's first read (its CONNECT) goes into a slot of the read slabs its
 * listener's connections share (`src/transport/socket.ts`), not into a buffer of its own. A
 * CONNECT with a will, a user name and password or 5.0 properties holds views into that slot
 * while it is handled; what the broker keeps of it (the will's topic, payload and properties) must
 * be its own bytes, untouched by the other connections' reads into the neighbouring slots of the
 * same slab, nor by the will client's own later reads. 48 clients connect with wills that name
 * them (every other one at level 5 with a Correlation Data and a User Property naming it too),
 * then 48 other clients and the will clients themselves publish payloads that fill their slots
 * while the wills wait, then the will clients' sockets close without
 * DISCONNECT: every will is published [MQTT-3.1.2-8] exactly as it was sent.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType, type PublishPacket } from "../../src/packet/mod.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import { TestClient } from "../_helpers/test_client.ts";

const N = 48;
const TEXT = new TextEncoder();

/** The will payload of client `i`: its name repeated, 40 to 240 bytes (within one slot). */
function willPayload(i: number): Uint8Array {
  return TEXT.encode(`w${i};`.repeat(10 + (i * 7) % 50).slice(0, 40 + (i * 37) % 200));
}

Deno.test("78 CONNECT in a slab slot: every will is published byte for byte after the neighbouring slots were read into [MQTT-3.1.2-8]", async () => {
  await using b = await startBroker();
  await using watcher = await TestClient.connect(b.port, {
    clientId: "watcher",
    protocolVersion: 5,
  });
  await watcher.subscribe({ "will/#": 0 });
  const willClients: TestClient[] = [];
  const chatter: TestClient[] = [];
  try {
    for (let i = 0; i < N; i++) {
      const v5 = i % 2 === 1;
      willClients.push(
        await TestClient.connect(b.port, {
          clientId: `will-${i}`,
          protocolVersion: v5 ? 5 : 4,
          username: `user-${i}`,
          password: TEXT.encode(`secret-${i}`),
          will: {
            topic: `will/${i}`,
            payload: willPayload(i),
            qos: 0,
            retain: false,
            properties: v5
              ? { correlationData: TEXT.encode(`corr-${i}`), userProperties: [["from", `${i}`]] }
              : undefined,
          },
        }),
      );
    }
    // Other connections' reads fill slots of the same slabs (and later ones) while the wills
    // wait, and each will client's own next read too (into a new slot: its CONNECT's is not read
    // into again while views into it may be kept): payloads of 0xEE bytes, as long as a slot.
    const filler = (c: TestClient, topic: string) =>
      c.send({
        type: PacketType.PUBLISH,
        topic,
        payload: new Uint8Array(200).fill(0xee),
        qos: 0,
        retain: false,
        dup: false,
      });
    for (let i = 0; i < N; i++) {
      const c = await TestClient.connect(b.port, { clientId: `chatter-${i}` });
      chatter.push(c);
      await filler(c, `chatter/${i}`);
      await filler(willClients[i]!, `chatter/will-${i}`);
    }
    for (const c of [...chatter, ...willClients]) {
      await c.send({ type: PacketType.PINGREQ });
      await c.expect(PacketType.PINGRESP);
    }
    // The wills go out once their connections are gone.
    for (const c of willClients) await c.close();
    const got = new Map<string, PublishPacket>();
    while (got.size < N) {
      const p = await watcher.expect(PacketType.PUBLISH);
      assert.equal(got.has(p.topic), false, `${p.topic} once`);
      got.set(p.topic, p);
    }
    for (let i = 0; i < N; i++) {
      const p = got.get(`will/${i}`)!;
      assert.deepEqual(p.payload, willPayload(i), `will ${i}'s payload`);
      if (i % 2 === 1) {
        assert.deepEqual(
          p.properties?.correlationData,
          TEXT.encode(`corr-${i}`),
          `will ${i}'s data`,
        );
        assert.deepEqual(p.properties?.userProperties, [["from", `${i}`]], `will ${i}'s property`);
      } else {
        assert.equal(p.properties?.correlationData, undefined, `will ${i} (3.1.1) has no data`);
      }
    }
    await waitFor(() => b.broker.clients().length === N + 1, 5000, "the will clients gone");
    for (const c of chatter) assert.equal(c.ended, false, "the other connections still open");
  } finally {
    for (const c of [...willClients, ...chatter]) await c.close();
  }
});

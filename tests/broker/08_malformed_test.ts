/**
 * Broker, area 08: malformed packets, protocol violations, garbage, half-open and abrupt
 * connections. Each closes the offending connection only [MQTT-4.8.0-1]; the broker keeps serving
 * everyone else, which every test checks with a bystander.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, PacketType } from "../../src/packet/mod.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import type { TestBroker } from "../_helpers/broker.ts";
import { connectPacket, publishPacket, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

/** Asserts that a subscriber still gets a message published by a fresh client. */
async function assertStillServing(b: TestBroker, bystander: TestClient, tag: string) {
  await using pub = await TestClient.connect(b.port, { clientId: `pub-${tag}` });
  await pub.send(publishPacket("alive", tag, { qos: 1, packetId: 1 }));
  await pub.expect(PacketType.PUBACK);
  const got = await bystander.expect(PacketType.PUBLISH);
  assert.equal(text(got), tag);
  await bystander.send({ type: PacketType.PUBACK, packetId: got.packetId! });
}

/**
 * Sends `bytes` from an offender (after a valid CONNECT when `connected`), asserts that it is
 * closed and logged, and that a bystander still gets messages.
 */
async function assertClosesOnlyOffender(
  bytes: number[] | Uint8Array,
  options: { connected?: boolean; config?: Record<string, unknown> } = {},
) {
  await using b = await startBroker(options.config);
  await using bystander = await TestClient.connect(b.port, { clientId: "bystander" });
  await bystander.subscribe({ "alive": 1 });
  await using offender = (options.connected ?? true)
    ? await TestClient.connect(b.port, { clientId: "offender" })
    : await TestClient.open(b.port);
  const port = offender.localPort;
  await offender.sendBytes(bytes);
  await offender.expectClosed();
  await waitFor(() => b.broker.clients().every((c) => c.clientId !== "offender"));
  // The reason is logged, naming the peer.
  assert.ok(
    b.log.lines.some((l) => l.level === "warning" && l.message.includes(`:${port}`)),
    `no warning names the offender: ${JSON.stringify(b.log.lines)}`,
  );
  await assertStillServing(b, bystander, "after");
  await waitFor(() => b.broker.stats.clientsConnected === 1, 2000, "only the bystander left");
}

test("08 malformed: garbage bytes after CONNECT close that connection only [MQTT-4.8.0-1]", async () => {
  await assertClosesOnlyOffender([0x00, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x00]);
});

test("08 malformed: garbage as the first bytes closes the connection [MQTT-3.1.0-1]", async () => {
  await assertClosesOnlyOffender(new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"), {
    connected: false,
  });
});

test("08 malformed: a remaining length longer than 4 bytes closes [MQTT-1.5.5-1]", async () => {
  await assertClosesOnlyOffender([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]);
});

test("08 malformed: a packet over max_packet_size closes before its body arrives", async () => {
  // Announces 200 MB; only the header is sent, so the close must not wait for the body.
  await assertClosesOnlyOffender([0x30, 0x80, 0x80, 0x80, 0x64, 0x00, 0x01, 0x61], {
    config: { max_packet_size: 1024 },
  });
});

test("08 malformed: a whole PUBLISH over max_packet_size closes", async () => {
  const big = encodePacket(publishPacket("alive", new Uint8Array(2000)), 4);
  await assertClosesOnlyOffender(big, { config: { max_packet_size: 1024 } });
});

test("08 malformed: PUBLISH with QoS 3 closes [MQTT-3.3.1-4]", async () => {
  await assertClosesOnlyOffender([0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01]);
});

test("08 malformed: PUBLISH to a topic with a wildcard closes [MQTT-3.3.2-2]", async () => {
  await assertClosesOnlyOffender([0x30, 0x05, 0x00, 0x03, 0x61, 0x2f, 0x2b]); // "a/+"
});

test("08 malformed: PUBLISH QoS 1 with packet id 0 closes [MQTT-2.3.1-1]", async () => {
  await assertClosesOnlyOffender([0x32, 0x05, 0x00, 0x01, 0x61, 0x00, 0x00]);
});

test("08 malformed: a topic with invalid UTF-8 closes [MQTT-1.5.3-1]", async () => {
  await assertClosesOnlyOffender([0x30, 0x04, 0x00, 0x02, 0xc3, 0x28]);
});

test("08 malformed: a topic containing U+0000 closes [MQTT-1.5.3-2]", async () => {
  await assertClosesOnlyOffender([0x30, 0x05, 0x00, 0x03, 0x61, 0x00, 0x62]);
});

test("08 malformed: SUBSCRIBE with reserved flags other than 0010 closes [MQTT-3.8.1-1]", async () => {
  await assertClosesOnlyOffender([0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x00]);
});

test("08 malformed: SUBSCRIBE without any filter closes [MQTT-3.8.3-3]", async () => {
  await assertClosesOnlyOffender([0x82, 0x02, 0x00, 0x01]);
});

test("08 malformed: SUBSCRIBE with requested QoS 3 closes [MQTT-3.8.3-4]", async () => {
  await assertClosesOnlyOffender([0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x03]);
});

test("08 malformed: UNSUBSCRIBE without any filter closes [MQTT-3.10.3-2]", async () => {
  await assertClosesOnlyOffender([0xa2, 0x02, 0x00, 0x01]);
});

test("08 malformed: PUBREL with reserved flags other than 0010 closes [MQTT-3.6.1-1]", async () => {
  await assertClosesOnlyOffender([0x60, 0x02, 0x00, 0x01]);
});

test("08 malformed: a server-to-client packet (CONNACK) from a client closes", async () => {
  await assertClosesOnlyOffender([0x20, 0x02, 0x00, 0x00]);
});

test("08 malformed: reserved packet types 0 and 15 close", async () => {
  await assertClosesOnlyOffender([0x00, 0x00]);
  await assertClosesOnlyOffender([0xf0, 0x00]);
});

test("08 malformed: a client half-closing its socket is cleaned up and its will published", async () => {
  await using b = await startBroker();
  await using bystander = await TestClient.connect(b.port, { clientId: "bystander" });
  await bystander.subscribe({ "alive": 1, "will/#": 0 });
  await using c = await TestClient.connect(b.port, {
    clientId: "half",
    will: { topic: "will/half", payload: new TextEncoder().encode("h"), qos: 0, retain: false },
  });
  await c.closeWrite();
  await c.expectClosed();
  assert.equal(text(await bystander.expect(PacketType.PUBLISH)), "h");
  await waitFor(() => b.broker.clients().length === 1);
  await assertStillServing(b, bystander, "after half-close");
});

test("08 malformed: a connection dropped in the middle of a packet is cleaned up", async () => {
  await using b = await startBroker();
  await using bystander = await TestClient.connect(b.port, { clientId: "bystander" });
  await bystander.subscribe({ "alive": 1 });
  for (let i = 0; i < 5; i++) {
    const c = await TestClient.connect(b.port, { clientId: `drop${i}` });
    const bytes = encodePacket(publishPacket("alive", "never", { qos: 1, packetId: 1 }), 4);
    await c.sendBytes(bytes.subarray(0, 1 + i));
    await c.close();
  }
  const cut = await TestClient.open(b.port);
  await cut.sendBytes(encodePacket(connectPacket({ clientId: "cut" }), 4).subarray(0, 7));
  await cut.close();
  await waitFor(() => b.broker.clients().length === 1, 2000, "dropped clients to be gone");
  assert.equal(b.broker.stats.clientsConnected, 1);
  await assertStillServing(b, bystander, "after drops");
  // None of the cut PUBLISH packets was routed.
  await bystander.expectNothing(100);
});

test("08 malformed: random garbage from many sockets at once never crashes the broker", async () => {
  await using b = await startBroker({ connect_timeout: 1 });
  await using bystander = await TestClient.connect(b.port, { clientId: "bystander" });
  await bystander.subscribe({ "alive": 1 });
  let seed = 0x2545f491;
  const random = () => {
    // xorshift32: reproducible garbage.
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 0x100000000;
  };
  for (let round = 0; round < 3; round++) {
    const jobs: Promise<void>[] = [];
    for (let s = 0; s < 12; s++) {
      const withConnect = s % 2 === 0;
      const chunks: Uint8Array[] = [];
      if (withConnect) {
        chunks.push(encodePacket(connectPacket({ clientId: `g${round}-${s}` }), 4));
      }
      for (let k = 0; k < 4; k++) {
        const chunk = new Uint8Array(1 + Math.floor(random() * 300));
        for (let i = 0; i < chunk.length; i++) chunk[i] = Math.floor(random() * 256);
        chunks.push(chunk);
      }
      jobs.push((async () => {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: b.port });
        try {
          for (const chunk of chunks) {
            await conn.write(chunk);
            await new Promise((r) => setTimeout(r, Math.floor(random() * 5)));
          }
        } catch {
          // The broker may have closed it already: a reset on write is expected.
        } finally {
          conn.close();
        }
      })());
    }
    await Promise.all(jobs);
  }
  await waitFor(() => b.broker.clients().length === 1, 3000, "garbage connections to be gone");
  assert.equal(b.broker.stats.clientsConnected, 1);
  await assertStillServing(b, bystander, "after garbage");
  assert.deepEqual(b.log.lines.filter((l) => l.level === "error"), []);
});

test("08 malformed: DUP set on a QoS 0 PUBLISH closes [MQTT-3.3.1-2]", async () => {
  await assertClosesOnlyOffender([0x38, 0x04, 0x00, 0x01, 0x61, 0x78]);
});

test("08 malformed: PUBLISH to an empty topic closes [MQTT-4.7.3-1]", async () => {
  await assertClosesOnlyOffender([0x30, 0x03, 0x00, 0x00, 0x78]);
});

test("08 malformed: UNSUBSCRIBE with reserved flags other than 0010 closes [MQTT-3.10.1-1]", async () => {
  await assertClosesOnlyOffender([0xa0, 0x05, 0x00, 0x01, 0x00, 0x01, 0x61]);
});

test("08 malformed: PINGREQ with a non-zero remaining length closes", async () => {
  await assertClosesOnlyOffender([0xc0, 0x01, 0x00]);
});

test("08 malformed: a remaining length shorter than the PUBLISH topic closes", async () => {
  // Topic length 10 but only 3 bytes follow in the packet.
  await assertClosesOnlyOffender([0x30, 0x05, 0x00, 0x0a, 0x61, 0x62, 0x63]);
});

test("08 malformed: DISCONNECT with reserved flags is a protocol error: the will is published [MQTT-3.14.1-1]", async () => {
  await using b = await startBroker();
  await using bystander = await TestClient.connect(b.port, { clientId: "bystander" });
  await bystander.subscribe({ "alive": 1, "will/#": 0 });
  await using c = await TestClient.connect(b.port, {
    clientId: "bad-disconnect",
    will: { topic: "will/bd", payload: new TextEncoder().encode("bd"), qos: 0, retain: false },
  });
  await c.sendBytes([0xe1, 0x00]);
  await c.expectClosed();
  assert.equal(text(await bystander.expect(PacketType.PUBLISH)), "bd");
  await assertStillServing(b, bystander, "after bad DISCONNECT");
});

test("08 malformed: bytes after DISCONNECT are ignored and the will is discarded [MQTT-3.14.4-3]", async () => {
  await using b = await startBroker();
  await using bystander = await TestClient.connect(b.port, { clientId: "bystander" });
  await bystander.subscribe({ "alive": 1, "will/#": 0 });
  await using c = await TestClient.connect(b.port, {
    clientId: "bye",
    will: { topic: "will/bye", payload: new TextEncoder().encode("bye"), qos: 0, retain: false },
  });
  // DISCONNECT, then a PUBLISH and garbage in the same write: none of it counts.
  const after = encodePacket(publishPacket("alive", "after disconnect"), 4);
  await c.sendBytes([0xe0, 0x00, ...after, 0xff, 0xff]);
  await c.expectClosed();
  await assertStillServing(b, bystander, "after DISCONNECT");
  await bystander.expectNothing(150);
});

test("08 malformed: a second CONNECT closes that connection only, with a warning [MQTT-3.1.0-2]", async () => {
  await assertClosesOnlyOffender(encodePacket(connectPacket({ clientId: "again" }), 4));
});

test("08 malformed: a first packet other than CONNECT closes it, with a warning [MQTT-3.1.0-1]", async () => {
  await assertClosesOnlyOffender([0xc0, 0x00], { connected: false });
});

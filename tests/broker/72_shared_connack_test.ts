/**
 * Broker, area 72: the packets every connection gets alike (the CONNACK of a 3.1/3.1.1 login,
 * PINGRESP) are encoded once and written as they are when nothing else is queued; and a CONNECT
 * without password, will or properties lets its read buffer be read into again. Checked byte for
 * byte over real sockets, alone and next to other packets in one write.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, type Packet, PacketType } from "../../src/packet/mod.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import { type ConnectOptions, connectPacket } from "../_helpers/test_client.ts";
import { readConn } from "../transport/_io.ts";

const test = (name: string, fn: () => void | Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const CONNACK_NEW = [0x20, 0x02, 0x00, 0x00];
const CONNACK_PRESENT = [0x20, 0x02, 0x01, 0x00];
const PINGREQ = [0xc0, 0x00];
const PINGRESP = [0xd0, 0x00];

async function open(port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  return conn;
}

function bytes(packet: Packet, level: 3 | 4 | 5 = 4): number[] {
  return [...encodePacket(packet, level)];
}

/** Writes `out` and reads exactly `expected.length` bytes back, which must be `expected`. */
async function exchange(conn: Deno.Conn, out: number[], expected: number[], what: string) {
  await conn.write(new Uint8Array(out));
  assert.deepEqual([...await readConn(conn, expected.length)], expected, what);
}

function connect(options: ConnectOptions): number[] {
  return bytes(connectPacket(options), options.protocolVersion ?? 4);
}

test("72 shared packets: CONNACK and PINGRESP arrive byte for byte, alone and next to other packets in one write [MQTT-3.2.2-1] [MQTT-3.2.2-2] [MQTT-3.12.4-1]", async () => {
  await using b = await startBroker();
  const port = b.broker.listeners[0]!.port;
  const conns: Deno.Conn[] = [];
  try {
    // Clean 3.1.1 logins, one after another and at once: session present 0 [MQTT-3.2.2-1].
    for (let i = 0; i < 3; i++) {
      const c = await open(port);
      conns.push(c);
      await exchange(c, connect({ clientId: `c${i}` }), CONNACK_NEW, `login c${i}`);
    }
    const burst = await Promise.all(Array.from({ length: 20 }, () => open(port)));
    conns.push(...burst);
    await Promise.all(
      burst.map((c, i) => exchange(c, connect({ clientId: `burst${i}` }), CONNACK_NEW, `b${i}`)),
    );
    // MQTT 3.1 has no session-present flag.
    const v3 = await open(port);
    conns.push(v3);
    await exchange(
      v3,
      connect({ clientId: "old", protocolName: "MQIsdp", protocolVersion: 3 }),
      CONNACK_NEW,
      "3.1 login",
    );
    // A session resumed: session present 1 [MQTT-3.2.2-2].
    const first = await open(port);
    await exchange(first, connect({ clientId: "kept", clean: false }), CONNACK_NEW, "kept, new");
    first.write(new Uint8Array([0xe0, 0x00])).catch(() => {}); // DISCONNECT
    await waitFor(
      () => b.broker.clients().some((s) => s.clientId === "kept" && !s.connected),
      10_000,
      "kept offline",
    );
    first.close();
    const again = await open(port);
    conns.push(again);
    await exchange(again, connect({ clientId: "kept", clean: false }), CONNACK_PRESENT, "resumed");
    // PINGRESP alone [MQTT-3.12.4-1], then PINGRESPs around a SUBACK answered in one write.
    const c = conns[0]!;
    await exchange(c, PINGREQ, PINGRESP, "ping");
    const subscribe = bytes({
      type: PacketType.SUBSCRIBE,
      packetId: 7,
      subscriptions: [{ topic: "t", qos: 0 }],
    });
    await exchange(
      c,
      [...PINGREQ, ...subscribe, ...PINGREQ, ...PINGREQ],
      [...PINGRESP, 0x90, 0x03, 0x00, 0x07, 0x00, ...PINGRESP, ...PINGRESP],
      "PINGRESP, SUBACK, PINGRESP, PINGRESP",
    );
    // At 5.0, PINGRESP is the same two bytes.
    const v5 = await open(port);
    conns.push(v5);
    await v5.write(new Uint8Array(connect({ clientId: "five", protocolVersion: 5 })));
    const connack5 = await readConn(v5, 2);
    assert.equal(connack5[0], 0x20);
    await readConn(v5, connack5[1]!);
    await exchange(v5, PINGREQ, PINGRESP, "5.0 ping");
    // Every login's CONNACK again, after all of that: the shared bytes were never written into.
    const last = await open(port);
    conns.push(last);
    await exchange(last, connect({ clientId: "last" }), CONNACK_NEW, "last login");
  } finally {
    for (const c of conns) c.close();
  }
});

test("72 shared packets: a CONNECT without password or will has its read buffer read into again, and the login keeps its client id and user name", async () => {
  await using b = await startBroker();
  const port = b.broker.listeners[0]!.port;
  const events: { clientId: string; username: string | undefined }[] = [];
  b.broker.on("clientConnected", (event) => {
    events.push({ clientId: event.clientId, username: event.client.username });
  });
  const sub = await open(port);
  const pub = await open(port);
  try {
    await exchange(sub, connect({ clientId: "subscriber-1" }), CONNACK_NEW, "subscriber");
    await exchange(
      sub,
      bytes({ type: PacketType.SUBSCRIBE, packetId: 1, subscriptions: [{ topic: "t", qos: 0 }] }),
      [0x90, 0x03, 0x00, 0x01, 0x00],
      "SUBACK",
    );
    // The publisher's next reads go into the buffer its CONNECT came in: they overwrite it.
    await exchange(
      pub,
      connect({ clientId: "publisher-with-a-long-id", username: "user-name" }),
      CONNACK_NEW,
      "publisher",
    );
    const publish = bytes({
      type: PacketType.PUBLISH,
      topic: "t",
      payload: new Uint8Array(40).fill(0x78),
      qos: 0,
      retain: false,
      dup: false,
    });
    for (let i = 0; i < 3; i++) {
      await pub.write(new Uint8Array(publish));
      assert.deepEqual([...await readConn(sub, publish.length)], publish, `message ${i}`);
    }
    await exchange(pub, PINGREQ, PINGRESP, "publisher ping");
    const summary = b.broker.clients().find((s) => s.clientId === "publisher-with-a-long-id");
    assert.equal(summary?.connected, true);
    assert.deepEqual(events.find((e) => e.clientId === "publisher-with-a-long-id"), {
      clientId: "publisher-with-a-long-id",
      username: "user-name",
    });
  } finally {
    sub.close();
    pub.close();
  }
});

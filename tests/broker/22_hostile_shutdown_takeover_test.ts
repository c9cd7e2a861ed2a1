/**
 * Broker, area 22: wills on shutdown and CONNACKs under a takeover storm. A server-side close
 * without DISCONNECT publishes the will [MQTT-3.1.2-8], shutdown included: the broker routes the
 * wills before it closes the connections, so a connected subscriber receives them (embedded
 * `shutdown()`, `await using`, and SIGTERM to the `amqtt` CLI). Under a storm of connections
 * with one client id, every connection gets its CONNACK before it is taken over
 * [MQTT-3.1.4-2], so a client can tell a takeover from a refusal.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodePacket, PacketType } from "../../src/packet/mod.ts";
import type { Packet } from "../../src/packet/mod.ts";
import type { Broker } from "../../broker.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import { connectPacket, TestClient, text } from "../_helpers/test_client.ts";
import { spawnCli, tempDir } from "../cli/_helpers.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const enc = new TextEncoder();

/** Three clients with wills, one that disconnects cleanly, and a subscriber to their wills. */
async function willClients(
  port: number,
  gone: (clientId: string) => Promise<unknown>,
): Promise<{ sub: TestClient; others: TestClient[] }> {
  const sub = await TestClient.connect(port, { clientId: "watcher" });
  await sub.subscribe({ "will/#": 1 });
  const others: TestClient[] = [];
  for (const id of ["w1", "w2", "w3", "polite"]) {
    others.push(
      await TestClient.connect(port, {
        clientId: id,
        will: { topic: `will/${id}`, payload: enc.encode(`${id} is gone`), qos: 1, retain: false },
      }),
    );
  }
  // A DISCONNECT discards the will [MQTT-3.14.4-3]: "polite" must not be announced.
  await others[3]!.disconnect();
  await gone("polite");
  return { sub, others };
}

function disconnected(broker: Broker, clientId: string): Promise<void> {
  return waitFor(() => !broker.clients().some((c) => c.clientId === clientId));
}

/** Everything the subscriber received until the broker closed its connection. */
async function willsReceived(sub: TestClient): Promise<string[]> {
  const packets: Packet[] = await sub.expectClosed(30_000, { allowPackets: true });
  return packets
    .filter((p) => p.type === PacketType.PUBLISH)
    .map((p) => text(p as Extract<Packet, { type: typeof PacketType.PUBLISH }>))
    .sort();
}

test("22 shutdown: broker.shutdown() routes the wills of connected clients before closing [MQTT-3.1.2-8]", async () => {
  const b = await startBroker();
  const { sub, others } = await willClients(b.port, (id) => disconnected(b.broker, id));
  try {
    const shutdown = b.broker.shutdown();
    assert.deepEqual(await willsReceived(sub), ["w1 is gone", "w2 is gone", "w3 is gone"]);
    await shutdown;
  } finally {
    await b.broker.shutdown();
    await sub.close();
    for (const c of others) await c.close();
  }
});

test("22 shutdown: disposing the broker (await using) routes the wills too [MQTT-3.1.2-8]", async () => {
  let sub: TestClient | undefined;
  const others: TestClient[] = [];
  let received: Promise<string[]> | undefined;
  try {
    await using b = await startBroker();
    const clients = await willClients(b.port, (id) => disconnected(b.broker, id));
    sub = clients.sub;
    others.push(...clients.others);
    received = willsReceived(sub);
  } finally {
    for (const c of others) await c.close();
  }
  assert.deepEqual(await received, ["w1 is gone", "w2 is gone", "w3 is gone"]);
  await sub?.close();
});

test("22 shutdown: SIGTERM to the amqtt CLI delivers the wills of the connected clients [MQTT-3.1.2-8]", async () => {
  await using dir = await tempDir();
  const config = `${dir.path}/broker.yaml`;
  await Deno.writeTextFile(config, "listeners:\n  default:\n    bind: 127.0.0.1:0\n");
  await using broker = spawnCli("amqtt.ts", ["-c", config]);
  const [, port] = await broker.waitForStderr(/127\.0\.0\.1:(\d+)/);
  await broker.waitForStderr(/started/);
  const { sub, others } = await willClients(
    Number(port),
    (id) => broker.waitForStderr(new RegExp(`brokerClientDisconnected: client ${id}\\b`)),
  );
  try {
    broker.kill("SIGTERM");
    assert.deepEqual(await willsReceived(sub), ["w1 is gone", "w2 is gone", "w3 is gone"]);
    const result = await broker.done;
    assert.equal(result.code, 0, result.stderr);
  } finally {
    await sub.close();
    for (const c of others) await c.close();
  }
});

/** Reads a connection until it has 4 bytes or ends; returns what it read. */
async function firstBytes(conn: Deno.TcpConn): Promise<number[]> {
  const got: number[] = [];
  const buf = new Uint8Array(64);
  try {
    while (got.length < 4) {
      const n = await conn.read(buf);
      if (n === null) break;
      got.push(...buf.subarray(0, n));
    }
  } catch {
    // reset after the broker closed it
  }
  return got;
}

async function endOf(conn: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(64);
  try {
    while (await conn.read(buf) !== null) { /* drain */ }
  } catch {
    // reset
  }
}

test("22 takeover: under a storm of CONNECTs with one client id, each connection gets its CONNACK before it is taken over [MQTT-3.1.4-2] [MQTT-3.2.0-1]", async () => {
  await using b = await startBroker();
  await using canary = await TestClient.connect(b.port, { clientId: "canary" });
  await canary.subscribe({ "canary/#": 0 });
  const N = 60;
  const conns: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < N; i++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: b.port });
      c.setNoDelay(true);
      conns.push(c);
    }
    const connect = encodePacket(connectPacket({ clientId: "storm" }), 4);
    // All at once: the CONNECTs of many connections are decoded in the same turn.
    await Promise.all(conns.map((c) => c.write(connect)));
    const heads = await Promise.all(conns.map(firstBytes));
    for (let i = 0; i < N; i++) {
      // CONNACK, remaining length 2, session present 0, return code 0 [MQTT-3.2.2-1].
      assert.deepEqual(heads[i], [0x20, 0x02, 0x00, 0x00], `connection ${i}`);
    }
    // One of them holds the session now; all the others were closed.
    await waitFor(() => b.broker.stats.clientsConnected === 2, 30_000, "the takeovers");
    assert.equal(b.broker.clients().filter((c) => c.clientId === "storm").length, 1);
    const survivor = b.broker.clients().find((c) => c.clientId === "storm")!.remoteAddress;
    const ended = conns.filter((c) => `127.0.0.1:${c.localAddr.port}` !== survivor);
    assert.equal(ended.length, N - 1);
    await Promise.all(ended.map(endOf));
  } finally {
    for (const c of conns) c.close();
  }
  // The bystander is still served.
  b.broker.publish("canary/x", "still here");
  assert.equal(text(await canary.expect(PacketType.PUBLISH)), "still here");
  assert.equal(canary.ended, false);
});

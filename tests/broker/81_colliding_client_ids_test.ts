/**
 * Broker, area 81: client ids whose hashes collide. The broker keeps sessions by a hash of the
 * client id (`SessionTable`); ids that share a hash, found by search or made on purpose to take
 * another client's, must still be distinct clients: no takeover [MQTT-3.1.4-3], no session
 * resumed that is not the client's own [MQTT-3.2.2-2], no message of the other's subscriptions,
 * in memory and after a restart on the same SQLite file.
 *
 * Client ids past 16383 characters are refused: V8 hashes longer strings by their length alone,
 * so such ids that also share the broker's hash (made as easily as short ones) all went to one
 * bucket of the second map, each login a scan of them all (bench/RESULTS.md, branch `revconn5`).
 *
 * A negative check ("the others' messages did not arrive") is made by order: a marker published
 * after them, on the client's own topic, comes right after the client's own message, and its
 * connection is still open.
 *
 * @module
 */

import assert from "node:assert/strict";
import { hashOf } from "../../src/broker/_session_table.ts";
import { MAX_CLIENT_ID_LENGTH } from "../../src/broker/core.ts";
import { PacketType } from "../../src/packet/mod.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import { publishPacket, TestClient, text } from "../_helpers/test_client.ts";
import { tempDir } from "../_helpers/temp_dir.ts";
import { collidingIds, idsCollidingWith } from "./_colliding_ids.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

let nextPacketId = 1;

/** Publishes at QoS 1 and waits for the PUBACK. */
async function publish1(c: TestClient, topic: string, payload: string) {
  const packetId = nextPacketId++;
  await c.send(publishPacket(topic, payload, { qos: 1, packetId }));
  assert.equal((await c.expect(PacketType.PUBACK)).packetId, packetId);
}

/** Reads the next PUBLISH, acknowledges it, and returns `topic payload`. */
async function next(c: TestClient): Promise<string> {
  const p = await c.expect(PacketType.PUBLISH);
  if (p.qos > 0) await c.send({ type: PacketType.PUBACK, packetId: p.packetId! });
  return `${p.topic} ${text(p)}`;
}

/** Topic of a client's own messages: its index, as ids may hold any character. */
const own = (i: number) => `own/${i}`;

/**
 * Each client is sent a message on its own topic, then each a marker: every client reads its own
 * message and then its marker, nothing of the others' (all published before any marker by one
 * connection, so they would come first), and stays connected.
 */
async function onlyOwn(pub: TestClient, clients: TestClient[]) {
  for (let i = 0; i < clients.length; i++) await publish1(pub, own(i), `message ${i}`);
  for (let i = 0; i < clients.length; i++) await publish1(pub, own(i), `marker ${i}`);
  for (let i = 0; i < clients.length; i++) {
    const got: string[] = [];
    for (;;) {
      const m = await next(clients[i]!);
      if (m === `${own(i)} marker ${i}`) break;
      got.push(m);
    }
    assert.deepEqual(got, [`${own(i)} message ${i}`], `client ${i} read only its own messages`);
    assert.equal(clients[i]!.ended, false, `client ${i} still connected`);
  }
}

/** Connects with `clean: false` and asserts the CONNACK's Session Present. */
async function login(port: number, clientId: string, present: boolean): Promise<TestClient> {
  const c = await TestClient.open(port);
  try {
    const connack = await c.handshake({ clientId, clean: false });
    assert.equal(connack.reasonCode, 0);
    assert.equal(
      connack.sessionPresent,
      present,
      `Session Present for ${JSON.stringify(clientId)}`,
    );
  } catch (err) {
    await c.close();
    throw err;
  }
  return c;
}

test("81 colliding ids: an id made to take a connected client's hash is another client, no takeover [MQTT-3.1.4-3]", async () => {
  await using b = await startBroker();
  const victim = "sensor-1";
  const evil = idsCollidingWith(victim, 3, "evil-");
  for (const id of evil) assert.equal(hashOf(id), hashOf(victim));
  const ids = [victim, ...evil];
  const clients: TestClient[] = [];
  try {
    for (const [i, id] of ids.entries()) {
      const c = await login(b.port, id, false);
      clients.push(c);
      await c.subscribe({ [own(i)]: 1 });
    }
    await using pub = await TestClient.connect(b.port, { clientId: "pub" });
    await onlyOwn(pub, clients);
    assert.deepEqual(
      b.broker.clients().filter((c) => c.clientId !== "pub").map((c) => [c.clientId, c.connected])
        .sort(),
      ids.map((id) => [id, true]).sort(),
    );
    // Each sees its own subscription only.
    const subs = b.broker.subscriptions().filter((s) => s.clientId !== "pub");
    assert.deepEqual(
      subs.map((s) => [s.clientId, s.topic]).sort(),
      ids.map((id, i) => [id, own(i)]).sort(),
    );
  } finally {
    for (const c of clients) await c.close();
  }
});

test("81 colliding ids: the first holder's session ends, the colliding one resumes its own and a new colliding id starts empty [MQTT-3.2.2-2]", async () => {
  await using b = await startBroker();
  const [first, second] = collidingIds();
  const [third] = idsCollidingWith(first, 1, "third-");
  assert.equal(hashOf(first), hashOf(second));
  assert.equal(hashOf(third!), hashOf(first));
  // Both leave a persistent session with a subscription, the first one's id first (it holds the
  // hash, the second is kept beside it).
  for (const [i, id] of [first, second].entries()) {
    const c = await login(b.port, id, false);
    await c.subscribe({ [own(i)]: 1 });
    await c.disconnect();
  }
  await waitFor(() => b.broker.clients().every((c) => !c.connected), undefined, "both offline");
  {
    await using pub = await TestClient.connect(b.port, { clientId: "pub" });
    await publish1(pub, own(0), "queued 0");
    await publish1(pub, own(1), "queued 1");
  }
  // The first starts clean: its session and queued message are gone [MQTT-3.1.2-6].
  {
    await using c = await TestClient.open(b.port);
    assert.equal((await c.handshake({ clientId: first, clean: true })).sessionPresent, false);
    await c.disconnect();
  }
  await waitFor(
    () => b.broker.clients().every((c) => c.clientId !== first),
    undefined,
    "the first's clean session to end",
  );
  // The second resumes its own session, with its own queued message only.
  const clients: TestClient[] = [];
  try {
    const c1 = await login(b.port, second, true);
    clients.push(c1);
    assert.equal(await next(c1), `${own(1)} queued 1`);
    // A third id with the same hash, and the first again: new sessions, nothing of the second's.
    const c2 = await login(b.port, third!, false);
    clients.push(c2);
    await c2.subscribe({ [own(2)]: 1 });
    const c0 = await login(b.port, first, false);
    clients.push(c0);
    await c0.subscribe({ [own(0)]: 1 });
    await using pub = await TestClient.connect(b.port, { clientId: "pub" });
    await onlyOwn(pub, [c0, c1, c2]);
    assert.deepEqual(
      b.broker.subscriptions().filter((s) => s.clientId !== "pub").map((s) => [s.clientId, s.topic])
        .sort(),
      [[first, own(0)], [second, own(1)], [third!, own(2)]].sort(),
    );
  } finally {
    for (const c of clients) await c.close();
  }
});

test("81 colliding ids: persistent sessions of colliding ids, long ones too, come back apart after a restart on SQLite [MQTT-3.2.2-2]", async () => {
  await using dir = await tempDir("amqtt-colliding-");
  const config = { persistence: { path: `${dir.path}/state.db`, sync: "full" } };
  const [a, b2] = collidingIds();
  // Ids near the longest the broker takes (16383 characters): the hash is over all of it.
  const [long1, long2] = collidingIds("L".repeat(MAX_CLIENT_ID_LENGTH - 7));
  const [evil] = idsCollidingWith(a, 1, "evil-");
  const ids = [a, b2, evil!, long1, long2];
  assert.equal(hashOf(evil!), hashOf(a));
  assert.equal(hashOf(long1), hashOf(long2));
  {
    await using b = await startBroker(config);
    for (const [i, id] of ids.entries()) {
      const c = await login(b.port, id, false);
      await c.subscribe({ [own(i)]: 1 });
      await c.disconnect();
    }
    await waitFor(() => b.broker.clients().every((c) => !c.connected), undefined, "offline");
    await using pub = await TestClient.connect(b.port, { clientId: "pub" });
    for (let i = 0; i < ids.length; i++) await publish1(pub, own(i), `queued ${i}`);
  }
  await using b = await startBroker(config);
  assert.ok(b.log.has(`${ids.length} session(s)`), "every session restored");
  const clients: TestClient[] = [];
  try {
    // In the reverse order: the ids that held a hash before the restart come in last.
    for (let i = ids.length - 1; i >= 0; i--) {
      const c = await login(b.port, ids[i]!, true);
      clients[i] = c;
      assert.equal(await next(c), `${own(i)} queued ${i}`);
    }
    await using pub = await TestClient.connect(b.port, { clientId: "pub" });
    await onlyOwn(pub, clients);
  } finally {
    for (const c of clients) await c.close();
  }
});

test("81 colliding ids: a client id over 16383 characters is refused (3.1.1 return code 2, 5.0 0x85) and closed [MQTT-3.2.2-5], 16383 taken [MQTT-3.1.3-5]", async () => {
  await using b = await startBroker();
  const longest = "L".repeat(MAX_CLIENT_ID_LENGTH);
  for (const protocolVersion of [4, 5] as const) {
    await using c = await TestClient.open(b.port, { protocolVersion });
    const connack = await c.handshake({
      clientId: `${longest}${protocolVersion}`,
      protocolVersion,
    });
    assert.equal(connack.reasonCode, protocolVersion === 5 ? 0x85 : 2);
    assert.equal(connack.sessionPresent, false);
    await c.expectClosed();
  }
  assert.equal(b.broker.clients().length, 0, "no session made");
  await using c = await TestClient.connect(b.port, { clientId: longest, clean: false });
  assert.equal(c.ended, false);
  assert.deepEqual(b.broker.clients().map((x) => x.clientId), [longest]);
  // The refusal's log names the id cut short, not 16 KB of it.
  assert.ok(b.log.has(`client id over ${MAX_CLIENT_ID_LENGTH} characters`));
  assert.equal(b.log.has(`${longest}4`) || b.log.has(`${longest}5`), false);
});

/**
 * A persistent session left on a node with a message queued for it, and the byte-level logins
 * that resume it on another node: accepted with the session and its message, or refused as server
 * busy while that node cannot load it. What several cluster tests of session loading share.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type ConnectOptions,
  publishPacket,
  subscribe5,
  TestClient,
  text,
} from "../_helpers/test_client.ts";
import { PacketType, ReasonCode } from "../../src/packet/constants.ts";
import { Inbox, type Node } from "./_nodes.ts";

/** The CONNECT of `clientId` resuming its session: not clean; at 5.0, kept 600 s. */
export function resumeConnect(clientId: string, protocolVersion: 4 | 5): ConnectOptions {
  return {
    clientId,
    clean: false,
    protocolVersion,
    ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 600 } } : {}),
  };
}

/**
 * Leaves a persistent subscriber to `s/CLIENT` at QoS 1 on `node`, offline, with one message
 * (`body`) queued for it.
 *
 * @param node where the session stays
 * @param clientId its client id
 * @param protocolVersion 4 (3.1.1) or 5
 * @param body the queued message
 */
export async function leaveWithQueued(
  node: Node,
  clientId: string,
  protocolVersion: 4 | 5,
  body: string,
): Promise<void> {
  {
    await using sub = await TestClient.connect(node.port, resumeConnect(clientId, protocolVersion));
    if (protocolVersion === 5) await subscribe5(sub, [{ topic: `s/${clientId}`, qos: 1 }]);
    else await sub.subscribe({ [`s/${clientId}`]: 1 });
    await sub.disconnect();
  }
  // Acknowledged once stored.
  await using pub = await Inbox.connect(node, `pub-${clientId}`);
  await pub.client.publish(`s/${clientId}`, body, { qos: 1 });
}

/**
 * Leaves a persistent subscriber to `CLIENT/#` at QoS 1 on `node`, offline, with one message
 * (`stale`, on `CLIENT/a`) queued for it, published at QoS 1 by a byte-level client at the same
 * protocol version and acknowledged once stored.
 *
 * @param node where the session stays
 * @param clientId its client id
 * @param protocolVersion 4 (3.1.1) or 5
 */
export async function leaveStale(
  node: Node,
  clientId: string,
  protocolVersion: 4 | 5,
): Promise<void> {
  {
    await using sub = await TestClient.connect(node.port, resumeConnect(clientId, protocolVersion));
    if (protocolVersion === 5) await subscribe5(sub, [{ topic: `${clientId}/#`, qos: 1 }]);
    else await sub.subscribe({ [`${clientId}/#`]: 1 });
    await sub.disconnect();
  }
  await using pub = await TestClient.connect(node.port, { clientId: "pub", protocolVersion });
  await pub.send(publishPacket(`${clientId}/a`, "stale", { qos: 1, packetId: 1 }));
  assert.equal((await pub.expect(PacketType.PUBACK)).packetId, 1);
  await pub.disconnect();
}

/**
 * Logs `clientId` in on `port` resuming its session: CONNACK 0 with Session Present 1
 * [MQTT-3.2.2-2], then the queued message `body`, which it acknowledges.
 *
 * @param port the node's port
 * @param clientId the client id of {@linkcode leaveWithQueued}
 * @param protocolVersion 4 (3.1.1) or 5
 * @param body the queued message
 */
export async function resumeQueued(
  port: number,
  clientId: string,
  protocolVersion: 4 | 5,
  body: string,
): Promise<void> {
  await using again = await TestClient.open(port, { protocolVersion });
  const connack = await again.handshake(resumeConnect(clientId, protocolVersion));
  assert.equal(connack.reasonCode, 0);
  assert.equal(connack.sessionPresent, true, `session of ${clientId}`);
  const p = await again.expect(PacketType.PUBLISH);
  assert.equal(text(p), body);
  await again.send({ type: PacketType.PUBACK, packetId: p.packetId! });
}

/**
 * Logs in on `port`, at once, `v4` (3.1.1) and `v5` (5.0) resuming their sessions and a clean
 * start (`fresh`) while the node cannot load sessions: the resuming ones are refused as server
 * busy (3.1.1 return code 3, 5.0 0x89) with Session Present 0 [MQTT-3.2.2-6] and their
 * connections closed [MQTT-3.2.2-7]; the clean start asks for nothing stored and is accepted.
 *
 * @param port the node's port
 * @param v4 the client id resuming at 3.1.1
 * @param v5 the client id resuming at 5.0
 * @returns the clean start's connection, still open
 */
export async function busyButClean(port: number, v4: string, v5: string): Promise<TestClient> {
  await using c4 = await TestClient.open(port);
  await using c5 = await TestClient.open(port, { protocolVersion: 5 });
  const fresh = await TestClient.open(port);
  try {
    const [a4, a5, clean] = await Promise.all([
      c4.handshake(resumeConnect(v4, 4)),
      c5.handshake(resumeConnect(v5, 5)),
      fresh.handshake({ clientId: "fresh", clean: true }),
    ]);
    assert.equal(clean.reasonCode, 0);
    assert.equal(clean.sessionPresent, false);
    // Not an empty session in place of the stored one.
    assert.equal(a4.reasonCode, 3);
    assert.equal(a4.sessionPresent, false);
    assert.equal(a5.reasonCode, ReasonCode.SERVER_BUSY);
    assert.equal(a5.sessionPresent, false);
    await c4.expectClosed();
    await c5.expectClosed();
    return fresh;
  } catch (error) {
    await fresh.close();
    throw error;
  }
}

/**
 * Logs `clientId` in on `node` at 5.0 resuming its session ({@linkcode resumeConnect}); tries
 * again every 200 ms while refused as server busy (the node's store connection comes back on a
 * schedule of its own, after the bus's), 150 tries at most (a guard, not a bound).
 *
 * @param node the node
 * @param clientId the client id
 * @returns the accepted connection
 */
export async function resumeOn(node: Node, clientId: string): Promise<TestClient> {
  for (let attempt = 1;; attempt++) {
    const client = await TestClient.open(node.port, { protocolVersion: 5 });
    const connack = await client.handshake(resumeConnect(clientId, 5));
    if (connack.reasonCode === 0) return client;
    assert.equal(connack.reasonCode, ReasonCode.SERVER_BUSY);
    await client.expectClosed();
    await client.close();
    assert.ok(attempt < 150, `${clientId} accepted again`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

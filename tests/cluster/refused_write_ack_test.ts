// A write the store refuses is not acknowledged: node A holds the session of `mover` and queues a
// QoS 1 message for it, its store write held back by a TCP proxy (A alive, but silent to Redis).
// The client of `mover` logs in on B, which claims the session and waits for A's handoff past its
// bound (`maxWait`), then loads it without A's last write and becomes its writer. When A's write
// reaches Redis, the store refuses its operations on `mover` as another node's (`wo`). Before, the
// publisher still got its PUBACK for a message stored for none of the subscribers the broker took
// it for. Now the refusal withholds it: a 5.0 publisher gets PUBACK 0x80 Unspecified error
// [MQTT-3.4.2-1], a 3.1.1 publisher has its connection closed without one and sends the message
// again on reconnecting [MQTT-4.4.0-1]; once sent again it is acknowledged and `mover` gets it
// once on B. Real processes and redis-server.
import assert from "node:assert/strict";
import { publishPacket, TestClient, text } from "../_helpers/test_client.ts";
import { PacketType, ReasonCode } from "../../src/packet/constants.ts";
import { TAKEN_REFUSAL_TEXT } from "../../src/broker/store_refusal.ts";
import { Inbox, ownedBy } from "./_nodes.ts";
import { resumeConnect } from "./_resume.ts";
import { type MoveNodes, QUEUE_WRITE, startMoveNodes, writerOf } from "./_move_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/**
 * Leaves `mover` on A, subscribed to `chain/#` at QoS 1 and offline, sends `chain/1` from
 * `publisher` (on A, at `qos`) with A's store write of it held back, and logs `mover` in on B, which loads
 * the session without that write once its wait for A's handoff ran out. Returns `mover`'s client
 * on B and the release of A's write.
 */
async function moveWithoutLastWrite(
  nodes: MoveNodes,
  prefix: string,
  publisher: TestClient,
  qos: 1 | 2 = 1,
): Promise<{ mover: TestClient; release: () => void }> {
  const { a, b, redis, proxy } = nodes;
  {
    await using mover = await Inbox.connect(a, "mover", { cleanSession: false });
    assert.deepEqual(await mover.client.subscribe([{ topic: "chain/#", qos: 1 }]), [1]);
  }
  const held = proxy.holdRequestsFrom(QUEUE_WRITE);
  await publisher.send(publishPacket("chain/1", "last", { qos, packetId: 1 }));
  await held.reached;
  const mover = await TestClient.open(b.port, { protocolVersion: 5 });
  try {
    // B waits for A's handoff (held behind the write) at most its maxWait, then loads.
    const connack = await mover.handshake(resumeConnect("mover", 5));
    assert.equal(connack.reasonCode, ReasonCode.SUCCESS);
    assert.equal(connack.sessionPresent, true);
    await ownedBy(redis, prefix, "mover", "b");
    assert.equal(await writerOf(redis, prefix, "mover"), "b", "B's read took the writer mark");
  } catch (error) {
    await mover.close();
    held.release();
    throw error;
  }
  return { mover, release: held.release };
}

/**
 * Sends `chain/1` again (with `dup`, as on reconnecting) and reads its PUBACK: accepted. (A 5.0
 * publisher on a cluster node gets 0x10 No matching subscribers when every subscriber is on
 * another node: the code counts this node's subscribers only.)
 */
async function sendAgain(publisher: TestClient, id: number, dup = false): Promise<void> {
  await publisher.send(publishPacket("chain/1", "last", { qos: 1, packetId: id, dup }));
  const puback = await publisher.expect(PacketType.PUBACK);
  assert.equal(puback.packetId, id);
  assert.ok(
    puback.reasonCode === undefined || puback.reasonCode === ReasonCode.SUCCESS ||
      puback.reasonCode === ReasonCode.NO_MATCHING_SUBSCRIBERS,
    `accepted, not refused (reason code ${puback.reasonCode})`,
  );
}

/** `mover` on B gets `chain/1` once, and nothing more, still connected. */
async function receivedOnce(mover: TestClient): Promise<void> {
  const got = await mover.expect(PacketType.PUBLISH);
  assert.equal(`${got.topic}=${text(got)}`, "chain/1=last");
  if (got.qos > 0) await mover.send({ type: PacketType.PUBACK, packetId: got.packetId! });
  await mover.expectNothing(1000);
  assert.ok(!mover.ended, "mover stays connected");
}

Deno.test(
  "cluster: a 5.0 publisher whose message's store write was refused as another node's gets PUBACK 0x80, not success, and its message sent again reaches the moved session once [MQTT-3.4.2-1]",
  opts,
  async () => {
    const prefix = "rw5:";
    // B's wait for A's handoff (maxWait: node timeout + heartbeat) is short; A's is the default.
    await using nodes = await startMoveNodes(prefix, { b: { nodeTimeout: 3 } });
    await using publisher = await TestClient.open(nodes.a.port, { protocolVersion: 5 });
    await publisher.handshake({ clientId: "pub", protocolVersion: 5 });
    const { mover, release } = await moveWithoutLastWrite(nodes, prefix, publisher);
    await using _mover = mover;
    release();
    const puback = await publisher.expect(PacketType.PUBACK);
    assert.equal(puback.packetId, 1);
    assert.equal(
      puback.reasonCode,
      ReasonCode.UNSPECIFIED_ERROR,
      "no success for a message the store refused for a subscriber's session",
    );
    // Not the outage's "the broker cannot store messages now": the store works.
    assert.equal(puback.properties?.reasonString, TAKEN_REFUSAL_TEXT);
    assert.ok(!publisher.ended, "the publisher stays connected");
    await sendAgain(publisher, 2);
    await receivedOnce(mover);
  },
);

Deno.test(
  "cluster: a 3.1.1 publisher whose message's store write was refused as another node's is closed without PUBACK, and its message sent again on reconnecting reaches the moved session once [MQTT-4.4.0-1]",
  opts,
  async () => {
    const prefix = "rw4:";
    await using nodes = await startMoveNodes(prefix, { b: { nodeTimeout: 3 } });
    const session = { clientId: "pub", clean: false, protocolVersion: 4 } as const;
    const publisher = await TestClient.open(nodes.a.port, { protocolVersion: 4 });
    let mover: TestClient;
    let release: () => void;
    try {
      await publisher.handshake(session);
      ({ mover, release } = await moveWithoutLastWrite(nodes, prefix, publisher));
      release();
      // Closed without PUBACK: the client must send the message again [MQTT-4.4.0-1].
      await publisher.expectClosed();
      // Said as what it is, not as a store that cannot be written.
      assert.match(
        nodes.a.log(),
        /Closing connection from [^\n]* \(pub\): a message it sent was refused in the store for a subscriber's session another node writes now/,
      );
    } finally {
      await publisher.close();
    }
    await using _mover = mover;
    await using again = await TestClient.open(nodes.a.port, { protocolVersion: 4 });
    const connack = await again.handshake(session);
    assert.equal(connack.sessionPresent, true);
    await sendAgain(again, 1, true);
    await receivedOnce(mover);
  },
);

Deno.test(
  "cluster: a 3.1.1 QoS 2 publisher whose message's store write was refused as another node's is closed without PUBREC, and its message sent again with the same packet id is routed again (not taken for a duplicate) and reaches the moved session [MQTT-4.3.3-9]",
  opts,
  async () => {
    const prefix = "rw2:";
    await using nodes = await startMoveNodes(prefix, { b: { nodeTimeout: 3 } });
    const session = { clientId: "pub", clean: false, protocolVersion: 4 } as const;
    const publisher = await TestClient.open(nodes.a.port, { protocolVersion: 4 });
    let mover: TestClient;
    let release: () => void;
    try {
      await publisher.handshake(session);
      ({ mover, release } = await moveWithoutLastWrite(nodes, prefix, publisher, 2));
      release();
      // Closed without PUBREC: the client sends it again [MQTT-4.3.3-1].
      await publisher.expectClosed();
    } finally {
      await publisher.close();
    }
    await using _mover = mover;
    await using again = await TestClient.open(nodes.a.port, { protocolVersion: 4 });
    const connack = await again.handshake(session);
    assert.equal(connack.sessionPresent, true);
    // Before: its id still held, the message was taken for a duplicate (PUBREC, not routed).
    await again.send(publishPacket("chain/1", "last", { qos: 2, packetId: 1, dup: true }));
    const pubrec = await again.expect(PacketType.PUBREC);
    assert.equal(pubrec.packetId, 1);
    await again.send({ type: PacketType.PUBREL, packetId: 1 });
    assert.equal((await again.expect(PacketType.PUBCOMP)).packetId, 1);
    await receivedOnce(mover);
  },
);

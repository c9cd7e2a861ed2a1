// A single session move whose new owner dies before the old owner's handoff: a login on B claims
// the session from A and waits for A's handoff; B is killed (SIGKILL) before it came. The node
// adopting B's sessions (C: A is paused meanwhile, so that it does not adopt them itself) must
// wait for A's handoff before it loads the session, while A lives: A's last writes (a QoS 1
// message its publisher got a PUBACK for, a subscription it answered with a SUBACK) are then in
// what it loads, and the client resumes them with Session Present 1 [MQTT-3.1.2-4], one owner at
// a time [MQTT-3.1.4-3]. Before, the adopter loaded at once, took the writer mark from A, and
// A's writes were refused by the store as another node's while A had acknowledged them. Real
// processes and redis-server; A's store writes held back by a TCP proxy.
import assert from "node:assert/strict";
import { TestClient, text } from "../_helpers/test_client.ts";
import { PacketType, ReasonCode } from "../../src/packet/constants.ts";
import { adopted, Inbox, type Node, ownedBy, retry, until } from "./_nodes.ts";
import { resumeConnect } from "./_resume.ts";
import {
  leaveOnA,
  queue,
  registered,
  startMoveNodes,
  storedFilter,
  subscribeHeldOnA,
} from "./_move_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/**
 * Pauses A (SIGSTOP), kills B, and waits until B was reaped and C adopted its session of `mover`
 * or waits for A's handoff before loading it; then lets A go on (SIGCONT).
 */
async function killBWhileAPaused(
  nodes: { a: Node; b: Node; c: Node; redis: Parameters<typeof registered>[0] },
  prefix: string,
): Promise<void> {
  const { a, b, c, redis } = nodes;
  a.process.kill("SIGSTOP");
  try {
    await b.crash();
    await retry(async () => !(await registered(redis, prefix, "b")), "B reaped");
    await until(
      () => adopted(c.log(), "mover") || /still writes the session of mover/.test(c.log()),
      "C adopting the session",
    );
  } finally {
    a.process.kill("SIGCONT");
  }
}

Deno.test(
  "cluster: a single move whose new owner dies before the old owner's handoff keeps the message the old owner acknowledged, resumed on the adopter with Session Present 1 [MQTT-3.1.2-4] [MQTT-3.1.4-3]",
  opts,
  async () => {
    const prefix = "sm1:";
    // B is killed: a short node timeout, so that C finds it dead soon.
    await using nodes = await startMoveNodes(prefix, { b: { nodeTimeout: 1 } });
    const { redis, proxy, a, b, c } = nodes;
    await using publisher = await Inbox.connect(a, "pub");
    const { acked, release } = await leaveOnA(a, proxy, publisher);
    acked.catch(() => {}); // awaited below
    // B claims the session from A; A's handoff waits for its held write.
    {
      await using early = await TestClient.open(b.port, { protocolVersion: 5 });
      early.handshake(resumeConnect("mover", 5)).catch(() => {});
      await ownedBy(redis, prefix, "mover", "b");
      await killBWhileAPaused(nodes, prefix);
    }
    // A's write goes through now: its publisher is acknowledged, then A hands over.
    release();
    await acked;
    await using late = await TestClient.open(c.port, { protocolVersion: 5 });
    const connack = await late.handshake(resumeConnect("mover", 5));
    assert.equal(connack.reasonCode, ReasonCode.SUCCESS);
    assert.equal(connack.sessionPresent, true, "the client resumes the session on C");
    assert.deepEqual(await queue(late, 2), ["chain/0=first", "chain/1=last"]);
    assert.match(
      c.log(),
      /node a still writes the session of mover, adopted from node b: waiting for its handoff/,
    );
    assert.doesNotMatch(c.log(), /did not hand the session of mover over/);
    assert.ok(!late.socketEnded, "the client stays connected");
  },
);

Deno.test(
  "cluster: a single move whose new owner dies before the old owner's handoff keeps a subscription the old owner acknowledged with SUBACK, resumed on the old owner with Session Present 1 [MQTT-3.1.2-4] [MQTT-3.1.4-3]",
  opts,
  async () => {
    const prefix = "sm2:";
    await using nodes = await startMoveNodes(prefix, { b: { nodeTimeout: 1 } });
    const { redis, proxy, a, b, c } = nodes;
    // mover subscribes to extra/# on A: A's store write of it is held back, its SUBACK waits,
    // and A's fence (before it closes mover's connection and hands over) is held back too.
    await using held = await subscribeHeldOnA(a, proxy, prefix);
    const { suback, written, fence } = held;
    {
      await using early = await TestClient.open(b.port, { protocolVersion: 5 });
      early.handshake(resumeConnect("mover", 5)).catch(() => {});
      await ownedBy(redis, prefix, "mover", "b");
      await fence.reached;
      await killBWhileAPaused(nodes, prefix);
    }
    // A's write goes through now, and mover has its SUBACK; then A hands the session over.
    written.release();
    assert.deepEqual(await suback, [1], "mover's subscription acknowledged on A");
    fence.release();
    // The client comes back to A: A claims the session from C, which hands it over.
    await until(() => adopted(c.log(), "mover"), "C holding the session");
    await using late = await TestClient.open(a.port, { protocolVersion: 5 });
    const connack = await late.handshake(resumeConnect("mover", 5));
    assert.equal(connack.reasonCode, ReasonCode.SUCCESS);
    assert.equal(connack.sessionPresent, true, "the client resumes the session on A");
    assert.ok(await storedFilter(redis, prefix, "mover", "extra/#"), "the subscription is stored");
    // The session has it: a message published on C to extra/1 reaches its client on A.
    await using other = await Inbox.connect(c, "other");
    await other.client.publish("extra/1", "after", { qos: 1 });
    const p = await late.expect(PacketType.PUBLISH);
    assert.equal(`${p.topic}=${text(p)}`, "extra/1=after");
    assert.match(c.log(), /node a still writes the session of mover, adopted from node b/);
    assert.ok(!late.socketEnded, "the client stays connected");
  },
);

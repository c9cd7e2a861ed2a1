// A chain of session moves: a login on B claims the session from A and waits for A's handoff, and
// before A's handoff comes a login on C claims it from B. What A wrote last (a QoS 1 message
// queued for the session, its publisher acknowledged) must be in the session C resumes, Session
// Present 1 [MQTT-3.1.2-4], with one owner at a time [MQTT-3.1.4-3]. Before, B handed over at once
// (it held nothing yet), C's claim named B the session's writer, and A's last write was refused
// by the store as another node's (`wo`) while its publisher got its PUBACK: lost. Real processes
// and redis-server; A's store writes held back by a TCP proxy.
import assert from "node:assert/strict";
import type { RedisServer } from "../_helpers/redis.ts";
import { TestClient, text } from "../_helpers/test_client.ts";
import { PacketType, ReasonCode } from "../../src/packet/constants.ts";
import { Inbox, Node, retry, routeReady, until } from "./_nodes.ts";
import { resumeConnect } from "./_resume.ts";
import {
  assertResumed,
  claimOn,
  leaveOnA,
  queue,
  QUEUE_WRITE,
  registered,
  startMoveNodes,
  storedFilter,
  subscribeHeldOnA,
  withAdmin,
  writerOf,
} from "./_move_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/** The filters Redis holds as `node`'s interest. */
function interest(redis: RedisServer, prefix: string, node: string): Promise<string[]> {
  return withAdmin(redis, (r) => r.smembers(`${prefix}interest:${node}`));
}

/** How many outbound entries the store holds for `clientId`'s session. */
function queued(redis: RedisServer, prefix: string, clientId: string): Promise<number> {
  return withAdmin(redis, (r) => r.hlen(`${prefix}store:out:${clientId}`));
}

/** Reads PUBLISH packets, as `topic=payload`, until `last` came. */
async function queueUntil(client: TestClient, last: string): Promise<string[]> {
  const got: string[] = [];
  while (!got.includes(last)) {
    const p = await client.expect(PacketType.PUBLISH);
    got.push(`${p.topic}=${text(p)}`);
  }
  return got;
}

Deno.test(
  "cluster: a session claimed by a third node while its second node waits for the first's handoff keeps the first node's last acknowledged message [MQTT-3.1.2-4] [MQTT-3.1.4-3]",
  opts,
  async () => {
    await using nodes = await startMoveNodes("ch1:");
    const { proxy, a, b } = nodes;
    await using publisher = await Inbox.connect(a, "pub");
    const { acked, release } = await leaveOnA(a, proxy, publisher);
    // B claims the session from A; A's handoff waits for its held write.
    await using early = await claimOn(nodes, "b");
    // C claims it from B before A handed over.
    await using late = await claimOn(nodes, "c");
    // A's write goes through now: its publisher is acknowledged.
    release();
    await acked;
    await assertResumed(late.answer, "C");
    assert.deepEqual(await queue(late.client, 2), ["chain/0=first", "chain/1=last"]);
    // B's client, whose login came first, had done nothing yet: refused as busy, to try again.
    const refused = await early.answer;
    assert.equal(refused.reasonCode, ReasonCode.SERVER_BUSY);
    await early.client.expectClosed();
    assert.match(b.log(), /restored here to be handed on/);
    assert.ok(!late.client.socketEnded, "C's client stays connected");
  },
);

Deno.test(
  "cluster: a chain of moves whose first node dies before its handoff gives the third node what the first was sent and had not stored [MQTT-3.1.2-4] [MQTT-3.1.4-3]",
  opts,
  async () => {
    // A is killed: a short node timeout, so that B finds it dead soon.
    await using nodes = await startMoveNodes("ch2:", { a: { nodeTimeout: 1 } });
    const { prefix, redis, proxy, a, b } = nodes;
    {
      await using mover = await Inbox.connect(a, "mover", { cleanSession: false });
      assert.deepEqual(await mover.client.subscribe([{ topic: "chain/#", qos: 1 }]), [1]);
    }
    // Published on B and forwarded to A: chain/0 stored by A, chain/1 read by A (its publisher
    // acknowledged once it was in A's stream) and not stored: A's write of it is held back.
    await using publisher = await Inbox.connect(b, "pub");
    await retry(async () => {
      await publisher.client.publish("chain/0", "first", { qos: 1 });
      return (await queued(redis, prefix, "mover")) > 0;
    }, "chain/0 stored by A");
    const held = proxy.holdRequestsFrom(QUEUE_WRITE);
    await publisher.client.publish("chain/1", "last", { qos: 1 });
    await held.reached;
    // B claims the session from A, C claims it from B, then A dies before its handoff.
    await using early = await claimOn(nodes, "b");
    await using late = await claimOn(nodes, "c");
    await a.crash();
    await assertResumed(late.answer, "C");
    // chain/0 may come more than once (the probe above), chain/1 after it.
    const got = await queueUntil(late.client, "chain/1=last");
    assert.ok(got.every((m) => m === "chain/0=first" || m === "chain/1=last"), String(got));
    assert.equal((await early.answer).reasonCode, ReasonCode.SERVER_BUSY);
    assert.match(b.log(), /restored here to be handed on/);
    assert.ok(!late.client.socketEnded, "C's client stays connected");
  },
);

Deno.test(
  "cluster: a chain of moves whose second node's client left before the first node's handoff keeps the first node's last acknowledged message [MQTT-3.1.2-4]",
  opts,
  async () => {
    await using nodes = await startMoveNodes("ch3:");
    const { proxy, a } = nodes;
    await using publisher = await Inbox.connect(a, "pub");
    const { acked, release } = await leaveOnA(a, proxy, publisher);
    // B's client asks for the session and leaves while B waits for A's handoff.
    {
      await using early = await claimOn(nodes, "b");
      await early.client.close();
      await early.answer.catch(() => undefined);
    }
    await using late = await claimOn(nodes, "c");
    release();
    await acked;
    await assertResumed(late.answer, "C");
    assert.deepEqual(await queue(late.client, 2), ["chain/0=first", "chain/1=last"]);
    assert.ok(!late.client.socketEnded, "C's client stays connected");
  },
);

Deno.test(
  "cluster: a chain of moves hands the third node what the second node kept for the session after the first let go of it [MQTT-3.1.2-4]",
  opts,
  async () => {
    await using nodes = await startMoveNodes("ch4:");
    const { prefix, redis, proxy, a, c } = nodes;
    await using publisher = await Inbox.connect(a, "pub");
    const { acked, release } = await leaveOnA(a, proxy, publisher);
    // B announces the session's filters and claims it from A; A lets go of it and withdraws its
    // interest, its handoff waiting for its held write.
    await using early = await claimOn(nodes, "b");
    await retry(
      async () => !(await interest(redis, prefix, "a")).includes("chain/#"),
      "A's withdrawal",
    );
    // C heard of the withdrawal once it routes a later announcement of A's (P ctl is read in order).
    await using probe = await Inbox.connect(a, "probe");
    await probe.client.subscribe([{ topic: "probe", qos: 0 }]);
    await using other = await Inbox.connect(c, "other");
    await routeReady(other.client, probe, "probe");
    // Published on C now, chain/2 goes to B only, which keeps it for the session on its way.
    await other.client.publish("chain/2", "kept", { qos: 1 });
    await using late = await claimOn(nodes, "c");
    release();
    await acked;
    await assertResumed(late.answer, "C");
    assert.deepEqual(await queue(late.client, 3), [
      "chain/0=first",
      "chain/1=last",
      "chain/2=kept",
    ]);
    assert.equal((await early.answer).reasonCode, ReasonCode.SERVER_BUSY);
    assert.ok(!late.client.socketEnded, "C's client stays connected");
  },
);

Deno.test(
  "cluster: a chain of moves keeps a subscription the first node acknowledged with SUBACK before its handoff [MQTT-3.1.2-4]",
  opts,
  async () => {
    await using nodes = await startMoveNodes("ch5:");
    const { prefix, redis, proxy, a, c } = nodes;
    // mover subscribes to extra/# on A: A's store write of it is held back, its SUBACK waits,
    // and A's fence (before it closes mover's connection and hands over) is held back too.
    await using held = await subscribeHeldOnA(a, proxy, prefix);
    const { suback, written, fence } = held;
    // B claims the session from A, C claims it from B before A handed over.
    await using early = await claimOn(nodes, "b");
    await fence.reached;
    await using late = await claimOn(nodes, "c");
    // A's write goes through now, and mover has its SUBACK; then A hands the session over.
    written.release();
    assert.deepEqual(await suback, [1], "mover's subscription acknowledged on A");
    fence.release();
    await assertResumed(late.answer, "C");
    assert.ok(await storedFilter(redis, prefix, "mover", "extra/#"), "the subscription is stored");
    // The session on C has it: a message published on C to extra/1 reaches its client.
    await using other = await Inbox.connect(c, "other");
    await other.client.publish("extra/1", "after", { qos: 1 });
    const p = await late.client.expect(PacketType.PUBLISH);
    assert.equal(`${p.topic}=${text(p)}`, "extra/1=after");
    assert.equal((await early.answer).reasonCode, ReasonCode.SERVER_BUSY);
    assert.ok(!late.client.socketEnded, "C's client stays connected");
  },
);

Deno.test(
  "cluster: a chain of moves whose second node dies before it hands on waits for the first node's handoff and keeps its last acknowledged message [MQTT-3.1.2-4] [MQTT-3.1.4-3]",
  opts,
  async () => {
    // B is killed: a short node timeout, so that C finds it dead soon.
    await using nodes = await startMoveNodes("ch6:", { b: { nodeTimeout: 1 } });
    const { prefix, redis, proxy, a, b, c } = nodes;
    await using publisher = await Inbox.connect(a, "pub");
    const { acked, release } = await leaveOnA(a, proxy, publisher);
    // B claims the session from A, C claims it from B; B dies while it waits for A's handoff.
    await using _early = await claimOn(nodes, "b");
    await using late = await claimOn(nodes, "c");
    await b.crash();
    // C found B dead (B reaped) and went on: with what the store held, or waiting for A.
    await retry(async () => !(await registered(redis, prefix, "b")), "B reaped");
    await until(
      () => /loaded from the shared store|still writes it/.test(c.log()),
      "C going on after B's death",
    );
    // A's write goes through now: its publisher is acknowledged.
    release();
    await acked;
    await assertResumed(late.answer, "C");
    assert.deepEqual(await queue(late.client, 2), ["chain/0=first", "chain/1=last"]);
    assert.match(
      c.log(),
      /node b died before handing the session of mover on; node a still writes it/,
    );
    assert.ok(!late.client.socketEnded, "C's client stays connected");
  },
);

Deno.test(
  "cluster: a chain of four moves (D claims from C, which claimed from B before A's handoff) keeps the first node's last acknowledged message, the second and third nodes' logins refused [MQTT-3.1.2-4] [MQTT-3.1.4-3]",
  opts,
  async () => {
    await using nodes = await startMoveNodes("ch7:");
    const { prefix, redis, proxy, a, b, c } = nodes;
    await using d = await Node.start(redis, { prefix, nodeId: "d" });
    await using publisher = await Inbox.connect(a, "pub");
    const { acked, release } = await leaveOnA(a, proxy, publisher);
    await using early = await claimOn(nodes, "b");
    await using middle = await claimOn(nodes, "c");
    await using late = await claimOn(nodes, "d", { node: d });
    release();
    await acked;
    await assertResumed(late.answer, "D");
    assert.deepEqual(await queue(late.client, 2), ["chain/0=first", "chain/1=last"]);
    // B and C restored it to hand it on, one after the other; their clients were refused.
    for (const claim of [early, middle]) {
      assert.equal((await claim.answer).reasonCode, ReasonCode.SERVER_BUSY);
      await claim.client.expectClosed();
    }
    assert.match(b.log(), /restored here to be handed on/);
    assert.match(c.log(), /restored here to be handed on/);
    assert.ok(!late.client.socketEnded, "D's client stays connected");
  },
);

Deno.test(
  "cluster: a chain of moves whose third node leaves before the second hands on leaves the session on one node with the first node's last acknowledged message [MQTT-3.1.2-4] [MQTT-3.1.4-3]",
  opts,
  async () => {
    await using nodes = await startMoveNodes("ch8:");
    const { prefix, redis, proxy, a, b, c } = nodes;
    await using publisher = await Inbox.connect(a, "pub");
    const { acked, release } = await leaveOnA(a, proxy, publisher);
    // (Awaited below; an assertion failing before must not leave it rejected unobserved.)
    acked.catch(() => {});
    await using claim = await claimOn(nodes, "b");
    const early = claim.client;
    {
      await using _late = await claimOn(nodes, "c");
      // C leaves while B waits for A's handoff: its sessions are released, and adopted by A or
      // B (B's takeover of C's claim still waits for B's login).
      assert.equal(await c.stop(), 0);
    }
    // C, leaving, did not read the session as its login's wait for B was cut short: the read
    // would have taken the writer mark from A, whose held write of `chain/1` is then refused,
    // and ended the chain the adopter follows to wait for A's handoff.
    assert.equal(await writerOf(redis, prefix, "mover"), "a", "A still writes the session");
    release();
    await acked;
    const answer = await claim.answer;
    if (answer.reasonCode === ReasonCode.SUCCESS) {
      // B adopted the session before its login looked at the owner: the login resumes it, and
      // B's takeover, done waiting, keeps it here rather than closing the client as taken over
      // by C, which let go of it.
      assert.equal(answer.sessionPresent, true, "B resumes the session");
      // (Done once B's takeover handling kept the session, or evicted it as before.)
      await until(
        () => /is this node's again|continues on node c/.test(b.log()),
        "B's takeover handling done",
      );
      assert.deepEqual(await queue(early, 2), ["chain/0=first", "chain/1=last"]);
      await publisher.client.publish("chain/2", "after", { qos: 1 });
      assert.deepEqual(await queue(early, 1), ["chain/2=after"]);
      assert.ok(!early.socketEnded, "B's client stays connected");
    } else {
      // Owned by nobody as B's login looked, or adopted by A: refused, to try again.
      assert.equal(answer.reasonCode, ReasonCode.SERVER_BUSY);
      await early.expectClosed();
      await retry(async () => {
        await using again = await TestClient.open(b.port, { protocolVersion: 5 });
        const connack = await again.handshake(resumeConnect("mover", 5));
        if (connack.reasonCode !== ReasonCode.SUCCESS) return false;
        assert.equal(connack.sessionPresent, true, "B resumes the session");
        assert.deepEqual(await queue(again, 2), ["chain/0=first", "chain/1=last"]);
        return true;
      }, "the session resumed on B");
    }
  },
);

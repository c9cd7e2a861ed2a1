// An adopter's wait for a chain's writer outlasts a slow Redis answer: A owns the session of
// `mover`, B claims it (the writer mark stays with A until its handoff, held back here behind A's
// store write of a QoS 1 message) and is killed; C adopts B's sessions and must wait while the
// mark is with A and A lives (`ClusterBus.chainWriter`). C reaches Redis through a TCP proxy that
// slows its answers to that look past the 1 s a Redis step may take. Before, the unanswered look
// read as "the mark moved": C loaded at once, without A's last write (which the store then refused
// as C's). Now C asks again until the mark moves (or its bound), and the client resumes on C with
// A's last message [MQTT-3.1.2-4], one owner at a time [MQTT-3.1.4-3]. Real processes, redis-server.
import assert from "node:assert/strict";
import { TestClient } from "../_helpers/test_client.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { ReasonCode } from "../../src/packet/constants.ts";
import { adopted, Inbox, Node, ownedBy, retry, until } from "./_nodes.ts";
import { resumeConnect } from "./_resume.ts";
import { leaveOnA, queue, registered } from "./_move_nodes.ts";
import { StallProxy } from "./_stall_proxy.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: an adopter waiting for the handoff of a chain's writer does not take a slow Redis answer for the mark moved, and the client resumes with the writer's last message [MQTT-3.1.2-4] [MQTT-3.1.4-3]",
  opts,
  async () => {
    const prefix = "cws:";
    await using redis = await RedisServer.start();
    await using proxyA = new StallProxy(redis.port);
    await using proxyC = new StallProxy(redis.port);
    await using a = await Node.start(proxyA, { prefix, nodeId: "a" });
    // B is killed: a short node timeout, so that C finds it dead soon.
    await using b = await Node.start(redis, { prefix, nodeId: "b", nodeTimeout: 1 });
    await using c = await Node.start(proxyC, { prefix, nodeId: "c" });
    await using publisher = await Inbox.connect(a, "pub");
    const { acked, release } = await leaveOnA(a, proxyA, publisher);
    acked.catch(() => {}); // awaited below
    // C's look at the chain (`HGET <prefix>store:handing`) answered at 3 bytes/s: over 2 s.
    const slow = proxyC.throttleRepliesFrom(`${prefix}store:handing`, 3);
    try {
      {
        await using early = await TestClient.open(b.port, { protocolVersion: 5 });
        early.handshake(resumeConnect("mover", 5)).catch(() => {});
        await ownedBy(redis, prefix, "mover", "b");
        // A paused, so that C (not A) adopts B's sessions.
        a.process.kill("SIGSTOP");
        try {
          await b.crash();
          await retry(async () => !(await registered(redis, prefix, "b")), "B reaped");
          await slow.reached;
          await until(
            () => adopted(c.log(), "mover") || /asking again/.test(c.log()),
            "C adopting the session, or asking again who writes it",
          );
        } finally {
          a.process.kill("SIGCONT");
        }
      }
      assert.ok(!adopted(c.log(), "mover"), "C waits: the mark may still be with A");
      // A's write goes through now: its publisher is acknowledged, then A hands over.
      release();
      await acked;
    } finally {
      slow.release();
    }
    await until(() => adopted(c.log(), "mover"), "C adopting the session");
    await using late = await TestClient.open(c.port, { protocolVersion: 5 });
    const connack = await late.handshake(resumeConnect("mover", 5));
    assert.equal(connack.reasonCode, ReasonCode.SUCCESS);
    assert.equal(connack.sessionPresent, true, "the client resumes the session on C");
    assert.deepEqual(await queue(late, 2), ["chain/0=first", "chain/1=last"]);
    assert.ok(!late.socketEnded, "the client stays connected");
  },
);

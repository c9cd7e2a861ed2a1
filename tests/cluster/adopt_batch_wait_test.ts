// One adopted session waiting for a chain's writer does not hold up the others of its batch: B
// owns the persistent session of `other`, and claimed the session of `mover` from A, whose
// handoff is held back behind A's store write of a QoS 1 message; B is killed. C adopts both, and
// waits for A's handoff before it loads `mover` (the writer mark is still with A, which lives).
// Before, the whole batch waited (up to `maxWait`), and the client of `other` could not log in on
// C meanwhile. Now `other` is adopted at once and its client resumes it with Session Present 1
// [MQTT-3.1.2-4] while `mover` still waits; once A handed over, `mover` resumes with A's last
// message, one owner at a time [MQTT-3.1.4-3]. Real processes and redis-server.
import assert from "node:assert/strict";
import { TestClient } from "../_helpers/test_client.ts";
import { ReasonCode } from "../../src/packet/constants.ts";
import { adopted, Inbox, ownedBy, retry, until } from "./_nodes.ts";
import { resumeConnect } from "./_resume.ts";
import { leaveOnA, queue, registered, startMoveNodes } from "./_move_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: a session adopted in the same batch as one waiting for a chain's writer is adopted at once, and its client resumes it with Session Present 1 while the other waits [MQTT-3.1.2-4] [MQTT-3.1.4-3]",
  opts,
  async () => {
    const prefix = "abw:";
    // B is killed: a short node timeout, so that C finds it dead soon.
    await using nodes = await startMoveNodes(prefix, { b: { nodeTimeout: 1 } });
    const { redis, proxy, a, b, c } = nodes;
    {
      await using other = await Inbox.connect(b, "other", { cleanSession: false });
      assert.deepEqual(await other.client.subscribe([{ topic: "other/#", qos: 1 }]), [1]);
    }
    await using publisher = await Inbox.connect(a, "pub");
    const { acked, release } = await leaveOnA(a, proxy, publisher);
    acked.catch(() => {}); // awaited below
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
          await until(
            () => /node a still writes the session of mover, adopted from node b/.test(c.log()),
            "C waiting for A's handoff of mover",
          );
        } finally {
          a.process.kill("SIGCONT");
        }
      }
      // A's handoff is still held back: mover waits, other does not.
      await until(() => adopted(c.log(), "other"), "C adopting the session of other");
      assert.ok(!adopted(c.log(), "mover"), "mover still waits for A's handoff");
      await using back = await TestClient.open(c.port, { protocolVersion: 5 });
      const connack = await back.handshake(resumeConnect("other", 5));
      assert.equal(connack.reasonCode, ReasonCode.SUCCESS);
      assert.equal(connack.sessionPresent, true, "other resumes its session on C");
      assert.ok(!adopted(c.log(), "mover"), "while mover still waits");
    } finally {
      release();
    }
    await acked;
    await until(() => adopted(c.log(), "mover"), "C adopting the session of mover");
    await using late = await TestClient.open(c.port, { protocolVersion: 5 });
    const connack = await late.handshake(resumeConnect("mover", 5));
    assert.equal(connack.reasonCode, ReasonCode.SUCCESS);
    assert.equal(connack.sessionPresent, true, "the client resumes the session on C");
    assert.deepEqual(await queue(late, 2), ["chain/0=first", "chain/1=last"]);
    assert.ok(!late.socketEnded, "the client stays connected");
  },
);

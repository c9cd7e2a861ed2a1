// A single move whose old owner crashes before its handoff and is restarted at once under its id,
// then whose new owner dies too: node B claims the session of `mover` from A (the writer mark
// stays with A until its handoff), A is killed before it (its store write held back by a TCP
// proxy) and started again as `a` (retiring its previous run), and B is killed. The node adopting
// B's sessions (C) must not wait for a handoff from A: the run that held the mark died, and the
// new one holds nothing of the session. Before, the mark kept A's id, A's liveness key (the new
// run's) said A lived, and C waited until `maxWait` — and with it every session it adopted from B,
// their clients refused as busy. Now a node reaped or leaving (the restart's retirement of its
// previous run too) passes its marks on as its handoff would: C loads at once, and the client
// resumes with Session Present 1 [MQTT-3.1.2-4], one owner at a time [MQTT-3.1.4-3]. Real
// processes (the new A paused while C adopts, so that C is the adopter) and redis-server.
import assert from "node:assert/strict";
import { TestClient } from "../_helpers/test_client.ts";
import { ReasonCode } from "../../src/packet/constants.ts";
import { adopted, Inbox, Node, ownedBy, retry, until } from "./_nodes.ts";
import { resumeConnect } from "./_resume.ts";
import { leaveOnA, queue, registered, startMoveNodes, withAdmin, writerOf } from "./_move_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: the adopter of a session does not wait for a handoff from a node restarted under the id of the dead previous owner, and the client resumes it with Session Present 1 [MQTT-3.1.2-4] [MQTT-3.1.4-3]",
  opts,
  async () => {
    const prefix = "rw1:";
    // B is killed: a short node timeout, so that C finds it dead soon. A and C keep the long
    // default: C's wait for a handoff (maxWait) is then far longer than this test.
    await using nodes = await startMoveNodes(prefix, { b: { nodeTimeout: 1 } });
    const { redis, proxy, a, b, c } = nodes;
    {
      await using publisher = await Inbox.connect(a, "pub");
      const { acked } = await leaveOnA(a, proxy, publisher);
      acked.catch(() => {}); // A dies before its write: never acknowledged
      // B claims the session from A; A's handover waits for its held write.
      await using early = await TestClient.open(b.port, { protocolVersion: 5 });
      early.handshake(resumeConnect("mover", 5)).catch(() => {});
      await ownedBy(redis, prefix, "mover", "b");
      assert.equal(await writerOf(redis, prefix, "mover"), "a", "A still writes the session");
      // B is paused (its login, waiting for A's handoff, does not load the session past its
      // bound) until it is killed below, and its liveness key kept meanwhile: it is found dead
      // only once A runs again.
      b.process.kill("SIGSTOP");
      await withAdmin(redis, (r) => r.set(`${prefix}alive:b`, "1", "PX", 600_000));
      await a.crash();
    }
    // A again, under its id: its start retires the previous run. Paused meanwhile (alive to the
    // others), so that C adopts B's sessions.
    await using again = await Node.start(redis, { prefix, nodeId: "a" });
    again.process.kill("SIGSTOP");
    try {
      assert.notEqual(await writerOf(redis, prefix, "mover"), "a", "the dead run's mark passed");
      await b.crash();
      await withAdmin(redis, (r) => r.del(`${prefix}alive:b`));
      await retry(async () => !(await registered(redis, prefix, "b")), "B reaped");
      await until(
        () => adopted(c.log(), "mover") || /still writes the session of mover/.test(c.log()),
        "C adopting the session, or waiting to",
      );
    } finally {
      again.process.kill("SIGCONT");
    }
    // (Waiting, C would load it only past its bound: maxWait, 30 s here.)
    assert.doesNotMatch(c.log(), /node a still writes the session of mover/);
    await until(() => adopted(c.log(), "mover"), "C adopting the session");
    await using late = await TestClient.open(c.port, { protocolVersion: 5 });
    const connack = await late.handshake(resumeConnect("mover", 5));
    assert.equal(connack.reasonCode, ReasonCode.SUCCESS);
    assert.equal(connack.sessionPresent, true, "the client resumes the session on C");
    assert.deepEqual(await queue(late, 1), ["chain/0=first"]);
    assert.ok(!late.socketEnded, "the client stays connected");
  },
);

// A node adopting a session it is still handing over itself: node B claims the session of
// `mover` from A (a login on B) and dies before A's handoff; A, still in its handover (its fence,
// whose answer from B never comes), adopts B's sessions, this one among them. Before, the
// adoption found the session still in A's core and kept it as held there, and the handover then
// evicted it: Redis named A the owner, and no node held the session until its client returned —
// a QoS 1 message published for it meanwhile, acknowledged to its publisher, was lost
// [MQTT-3.1.2-4]. Now the adoption waits for A's handover and loads what A stored: one owner at a
// time [MQTT-3.1.4-3], holding the session. Real processes and redis-server; A reaches Redis
// through a TCP proxy that holds back its fence until B is dead.
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";
import { TestClient } from "../_helpers/test_client.ts";
import { ReasonCode } from "../../src/packet/constants.ts";
import { adopted, Inbox, Node, ownedBy, retry, until } from "./_nodes.ts";
import { resumeConnect } from "./_resume.ts";
import { queue, withAdmin } from "./_move_nodes.ts";
import { StallProxy } from "./_stall_proxy.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: a node adopting a session it is still handing over holds it once handed over, and a QoS 1 message published meanwhile reaches its client [MQTT-3.1.2-4] [MQTT-3.1.4-3]",
  opts,
  async () => {
    const prefix = "ah1:";
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    await using a = await Node.start(proxy, { prefix, nodeId: "a" });
    // B is killed: a short node timeout, so that A finds it dead soon.
    await using b = await Node.start(redis, { prefix, nodeId: "b", nodeTimeout: 1 });
    {
      await using mover = await Inbox.connect(a, "mover", { cleanSession: false });
      assert.deepEqual(await mover.client.subscribe([{ topic: "chain/#", qos: 1 }]), [1]);
    }
    await using publisher = await Inbox.connect(a, "pub");
    await publisher.client.publish("chain/0", "before", { qos: 1 });
    // A's fence (the first step of its handover, before it evicts the session) is held back, and
    // with it what A sends to Redis after it on that connection (its heartbeats, its adoption).
    const fence = proxy.holdRequestsFrom(`publish\r\n$${prefix.length + 3}\r\n${prefix}ctl\r\n`);
    {
      await using early = await TestClient.open(b.port, { protocolVersion: 5 });
      early.handshake(resumeConnect("mover", 5)).catch(() => {});
      await ownedBy(redis, prefix, "mover", "b");
      await fence.reached;
      await b.crash();
      // B's liveness expired: A's heartbeat held behind the fence reaps it once let through,
      // while A's fence waits (for B's answer, which never comes).
      await retry(
        () => withAdmin(redis, async (r) => await r.exists(`${prefix}alive:b`) === 0),
        "B's liveness key expired",
      );
    }
    fence.release();
    await until(() => /mover continues on node b: handed over/.test(a.log()), "A's handover");
    await until(() => adopted(a.log(), "mover"), "A holding the session it adopted");
    assert.match(a.log(), /the session of mover is adopted here while this node hands it over/);
    // Published while the client is away: the session held on A keeps it.
    await publisher.client.publish("chain/1", "meanwhile", { qos: 1 });
    await using late = await TestClient.open(a.port, { protocolVersion: 5 });
    const connack = await late.handshake(resumeConnect("mover", 5));
    assert.equal(connack.reasonCode, ReasonCode.SUCCESS);
    assert.equal(connack.sessionPresent, true, "the client resumes the session on A");
    assert.deepEqual(await queue(late, 2), ["chain/0=before", "chain/1=meanwhile"]);
    assert.ok(!late.socketEnded, "the client stays connected");
  },
);

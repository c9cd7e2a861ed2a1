// A live node taken for dead: its process is stopped (SIGSTOP) longer than its node timeout, the
// other node reaps it and adopts its persistent session, and the node then goes on (SIGCONT),
// still holding the client's connection and the session. Its writes to the shared store are
// refused from the reap on (its incarnation is fenced), it closes its clients as taken over and
// registers again owning nothing; every message acknowledged to the publisher reaches the
// subscriber once it reconnects (to A again: its session comes back from B through the store).
// Real processes, redis-server.
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";
import { TestClient } from "../_helpers/test_client.ts";
import { assertDelivered, drain } from "./_arrivals.ts";
import { adopted, Inbox, Node, until } from "./_nodes.ts";
import { Publisher } from "./_publisher.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: a node stopped past its node timeout and resumed is fenced: its persistent session is adopted elsewhere, its store writes are refused, its client is closed with 0x8E, and every QoS 1 message acknowledged meanwhile reaches the client when it returns [MQTT-3.1.4-3] [MQTT-4.3.2-1]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const options = { prefix: "pn1:", yaml: ["max_queued_messages: 100000"] };
    // A is found dead 1 s after its last heartbeat; B only after 30 s (it replays and queues a
    // lot while A is away, and must not be taken for dead itself on a loaded machine).
    await using a = await Node.start(redis, { nodeId: "a", nodeTimeout: 1, ...options });
    await using b = await Node.start(redis, { nodeId: "b", ...options });
    const connect = {
      clientId: "sub",
      clean: false,
      protocolVersion: 5 as const,
      properties: { sessionExpiryInterval: 600 },
    };
    const seen: string[] = [];
    let resumed = false;
    try {
      await using first = await TestClient.connect(a.port, connect);
      await first.subscribe({ "pn/#": 1 });
      await using pub = await Inbox.connect(b, "pub");
      // The route from B to A is in place once a message published on B arrives at A's client.
      await pub.client.publish("pn/probe", "probe", { qos: 1 });
      for (let i = 0; i < 600 && !seen.includes("probe"); i++) {
        await drain(first, seen, () => seen.includes("probe"));
        if (!seen.includes("probe")) await pub.client.publish("pn/probe", "probe", { qos: 1 });
      }
      assert.ok(seen.includes("probe"), "the route from B to A");
      // Disposed before `pub`: no publish left pending when its connection closes.
      await using publisher = new Publisher(pub.client, "pn/x");
      let kicked: number | undefined;
      const reading = drain(first, seen, () => kicked !== undefined).then((code) => kicked = code);
      await until(publisher.reached(20), "messages published before the pause");
      // A stops (an event loop blocked for seconds): B reaps it and adopts the session, and the
      // messages published meanwhile are queued for it on B.
      a.process.kill("SIGSTOP");
      await until(() => adopted(b.log(), "sub"), "B adopting the session");
      await until(publisher.reached(publisher.sent + 50), "messages published while A is away");
      // A goes on, with the client's connection and the session as it had them, and learns it
      // was taken for dead (from a write refused, or at its next heartbeat).
      a.process.kill("SIGCONT");
      resumed = true;
      await until(publisher.reached(publisher.sent + 50), "messages published after A resumed");
      await reading;
      assert.equal(kicked, 0x8e, "A's client closed as taken over [MQTT-3.1.4-3]");
      // The client comes back to A, registered again as a new incarnation: the session moves from
      // B through the store, which the old incarnation did not write into after the reap (else
      // its deletions of the deliveries it numbered, acknowledged by the client, removed those
      // B had numbered alike: messages B had queued while A was away).
      await publisher.stop();
      const acked = publisher.sent;
      const last = () => seen.includes(String(acked - 1));
      // Like a client that reconnects: A, loaded, may be taken for dead again (its node timeout
      // is 1 s) and close this connection too; the client then comes back again.
      for (let attempt = 0; attempt < 20 && !last(); attempt++) {
        await using second = await TestClient.open(a.port, { protocolVersion: 5 });
        const connack = await second.handshake(connect).catch(() => undefined);
        if (connack === undefined || connack.reasonCode !== 0) continue;
        assert.equal(connack.sessionPresent, true);
        await drain(second, seen, last);
      }
      assertDelivered(seen, acked);
      // A's writes after the reap were refused (no outage: nothing was lost, the sessions moved).
      assert.match(a.log(), /Cluster: this node was taken for dead by the others/);
      assert.doesNotMatch(a.log(), /Cannot write to the store/);
      // Once per incarnation reaped (more than once only when A was taken for dead again).
      const stepDowns = a.log().match(/this node was taken for dead by the others/g) ?? [];
      const rejoins = a.log().match(/joined again as a new incarnation of this node/g) ?? [];
      assert.equal(stepDowns.length, rejoins.length);
    } finally {
      if (!resumed) a.process.kill("SIGCONT");
    }
  },
);

// Two logins of one client id reaching a node at the same time while another node has the
// session: the second does not take the first's place in the wait for the handover (it claimed
// from this node itself and would restore the session as read before the handover); the logins
// are prepared one after the other, and both are accepted. Real
// processes, redis-server, byte-level clients.
import assert from "node:assert/strict";
import { connectPacket, TestClient } from "../_helpers/test_client.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { Inbox, Node } from "./_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: two CONNECTs of one client id at once on a node while another node has its session are both accepted with the session present (prepared one after the other) [MQTT-3.1.4-3] [MQTT-3.1.2-4]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    // A node not answering a handover is taken for gone only after 30 s (the helper's default):
    // the logins here go on with A's handoff, not at the end of that wait.
    await using a = await Node.start(redis, { nodeId: "a", prefix: "cl1:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "cl1:" });
    {
      await using sub = await TestClient.connect(a.port, { clientId: "twice", clean: false });
      await sub.subscribe({ "t/twice": 1 });
      await sub.disconnect();
    }
    {
      await using pub = await Inbox.connect(a, "pub-twice");
      await pub.client.publish("t/twice", "queued", { qos: 1 });
    }
    await using first = await TestClient.open(b.port);
    await using second = await TestClient.open(b.port);
    // Both CONNECTs before either CONNACK: their preparations overlap on node b.
    const connect = connectPacket({ clientId: "twice", clean: false });
    await Promise.all([first.send(connect), second.send(connect)]);
    const [c1, c2] = await Promise.all([
      first.expect(PacketType.CONNACK, 60_000),
      second.expect(PacketType.CONNACK, 60_000),
    ]);
    assert.equal(c1.reasonCode, 0, "first login accepted");
    assert.equal(c2.reasonCode, 0, "second login accepted");
    assert.equal(c1.sessionPresent, true);
    assert.equal(c2.sessionPresent, true);
    assert.match(b.log(), /session of twice loaded from the shared store \(was on node a\)/);
  },
);

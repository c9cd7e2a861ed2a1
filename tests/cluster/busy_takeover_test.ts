// What a login refused as server busy because its claim got no answer in time does to the client
// connected on the session's previous owner. A session without subscriptions is claimed by the
// login's first call: once Redis runs it, the takeover it carries goes out, and that client is
// closed as taken over (5.0: DISCONNECT 0x8E) [MQTT-3.1.4-3] though the login was refused; the
// refusing node gives the ownership back, and the session waits in the store for the next try. A
// session with subscriptions is only read by the first call (its filters are announced before the
// claim): a refusal then leaves the client where it is. Real processes, a real redis-server
// holding scripts (`CLIENT PAUSE … WRITE`), byte-level 5.0 clients.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { connectPacket, subscribe5, TestClient } from "../_helpers/test_client.ts";
import { PacketType, ReasonCode } from "../../src/packet/constants.ts";
import { Node, until } from "./_nodes.ts";
import { resumeConnect } from "./_resume.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/**
 * Logs `clientId` in on `node`, resuming, while Redis holds scripts: refused as server busy (5.0
 * 0x89, Session Present 0) once the claim's call goes unanswered past the login's bound, the
 * connection closed [MQTT-3.2.2-6]. Redis still holds the call when this returns.
 */
async function refusedBusy(node: Node, clientId: string): Promise<void> {
  await using y = await TestClient.open(node.port, { protocolVersion: 5 });
  await y.send(connectPacket(resumeConnect(clientId, 5)));
  const connack = await y.expect(PacketType.CONNACK, 60_000);
  assert.equal(connack.reasonCode, ReasonCode.SERVER_BUSY);
  assert.equal(connack.sessionPresent, false);
  await y.expectClosed();
  assert.match(node.log(), new RegExp(`stored session of ${clientId} .*refused as server busy`));
}

Deno.test(
  "cluster: a login refused as server busy whose claim Redis runs late closes the client on the previous owner as taken over, then gives the session back for the next try [MQTT-3.1.4-3] [MQTT-3.2.2-6]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "bt1:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "bt1:" });
    await using x = await TestClient.connect(a.port, resumeConnect("x", 5));
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    let paused = false;
    try {
      assert.equal(await admin.call("CLIENT", "PAUSE", "600000", "WRITE"), "OK");
      paused = true;
      await refusedBusy(b, "x");
      // The claim has not run: A still owns the session, and its client is still there.
      assert.equal(await admin.hget("bt1:owner", "x"), "a");

      // Redis runs the claim now: its takeover reaches A, which closes its client as taken over.
      await admin.call("CLIENT", "UNPAUSE");
      paused = false;
      const disconnect = await x.expect(PacketType.DISCONNECT, 30_000);
      assert.equal(disconnect.reasonCode, ReasonCode.SESSION_TAKEN_OVER);
      await x.expectClosed();
      // B holds no session: it gives the ownership back once its claim is answered.
      await until(
        () => /gave the session of x back \(its login was refused as server busy\)/.test(b.log()),
        "B giving the session back",
      );
      assert.equal(await admin.hget("bt1:owner", "x"), null);

      // The next try gets the session.
      await using again = await TestClient.open(b.port, { protocolVersion: 5 });
      const back = await again.handshake(resumeConnect("x", 5));
      assert.equal(back.reasonCode, 0);
      assert.equal(back.sessionPresent, true);
      assert.equal(await admin.hget("bt1:owner", "x"), "b");
    } finally {
      if (paused) await admin.call("CLIENT", "UNPAUSE");
      admin.disconnect();
    }
  },
);

Deno.test(
  "cluster: a login refused as server busy while its first call reads a session with subscriptions leaves the client on the previous owner connected [MQTT-3.2.2-6]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "bt2:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "bt2:" });
    await using x = await TestClient.connect(a.port, resumeConnect("x", 5));
    await subscribe5(x, [{ topic: "s/x", qos: 1 }]);
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    let paused = false;
    try {
      assert.equal(await admin.call("CLIENT", "PAUSE", "600000", "WRITE"), "OK");
      paused = true;
      await refusedBusy(b, "x");
      await admin.call("CLIENT", "UNPAUSE");
      paused = false;
      // A login on B after it: its claim goes out once B's call for x was answered.
      await using z = await TestClient.connect(b.port, { clientId: "z", protocolVersion: 5 });
      // That call did not claim (A owns the session), so it sent no takeover: x is still there.
      assert.equal(await admin.hget("bt2:owner", "x"), "a");
      await x.send({ type: PacketType.PINGREQ });
      await x.expect(PacketType.PINGRESP);
      await z.disconnect();
    } finally {
      if (paused) await admin.call("CLIENT", "UNPAUSE");
      admin.disconnect();
    }
  },
);

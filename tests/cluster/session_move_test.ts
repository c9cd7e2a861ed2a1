// A persistent session follows its client from node to node: its subscriptions, the QoS 1/2
// messages queued for it and its QoS 2 state are in the cluster's Redis store, and the node the
// client reaches loads them before the CONNACK — after a clean disconnect from the other node, a
// takeover of a live connection, and a SIGKILL of the other node. Real processes, redis-server,
// our client, a byte-level client and mosquitto_sub.
import assert from "node:assert/strict";
import mqtt from "mqtt";
import { RedisServer } from "../_helpers/redis.ts";
import { runTool } from "../_helpers/peers.ts";
import { publishPacket, subscribe5, TestClient, text } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { adopted, Inbox, Node, received, routeReady, until } from "./_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: a 3.1.1 persistent session that disconnected from A resumes on B with its subscription and every queued QoS 1 and QoS 2 message, once each [MQTT-3.1.2-4] [MQTT-3.2.2-2] [MQTT-4.3.3-3]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "sm1:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "sm1:" });
    {
      await using mover = await Inbox.connect(a, "mover", { cleanSession: false });
      assert.deepEqual(await mover.client.subscribe([{ topic: "m/#", qos: 2 }]), [2]);
    }
    // Queued on A while the client is away; each PUBACK/PUBCOMP comes once stored.
    {
      await using pub = await Inbox.connect(a, "pub");
      for (let i = 0; i < 10; i++) {
        await pub.client.publish("m/x", `q${i}`, { qos: (1 + (i % 2)) as 1 | 2 });
      }
    }
    await using back = await Inbox.connect(b, "mover", { cleanSession: false });
    const expected = Array.from({ length: 10 }, (_, i) => `q${i}@${1 + (i % 2)}`);
    await until(() => back.on("m/x").length >= 10, "the queued messages on B");
    // The subscription came along: a message published on A after the move reaches B.
    await using pub2 = await Inbox.connect(a, "pub2");
    await pub2.client.publish("m/x", "after", { qos: 1 });
    await until(() => back.on("m/x").length >= 11, "the message published after the move");
    assert.deepEqual(received(back, "m/x"), [...expected, "after@1"]);
    assert.match(b.log(), /session of mover loaded from the shared store \(was on node a\)/);
  },
);

Deno.test(
  "cluster: messages acknowledged on B for a session kept offline on A, and not yet read by A (A stopped), are in the session B loads when the client moves to B",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    // A stays alive for the others while it is stopped for a moment.
    await using a = await Node.start(redis, { nodeId: "a", prefix: "sm5:", nodeTimeout: 10 });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "sm5:", nodeTimeout: 10 });
    {
      await using mover = await Inbox.connect(a, "late", { cleanSession: false });
      assert.deepEqual(await mover.client.subscribe([{ topic: "w/#", qos: 1 }]), [1]);
      // B knows of A's interest once a message published on B arrives.
      await using pub = await Inbox.connect(b, "probe-pub");
      await routeReady(pub.client, mover, "w/probe");
    }
    a.process.kill("SIGSTOP");
    let resumed = false;
    try {
      {
        // Acknowledged by B once in A's stream in Redis; A reads nothing meanwhile.
        await using pub = await Inbox.connect(b, "pub");
        for (let i = 0; i < 5; i++) await pub.client.publish("w/x", `w${i}`, { qos: 1 });
      }
      const moving = Inbox.connect(b, "late", { cleanSession: false });
      await delay(300);
      a.process.kill("SIGCONT");
      resumed = true;
      await using back = await moving;
      await until(() => back.on("w/x").length >= 5, "the messages A had not read");
      assert.deepEqual(received(back, "w/x"), ["w0@1", "w1@1", "w2@1", "w3@1", "w4@1"]);
    } finally {
      if (!resumed) a.process.kill("SIGCONT");
    }
  },
);

Deno.test(
  "cluster: a live 5.0 session (clean start 0, expiry 300) on A is taken over from B: A's connection gets DISCONNECT 0x8E, B's CONNACK says session present, the unacknowledged QoS 1 deliveries come again with DUP, and the subscription goes on [MQTT-3.2.2-2] [MQTT-4.4.0-1]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "sm2:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "sm2:" });
    const connect = {
      clientId: "mover5",
      clean: false,
      protocolVersion: 5 as const,
      properties: { sessionExpiryInterval: 300 },
    };
    await using first = await TestClient.connect(a.port, connect);
    assert.deepEqual(await subscribe5(first, [{ topic: "v/#", qos: 1 }], { identifier: 7 }), [1]);
    await using pub = await Inbox.connect(a, "pub");
    for (let i = 0; i < 3; i++) await pub.client.publish("v/x", `p${i}`, { qos: 1 });
    // Received on A, never acknowledged.
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) {
      const p = await first.expect(PacketType.PUBLISH);
      assert.equal(text(p), `p${i}`);
      ids.push(p.packetId!);
    }
    await using second = await TestClient.open(b.port, { protocolVersion: 5 });
    const connack = await second.handshake(connect);
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.sessionPresent, true, "session present on B [MQTT-3.2.2-2]");
    const kicked = await first.expect(PacketType.DISCONNECT);
    assert.equal(kicked.reasonCode, 0x8e, "session taken over");
    for (let i = 0; i < 3; i++) {
      const p = await second.expect(PacketType.PUBLISH);
      assert.deepEqual([text(p), p.packetId, p.dup], [`p${i}`, ids[i], true]);
      await second.send({ type: PacketType.PUBACK, packetId: p.packetId! });
    }
    assert.match(a.log(), /mover5 continues on node b: handed over/);
    // Still subscribed, now on B: a message published on A reaches it there.
    await pub.client.publish("v/x", "moved", { qos: 1 });
    const p = await second.expect(PacketType.PUBLISH);
    assert.deepEqual([text(p), p.qos, p.dup], ["moved", 1, false]);
  },
);

Deno.test(
  "cluster: A is SIGKILLed with a QoS 2 delivery awaiting PUBCOMP and more queued; on B the client gets PUBREL again, not the message, and every other queued message once [MQTT-4.3.3-3] [MQTT-4.4.0-1]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "sm3:", nodeTimeout: 1 });
    {
      await using b = await Node.start(redis, { nodeId: "b", prefix: "sm3:" });
      let pubrelId: number;
      {
        await using raw = await TestClient.connect(a.port, { clientId: "raw", clean: false });
        await raw.subscribe({ "k/#": 2 });
        await using pub = await Inbox.connect(a, "pub");
        await pub.client.publish("k/x", "once", { qos: 2 });
        const p = await raw.expect(PacketType.PUBLISH);
        assert.equal(text(p), "once");
        await raw.send({ type: PacketType.PUBREC, packetId: p.packetId! });
        // PUBREL goes out once A stored the PUBREC: the client stops here (no PUBCOMP).
        pubrelId = (await raw.expect(PacketType.PUBREL)).packetId;
        // More: a QoS 2 message sent but never acknowledged, and queued ones.
        for (let i = 0; i < 4; i++) {
          await pub.client.publish("k/x", `k${i}`, { qos: (1 + (i % 2)) as 1 | 2 });
        }
        await raw.expect(PacketType.PUBLISH);
      }
      await a.crash();
      await using again = await TestClient.connect(b.port, { clientId: "raw", clean: false });
      const seen: string[] = [];
      let pubrels = 0;
      while (seen.length < 4) {
        const packet = await again.receive();
        if (packet.type === PacketType.PUBREL) {
          assert.equal(packet.packetId, pubrelId);
          pubrels++;
          await again.send({ type: PacketType.PUBCOMP, packetId: packet.packetId });
        } else if (packet.type === PacketType.PUBLISH) {
          seen.push(text(packet));
          if (packet.qos === 1) {
            await again.send({ type: PacketType.PUBACK, packetId: packet.packetId! });
          }
          if (packet.qos === 2) {
            await again.send({ type: PacketType.PUBREC, packetId: packet.packetId! });
          }
        }
      }
      assert.equal(pubrels, 1, "PUBREL resent for the QoS 2 message past PUBREC");
      assert.deepEqual(seen, ["k0", "k1", "k2", "k3"], "'once' is not delivered again");
      assert.match(b.log(), /session of raw loaded from the shared store/);
    }
  },
);

Deno.test(
  "cluster: mosquitto_sub's persistent session (-c) moves from a SIGKILLed node to another with its queued QoS 1 messages",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "sm4:", nodeTimeout: 1 });
    {
      await using b = await Node.start(redis, { nodeId: "b", prefix: "sm4:" });
      // Subscribes with a persistent session on A, takes the probe and leaves.
      const args = ["-c", "-i", "msub", "-q", "1", "-t", "s/#", "-V", "mqttv311"];
      const first = runTool("mosquitto_sub", ["-p", String(a.port), ...args, "-C", "1"], 30_000);
      await using pub = await Inbox.connect(a, "pub");
      while (!(await Promise.race([first.then(() => true), delay(100).then(() => false)]))) {
        await pub.client.publish("s/probe", "probe", { qos: 0 });
      }
      assert.equal((await first).code, 0);
      for (let i = 0; i < 5; i++) await pub.client.publish("s/x", `s${i}`, { qos: 1 });
      await a.crash();
      const second = await runTool(
        "mosquitto_sub",
        ["-p", String(b.port), ...args, "-C", "5", "-W", "20"],
        30_000,
      );
      assert.equal(second.code, 0, second.stderr);
      assert.deepEqual(second.stdout.trim().split("\n"), ["s0", "s1", "s2", "s3", "s4"]);
    }
  },
);

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

Deno.test(
  "cluster: a persistent session kept offline on A is adopted by another node when A is SIGKILLed: what is published after A's death is queued for it, and its client gets it on its return, at QoS 1 and 2",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "sm6:", nodeTimeout: 1 });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "sm6:" });
    await using c = await Node.start(redis, { nodeId: "c", prefix: "sm6:" });
    {
      await using mover = await Inbox.connect(a, "orphan", { cleanSession: false });
      assert.deepEqual(await mover.client.subscribe([{ topic: "o/#", qos: 2 }]), [2]);
    }
    await a.crash();
    await until(
      () => adopted(b.log() + c.log(), "orphan"),
      "another node to adopt the session",
    );
    const adopters = [b, c].filter((n) => adopted(n.log(), "orphan"));
    assert.equal(adopters.length, 1, "one node adopts it");
    {
      await using pub = await Inbox.connect(b, "pub");
      for (let i = 0; i < 4; i++) {
        await pub.client.publish("o/x", `o${i}`, { qos: (1 + (i % 2)) as 1 | 2 });
      }
    }
    await using back = await Inbox.connect(c, "orphan", { cleanSession: false });
    await until(() => back.on("o/x").length >= 4, "the messages published after A died");
    assert.deepEqual(received(back, "o/x"), ["o0@1", "o1@2", "o2@1", "o3@2"]);
  },
);

Deno.test(
  "cluster: a node stopped with SIGTERM leaves its offline persistent sessions to the others: MQTT.js resumes on B with what was published after A left",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "sm7:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "sm7:" });
    const options = { clientId: "mqttjs", clean: false, protocolVersion: 4 as const };
    const first = await mqtt.connectAsync(`mqtt://127.0.0.1:${a.port}`, options);
    await first.subscribeAsync("j/#", { qos: 1 });
    await first.endAsync();
    assert.equal(await a.stop(), 0);
    await until(() => adopted(b.log(), "mqttjs"), "B to adopt the session");
    {
      await using pub = await Inbox.connect(b, "pub");
      for (let i = 0; i < 3; i++) await pub.client.publish("j/x", `j${i}`, { qos: 1 });
    }
    const got: string[] = [];
    // Listening before the CONNACK: the queue follows it at once.
    const again = mqtt.connect(`mqtt://127.0.0.1:${b.port}`, { ...options, reconnectPeriod: 0 });
    again.on("message", (topic, payload) => got.push(`${topic} ${payload}`));
    try {
      await until(() => got.length >= 3, "the queued messages");
      assert.deepEqual(got, ["j/x j0", "j/x j1", "j/x j2"]);
    } finally {
      await again.endAsync();
    }
  },
);

Deno.test(
  "cluster: after the whole cluster stopped, the first node to start adopts the stored persistent sessions: what is published before their clients return is queued for them",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    {
      await using a = await Node.start(redis, { nodeId: "a", prefix: "sm8:" });
      await using mover = await Inbox.connect(a, "sleeper", { cleanSession: false });
      assert.deepEqual(await mover.client.subscribe([{ topic: "z/#", qos: 1 }]), [1]);
    }
    await using b = await Node.start(redis, { nodeId: "b", prefix: "sm8:" });
    await until(() => adopted(b.log(), "sleeper"), "B to adopt it");
    {
      await using pub = await Inbox.connect(b, "pub");
      for (let i = 0; i < 3; i++) await pub.client.publish("z/x", `z${i}`, { qos: 1 });
    }
    await using back = await Inbox.connect(b, "sleeper", { cleanSession: false });
    await until(() => back.on("z/x").length >= 3, "the queued messages");
    assert.deepEqual(received(back, "z/x"), ["z0@1", "z1@1", "z2@1"]);
  },
);

Deno.test(
  "cluster: messages acknowledged to a publisher on B for a session kept offline on A, which A never read (stopped, then SIGKILLed), reach the session through the node that adopts it; what A had stored comes once",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "sm9:", nodeTimeout: 1 });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "sm9:" });
    await using pub = await Inbox.connect(b, "pub");
    {
      await using mover = await Inbox.connect(a, "unread", { cleanSession: false });
      assert.deepEqual(await mover.client.subscribe([{ topic: "u/#", qos: 2 }]), [2]);
      await routeReady(pub.client, mover, "u/probe");
    }
    // Read and stored by A.
    for (let i = 0; i < 2; i++) await pub.client.publish("u/x", `read${i}`, { qos: 1 });
    await using watcher = await Inbox.connect(a, "watcher");
    await watcher.client.subscribe([{ topic: "u/x", qos: 0 }]);
    await routeReady(pub.client, watcher, "u/x");
    a.process.kill("SIGSTOP");
    // Acknowledged once in A's stream in Redis; A never reads them.
    for (let i = 0; i < 3; i++) {
      await pub.client.publish("u/x", `unread${i}`, { qos: (1 + (i % 2)) as 1 | 2 });
    }
    await a.crash();
    await until(() => adopted(b.log(), "unread"), "B to adopt the session");
    await until(() => /had not stored went to the 1 session/.test(b.log()), "the replay");
    await using back = await Inbox.connect(b, "unread", { cleanSession: false });
    await until(() => back.on("u/x").length >= 5, "the five messages");
    assert.deepEqual(received(back, "u/x").filter((m) => !m.startsWith("probe")), [
      "read0@1",
      "read1@1",
      "unread0@1",
      "unread1@2",
      "unread2@1",
    ]);
  },
);

Deno.test(
  "cluster: a publisher's QoS 2 PUBLISH received on A (PUBREC sent) and sent again with DUP on B after moving there is delivered once; B answers its PUBREL [MQTT-4.3.3-2]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "sm10:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "sm10:" });
    await using sub = await Inbox.connect(b, "sub");
    assert.deepEqual(await sub.client.subscribe([{ topic: "e/#", qos: 2 }]), [2]);
    await using probe = await Inbox.connect(a, "probe");
    await routeReady(probe.client, sub, "e/probe");
    {
      await using first = await TestClient.connect(a.port, { clientId: "p2", clean: false });
      await first.send(publishPacket("e/x", "exactly once", { qos: 2, packetId: 5 }));
      assert.equal((await first.expect(PacketType.PUBREC)).packetId, 5);
    }
    await until(() => sub.on("e/x").length === 1, "the message on B");
    await using again = await TestClient.connect(b.port, { clientId: "p2", clean: false });
    await again.send(publishPacket("e/x", "exactly once", { qos: 2, packetId: 5, dup: true }));
    assert.equal((await again.expect(PacketType.PUBREC)).packetId, 5);
    await again.send({ type: PacketType.PUBREL, packetId: 5 });
    assert.equal((await again.expect(PacketType.PUBCOMP)).packetId, 5);
    // A message after it shows the first was not delivered again.
    await probe.client.publish("e/x", "after", { qos: 1 });
    await until(() => sub.on("e/x").length >= 2, "the next message");
    assert.deepEqual(received(sub, "e/x"), ["exactly once@2", "after@1"]);
    assert.match(b.log(), /session of p2 loaded from the shared store \(was on node a\)/);
  },
);

Deno.test(
  "cluster: while Redis is down, a node keeps acknowledging QoS 1 publishes to its persistent sessions and delivering them (nothing waits for the shared store), and goes on when Redis is back",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "sm11:" });
    await using sub = await Inbox.connect(a, "keeper", { cleanSession: false });
    assert.deepEqual(await sub.client.subscribe([{ topic: "d/#", qos: 1 }]), [1]);
    await using pub = await Inbox.connect(a, "pub");
    await pub.client.publish("d/x", "before", { qos: 1 });
    await redis.stop();
    await until(() => /Cluster: lost Redis/.test(a.log()), "the node to notice");
    for (let i = 0; i < 3; i++) {
      // A guard against a PUBACK that never comes, not a speed requirement.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const acked = await Promise.race([
        pub.client.publish("d/x", `down${i}`, { qos: 1 }).then(() => true),
        new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), 20_000)),
      ]);
      clearTimeout(timer);
      assert.equal(acked, true, `PUBACK ${i} while Redis is down`);
    }
    await until(() => sub.on("d/x").length === 4, "the messages published meanwhile");
    await redis.resume();
    await until(() => /Cluster: Redis is back/.test(a.log()), "Redis back");
    await pub.client.publish("d/x", "after", { qos: 1 });
    await until(() => sub.on("d/x").length === 5, "the message after");
    assert.deepEqual(received(sub, "d/x"), [
      "before@1",
      "down0@1",
      "down1@1",
      "down2@1",
      "after@1",
    ]);
  },
);

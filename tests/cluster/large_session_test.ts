// A persistent session whose queue holds more than one read's part of messages
// (`READ_PART_BYTES`), left owned by nobody by a node that left, read by the next node (its
// adoption at start: one part in the read's answer, the rest read after it; a login's claim from
// nobody reads the same way, `tests/store/redis_read_parts_test.ts`): the client gets every
// message queued, in order, byte for byte [MQTT-4.3.2-1]; so does a queue of more entries than a
// read takes (`READ_PART_ENTRIES`: read in place by its writer, a part at a time). A session read in parts by one login
// while a login on a third node claims it is restored by that third node only [MQTT-3.1.4-3].
// Real processes and redis-server (a TCP proxy holding back a node's reads).
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";
import { delay } from "../_helpers/broker.ts";
import { TestClient } from "../_helpers/test_client.ts";
import { PacketType, ReasonCode } from "../../src/packet/constants.ts";
import { Inbox, Node, ownedBy, UNBOUNDED_QUEUE, until } from "./_nodes.ts";
import { READ_PART_ENTRIES } from "../../src/cluster/_redis_store_scripts.ts";
import { Redis } from "ioredis";
import { StallProxy } from "./_stall_proxy.ts";
import { resumeConnect } from "./_resume.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

const COUNT = 30;
const SIZE = 100 * 1024;

Deno.test(
  "cluster: a session with a queue larger than one read's part, left by a node, comes back whole on the next node [MQTT-4.3.2-1]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const options = { prefix: "ls1:" };
    const a = await Node.start(redis, { ...options, nodeId: "a" });
    try {
      {
        await using big = await Inbox.connect(a, "big", { cleanSession: false });
        assert.deepEqual(await big.client.subscribe([{ topic: "big/#", qos: 1 }]), [1]);
      }
      await using publisher = await Inbox.connect(a, "pub");
      for (let i = 0; i < COUNT; i++) {
        await publisher.client.publish(`big/${i}`, new Uint8Array(SIZE).fill(i), { qos: 1 });
      }
    } finally {
      // A leaves: its sessions are owned by nobody, in the store.
      assert.equal(await a.stop(), 0);
      await Deno.remove(a.config);
    }
    await using b = await Node.start(redis, { ...options, nodeId: "b" });
    await using big = await Inbox.connect(b, "big", { cleanSession: false });
    await until(() => big.messages.length >= COUNT, "the queued messages");
    // Nothing more comes.
    await delay(200);
    assert.deepEqual(
      big.messages.map((m) => m.topic),
      [...Array(COUNT).keys()].map((i) => `big/${i}`),
    );
    big.messages.forEach((m, i) => {
      assert.equal(m.payload.length, SIZE);
      assert.ok(m.payload.every((byte) => byte === i), `message ${i}`);
    });
    assert.ok(big.client.connected);
    assert.match(b.log(), /Cluster: adopted 1 of the 1 sessions no node owned.*"big"/);
  },
);

Deno.test(
  "cluster: a session with more queued deliveries than one read's part of entries, left by a node, comes back whole on the next node [MQTT-4.3.2-1]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const count = READ_PART_ENTRIES + 500;
    const options = { prefix: "ls3:", yaml: [UNBOUNDED_QUEUE] };
    const a = await Node.start(redis, { ...options, nodeId: "a" });
    try {
      {
        await using long = await Inbox.connect(a, "long", { cleanSession: false });
        assert.deepEqual(await long.client.subscribe([{ topic: "long/#", qos: 1 }]), [1]);
      }
      await using publisher = await Inbox.connect(a, "pub");
      for (let i = 0; i < count; i += 100) {
        const batch = [];
        for (let j = i; j < Math.min(count, i + 100); j++) {
          batch.push(publisher.client.publish(`long/${j}`, String(j), { qos: 1 }));
        }
        await Promise.all(batch);
      }
    } finally {
      assert.equal(await a.stop(), 0);
      await Deno.remove(a.config);
    }
    await using b = await Node.start(redis, { ...options, nodeId: "b" });
    await using long = await Inbox.connect(b, "long", { cleanSession: false });
    await until(() => long.messages.length >= count, "the queued messages");
    await delay(200);
    assert.equal(long.messages.length, count, "nothing more comes");
    long.messages.forEach((m, i) => {
      assert.equal(m.topic, `long/${i}`);
      assert.equal(new TextDecoder().decode(m.payload), String(i));
    });
    assert.ok(long.client.connected);
    // Read in place by the adopter, its writer: no copy made.
    const admin = new Redis({ port: redis.port, host: "127.0.0.1", lazyConnect: true });
    await admin.connect();
    try {
      assert.equal(await admin.get("ls3:store:reads"), null);
      assert.deepEqual(await admin.keys("ls3:store:read:*"), []);
    } finally {
      admin.disconnect();
    }
  },
);

const PART_MESSAGES = 12;
const MB = 1024 * 1024;
const HALF_MB = MB / 2;

Deno.test(
  "cluster: a session claimed by a third node while a login reads it in parts is handed on to that node whole, that login refused as server busy [MQTT-3.1.4-3]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using proxy = new StallProxy(redis.port);
    const options = { prefix: "ls2:" };
    await using a = await Node.start(redis, { ...options, nodeId: "a" });
    await using b = await Node.start(proxy, { ...options, nodeId: "b" });
    await using c = await Node.start(redis, { ...options, nodeId: "c" });
    {
      await using big = await Inbox.connect(a, "big", { cleanSession: false });
      assert.deepEqual(await big.client.subscribe([{ topic: "big/#", qos: 1 }]), [1]);
    }
    {
      // Queued on A: more than a read's part (READ_PART_BYTES): one in the read's answer, the
      // others fetched after it, one group (here, one message) per HMGET.
      await using publisher = await Inbox.connect(a, "pub");
      for (let i = 0; i < PART_MESSAGES; i++) {
        await publisher.client.publish(`big/${i}`, new Uint8Array(HALF_MB).fill(i), { qos: 1 });
      }
    }
    // B's login claims the session from A, waits for its handoff, and reads it: the answers
    // to its HMGETs (RedisStore.readRest, on its store's connection) come slowly from the first,
    // 1 MB/s (half a second each, so that B's other commands on that connection, answered in
    // turn, wait no more), until C has the session.
    const slowed = proxy.throttleRepliesFrom("ls2:store:msg\r\n", MB);
    await using early = await TestClient.open(b.port, { protocolVersion: 5 });
    const earlyAnswer = early.handshake(resumeConnect("big", 5));
    await slowed.reached;
    // Meanwhile a login on C claims it from B, which holds nothing yet: B's login came first
    // (A handed the session to it), so B restores it once read and hands it on (a chain of
    // moves, `tests/cluster/chain_move_test.ts`); C loads it then and delivers its queue.
    await using late = await TestClient.open(c.port, { protocolVersion: 5 });
    const lateAnswer = late.handshake(resumeConnect("big", 5));
    await ownedBy(redis, "ls2:", "big", "c");
    // B's read then goes on at full speed.
    slowed.release();
    const accepted = await lateAnswer;
    assert.equal(accepted.reasonCode, ReasonCode.SUCCESS);
    assert.equal(accepted.sessionPresent, true);
    assert.equal((await late.expect(PacketType.PUBLISH)).topic, "big/0");
    // B's client is not accepted with the session: it would get its queue while C has it too
    // [MQTT-3.1.4-3].
    const connack = await earlyAnswer;
    assert.equal(connack.reasonCode, ReasonCode.SERVER_BUSY, "refused as server busy");
    assert.equal(
      connack.properties?.reasonString,
      "session not loaded: another node claimed the session meanwhile",
    );
    await early.expectClosed();
    assert.match(
      b.log(),
      /the login of big is refused as server busy: node c claimed its session while this node loaded it/,
    );
    assert.ok(!late.socketEnded, "C's client stays connected");
  },
);

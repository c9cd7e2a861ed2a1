// A persistent session whose queue holds more than one read's part of messages
// (`READ_PART_BYTES`), left owned by nobody by a node that left, read by the next node (its
// adoption at start: one part in the read's answer, the rest read after it; a login's claim from
// nobody reads the same way, `tests/store/redis_read_parts_test.ts`): the client gets every
// message queued, in order, byte for byte [MQTT-4.3.2-1]. Real processes and redis-server.
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";
import { delay } from "../_helpers/broker.ts";
import { Inbox, Node, until } from "./_nodes.ts";

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

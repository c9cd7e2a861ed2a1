// Queue-full drops told per session on a cluster: a persistent session offline on A past
// max_queued_messages is named in A's log at its first drop, the count is in the cluster-wide
// $SYS sum, and when its client moves to B, A says how many were dropped there before the move.
// Real processes and redis-server.
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";
import { Inbox, Node, until } from "./_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: an offline session's queue-full drops are named on its node, summed in $SYS/broker/cluster, and told when the session moves away",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const yaml = [
      "max_inflight: 2",
      "max_queued_messages: 5",
      "sys_interval: 0.2",
      "log_summary_interval: 3600",
    ];
    await using a = await Node.start(redis, { nodeId: "a", prefix: "qd1:", yaml });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "qd1:", yaml });
    {
      await using mover = await Inbox.connect(a, "mover", { cleanSession: false });
      assert.deepEqual(await mover.client.subscribe([{ topic: "m/#", qos: 1 }]), [1]);
    }
    {
      await using pub = await Inbox.connect(a, "pub");
      for (let i = 0; i < 20; i++) await pub.client.publish("m/x", `q${i}`, { qos: 1 });
    }
    // 2 in the window, 5 queued, 13 dropped: one line at the first.
    await until(() => a.log().includes('Queue of "mover"'), "A's line at the first drop");
    const first = a.log().match(
      /Queue of "mover" \(offline\) full at max_queued_messages 5[^\n]*/g,
    );
    assert.deepEqual(first, [
      'Queue of "mover" (offline) full at max_queued_messages 5: dropping its oldest messages, 1 so far',
    ]);

    await using watcher = await Inbox.connect(b, "watcher");
    await watcher.client.subscribe([[
      "$SYS/broker/cluster/publish/messages/dropped/queue-full",
      0,
    ]]);
    const sum = () =>
      watcher.on("$SYS/broker/cluster/publish/messages/dropped/queue-full").at(-1)?.payload;
    await until(() => sum() === "13", "the cluster-wide sum on B");

    await using back = await Inbox.connect(b, "mover", { cleanSession: false });
    await until(() => back.on("m/x").length >= 7, "the kept messages on B");
    assert.deepEqual(back.on("m/x").map((m) => m.payload), [
      "q0",
      "q1",
      "q15",
      "q16",
      "q17",
      "q18",
      "q19",
    ]);
    await until(
      () => a.log().includes('Session of "mover" moved to another node: 13 of its queued messages'),
      "A's line for the session that moved",
    );
    assert.ok(!b.log().includes('"mover" is connected again'), "B dropped nothing for it");
    assert.ok(back.client.connected && watcher.client.connected);
  },
);

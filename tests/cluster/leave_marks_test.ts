// A node's shared-group leave marks (`P left:ID`, see ClusterBus #rescue) are bounded: a mark
// names the last entry of the node's stream read when the group's last member there left, and
// goes once the stream is trimmed past that entry (nothing up to it is left to rescue), so a
// long-lived node whose clients come and go with group names of their own does not keep a field
// per group it ever left. A mark whose entry is still in the stream stays.
import assert from "node:assert/strict";
import type { MessageRecord } from "../../src/store/message_record.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { inspect, nextEvent, startBus, until } from "./_bus_helpers.ts";

function msg(topic: string, body: string): MessageRecord {
  return { topic, payload: new TextEncoder().encode(body), qos: 1, retain: false };
}

Deno.test("ClusterBus: a shared group's leave mark goes once the node's stream is trimmed past its entry, and stays while the entry is there", async () => {
  await using server = await RedisServer.start();
  await using a = await startBus(server, "a");
  await using b = await startBus(server, "b");
  await b.addInterest("t/#");
  await until(() => a.nodesFor("t/1").length === 1);
  const left = "test:left:b";
  const send = async (body: string) => {
    const read = nextEvent(b, "read");
    a.publish(msg("t/1", body), "p");
    return (await read).id;
  };
  const first = await send("before the groups");
  // 50 groups joined and left by their only member here, after that entry was read.
  for (let i = 0; i < 50; i++) {
    await b.addInterest(`$share/g${i}/t/#`);
    await b.removeInterest(`$share/g${i}/t/#`);
  }
  const marks = await inspect(server, (r) => r.hgetall(left));
  assert.equal(Object.keys(marks).length, 50);
  assert.ok(Object.values(marks).every((mark) => mark === first));
  // One more entry read: the stream may be trimmed up to it (a trim at most every 100 ms of the
  // node's reading), and the marks of the entry before go with it.
  let n = 0;
  await until(async () => {
    await send(`after the groups ${n++}`);
    return await inspect(server, (r) => r.hlen(left)) === 0;
  });
  // A mark on the last entry read, which the trim keeps, stays: the rescue needs it.
  await b.addInterest("$share/kept/t/#");
  await b.removeInterest("$share/kept/t/#");
  const last = await inspect(server, (r) => r.xrevrange("test:s:b", "+", "-", "COUNT", 1));
  assert.deepEqual(await inspect(server, (r) => r.hgetall(left)), {
    "$share/kept/t/#": last[0]![0],
  });
});

Deno.test("ClusterBus: a leave mark on the last entry of a stream that stays quiet goes at a heartbeat, with that entry; the next entry is read as before", async () => {
  await using server = await RedisServer.start();
  await using a = await startBus(server, "a");
  await using b = await startBus(server, "b");
  await b.addInterest("t/#");
  await until(() => a.nodesFor("t/1").length === 1);
  const left = "test:left:b";
  const read = nextEvent(b, "read");
  a.publish(msg("t/1", "the last one"), "p");
  const last = (await read).id;
  // The group's last member here leaves after that entry; nothing is sent to B afterwards.
  await b.addInterest("$share/quiet/t/#");
  await b.removeInterest("$share/quiet/t/#");
  assert.deepEqual(await inspect(server, (r) => r.hgetall(left)), { "$share/quiet/t/#": last });
  // The heartbeat trims what B read, its last entry too (routed, nothing needs it), and the mark
  // goes with it: it would say nothing a missing field does not.
  await b.heartbeat();
  await until(async () => await inspect(server, (r) => r.hlen(left)) === 0);
  assert.equal(await inspect(server, (r) => r.xlen("test:s:b")), 0);
  const next = nextEvent(b, "message");
  a.publish(msg("t/1", "after the quiet"), "p");
  assert.equal(new TextDecoder().decode((await next).message.payload), "after the quiet");
});

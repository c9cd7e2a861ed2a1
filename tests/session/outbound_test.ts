import assert from "node:assert/strict";
import { OutboundFlow } from "../../src/session/outbound.ts";

Deno.test("OutboundFlow sends within the window and queues the rest", () => {
  const flow = new OutboundFlow<string>({ maxInflight: 2 });
  assert.equal(flow.offer("a", 1)?.packetId, 1);
  assert.equal(flow.offer("b", 2)?.packetId, 2);
  assert.equal(flow.offer("c", 1), undefined);
  assert.equal(flow.inflightCount, 2);
  assert.equal(flow.queuedCount, 1);
  assert.equal(flow.next(), undefined, "window still full");
  assert.equal(flow.acknowledge(1, "puback"), "complete");
  const c = flow.next();
  assert.equal(c?.message, "c");
  assert.equal(c?.packetId, 3);
  assert.equal(flow.queuedCount, 0);
});

Deno.test("OutboundFlow keeps each copy's shared group on its entry, in flight or queued", () => {
  // Two copies of one message: the group's and the session's own subscription's. Their
  // acknowledgements are told apart by packet id, so the entry must carry which one it is.
  const flow = new OutboundFlow<string>({ maxInflight: 1 });
  const first = flow.offer("m", 1, "$share/g/s/#");
  assert.equal(first?.share, "$share/g/s/#");
  assert.equal(flow.offer("m", 1), undefined);
  assert.equal(flow.offer("m", 1, "$share/h/s/#"), undefined);
  assert.deepEqual([...flow.pending()].map((p) => p.share), [
    "$share/g/s/#",
    undefined,
    "$share/h/s/#",
  ]);
  assert.equal(flow.acknowledge(first!.packetId, "puback"), "complete");
  const own = flow.next();
  assert.deepEqual([own?.message, own?.share], ["m", undefined]);
  assert.equal(flow.acknowledge(own!.packetId, "puback"), "complete");
  assert.equal(flow.next()?.share, "$share/h/s/#");
});

Deno.test("OutboundFlow keeps FIFO order: a new offer waits behind queued messages", () => {
  const flow = new OutboundFlow<string>({ maxInflight: 1 });
  flow.offer("a", 1);
  flow.offer("b", 1);
  flow.acknowledge(1, "puback");
  // Window has room, but "b" is older than "c" [MQTT-4.6.0-6]
  assert.equal(flow.offer("c", 1), undefined);
  assert.equal(flow.next()?.message, "b");
});

Deno.test("OutboundFlow QoS 2 needs PUBREC then PUBCOMP [MQTT-4.3.3-1]", () => {
  const flow = new OutboundFlow<string>();
  const e = flow.offer("x", 2)!;
  assert.equal(flow.acknowledge(e.packetId, "pubcomp"), "wrong_kind", "PUBCOMP before PUBREC");
  assert.equal(flow.acknowledge(e.packetId, "puback"), "wrong_kind", "PUBACK for QoS 2");
  assert.equal(flow.acknowledge(e.packetId, "pubrec"), "pubrel");
  assert.equal(e.state, "pubrel");
  assert.equal(flow.acknowledge(e.packetId, "pubrec"), "pubrel", "repeated PUBREC answered again");
  assert.equal(flow.acknowledge(e.packetId, "pubcomp"), "complete");
  assert.equal(flow.inflightCount, 0);
  assert.equal(flow.acknowledge(e.packetId, "pubcomp"), "unknown");
});

Deno.test("OutboundFlow reports an ack of the wrong kind for an id in flight and keeps the flow [MQTT-4.8.0-1]", () => {
  const flow = new OutboundFlow<string>();
  const q1 = flow.offer("one", 1)!;
  const q2 = flow.offer("two", 2)!;
  assert.equal(flow.acknowledge(q1.packetId, "pubrec"), "wrong_kind", "PUBREC for QoS 1");
  assert.equal(flow.acknowledge(q1.packetId, "pubcomp"), "wrong_kind", "PUBCOMP for QoS 1");
  assert.equal(flow.acknowledge(q2.packetId, "puback"), "wrong_kind", "PUBACK for QoS 2");
  assert.equal(flow.acknowledge(q2.packetId, "pubcomp"), "wrong_kind", "PUBCOMP before PUBREC");
  assert.equal(flow.acknowledge(q2.packetId, "pubrec"), "pubrel");
  assert.equal(flow.acknowledge(q2.packetId, "puback"), "wrong_kind", "PUBACK after PUBREL");
  // Nothing changed: both messages are still in flight in their states.
  assert.deepEqual([...flow.inflight()].map((e) => [e.message, e.state]), [
    ["one", "publish"],
    ["two", "pubrel"],
  ]);
  assert.equal(flow.acknowledge(q1.packetId, "puback"), "complete");
  assert.equal(flow.acknowledge(q2.packetId, "pubcomp"), "complete");
});

Deno.test("OutboundFlow reports an ack for an id not in flight as unknown", () => {
  const flow = new OutboundFlow<string>();
  for (const kind of ["puback", "pubrec", "pubcomp"] as const) {
    assert.equal(flow.acknowledge(9, kind), "unknown", kind);
  }
  const e = flow.offer("x", 1)!;
  assert.equal(flow.acknowledge(e.packetId, "puback"), "complete");
  assert.equal(flow.acknowledge(e.packetId, "puback"), "unknown", "a duplicate PUBACK");
});

Deno.test("OutboundFlow MQTT 5 PUBREC with a failure reason ends the flow", () => {
  const flow = new OutboundFlow<string>();
  const e = flow.offer("x", 2)!;
  assert.equal(flow.acknowledge(e.packetId, "pubrec", true), "complete");
  assert.equal(flow.inflightCount, 0);
});

Deno.test("OutboundFlow drops the oldest queued message when full and counts it", () => {
  const flow = new OutboundFlow<number>({ maxInflight: 1, maxQueued: 2 });
  flow.offer(0, 1);
  flow.offer(1, 1);
  flow.offer(2, 1);
  flow.offer(3, 1);
  assert.equal(flow.dropped, 1);
  assert.equal(flow.queuedCount, 2);
  flow.acknowledge(1, "puback");
  assert.equal(flow.next()?.message, 2);
});

Deno.test("OutboundFlow resend order is send order, ids kept [MQTT-4.4.0-1]", () => {
  const flow = new OutboundFlow<string>();
  const a = flow.offer("a", 1)!;
  const b = flow.offer("b", 2)!;
  const c = flow.offer("c", 2)!;
  flow.acknowledge(b.packetId, "pubrec");
  const order = [...flow.inflight()].map((e) => [e.message, e.packetId, e.state]);
  assert.deepEqual(order, [["a", a.packetId, "publish"], ["b", b.packetId, "pubrel"], [
    "c",
    c.packetId,
    "publish",
  ]]);
});

Deno.test("OutboundFlow never reuses an id in flight or reserved [MQTT-2.3.1-2]", () => {
  const flow = new OutboundFlow<number>({ maxInflight: 65535, maxQueued: 0 });
  const reserved = flow.reserveId();
  const seen = new Set<number>([reserved]);
  for (let i = 0; i < 65534; i++) {
    const e = flow.offer(i, 1)!;
    assert.ok(e.packetId >= 1 && e.packetId <= 65535);
    assert.ok(!seen.has(e.packetId), `id ${e.packetId} reused`);
    seen.add(e.packetId);
  }
  assert.equal(flow.releaseId(reserved), true);
  assert.equal(flow.releaseId(reserved), false);
});

Deno.test("OutboundFlow with maxQueued 0 drops what does not fit", () => {
  const flow = new OutboundFlow<string>({ maxInflight: 1, maxQueued: 0 });
  flow.offer("a", 1);
  assert.equal(flow.offer("b", 1), undefined);
  assert.equal(flow.dropped, 1);
  assert.equal(flow.queuedCount, 0);
});

Deno.test("OutboundFlow clear returns pending messages in order", () => {
  const flow = new OutboundFlow<string>({ maxInflight: 1 });
  flow.offer("a", 1);
  flow.offer("b", 1);
  assert.deepEqual(flow.clear(), ["a", "b"]);
  assert.equal(flow.inflightCount + flow.queuedCount, 0);
});

Deno.test("OutboundFlow rejects bad bounds", () => {
  assert.throws(() => new OutboundFlow({ maxInflight: 0 }), RangeError);
  assert.throws(() => new OutboundFlow({ maxQueued: -1 }), RangeError);
  assert.throws(() => new OutboundFlow().setMaxInflight(70000), RangeError);
});

Deno.test("OutboundFlow keeps no reference to the messages it dropped (memory stays bounded)", async () => {
  // Needs a garbage collector the test can trigger: run the check in a child with --expose-gc.
  const module = new URL("../../src/session/outbound.ts", import.meta.url).href;
  const script = `
    import { OutboundFlow } from ${JSON.stringify(module)};
    const flow = new OutboundFlow({ maxInflight: 1, maxQueued: 2 });
    const refs = [];
    for (let i = 0; i < 100; i++) {
      const m = { i };
      refs.push(new WeakRef(m));
      flow.offer(m, 1);
    }
    // A macrotask before each collection: the frames and pending microtasks that still referred
    // to the objects are gone by then; nothing else is waited for (no I/O, no store).
    for (let i = 0; i < 2; i++) {
      await new Promise((r) => setTimeout(r, 0));
      globalThis.gc();
    }
    const alive = refs.flatMap((r, i) => r.deref() === undefined ? [] : [i]);
    console.log(JSON.stringify({ alive, dropped: flow.dropped }));
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--v8-flags=--expose-gc", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const result = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.equal(result.dropped, 97);
  // Only the one in flight and the two newest queued are still held.
  assert.deepEqual(result.alive, [0, 98, 99]);
});

Deno.test("OutboundFlow.next discards queued messages its stale test rejects, and counts them", () => {
  const flow = new OutboundFlow<string>({ maxInflight: 1 });
  assert.equal(flow.offer("a", 1)?.message, "a");
  for (const m of ["old1", "b", "old2", "old3"]) flow.offer(m, 1);
  const stale = (m: string) => m.startsWith("old");
  // Window full: nothing taken, nothing discarded yet.
  assert.equal(flow.next(stale), undefined);
  assert.equal(flow.staleDropped, 0);
  assert.equal(flow.acknowledge(1, "puback"), "complete");
  assert.equal(flow.next(stale)?.message, "b");
  assert.equal(flow.staleDropped, 1);
  assert.equal(flow.acknowledge(flow.inflight().next().value!.packetId, "puback"), "complete");
  assert.equal(flow.next(stale), undefined);
  assert.equal(flow.staleDropped, 3);
  assert.equal(flow.queuedCount, 0);
});

Deno.test("OutboundFlow.next and discardUnsent give the stale test the clock they are given [MQTT-3.3.2-5]", () => {
  // One test function for every call (no closure over the clock per call): the flow passes `now`.
  const flow = new OutboundFlow<number>({ maxInflight: 2 });
  flow.offer(100, 1);
  flow.offer(200, 1);
  for (const m of [150, 300]) flow.offer(m, 1);
  const stale = (expiresAt: number, now: number) => now >= expiresAt;
  // At 250 the message due at 100 was never sent: discarded from the window; 200 was sent.
  flow.inflight().next().value!.sent = false;
  [...flow.inflight()][1]!.sent = true;
  assert.equal(flow.discardUnsent(stale, 250), 1);
  assert.deepEqual([...flow.inflight()].map((e) => e.message), [200]);
  // The queue at 250: 150 is past, 300 is not.
  assert.equal(flow.next(stale, 250)?.message, 300);
  assert.equal(flow.staleDropped, 2);
});

Deno.test("OutboundFlow.discardUnsent drops stale entries never sent, keeps those sent", () => {
  const flow = new OutboundFlow<string>({ maxInflight: 3 });
  const sent = flow.offer("old-sent", 2)!;
  sent.sent = true;
  flow.offer("old-unsent", 1);
  flow.offer("fresh", 1);
  assert.equal(flow.discardUnsent((m) => m.startsWith("old")), 1);
  assert.deepEqual([...flow.inflight()].map((e) => e.message), ["old-sent", "fresh"]);
  assert.equal(flow.staleDropped, 1);
});

Deno.test("OutboundFlow.complete ends a PUBLISH in flight as if acknowledged, freeing its slot [MQTT-3.1.2-25]", () => {
  const flow = new OutboundFlow<string>({ maxInflight: 1 });
  const a = flow.offer("a", 2)!;
  assert.equal(flow.offer("b", 1), undefined);
  assert.equal(flow.complete(a.packetId), true);
  assert.equal(flow.complete(a.packetId), false, "already gone");
  assert.equal(flow.next()?.message, "b");
  // An entry past its PUBREC (PUBREL stage) is not ended this way.
  const flow2 = new OutboundFlow<string>();
  const c = flow2.offer("c", 2)!;
  assert.equal(flow2.acknowledge(c.packetId, "pubrec"), "pubrel");
  assert.equal(flow2.complete(c.packetId), false);
  assert.equal(flow2.inflightCount, 1);
});

Deno.test("OutboundFlow hands out ids from firstPacketId, in turn past 65535", () => {
  const flow = new OutboundFlow<string>({ firstPacketId: 65535 });
  assert.equal(flow.offer("a", 2)?.packetId, 65535);
  assert.equal(flow.offer("b", 2)?.packetId, 1);
  assert.throws(() => new OutboundFlow({ firstPacketId: 0 }), RangeError);
});

Deno.test("OutboundFlow.restore: new ids go on from firstPacketId, passing over those in flight", () => {
  const flow = new OutboundFlow<string>({ firstPacketId: 7 });
  flow.restore([{ packetId: 7, message: "old", qos: 2, state: "publish" }], [{
    message: "queued",
    qos: 2,
  }]);
  assert.equal(flow.next()?.packetId, 8);
  assert.equal(flow.offer("new", 1)?.packetId, 9);
});

Deno.test("OutboundFlow.restore without firstPacketId: new ids go on after the last entry in flight", () => {
  const flow = new OutboundFlow<string>();
  flow.restore([{ packetId: 40, message: "old", qos: 1, state: "publish" }], []);
  assert.equal(flow.offer("new", 1)?.packetId, 41);
});

Deno.test("OutboundFlow.aged visits the window when it changed and each queued message once, from the call after it was queued", () => {
  const flow = new OutboundFlow<string>({ maxInflight: 1, maxQueued: 4 });
  const aged = () => flowAged(flow);
  flow.offer("a", 1); // in flight
  flow.offer("b", 1);
  flow.offer("c", 1);
  assert.deepEqual(aged(), ["a"]); // b and c were queued since no earlier call
  flow.offer("d", 1);
  assert.deepEqual(aged(), ["b", "c"]); // the window did not change: a was visited
  flow.offer("e", 1);
  flow.offer("f", 1); // the queue is full: b is dropped
  assert.equal(flow.dropped, 1);
  assert.deepEqual(aged(), ["d"]); // b and c already visited, e and f too young
  assert.equal(flow.acknowledge(1, "puback"), "complete");
  assert.equal(flow.next()?.message, "c");
  assert.deepEqual(aged(), ["c", "e", "f"]);
  assert.deepEqual(aged(), []);
});

Deno.test("OutboundFlow.aged counts restored messages and forgets a cleared queue", () => {
  const flow = new OutboundFlow<string>({ maxInflight: 1 });
  flow.restore([{ packetId: 5, message: "a", qos: 1, state: "publish" }], [
    { message: "b", qos: 1 },
  ]);
  assert.deepEqual(flowAged(flow), ["a"]);
  assert.deepEqual(flowAged(flow), ["b"]);
  flow.clear();
  flow.offer("x", 1);
  flow.offer("y", 1);
  assert.deepEqual(flowAged(flow), ["x"]);
  assert.deepEqual(flowAged(flow), ["y"]);
  assert.deepEqual(flowAged(flow), []);
});

Deno.test("OutboundFlow.aged with a bound visits the window whole, then at most the bound, and goes on from there at the next call", () => {
  const flow = new OutboundFlow<string>({ maxInflight: 2, maxQueued: 10 });
  for (const m of ["a", "b", "c", "d", "e", "f", "g"]) flow.offer(m, 1);
  assert.deepEqual(flowAged(flow, 1), ["a", "b"]); // the window whole; nothing queued is aged yet
  flow.offer("h", 1);
  const seen: string[] = [];
  assert.equal(flow.aged((m) => seen.push(m), 3), 3);
  assert.deepEqual(seen, ["c", "d", "e"]);
  assert.deepEqual(flowAged(flow, 3), ["f", "g"]); // h came after the call before: not yet
  assert.deepEqual(flowAged(flow, 3), ["h"]);
  assert.deepEqual(flowAged(flow, 3), []);
  // Stopped short, then the queue moved on: what went into the window is not visited as queued.
  for (const m of ["i", "j", "k", "l"]) flow.offer(m, 1);
  assert.deepEqual(flowAged(flow, 1), []);
  assert.deepEqual(flowAged(flow, 1), ["i"]);
  assert.equal(flow.acknowledge(1, "puback"), "complete");
  assert.equal(flow.acknowledge(2, "puback"), "complete");
  assert.equal(flow.next()?.message, "c");
  assert.equal(flow.next()?.message, "d");
  assert.deepEqual(flowAged(flow, 0), ["c", "d"]); // the window changed
  assert.deepEqual(flowAged(flow, 10), ["j", "k", "l"]);
  assert.deepEqual(flowAged(flow, 10), []);
});

function flowAged(flow: OutboundFlow<string>, max?: number): string[] {
  const seen: string[] = [];
  flow.aged((m) => seen.push(m), max);
  return seen;
}

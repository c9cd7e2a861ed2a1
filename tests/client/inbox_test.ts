import assert from "node:assert/strict";
import fc from "fast-check";
import { END, Inbox } from "../../src/client/_inbox.ts";

/** A message: its QoS and a sequence number. */
interface Item {
  qos: 0 | 1 | 2;
  n: number;
}

function inbox(limit: number) {
  const accepted: number[] = [];
  const box = new Inbox<Item>({
    limit,
    droppable: (m) => m.qos === 0,
    accept: (m) => accepted.push(m.n),
  });
  box.open();
  return { box, accepted };
}

async function takeAll(box: Inbox<Item>): Promise<number[]> {
  const out: number[] = [];
  while (box.size > 0) {
    const m = await box.take();
    if (m === END) break;
    out.push(m.n);
  }
  return out;
}

Deno.test("Inbox drops the oldest QoS 0 message past the limit and counts it", async () => {
  const { box } = inbox(3);
  for (let n = 0; n < 10; n++) box.push({ qos: 0, n });
  assert.equal(box.size, 3);
  assert.equal(box.dropped, 7);
  assert.deepEqual(await takeAll(box), [7, 8, 9]);
});

Deno.test("Inbox drops a QoS 0 message queued behind QoS 1 messages, not the QoS 1 ones", async () => {
  const { box, accepted } = inbox(3);
  box.push({ qos: 1, n: 0 });
  box.push({ qos: 0, n: 1 });
  box.push({ qos: 1, n: 2 });
  box.push({ qos: 0, n: 3 }); // full: message 1 is the oldest QoS 0 and goes
  assert.equal(box.dropped, 1);
  assert.deepEqual(accepted, [0, 2]);
  assert.deepEqual(await takeAll(box), [0, 2, 3]);
});

Deno.test("Inbox drops an incoming QoS 0 message when only QoS 1/2 messages are queued", async () => {
  const { box } = inbox(2);
  box.push({ qos: 1, n: 0 });
  box.push({ qos: 2, n: 1 });
  box.push({ qos: 0, n: 2 });
  assert.equal(box.dropped, 1);
  assert.deepEqual(await takeAll(box), [0, 1]);
});

Deno.test("Inbox accepts QoS 1/2 within the limit at once and the rest as readers make room, in order", async () => {
  const { box, accepted } = inbox(2);
  for (let n = 0; n < 5; n++) box.push({ qos: n % 2 === 0 ? 1 : 2, n });
  assert.deepEqual(accepted, [0, 1], "only what fits is acknowledged");
  assert.equal(box.size, 5, "nothing is dropped");
  assert.equal(box.withheld, 3);
  assert.equal((await box.take()) !== END && accepted.length, 3);
  assert.deepEqual(accepted, [0, 1, 2]);
  assert.deepEqual(await takeAll(box), [1, 2, 3, 4]);
  assert.deepEqual(accepted, [0, 1, 2, 3, 4]);
  assert.equal(box.dropped, 0);
});

Deno.test("Inbox with limit 0 accepts a message when it is taken, or handed to a waiting reader", async () => {
  const { box, accepted } = inbox(0);
  box.push({ qos: 1, n: 0 });
  box.push({ qos: 0, n: 1 }); // nobody waits: dropped
  assert.deepEqual(accepted, []);
  assert.equal(box.dropped, 1);
  assert.deepEqual(await takeAll(box), [0]);
  assert.deepEqual(accepted, [0]);
  const waiting = box.take();
  box.push({ qos: 2, n: 2 });
  assert.deepEqual(accepted, [0, 2]);
  assert.deepEqual(await waiting, { qos: 2, n: 2 });
});

Deno.test("Inbox stays bounded while a QoS 1 message waits at the front and QoS 0 keeps coming", async () => {
  const { box } = inbox(4);
  box.push({ qos: 1, n: -1 });
  for (let n = 0; n < 100_000; n++) box.push({ qos: 0, n });
  assert.equal(box.size, 4);
  assert.equal(box.dropped, 100_000 - 3);
  assert.deepEqual(await takeAll(box), [-1, 99_997, 99_998, 99_999]);
});

Deno.test("Inbox rejects a limit that is negative or fractional", () => {
  const options = { droppable: () => true, accept: () => {} };
  assert.throws(() => new Inbox({ ...options, limit: -1 }), RangeError);
  assert.throws(() => new Inbox({ ...options, limit: 1.5 }), RangeError);
});

Deno.test("Inbox keeps order, bounds QoS 0, never drops QoS 1/2 and accepts them in order (model)", async () => {
  const op = fc.oneof(
    fc.constantFrom<0 | 1 | 2>(0, 1, 2).map((qos) => ({ push: qos })),
    fc.constant({ take: true }),
  );
  await fc.assert(
    fc.asyncProperty(fc.nat(6), fc.array(op, { maxLength: 200 }), async (limit, ops) => {
      const { box, accepted } = inbox(limit);
      let n = 0;
      // The model: every message kept, minus the QoS 0 ones dropped by the rule.
      let model: Item[] = [];
      let dropped = 0;
      const taken: number[] = [];
      const pushedSafe: number[] = [];
      for (const o of ops) {
        if ("push" in o) {
          const item = { qos: o.push, n: n++ };
          if (item.qos !== 0) pushedSafe.push(item.n);
          if (item.qos === 0 && model.length >= limit) {
            dropped++;
            const i = model.findIndex((m) => m.qos === 0);
            if (i >= 0) model = [...model.slice(0, i), ...model.slice(i + 1), item];
          } else {
            model.push(item);
          }
          box.push(item);
        } else if (model.length > 0) {
          const m = await box.take();
          assert.ok(m !== END);
          taken.push(m.n);
          assert.equal(m.n, model.shift()!.n);
        }
        assert.equal(box.size, model.length);
        assert.equal(box.dropped, dropped);
        assert.ok(model.filter((m) => m.qos === 0).length <= limit);
        // Acknowledged in arrival order, never twice, and every QoS 1/2 message taken was.
        assert.deepEqual(accepted, pushedSafe.slice(0, accepted.length));
        const safeTaken = taken.filter((t) => pushedSafe.includes(t));
        assert.deepEqual(accepted.slice(0, safeTaken.length), safeTaken);
        // What is acknowledged but not yet taken, plus queued QoS 0, fits in the limit.
        const acceptedQueued = model.filter((m) => m.qos !== 0 && accepted.includes(m.n)).length;
        const zeros = model.filter((m) => m.qos === 0).length;
        assert.ok(acceptedQueued + zeros <= limit, "acknowledged or QoS 0 within the limit");
        assert.equal(box.withheld, model.length - zeros - acceptedQueued);
      }
    }),
    { numRuns: 300 },
  );
});

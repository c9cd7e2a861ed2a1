import assert from "node:assert/strict";
import { HeldShares } from "../../src/broker/_held_shares.ts";
import type { MessageFrame } from "../../src/cluster/bus_frame.ts";

function frame(topic: string, shares?: string[], only?: boolean): MessageFrame {
  const f: MessageFrame = {
    type: "message",
    origin: "c",
    publisher: "p",
    seq: 1,
    order: 1,
    message: { topic, payload: new Uint8Array(), qos: 1, retain: false },
  };
  if (shares !== undefined) f.shares = shares;
  if (only !== undefined) f.only = only;
  return f;
}

Deno.test("HeldShares holds a moving session's groups of a received message, once, for those groups only", () => {
  const held = new HeldShares();
  held.start("s1", ["$share/g/t/#", "t/plain", "$share/h/t/#"]);
  held.start("s2", ["$share/g/t/#"]);
  assert.ok(held.holding);
  assert.deepEqual(
    held.received(frame("t/1", ["$share/g/t/#", "$share/k/t/#"]), ["$share/g/t/#", "$share/k/t/#"]),
    ["$share/g/t/#"],
  );
  assert.deepEqual(held.received(frame("t/1"), []), []);
  const frames = held.end("s1");
  assert.deepEqual(frames.map((f) => [f.shares, f.only]), [[["$share/g/t/#"], true]]);
  assert.deepEqual(held.end("s2"), [], "held under the first holding only");
  assert.ok(!held.holding);
});

Deno.test("HeldShares holds a local message's matching groups no other node serves, and takes back groups given to a departed node", () => {
  const held = new HeldShares();
  held.start("s", ["$share/g/t/#", "$share/h/u/#"]);
  assert.equal(held.local(frame("t/1"), new Set(["$share/g/t/#"])), false, "served elsewhere");
  assert.equal(held.local(frame("u/1"), new Set()), true);
  assert.equal(held.local(frame("v/1"), new Set()), false, "no group matches");
  const choice = new Map([["x", ["$share/g/t/#", "$share/k/t/#"]], ["a", ["$share/h/u/#"]]]);
  held.claim(choice, (node) => node === "x");
  assert.deepEqual([...choice], [["x", ["$share/k/t/#"]], ["a", ["$share/h/u/#"]]]);
  assert.deepEqual(held.end("s").map((f) => [f.message.topic, f.shares]), [["u/1", [
    "$share/h/u/#",
  ]]]);
});

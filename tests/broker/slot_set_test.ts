import assert from "node:assert/strict";
import { SlotSet } from "../../src/broker/_slot_set.ts";

class Item {
  slot = -1;
  constructor(readonly name: string) {}
}

const names = (set: SlotSet<Item>) => [...set].map((i) => i.name).sort();

Deno.test("SlotSet adds, finds and removes members; the last one takes a removed one's place", () => {
  const set = new SlotSet<Item>();
  const [a, b, c] = [new Item("a"), new Item("b"), new Item("c")];
  set.add(a);
  set.add(b);
  set.add(c);
  set.add(b); // already in: no-op
  assert.equal(set.size, 3);
  assert.deepEqual(names(set), ["a", "b", "c"]);
  assert.equal(set.delete(a), true);
  assert.equal(a.slot, -1);
  assert.equal(c.slot, 0);
  assert.equal(set.has(a), false);
  assert.equal(set.has(c), true);
  assert.equal(set.delete(a), false);
  assert.deepEqual(names(set), ["b", "c"]);
  assert.equal(set.delete(c), true);
  assert.equal(set.delete(b), true);
  assert.equal(set.size, 0);
  assert.deepEqual(names(set), []);
});

Deno.test("SlotSet does not take a member of another set for its own", () => {
  const one = new SlotSet<Item>();
  const other = new SlotSet<Item>();
  const a = new Item("a");
  const b = new Item("b");
  one.add(a);
  other.add(b);
  // Both have slot 0: only the set that holds the object counts it as a member.
  assert.equal(one.has(b), false);
  assert.equal(one.delete(b), false);
  assert.equal(other.has(b), true);
  assert.equal(b.slot, 0);
});

Deno.test("SlotSet walks a snapshot: removing members while walking skips none", () => {
  const set = new SlotSet<Item>();
  const items = ["a", "b", "c", "d", "e"].map((n) => new Item(n));
  for (const i of items) set.add(i);
  const seen: string[] = [];
  for (const i of set) {
    seen.push(i.name);
    set.delete(i);
    if (i.name === "b") set.delete(items[4]!); // a later one, gone before it is reached
  }
  assert.deepEqual(seen.sort(), ["a", "b", "c", "d", "e"]);
  assert.equal(set.size, 0);
});

/**
 * The retained messages of a broker, one per topic name, in a trie.
 *
 * @module
 */

import { validateTopicName } from "./validate_topic_name.ts";
import { TombstoneMap } from "./_tombstone_map.ts";

const DOLLAR = 0x24;

class RetainedNode<M> {
  children: TombstoneMap<string, RetainedNode<M>> | undefined = undefined;
  /** The topic of the message held here, or undefined when the node holds none. */
  topic: string | undefined = undefined;
  message: M | undefined = undefined;
  /** When the message was set, in the store's own count of `set` calls. */
  seq = 0;
  readonly parent: RetainedNode<M> | undefined;
  readonly level: string;

  constructor(parent: RetainedNode<M> | undefined, level: string) {
    this.parent = parent;
    this.level = level;
  }
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

/**
 * Retained messages keyed by topic name, stored in a trie of levels so that finding the messages
 * for a new subscription walks only the branches its filter can match.
 *
 * The store keeps whatever it is given: the broker decides what to retain (an empty retained
 * payload deletes the topic's message [MQTT-3.3.1-10], [MQTT-3.3.1-11]) and how to deliver it.
 *
 * @typeParam M The message type.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RetainedStore } from "./retained_store.ts";
 *
 * const store = new RetainedStore<string>();
 * store.set("sport/tennis/player1", "15-0");
 * store.set("sport/golf", "par");
 * store.set("$SYS/broker/version", "amqtt");
 * assert.deepEqual(store.match("sport/tennis/+"), ["15-0"]);
 * assert.equal(store.match("#").length, 2); // "#" does not match "$SYS/..."
 * ```
 */
export class RetainedStore<M> {
  #root = new RetainedNode<M>(undefined, "");
  #byTopic = new TombstoneMap<string, RetainedNode<M>>();
  #nodeCount = 0;
  #seq = 0;
  /** Shared with the cursors of the current trie; `clear` marks it so that they stop. */
  #epoch = { cleared: false };

  /** The number of retained messages. */
  get size(): number {
    return this.#byTopic.size;
  }

  /**
   * The number of trie nodes below the root, one per distinct topic prefix: what the store costs
   * beyond its messages. It drops as deleted topics' nodes are pruned.
   */
  get nodeCount(): number {
    return this.#nodeCount;
  }

  /**
   * Stores the retained message of a topic, replacing any previous one.
   *
   * @param topic A topic name.
   * @param message The message to retain.
   * @throws {TypeError} When the topic is not a valid topic name (see `validateTopicName`).
   */
  set(topic: string, message: M): void {
    const known = this.#byTopic.get(topic);
    if (known !== undefined) {
      known.message = message;
      known.seq = ++this.#seq;
      return;
    }
    const problem = validateTopicName(topic);
    if (problem !== undefined) {
      throw new TypeError(`Cannot retain message: ${lowerFirst(problem)}`);
    }
    let node = this.#root;
    for (const level of topic.split("/")) {
      node.children ??= new TombstoneMap();
      let next = node.children.get(level);
      if (next === undefined) {
        next = new RetainedNode(node, level);
        node.children.set(level, next);
        this.#nodeCount++;
      }
      node = next;
    }
    node.topic = topic;
    node.message = message;
    node.seq = ++this.#seq;
    this.#byTopic.set(topic, node);
  }

  /**
   * Returns the retained message of a topic.
   *
   * @param topic A topic name.
   * @returns The message, or undefined when the topic has none.
   */
  get(topic: string): M | undefined {
    return this.#byTopic.get(topic)?.message;
  }

  /**
   * Tells whether a topic has a retained message.
   *
   * @param topic A topic name.
   * @returns true when it has one.
   */
  has(topic: string): boolean {
    return this.#byTopic.has(topic);
  }

  /**
   * Deletes the retained message of a topic and prunes the emptied trie nodes.
   *
   * @param topic A topic name.
   * @returns true when a message was deleted.
   */
  delete(topic: string): boolean {
    const found = this.#byTopic.get(topic);
    if (found === undefined) return false;
    this.#byTopic.delete(topic);
    found.topic = undefined;
    found.message = undefined;
    let node = found;
    while (node.parent !== undefined && node.topic === undefined && node.children === undefined) {
      const parent = node.parent;
      parent.children!.delete(node.level);
      if (parent.children!.size === 0) parent.children = undefined;
      this.#nodeCount--;
      node = parent;
    }
    return true;
  }

  /** Deletes every retained message. */
  clear(): void {
    this.#root = new RetainedNode<M>(undefined, "");
    this.#byTopic.clear();
    this.#nodeCount = 0;
    this.#epoch.cleared = true;
    this.#epoch = { cleared: false };
  }

  /**
   * Finds the retained messages whose topics match a filter, for a new subscription.
   *
   * It follows MQTT §4.7: `+` is one level, `#` the parent level and all below, and filters
   * starting with a wildcard do not match topics starting with `$` [MQTT-4.7.2-1]. Pass the inner
   * filter of a shared subscription, if the broker sends retained messages for it at all.
   *
   * @param filter A valid topic filter (see `validateTopicFilter`).
   * @returns The matching messages, in no particular order.
   */
  match(filter: string): M[] {
    const out: M[] = [];
    const cursor = this.cursor(filter);
    while (cursor.next(Number.MAX_SAFE_INTEGER, out));
    return out;
  }

  /**
   * Starts a walk over the messages matching a filter that can be taken a few steps at a time,
   * so that a filter matching a million messages does not hold the caller until all are found.
   * It yields the messages as they are at the time of each step, and only those stored before
   * the cursor was made: a message set or replaced since is skipped (whoever subscribed with
   * this filter received it as a live message), one deleted since is not found.
   *
   * @param filter A valid topic filter (see `validateTopicFilter`).
   * @returns The cursor; see {@linkcode RetainedCursor.next}.
   */
  cursor(filter: string): RetainedCursor<M> {
    return new RetainedCursor(this.#root, filter.split("/"), this.#seq, this.#epoch);
  }

  /**
   * Lists every retained message.
   *
   * @returns An iterator over `[topic, message]` pairs, in insertion order.
   */
  *entries(): IterableIterator<[string, M]> {
    for (const [topic, node] of this.#byTopic.entries()) yield [topic, node.message as M];
  }
}

/** A `depth` on the cursor's stack meaning "everything below", for a `#` that matched. */
const BELOW = -1;

/**
 * A resumable walk of a {@linkcode RetainedStore} for one filter (see
 * {@linkcode RetainedStore.cursor}). It keeps an explicit stack, not recursion, so that deep
 * topics cannot overflow the call stack, and so that it can stop and resume at any node.
 *
 * @typeParam M The message type.
 *
 * @example Taking the matches of "#" a few nodes at a time
 * ```ts
 * import assert from "node:assert/strict";
 * import { RetainedStore } from "./retained_store.ts";
 *
 * const store = new RetainedStore<string>();
 * for (let i = 0; i < 10; i++) store.set(`room/${i}`, `t${i}`);
 * const cursor = store.cursor("#");
 * const found: string[] = [];
 * let slices = 1;
 * while (cursor.next(4, found)) slices++; // a caller would yield between slices
 * assert.equal(found.length, 10);
 * assert.ok(slices > 1);
 * ```
 */
export class RetainedCursor<M> {
  #levels: string[];
  #until: number;
  #nodes: RetainedNode<M>[];
  #depths: number[] = [0];
  #epoch: { readonly cleared: boolean };

  /** @internal Use {@linkcode RetainedStore.cursor}. */
  constructor(
    root: RetainedNode<M>,
    levels: string[],
    until: number,
    epoch: { readonly cleared: boolean },
  ) {
    this.#levels = levels;
    this.#until = until;
    this.#nodes = [root];
    this.#epoch = epoch;
  }

  /**
   * Visits up to `steps` trie nodes, appending the messages found to `out`.
   *
   * @param steps How many nodes to visit at most (each visit finds at most one message).
   * @param out Where found messages are appended.
   * @returns true when nodes remain to visit.
   */
  next(steps: number, out: M[]): boolean {
    const nodes = this.#nodes;
    const depths = this.#depths;
    const levels = this.#levels;
    // The store was cleared: nothing this cursor could still find exists.
    if (this.#epoch.cleared) nodes.length = depths.length = 0;
    for (let step = 0; step < steps && nodes.length > 0; step++) {
      const node = nodes.pop()!;
      const depth = depths.pop()!;
      const children = node.children;
      if (depth === BELOW || depth === levels.length) {
        this.#emit(node, out);
        if (depth === BELOW && children !== undefined) this.#pushAll(children, BELOW, false);
        continue;
      }
      const level = levels[depth];
      if (level === "#") {
        // "#" matches the parent level too ("sport/#" matches "sport"); the root holds no topic.
        this.#emit(node, out);
        // [MQTT-4.7.2-1]: "#" alone does not match "$" topics.
        if (children !== undefined) this.#pushAll(children, BELOW, depth === 0);
      } else if (level === "+") {
        // [MQTT-4.7.2-1]
        if (children !== undefined) this.#pushAll(children, depth + 1, depth === 0);
      } else {
        const child = children?.get(level);
        if (child !== undefined) {
          nodes.push(child);
          depths.push(depth + 1);
        }
      }
    }
    return nodes.length > 0;
  }

  #emit(node: RetainedNode<M>, out: M[]): void {
    if (node.topic !== undefined && node.seq <= this.#until) out.push(node.message as M);
  }

  #pushAll(
    children: TombstoneMap<string, RetainedNode<M>>,
    depth: number,
    skipDollar: boolean,
  ): void {
    for (const child of children.rawValues()) {
      if (child === undefined) continue;
      if (skipDollar && child.level.charCodeAt(0) === DOLLAR) continue;
      this.#nodes.push(child);
      this.#depths.push(depth);
    }
  }
}

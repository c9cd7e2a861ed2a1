/**
 * The subscription tree: every subscription of every session, matched against each PUBLISH.
 *
 * @module
 */

import type { Delivery, SubscriptionOptions } from "./delivery.ts";
import { mergeDelivery, PLAIN_OPTIONS, singleDelivery } from "./_merge.ts";
import { parseSharedFilter } from "./shared_filter.ts";
import {
  type Entry,
  ShareGroup,
  type SharePicker,
  type ShareStrategy,
  type SubscriberRecord,
  TreeNode,
} from "./_tree_node.ts";
import { validateTopicFilter } from "./validate_topic_filter.ts";
import { TombstoneMap } from "./_tombstone_map.ts";

export type { ShareStrategy };

/** Options of a {@link SubscriptionTree}: the bounds of its match cache, how shared groups pick. */
export interface SubscriptionTreeOptions<S = unknown> {
  /** Most topics whose match result is cached; 0 turns the cache off. Default 10,000. */
  cacheEntries?: number;
  /**
   * Most total weight of the cache, an entry weighing its topic's length in UTF-16 code units
   * plus its number of deliveries plus 16. It bounds memory when topics are long or fan-out is
   * wide. Default 4,194,304.
   */
  cacheWeight?: number;
  /**
   * How a shared group picks the member that gets a message: `round_robin` (in turn) or `random`.
   * @default {"round_robin"}
   */
  shareStrategy?: ShareStrategy;
  /**
   * Whether a member of a shared group can take a message now (for the broker: it is connected).
   * A group passes over members that cannot while another can. Default: every member can.
   */
  shareAvailable?: (subscriber: S) => boolean;
  /** The random source of the `random` strategy, a number in [0, 1). Default `Math.random`. */
  random?: () => number;
}

/** One subscription, as listed by {@link SubscriptionTree.entries}. */
export interface SubscriptionEntry<S> {
  /** The filter exactly as subscribed, `$share/...` included. */
  filter: string;
  /** The subscriber key. */
  subscriber: S;
  /** The granted options. */
  options: Readonly<SubscriptionOptions>;
}

interface CacheEntry<S> {
  readonly deliveries: Delivery<S>[];
  /** Shared groups whose slots, from `offset` on, are refilled at each match. */
  readonly groups: ShareGroup<S>[] | undefined;
  readonly offset: number;
  readonly weight: number;
}

const DOLLAR = 0x24;
const CACHE_ENTRY_OVERHEAD = 16;
const MAX_SUBSCRIPTION_IDENTIFIER = 268_435_455;
const NO_DELIVERIES: Delivery<never>[] = [];
Object.freeze(NO_DELIVERIES);

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

/**
 * A trie of topic filters, keyed by level, that finds who receives a message published to a topic.
 *
 * It is generic over the subscriber key `S`, compared by identity (`Map` semantics), for example
 * a session object. Each subscriber has at most one subscription per exact filter
 * [MQTT-3.8.4-3]. Filters `$share/{ShareName}/{filter}` are shared subscriptions (MQTT 5.0
 * §4.8.2): each group (ShareName and filter) gets one copy of a matching message, for one of its
 * members, picked in turn or at random (see {@link SubscriptionTreeOptions}).
 *
 * `match` caches its result per topic, so repeated publishes to a topic allocate nothing. The
 * cache is bounded (see {@link SubscriptionTreeOptions}) and dropped whenever a subscription
 * changes.
 *
 * @typeParam S The subscriber key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SubscriptionTree } from "./subscription_tree.ts";
 *
 * const tree = new SubscriptionTree<string>();
 * tree.subscribe("sport/tennis/+", "alice", { qos: 1 });
 * tree.subscribe("sport/#", "alice", { qos: 2, identifier: 7 });
 * tree.subscribe("sport/tennis/player1", "bob", { qos: 0 });
 *
 * const deliveries = tree.match("sport/tennis/player1");
 * assert.equal(deliveries.length, 2);
 * const alice = deliveries.find((d) => d.subscriber === "alice");
 * assert.equal(alice?.qos, 2);
 * assert.deepEqual(alice?.identifiers, [7]);
 * ```
 */
export class SubscriptionTree<S> {
  #root = new TreeNode<S>(undefined, "");
  #bySubscriber = new TombstoneMap<S, SubscriberRecord<S>>();
  #size = 0;
  #nodeCount = 0;

  #cache = new Map<string, CacheEntry<S>>();
  #cacheWeight = 0;
  #maxEntries: number;
  #maxWeight: number;
  #picker: SharePicker<S>;

  // Scratch space of the cold match path, reused across calls (match is not re-entrant).
  #stackNodes: TreeNode<S>[] = [];
  #stackDepths: number[] = [];
  #found: Delivery<S>[] = [];
  #foundGroups: ShareGroup<S>[] = [];
  #pass = 0;

  /**
   * Creates an empty tree.
   *
   * @param options Bounds of the match cache.
   * @throws {RangeError} When a bound is negative or not an integer.
   */
  constructor(options: SubscriptionTreeOptions<S> = {}) {
    const entries = options.cacheEntries ?? 10_000;
    const weight = options.cacheWeight ?? 4_194_304;
    if (!Number.isSafeInteger(entries) || entries < 0) {
      throw new RangeError(`Cannot create SubscriptionTree: cacheEntries ${entries} is invalid`);
    }
    if (!Number.isSafeInteger(weight) || weight < 0) {
      throw new RangeError(`Cannot create SubscriptionTree: cacheWeight ${weight} is invalid`);
    }
    this.#maxEntries = entries;
    this.#maxWeight = weight;
    const strategy = options.shareStrategy ?? "round_robin";
    if (strategy !== "round_robin" && strategy !== "random") {
      throw new RangeError(
        `Cannot create SubscriptionTree: shareStrategy "${strategy}" is invalid`,
      );
    }
    this.#picker = {
      strategy,
      available: options.shareAvailable,
      random: options.random ?? Math.random,
    };
  }

  /** The number of subscriptions, shared ones included. */
  get size(): number {
    return this.#size;
  }

  /** The number of trie nodes below the root, for diagnostics (it drops as nodes are pruned). */
  get nodeCount(): number {
    return this.#nodeCount;
  }

  /** The number of topics whose match result is cached, for diagnostics. */
  get cacheSize(): number {
    return this.#cache.size;
  }

  /**
   * Adds a subscription, or replaces the subscriber's subscription to that exact filter
   * [MQTT-3.8.4-3]: the options are updated, nothing else changes.
   *
   * @param filter A topic filter; `$share/{ShareName}/{filter}` makes a shared subscription.
   * @param subscriber The subscriber key.
   * @param options The granted options. They are copied.
   * @returns true when the subscription is new, false when it replaced one.
   * @throws {TypeError} When the filter is invalid (see `validateTopicFilter`).
   * @throws {RangeError} When the QoS, Retain Handling or Subscription Identifier is out of range.
   */
  subscribe(filter: string, subscriber: S, options: SubscriptionOptions): boolean {
    const problem = validateTopicFilter(filter);
    if (problem !== undefined) throw new TypeError(`Cannot subscribe: ${lowerFirst(problem)}`);
    const stored = copyOptions(options);
    const owner = this.#bySubscriber.get(subscriber);
    const existing = owner === undefined ? undefined : filterOf(owner, filter);
    if (existing !== undefined) {
      existing.options = stored;
      existing.delivery = singleDelivery(
        subscriber,
        stored,
        existing.group?.name,
        existing.group === undefined ? undefined : filter,
      );
      this.#invalidate();
      return false;
    }
    const shared = parseSharedFilter(filter);
    const node = this.#nodeFor(shared === undefined ? filter : shared.filter);
    let group: ShareGroup<S> | undefined;
    if (shared !== undefined) {
      node.groups ??= new Map();
      group = node.groups.get(shared.group);
      if (group === undefined) {
        group = new ShareGroup(shared.group, this.#picker);
        node.groups.set(shared.group, group);
      }
    }
    // A new subscriber's record gets its filters (this entry) once the entry is made.
    const record = owner ?? { filters: undefined as unknown as Entry<S>, mark: 0, slot: 0 };
    const entry: Entry<S> = {
      filter,
      subscriber,
      owner: record,
      options: stored,
      delivery: singleDelivery(
        subscriber,
        stored,
        group?.name,
        group === undefined ? undefined : filter,
      ),
      node,
      group,
      index: -1,
    };
    if (group !== undefined) {
      group.members.push(entry);
    } else {
      // A node's first subscriber as an array literal of one: `[]` then push() reserves 17 slots
      // (152 bytes), which most nodes (one device's own filter) never fill.
      const subscribers = node.subscribers;
      if (subscribers === undefined) {
        entry.index = 0;
        node.subscribers = [entry];
      } else {
        entry.index = subscribers.length;
        subscribers.push(entry);
      }
    }
    if (owner === undefined) {
      record.filters = entry;
      this.#bySubscriber.set(subscriber, record);
    } else filterSet(owner, entry);
    this.#size++;
    this.#invalidate();
    return true;
  }

  /**
   * Removes the subscriber's subscription to that exact filter, pruning emptied trie nodes.
   *
   * @param filter The filter exactly as subscribed.
   * @param subscriber The subscriber key.
   * @returns true when a subscription was removed, false when there was none.
   */
  unsubscribe(filter: string, subscriber: S): boolean {
    const owner = this.#bySubscriber.get(subscriber);
    const entry = owner === undefined ? undefined : filterOf(owner, filter);
    if (owner === undefined || entry === undefined) return false;
    if (filterDelete(owner, filter) === 0) this.#bySubscriber.delete(subscriber);
    this.#detach(entry);
    this.#invalidate();
    return true;
  }

  /**
   * Removes every subscription of a subscriber, for example when its session ends.
   *
   * @param subscriber The subscriber key.
   * @returns The number of subscriptions removed.
   */
  unsubscribeAll(subscriber: S): number {
    const owner = this.#bySubscriber.get(subscriber);
    if (owner === undefined) return 0;
    this.#bySubscriber.delete(subscriber);
    const entries = filterEntries(owner);
    for (const entry of entries) this.#detach(entry);
    this.#invalidate();
    return entries.length;
  }

  /**
   * Finds who receives a message published to `topic`.
   *
   * There is one delivery per subscriber with matching non-shared subscriptions, with the maximum
   * QoS and all identifiers of those subscriptions (3.1.1 [MQTT-3.3.5-1], 5.0 [MQTT-3.3.4-2],
   * [MQTT-3.3.4-3]), then one delivery per matching shared group, to its next member in turn.
   * Filters starting with a wildcard do not match topics starting with `$` [MQTT-4.7.2-1].
   *
   * The result is cached per topic and owned by the tree: do not modify it. When shared groups
   * match, the same array is refilled by the next call for that topic, so read it before calling
   * `match` again.
   *
   * @param topic A valid topic name (see `validateTopicName`).
   * @returns The deliveries, in no particular order.
   */
  match(topic: string): readonly Delivery<S>[] {
    const hit = this.#cache.get(topic);
    if (hit !== undefined) {
      const groups = hit.groups;
      if (groups !== undefined) {
        const deliveries = hit.deliveries;
        const offset = hit.offset;
        for (let j = 0; j < groups.length; j++) deliveries[offset + j] = groups[j].next();
      }
      return hit.deliveries;
    }
    const entry = this.#compute(topic);
    this.#remember(topic, entry);
    return entry.deliveries;
  }

  /**
   * Picks the member of a shared group that takes over a message, as `match` would pick one: for
   * a message whose member's session ended before it was delivered (MQTT 5.0 §4.8.2).
   *
   * @param share The group's whole filter, `$share/{ShareName}/{filter}`.
   * @returns The chosen member's delivery, or undefined when the group has no member left.
   */
  shareMember(share: string): Delivery<S> | undefined {
    return this.#group(share)?.next();
  }

  /**
   * The member of a shared group among `subscribers` that takes a message meant for those only
   * (a message a dead node had read for the sessions adopted here, whose group `match` gave to
   * another member): the first of them in the group's order.
   *
   * @param share The group's whole filter, `$share/{ShareName}/{filter}`.
   * @param subscribers The subscribers the message may go to.
   * @returns That member's delivery, or undefined when none of them is a member.
   */
  shareMemberAmong(share: string, subscribers: ReadonlySet<unknown>): Delivery<S> | undefined {
    return this.#group(share)?.members.find((m) => subscribers.has(m.subscriber))?.delivery;
  }

  #group(share: string): ShareGroup<S> | undefined {
    const shared = parseSharedFilter(share);
    if (shared === undefined) return undefined;
    let node: TreeNode<S> | undefined = this.#root;
    for (const level of shared.filter.split("/")) {
      node = level === "+" ? node.plus : level === "#" ? node.hash : node.children?.get(level);
      if (node === undefined) return undefined;
    }
    return node.groups?.get(shared.group);
  }

  /**
   * Lists a subscriber's subscriptions.
   *
   * @param subscriber The subscriber key.
   * @returns `[filter, options]` pairs, in subscription order.
   */
  subscriptionsOf(subscriber: S): Array<[string, Readonly<SubscriptionOptions>]> {
    const owner = this.#bySubscriber.get(subscriber);
    if (owner === undefined) return [];
    return filterEntries(owner).map((entry) => [entry.filter, entry.options]);
  }

  /**
   * Lists every subscription, for inspection and persistence.
   *
   * @returns An iterator over the subscriptions, grouped by subscriber.
   */
  *entries(): IterableIterator<SubscriptionEntry<S>> {
    for (const owner of this.#bySubscriber.values()) {
      for (const entry of filterEntries(owner)) {
        yield { filter: entry.filter, subscriber: entry.subscriber, options: entry.options };
      }
    }
  }

  #nodeFor(filter: string): TreeNode<S> {
    let node = this.#root;
    for (const level of filter.split("/")) {
      let next: TreeNode<S> | undefined;
      if (level === "+") {
        next = node.plus;
        if (next === undefined) next = node.plus = this.#newNode(node, level);
      } else if (level === "#") {
        next = node.hash;
        if (next === undefined) next = node.hash = this.#newNode(node, level);
      } else {
        node.children ??= new TombstoneMap();
        next = node.children.get(level);
        if (next === undefined) {
          next = this.#newNode(node, level);
          node.children.set(level, next);
        }
      }
      node = next;
    }
    return node;
  }

  #newNode(parent: TreeNode<S>, level: string): TreeNode<S> {
    this.#nodeCount++;
    return new TreeNode(parent, level);
  }

  #detach(entry: Entry<S>): void {
    const node = entry.node;
    const group = entry.group;
    if (group !== undefined) {
      group.remove(entry);
      if (group.members.length === 0) {
        node.groups!.delete(group.name);
        if (node.groups!.size === 0) node.groups = undefined;
      }
    } else {
      const subscribers = node.subscribers!;
      const last = subscribers.pop()!;
      if (last !== entry) {
        subscribers[entry.index] = last;
        last.index = entry.index;
      }
      if (subscribers.length === 0) node.subscribers = undefined;
    }
    this.#size--;
    this.#prune(node);
  }

  #prune(start: TreeNode<S>): void {
    let node = start;
    while (node.parent !== undefined && node.isEmpty()) {
      const parent = node.parent;
      // Filters are validated, so a literal level is never "+" or "#".
      if (node.level === "+") {
        parent.plus = undefined;
      } else if (node.level === "#") {
        parent.hash = undefined;
      } else {
        parent.children!.delete(node.level);
        if (parent.children!.size === 0) parent.children = undefined;
      }
      this.#nodeCount--;
      node = parent;
    }
  }

  #invalidate(): void {
    if (this.#cache.size > 0) {
      this.#cache.clear();
      this.#cacheWeight = 0;
    }
  }

  #compute(topic: string): CacheEntry<S> {
    const levels = topic.split("/");
    const nodes = this.#stackNodes;
    const depths = this.#stackDepths;
    const root = this.#root;
    // A new pass number makes every subscriber's `mark` stale, resetting de-duplication in O(1).
    this.#pass = this.#pass === Number.MAX_SAFE_INTEGER ? 1 : this.#pass + 1;
    // [MQTT-4.7.2-1]: at the first level, a "$" topic skips the wildcard branches.
    const dollar = topic.charCodeAt(0) === DOLLAR;
    if (!dollar && root.hash !== undefined) this.#collect(root.hash);
    const first = root.children?.get(levels[0]);
    if (first !== undefined) {
      nodes.push(first);
      depths.push(1);
    }
    if (!dollar && root.plus !== undefined) {
      nodes.push(root.plus);
      depths.push(1);
    }
    // An explicit stack, not recursion: a hostile filter and topic with tens of thousands of
    // levels must not overflow the call stack. A node at depth d is only visited with d levels
    // consumed, so the walk is linear in the number of nodes.
    while (nodes.length > 0) {
      const node = nodes.pop()!;
      const depth = depths.pop()!;
      // "#" matches the parent level and all below [MQTT-4.7.1-2].
      if (node.hash !== undefined) this.#collect(node.hash);
      if (depth === levels.length) {
        this.#collect(node);
        continue;
      }
      const child = node.children?.get(levels[depth]);
      if (child !== undefined) {
        nodes.push(child);
        depths.push(depth + 1);
      }
      if (node.plus !== undefined) {
        nodes.push(node.plus);
        depths.push(depth + 1);
      }
    }
    const found = this.#found;
    const foundGroups = this.#foundGroups;
    const count = found.length + foundGroups.length;
    if (count === 0) {
      const weight = topic.length + CACHE_ENTRY_OVERHEAD;
      return { deliveries: NO_DELIVERIES, groups: undefined, offset: 0, weight };
    }
    // The result keeps the scratch array; a fresh one takes its place for the next pass.
    const deliveries = found;
    this.#found = [];
    const offset = deliveries.length;
    let groups: ShareGroup<S>[] | undefined;
    if (foundGroups.length > 0) {
      groups = foundGroups.slice();
      foundGroups.length = 0;
      for (const group of groups) deliveries.push(group.next());
    }
    const weight = topic.length + count + CACHE_ENTRY_OVERHEAD;
    return { deliveries, groups, offset, weight };
  }

  #collect(node: TreeNode<S>): void {
    const subscribers = node.subscribers;
    if (subscribers !== undefined) {
      const found = this.#found;
      const pass = this.#pass;
      for (let i = 0; i < subscribers.length; i++) {
        const entry = subscribers[i];
        const owner = entry.owner;
        if (owner.mark !== pass) {
          owner.mark = pass;
          owner.slot = found.length;
          found.push(entry.delivery);
        } else {
          // One copy per subscriber, at the maximum QoS of its matching subscriptions.
          found[owner.slot] = mergeDelivery(found[owner.slot], entry.options);
        }
      }
    }
    const groups = node.groups;
    if (groups !== undefined) {
      for (const group of groups.values()) {
        this.#foundGroups.push(group);
      }
    }
  }

  #remember(topic: string, entry: CacheEntry<S>): void {
    if (this.#maxEntries === 0) return;
    const weight = entry.weight;
    if (weight > this.#maxWeight) return;
    const cache = this.#cache;
    // Oldest first: a Map iterates in insertion order, so eviction is first-in first-out.
    while (cache.size >= this.#maxEntries || this.#cacheWeight + weight > this.#maxWeight) {
      const oldest = cache.keys().next().value!;
      this.#cacheWeight -= cache.get(oldest)!.weight;
      cache.delete(oldest);
    }
    cache.set(topic, entry);
    this.#cacheWeight += weight;
  }
}

function copyOptions(options: SubscriptionOptions): Readonly<SubscriptionOptions> {
  const { qos, noLocal, retainAsPublished, retainHandling, identifier } = options;
  if (qos !== 0 && qos !== 1 && qos !== 2) {
    throw new RangeError(`Cannot subscribe: QoS ${qos} is not 0, 1 or 2`);
  }
  if (
    retainHandling !== undefined && retainHandling !== 0 && retainHandling !== 1 &&
    retainHandling !== 2
  ) {
    throw new RangeError(`Cannot subscribe: Retain Handling ${retainHandling} is not 0, 1 or 2`);
  }
  if (
    identifier !== undefined &&
    (!Number.isInteger(identifier) || identifier < 1 || identifier > MAX_SUBSCRIPTION_IDENTIFIER)
  ) {
    throw new RangeError(
      `Cannot subscribe: Subscription Identifier ${identifier} is not in 1..${MAX_SUBSCRIPTION_IDENTIFIER}`,
    );
  }
  if (
    noLocal === undefined && retainAsPublished === undefined && retainHandling === undefined &&
    identifier === undefined
  ) {
    return PLAIN_OPTIONS[qos]!;
  }
  const copy: SubscriptionOptions = { qos };
  if (noLocal !== undefined) copy.noLocal = noLocal;
  if (retainAsPublished !== undefined) copy.retainAsPublished = retainAsPublished;
  if (retainHandling !== undefined) copy.retainHandling = retainHandling;
  if (identifier !== undefined) copy.identifier = identifier;
  return Object.freeze(copy);
}

/** The subscriber's entry for that exact filter (see `SubscriberRecord.filters`). */
function filterOf<S>(owner: SubscriberRecord<S>, filter: string): Entry<S> | undefined {
  const filters = owner.filters;
  if (filters instanceof TombstoneMap) return filters.get(filter);
  return filters.filter === filter ? filters : undefined;
}

/** Adds an entry whose filter the subscriber does not have yet: a map from the second on. */
function filterSet<S>(owner: SubscriberRecord<S>, entry: Entry<S>): void {
  let filters = owner.filters;
  if (!(filters instanceof TombstoneMap)) {
    const map = new TombstoneMap<string, Entry<S>>();
    map.set(filters.filter, filters);
    owner.filters = filters = map;
  }
  filters.set(entry.filter, entry);
}

/**
 * Removes the subscriber's entry for a filter it has.
 *
 * @returns how many entries the subscriber has left
 */
function filterDelete<S>(owner: SubscriberRecord<S>, filter: string): number {
  const filters = owner.filters;
  if (!(filters instanceof TombstoneMap)) return 0;
  filters.delete(filter);
  return filters.size;
}

/** The subscriber's entries, in subscription order. */
function filterEntries<S>(owner: SubscriberRecord<S>): Entry<S>[] {
  const filters = owner.filters;
  return filters instanceof TombstoneMap ? [...filters.values()] : [filters];
}

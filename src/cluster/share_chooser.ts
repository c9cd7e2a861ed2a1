/**
 * Which node serves each shared group for one message: shared subscriptions deliver once per
 * group cluster-wide, so the node where a message is published picks, per matching group, one
 * node among those with members of it, weighed by how many members each has (so that every member
 * gets its share wherever it is connected), and tells that node which groups it serves.
 *
 * @module
 */

import { parseSharedFilter } from "../topic/shared_filter.ts";
import { SubscriptionTree, type SubscriptionTreeOptions } from "../topic/subscription_tree.ts";
import type { ShareStrategy } from "../topic/mod.ts";

/** Options of a {@linkcode ShareChooser}. */
export interface ShareChooserOptions {
  /** How a group picks its node for a message: in turn (default) or at random. */
  strategy?: ShareStrategy;
  /** The random source of the `random` strategy, a number in [0, 1). Default `Math.random`. */
  random?: () => number;
}

/** For one message: node id → the shared groups (`$share/{group}/{filter}`) it serves. */
export type ShareChoice = Map<string, string[]>;

/**
 * The nodes (this one included) with members of each shared group, as a subscription tree with
 * nodes as the members, so that a group picks one node per message exactly as a group on one
 * broker picks one member (the node then picks one of its local members).
 *
 * @example
 * ```ts
 * import { ShareChooser } from "./share_chooser.ts";
 * import assert from "node:assert/strict";
 *
 * const chooser = new ShareChooser();
 * chooser.add("a", "$share/g/sensors/#");
 * chooser.add("b", "$share/g/sensors/#");
 * chooser.add("b", "sensors/#"); // not shared: ignored
 * const first = chooser.choose("sensors/1")!;
 * const second = chooser.choose("sensors/1")!;
 * assert.deepEqual([...first.keys(), ...second.keys()].sort(), ["a", "b"]);
 * assert.deepEqual([...first.values()], [["$share/g/sensors/#"]]);
 * assert.equal(chooser.choose("other"), undefined);
 * ```
 */
export class ShareChooser {
  readonly #tree: SubscriptionTree<string>;
  /** Each group's nodes, and the turn of `another` in it. */
  readonly #groups = new Map<string, { nodes: string[]; turn: number }>();
  /** Members per node of each group, where more than one: group → node → count. */
  readonly #weights = new Map<string, Map<string, number>>();
  /** Smooth weighted round robin: each group's nodes' current weights. */
  readonly #current = new Map<string, Map<string, number>>();
  readonly #random: () => number;
  readonly #strategy: ShareStrategy;
  /** Nodes picked for a group only when it has no other node (departed ones, for a while). */
  readonly #fallbacks = new Set<string>();

  /**
   * @param options the strategy
   */
  constructor(options: ShareChooserOptions = {}) {
    // The tree takes turns; a random draw, or one weighted by members, is made here.
    const treeOptions: SubscriptionTreeOptions<string> = { shareStrategy: "round_robin" };
    this.#tree = new SubscriptionTree<string>(treeOptions);
    this.#random = options.random ?? Math.random;
    this.#strategy = options.strategy ?? "round_robin";
  }

  /**
   * Records that `node` has members of a shared group. Other filters are ignored, as are invalid
   * ones (another node's bad data never breaks routing here).
   *
   * @param node the node id
   * @param filter a topic filter as declared
   */
  add(node: string, filter: string): void {
    if (parseSharedFilter(filter) === undefined) return;
    try {
      this.#tree.subscribe(filter, node, { qos: 0 });
    } catch {
      return; // Invalid: ignored.
    }
    const group = this.#groups.get(filter);
    if (group === undefined) this.#groups.set(filter, { nodes: [node], turn: 0 });
    else if (!group.nodes.includes(node)) group.nodes.push(node);
  }

  /**
   * Records that `node` has no member of a group any more.
   *
   * @param node the node id
   * @param filter a topic filter as declared
   */
  remove(node: string, filter: string): void {
    if (parseSharedFilter(filter) === undefined) return;
    this.#tree.unsubscribe(filter, node);
    this.#forget(node, filter);
  }

  #forget(node: string, filter: string): void {
    const group = this.#groups.get(filter);
    if (group === undefined) return;
    const i = group.nodes.indexOf(node);
    if (i >= 0) group.nodes.splice(i, 1);
    if (group.nodes.length === 0) this.#groups.delete(filter);
  }

  /**
   * Replaces a node's groups.
   *
   * @param node the node id
   * @param filters its complete set of filters
   */
  replace(node: string, filters: readonly string[]): void {
    this.drop(node);
    for (const filter of filters) this.add(node, filter);
  }

  /**
   * Forgets a node.
   *
   * @param node the node id
   */
  drop(node: string): void {
    this.#fallbacks.delete(node);
    this.#tree.unsubscribeAll(node);
    for (const filter of [...this.#groups.keys()]) this.#forget(node, filter);
    for (const filter of [...this.#weights.keys()]) this.weigh(node, filter, 1);
  }

  /**
   * Sets how many members `node` has in a group (default 1), so that the group's messages are
   * split among nodes by members: a node with 3 members of it gets 3 of every 4 messages against
   * a node with 1.
   *
   * @param node the node id
   * @param filter the group, `$share/{group}/{filter}`
   * @param count its members there (1 or less: the default)
   */
  weigh(node: string, filter: string, count: number): void {
    let weights = this.#weights.get(filter);
    if (count > 1) {
      if (weights === undefined) this.#weights.set(filter, weights = new Map());
      weights.set(node, count);
    } else if (weights !== undefined) {
      weights.delete(node);
      if (weights.size === 0) this.#weights.delete(filter);
    }
  }

  /**
   * Makes `node` a last resort: picked for a group only when no other node has members of it (a
   * node that departed, whose members' sessions another node is adopting). Until it is dropped.
   *
   * @param node the node id
   */
  fallback(node: string): void {
    this.#fallbacks.add(node);
  }

  /**
   * Picks another node with members of one group, for a message whose chosen node has none left
   * (in turn or at random, as the strategy says).
   *
   * @param share the group, `$share/{group}/{filter}`
   * @param except the node that has no member of it
   * @returns a node id, or `undefined` when no other node has members of the group
   */
  another(share: string, except: string): string | undefined {
    const group = this.#groups.get(share);
    if (group === undefined) return undefined;
    let nodes = group.nodes.filter((n) => n !== except);
    if (this.#fallbacks.size > 0 && nodes.some((n) => !this.#fallbacks.has(n))) {
      nodes = nodes.filter((n) => !this.#fallbacks.has(n));
    }
    if (nodes.length === 0) return undefined;
    if (this.#strategy === "random") return nodes[Math.floor(this.#random() * nodes.length)];
    return nodes[group.turn++ % nodes.length];
  }

  /**
   * Picks, for a message published to `topic`, one node per matching shared group. Each call is
   * one message: round robin moves on.
   *
   * @param topic a topic name
   * @returns node → the groups it serves; `undefined` when no group matches
   */
  choose(topic: string): ShareChoice | undefined {
    const deliveries = this.#tree.match(topic);
    if (deliveries.length === 0) return undefined;
    const choice: ShareChoice = new Map();
    for (let i = 0; i < deliveries.length; i++) {
      const d = deliveries[i]!;
      // A group with several members on some node: picked by members, not by node.
      let node = this.#strategy === "random" || this.#weights.has(d.share!)
        ? this.#weighted(d.share!)
        : d.subscriber;
      if (this.#fallbacks.has(node)) node = this.another(d.share!, node) ?? node;
      const shares = choice.get(node);
      if (shares === undefined) choice.set(node, [d.share!]);
      else shares.push(d.share!);
    }
    return choice;
  }

  /**
   * One node of a group, each with the weight of its members: smooth weighted round robin (each
   * node's turns spread evenly), or weighted at random.
   */
  #weighted(filter: string): string {
    const nodes = this.#groups.get(filter)!.nodes;
    const weights = this.#weights.get(filter);
    let total = 0;
    for (const node of nodes) total += weights?.get(node) ?? 1;
    if (this.#strategy === "random") {
      let r = this.#random() * total;
      for (const node of nodes) {
        r -= weights?.get(node) ?? 1;
        if (r < 0) return node;
      }
      return nodes[nodes.length - 1]!;
    }
    let current = this.#current.get(filter);
    if (current === undefined) this.#current.set(filter, current = new Map());
    let best = nodes[0]!;
    let bestValue = -Infinity;
    for (const node of nodes) {
      const value = (current.get(node) ?? 0) + (weights?.get(node) ?? 1);
      current.set(node, value);
      if (value > bestValue) {
        best = node;
        bestValue = value;
      }
    }
    current.set(best, bestValue - total);
    // Nodes gone from the group keep no state.
    if (current.size > nodes.length) {
      for (const node of current.keys()) if (!nodes.includes(node)) current.delete(node);
    }
    return best;
  }
}

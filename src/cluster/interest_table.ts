/**
 * Which nodes want which topics: the interest of every other node of the cluster, as topic
 * filters, matched with the project's subscription tree.
 *
 * @module
 */

import { parseSharedFilter } from "../topic/shared_filter.ts";
import { SubscriptionTree } from "../topic/subscription_tree.ts";
import { ShareChooser, type ShareChooserOptions } from "./share_chooser.ts";

/**
 * The filters each remote node has local subscribers for. A shared subscription
 * (`$share/{group}/{filter}`) counts as interest in its inner filter.
 *
 * @example
 * ```ts
 * import { InterestTable } from "./interest_table.ts";
 * import assert from "node:assert/strict";
 *
 * const table = new InterestTable();
 * table.add("b", ["sensors/+/temp"]);
 * table.add("c", ["$share/g/sensors/#"]);
 * assert.deepEqual(table.nodesFor("sensors/1/temp").sort(), ["b", "c"]);
 * assert.deepEqual(table.nodesFor("other"), []);
 * ```
 */
export class InterestTable {
  #tree = new SubscriptionTree<string>();
  /** Non-shared filters only: the nodes that want every message of a topic. */
  #plain = new SubscriptionTree<string>();
  #byNode = new Map<string, Set<string>>();

  /**
   * The nodes with members of each shared group, kept in step with the others' interest; the
   * owner adds its own node's groups, so that it takes part in the choice.
   */
  readonly shares: ShareChooser;

  /**
   * @param options how a shared group picks its node for a message
   */
  constructor(options: ShareChooserOptions = {}) {
    this.shares = new ShareChooser(options);
  }

  /** The nodes with any interest. */
  get nodes(): string[] {
    return [...this.#byNode.keys()];
  }

  /**
   * The filters of one node.
   *
   * @param node the node id
   * @returns its filters as declared (shared ones with their prefix)
   */
  filtersOf(node: string): string[] {
    return [...(this.#byNode.get(node) ?? [])];
  }

  /**
   * Adds filters to a node's interest. Invalid filters are ignored (another node's bad data
   * never breaks routing here).
   *
   * @param node the node id
   * @param filters topic filters
   */
  add(node: string, filters: readonly string[]): void {
    let set = this.#byNode.get(node);
    for (const filter of filters) {
      if (set?.has(filter)) continue;
      try {
        this.#tree.subscribe(innerFilter(filter), node, { qos: 0 });
      } catch {
        continue;
      }
      if (set === undefined) this.#byNode.set(node, set = new Set());
      set.add(filter);
      if (parseSharedFilter(filter) === undefined) this.#plain.subscribe(filter, node, { qos: 0 });
      else this.shares.add(node, filter);
    }
  }

  /**
   * Removes filters from a node's interest.
   *
   * @param node the node id
   * @param filters topic filters
   */
  remove(node: string, filters: readonly string[]): void {
    const set = this.#byNode.get(node);
    if (set === undefined) return;
    for (const filter of filters) {
      if (!set.delete(filter)) continue;
      if (parseSharedFilter(filter) === undefined) this.#plain.unsubscribe(filter, node);
      else this.shares.remove(node, filter);
      const inner = innerFilter(filter);
      // Another declared filter may map to the same inner filter: keep it then.
      if (![...set].some((f) => innerFilter(f) === inner)) this.#tree.unsubscribe(inner, node);
    }
    if (set.size === 0) this.#byNode.delete(node);
  }

  /**
   * Replaces a node's interest.
   *
   * @param node the node id
   * @param filters its complete set of filters
   */
  replace(node: string, filters: readonly string[]): void {
    this.drop(node);
    this.add(node, filters);
  }

  /**
   * Forgets a node.
   *
   * @param node the node id
   */
  drop(node: string): void {
    this.#tree.unsubscribeAll(node);
    this.#plain.unsubscribeAll(node);
    this.shares.drop(node);
    this.#byNode.delete(node);
  }

  /** Forgets every node. */
  clear(): void {
    for (const node of [...this.#byNode.keys()]) this.drop(node);
  }

  /**
   * The nodes a message published to `topic` must go to.
   *
   * @param topic a topic name
   * @returns node ids, each once
   */
  nodesFor(topic: string): string[] {
    return this.#tree.match(topic).map((d) => d.subscriber);
  }

  /**
   * The nodes with a non-shared subscription matching `topic` (those that want every message of
   * it; which node serves a shared group is chosen per message, see `ShareChooser`).
   *
   * @param topic a topic name
   * @returns node ids, each once
   */
  plainNodesFor(topic: string): string[] {
    return this.#plain.match(topic).map((d) => d.subscriber);
  }

  /**
   * Whether any node wants `topic`, without allocating (the match is cached per topic).
   *
   * @param topic a topic name
   * @returns true when some node's interest matches it
   */
  wants(topic: string): boolean {
    return this.#tree.match(topic).length > 0;
  }
}

function innerFilter(filter: string): string {
  return parseSharedFilter(filter)?.filter ?? filter;
}

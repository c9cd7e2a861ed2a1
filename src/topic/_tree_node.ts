/**
 * Internal: the nodes of the subscription tree and the round-robin state of shared groups.
 *
 * @module
 */

import type { Delivery, SubscriptionOptions } from "./delivery.ts";
import type { TombstoneMap } from "./_tombstone_map.ts";

/** A subscriber's subscriptions, plus scratch state for de-duplicating matches. */
export interface SubscriberRecord<S> {
  /** The subscriptions by filter exactly as subscribed. */
  readonly filters: TombstoneMap<string, Entry<S>>;
  /** The match pass that last saw this subscriber; with `slot`, replaces a per-match Map. */
  mark: number;
  /** Where this subscriber's delivery sits in the result of the pass `mark`. */
  slot: number;
}

/** One subscription of one subscriber, as stored in the tree. */
export interface Entry<S> {
  /** The filter exactly as subscribed, `$share/...` included. */
  readonly filter: string;
  readonly subscriber: S;
  readonly owner: SubscriberRecord<S>;
  options: Readonly<SubscriptionOptions>;
  /** The delivery of this subscription alone, built once so that matching reuses it. */
  delivery: Delivery<S>;
  /** The node of the (inner) filter. */
  readonly node: TreeNode<S>;
  /** The shared group when the subscription is shared. */
  readonly group: ShareGroup<S> | undefined;
  /** Position in `node.subscribers` (non-shared subscriptions only), for O(1) removal. */
  index: number;
}

/**
 * The members of one shared subscription `$share/{name}/{filter}`, served in turn.
 *
 * A group is identified by its ShareName and its filter together, so it lives on the filter's node.
 */
export class ShareGroup<S> {
  readonly name: string;
  readonly members: Entry<S>[] = [];
  #cursor = 0;

  constructor(name: string) {
    this.name = name;
  }

  /** Returns the next member's delivery, rotating through the members in order. */
  next(): Delivery<S> {
    if (this.#cursor >= this.members.length) this.#cursor = 0;
    return this.members[this.#cursor++].delivery;
  }

  /** Removes a member, keeping the rotation where it was. */
  remove(entry: Entry<S>): void {
    const index = this.members.indexOf(entry);
    if (index === -1) return;
    this.members.splice(index, 1);
    if (index < this.#cursor) this.#cursor--;
  }
}

/** A trie node: one level of a topic filter. */
export class TreeNode<S> {
  /** Literal child levels. Wildcards live in `plus` and `hash`, so a topic never looks them up. */
  children: TombstoneMap<string, TreeNode<S>> | undefined = undefined;
  plus: TreeNode<S> | undefined = undefined;
  hash: TreeNode<S> | undefined = undefined;
  /**
   * Non-shared subscriptions whose filter ends here, one per subscriber. An array, not a Map,
   * because matching iterates it on every cold match; removal swaps the last entry in.
   */
  subscribers: Entry<S>[] | undefined = undefined;
  /** Shared groups whose inner filter ends here, by ShareName. */
  groups: Map<string, ShareGroup<S>> | undefined = undefined;
  readonly parent: TreeNode<S> | undefined;
  readonly level: string;

  constructor(parent: TreeNode<S> | undefined, level: string) {
    this.parent = parent;
    this.level = level;
  }

  /** True when the node holds nothing and can be pruned. */
  isEmpty(): boolean {
    return this.children === undefined && this.plus === undefined && this.hash === undefined &&
      this.subscribers === undefined && this.groups === undefined;
  }
}

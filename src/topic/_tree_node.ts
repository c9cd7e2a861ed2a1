/**
 * Internal: the nodes of the subscription tree and the round-robin state of shared groups.
 *
 * @module
 */

import type { Delivery, SubscriptionOptions } from "./delivery.ts";
import type { TombstoneMap } from "./_tombstone_map.ts";

/** A subscriber's subscriptions, plus scratch state for de-duplicating matches. */
export interface SubscriberRecord<S> {
  /**
   * The subscriptions by filter exactly as subscribed: the subscriber's only one as the entry
   * itself, a map from the second on (a `Map` with one entry costs about 330 bytes: memory per
   * idle connection with a subscription, bench/RESULTS.md, branch `idlemem2`). See
   * `subscription_tree.ts` `filterOf`, `filterSet`, `filterDelete`, `filterEntries`.
   */
  filters: Entry<S> | TombstoneMap<string, Entry<S>>;
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

/** How a shared group picks the member that gets a message (MQTT 5.0 §4.8.2 leaves it open). */
export type ShareStrategy = "round_robin" | "random";

/** How every shared group of a tree picks members: the tree's options, resolved. */
export interface SharePicker<S> {
  readonly strategy: ShareStrategy;
  /** Whether a member can take a message now (connected); undefined: every member can. */
  readonly available: ((subscriber: S) => boolean) | undefined;
  /** A number in [0, 1), for `random`. */
  readonly random: () => number;
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
  #picker: SharePicker<S>;

  constructor(name: string, picker: SharePicker<S>) {
    this.name = name;
    this.#picker = picker;
  }

  /**
   * Returns the delivery of the member that gets the next message: one member per message
   * (MQTT 5.0 §4.8.2). Round robin rotates through the members in order; random draws one. A
   * member that is not available (offline) is passed over while another is; when none is, the
   * drawn member gets it (a persistent session queues QoS 1/2 until it is back).
   */
  next(): Delivery<S> {
    const members = this.members;
    const count = members.length;
    const picker = this.#picker;
    let start: number;
    if (picker.strategy === "random") {
      start = Math.min(count - 1, Math.floor(picker.random() * count));
    } else {
      start = this.#cursor >= count ? 0 : this.#cursor;
    }
    let chosen = start;
    const available = picker.available;
    if (available !== undefined && count > 1) {
      for (let i = 0; i < count; i++) {
        const at = (start + i) % count;
        if (available(members[at].subscriber)) {
          chosen = at;
          break;
        }
      }
    }
    this.#cursor = chosen + 1;
    return members[chosen].delivery;
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

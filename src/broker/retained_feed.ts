/**
 * Retained messages on their way to a new subscription, sent in slices: a `#` subscription over
 * 100,000 retained messages must not hold the event loop until they are all encoded, or every
 * other client waits. The core queues one feed per granted filter; the shell drains them a slice
 * at a time between turns of the event loop.
 *
 * @module
 */

import type { QoS } from "../packet/constants.ts";
import type { Subscription } from "../packet/types.ts";
import type { RetainedCursor } from "../topic/mod.ts";
import type { BrokerMessage } from "./message.ts";
import type { Session } from "./session.ts";
import type { LinkState } from "./link.ts";

/** The retained messages matched by one granted filter, still to be sent. */
export interface RetainedFeed {
  /** The subscribing session. */
  readonly session: Session;
  /** The connection that subscribed: the feed stops if the session moves to another. */
  readonly link: LinkState;
  /** The subscription as granted: the feed stops if it is replaced or removed. */
  readonly subscription: Subscription;
  /** The walk over the retained messages the filter matched at SUBSCRIBE time. */
  readonly cursor: RetainedCursor<BrokerMessage>;
  /** The granted QoS. */
  readonly qos: QoS;
}

/** How the feeds fare after a drain. */
export type DrainState =
  /** Every feed is done. */
  | "done"
  /** Feeds remain that can proceed: drain again soon. */
  | "more"
  /** Every remaining feed waits for its subscriber to read or acknowledge: drain again later. */
  | "blocked";

/** What the broker tells the feeds about their subscribers. */
export interface FeedTarget {
  /**
   * How many messages the feed's subscriber can take now without any being dropped: 0 to wait,
   * -1 when the feed is no longer wanted (subscription or connection gone).
   */
  room(feed: RetainedFeed): number;
  /** Sends one message of a feed. */
  send(feed: RetainedFeed, message: BrokerMessage): void;
}

/** Trie nodes one feed walks per turn (finding at most as many messages) when feeds share a slice. */
const TURN = 64;

/** The feeds waiting to be sent, served in turns so that one large feed does not starve others. */
export class RetainedFeeds {
  #feeds: RetainedFeed[] = [];
  #found: BrokerMessage[] = [];

  /** Whether some feed may have messages left. */
  get pending(): boolean {
    return this.#feeds.length > 0;
  }

  /**
   * Queues a feed.
   *
   * @param feed the feed
   * @returns true when the queue was empty before: the caller schedules a drain
   */
  add(feed: RetainedFeed): boolean {
    this.#feeds.push(feed);
    return this.#feeds.length === 1;
  }

  /**
   * Walks up to `max` trie nodes, sending the messages found, a turn per feed in rotation. A feed
   * whose subscriber has no room waits (its messages are not dropped); one no longer wanted is
   * dropped.
   *
   * @param max trie nodes to visit at most (each finds at most one message)
   * @param target the subscribers' room and the sending
   * @returns whether feeds remain, and whether they can proceed now
   */
  drain(max: number, target: FeedTarget): DrainState {
    const feeds = this.#feeds;
    const found = this.#found;
    let budget = max;
    let waiting = 0;
    while (budget > 0 && feeds.length > 0) {
      const feed = feeds.shift()!;
      const room = target.room(feed);
      if (room < 0) continue;
      if (room === 0) {
        feeds.push(feed);
        if (++waiting >= feeds.length) return "blocked";
        continue;
      }
      waiting = 0;
      // Each node visited finds at most one message: never more than the subscriber has room for.
      const steps = Math.min(TURN, budget, room);
      budget -= steps;
      const more = feed.cursor.next(steps, found);
      for (let i = 0; i < found.length; i++) target.send(feed, found[i]!);
      found.length = 0;
      if (more) feeds.push(feed);
    }
    return feeds.length > 0 ? "more" : "done";
  }

  /** Drops every feed (shutdown). */
  clear(): void {
    this.#feeds = [];
  }
}

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
import type { Session, SessionLink } from "./session.ts";

/** The retained messages matched by one granted filter, still to be sent. */
export interface RetainedFeed {
  /** The subscribing session. */
  readonly session: Session;
  /** The connection that subscribed: the feed stops if the session moves to another. */
  readonly link: SessionLink;
  /** The subscription as granted: the feed stops if it is replaced or removed. */
  readonly subscription: Subscription;
  /** The walk over the retained messages the filter matched at SUBSCRIBE time. */
  readonly cursor: RetainedCursor<BrokerMessage>;
  /** The granted QoS. */
  readonly qos: QoS;
}

/**
 * Sends one message of a feed.
 *
 * @returns false when the feed is no longer wanted (subscription or connection gone)
 */
export type FeedSender = (feed: RetainedFeed, message: BrokerMessage) => boolean;

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
   * Walks up to `max` trie nodes, sending the messages found, a turn per feed in rotation.
   *
   * @param max trie nodes to visit at most (each finds at most one message)
   * @param send sends one message, or reports the feed as no longer wanted
   * @returns true when feeds remain
   */
  drain(max: number, send: FeedSender): boolean {
    let budget = max;
    const found = this.#found;
    while (budget > 0 && this.#feeds.length > 0) {
      const feed = this.#feeds.shift()!;
      const steps = Math.min(TURN, budget);
      budget -= steps;
      let more = feed.cursor.next(steps, found);
      for (let i = 0; i < found.length; i++) {
        if (!send(feed, found[i]!)) {
          more = false;
          break;
        }
      }
      found.length = 0;
      if (more) this.#feeds.push(feed);
    }
    return this.#feeds.length > 0;
  }

  /** Drops every feed (shutdown). */
  clear(): void {
    this.#feeds = [];
  }
}

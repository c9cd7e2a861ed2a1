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
  /** The matches at SUBSCRIBE time. */
  readonly messages: readonly BrokerMessage[];
  /** The granted QoS. */
  readonly qos: QoS;
  /** The next message to send. */
  next: number;
}

/**
 * Sends one message of a feed.
 *
 * @returns false when the feed is no longer wanted (subscription or connection gone)
 */
export type FeedSender = (feed: RetainedFeed, message: BrokerMessage) => boolean;

/** Messages one feed sends per turn when several feeds share a slice. */
const TURN = 64;

/** The feeds waiting to be sent, served in turns so that one large feed does not starve others. */
export class RetainedFeeds {
  #feeds: RetainedFeed[] = [];

  /** Whether some feed has messages left. */
  get pending(): boolean {
    return this.#feeds.length > 0;
  }

  /** Messages still to be sent, over all feeds. */
  get backlog(): number {
    let n = 0;
    for (const f of this.#feeds) n += f.messages.length - f.next;
    return n;
  }

  /**
   * Queues a feed.
   *
   * @param feed the feed; ignored when it has no messages
   * @returns true when the queue was empty before: the caller schedules a drain
   */
  add(feed: RetainedFeed): boolean {
    if (feed.messages.length === 0) return false;
    this.#feeds.push(feed);
    return this.#feeds.length === 1;
  }

  /**
   * Sends up to `max` messages, a turn per feed in rotation.
   *
   * @param max messages to send at most
   * @param send sends one message, or reports the feed as no longer wanted
   * @returns true when messages remain
   */
  drain(max: number, send: FeedSender): boolean {
    let budget = max;
    while (budget > 0 && this.#feeds.length > 0) {
      const feed = this.#feeds.shift()!;
      const end = Math.min(feed.messages.length, feed.next + Math.min(TURN, budget));
      let wanted = true;
      while (feed.next < end) {
        budget--;
        if (!send(feed, feed.messages[feed.next++]!)) {
          wanted = false;
          break;
        }
      }
      if (wanted && feed.next < feed.messages.length) this.#feeds.push(feed);
    }
    return this.#feeds.length > 0;
  }

  /** Drops every feed (shutdown). */
  clear(): void {
    this.#feeds = [];
  }
}

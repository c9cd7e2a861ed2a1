/**
 * Flow control from subscribers' queues back to publishers' reads. A publisher's burst is routed
 * packet by packet as it is decoded; when a delivery would fill a subscriber session's queue
 * (behind its in-flight window) past `highWater`, the core asks the shell to stop reading the
 * publishing connection (a `reads` action) instead of routing on and dropping the oldest queued
 * messages. The publisher's next packets then wait in the kernel's buffers (TCP back-pressure)
 * while the subscriber's acknowledgements drain the queue; once it is down to `lowWater` the
 * publisher is read again. Nothing is lost, the publisher is only slowed to the pace of its
 * subscribers.
 *
 * One slow subscriber must not stall a publisher for long: a pause lasts `timeoutMs` at most. When
 * it runs out, the sessions it waited for are marked overflowing: they pause nobody until their
 * queue is down to `lowWater` again, and meanwhile the usual policy applies to them (the oldest
 * queued message is dropped and counted as `queueFull`). A session offline, or the publisher's own
 * (its acknowledgements come on the paused connection), or one whose connection is itself paused
 * (two publishers feeding each other would wait for each other) pauses nobody.
 *
 * Sans-IO like the rest of the core: the clock comes in with each call.
 *
 * @module
 */

import type { ActionQueue } from "./actions.ts";
import type { LinkState } from "./link.ts";
import type { Session } from "./session.ts";

/** Options of {@linkcode PublishFlow}. */
export interface PublishFlowOptions {
  /**
   * Messages queued behind a connected session's in-flight window at which the publishers of the
   * messages routed to it stop being read.
   */
  highWater: number;
  /** Messages queued at or below which the publishers it paused are read again. */
  lowWater: number;
  /** Milliseconds a publisher stays paused at most; then the queues past `highWater` drop. */
  timeoutMs: number;
}

/** A paused publisher: since when, and the sessions it waits for. */
interface Pause {
  readonly since: number;
  readonly waits: Set<Session>;
}

/** Counters of the flow control, for `$SYS` and the tests. */
export interface FlowCounters {
  /** Times a publisher's connection stopped being read for a full subscriber queue. */
  publishersPaused: number;
  /** Pauses that ran out of time (the queues they waited for then drop their oldest). */
  pauseTimeouts: number;
}

/**
 * The flow control of one broker core.
 *
 * @example
 * ```ts
 * import { PublishFlow } from "./publish_flow.ts";
 * import { ActionQueue } from "./actions.ts";
 * import assert from "node:assert/strict";
 *
 * const flow = new PublishFlow({ highWater: 500, lowWater: 250, timeoutMs: 2000 }, new ActionQueue());
 * assert.equal(flow.highWater, 500);
 * assert.equal(flow.pausedCount, 0);
 * ```
 */
export class PublishFlow {
  /** Queued messages at which a delivery pauses its publisher. */
  readonly highWater: number;
  readonly #lowWater: number;
  readonly #timeoutMs: number;
  readonly #actions: ActionQueue;
  /** The client connection whose PUBLISH is being routed, while the core routes it. */
  source: LinkState | undefined = undefined;
  /** The clock of the call into the core that routes. */
  now = 0;
  /** Counters, updated in place. */
  readonly counters: FlowCounters;
  readonly #paused = new Map<LinkState, Pause>();
  /** Each session over its high water with publishers waiting for it: those publishers. */
  readonly #full = new Map<Session, Set<LinkState>>();
  /** Sessions that kept a publisher past the timeout: they pause nobody until they drain. */
  readonly #overflowing = new Set<Session>();

  /**
   * Creates the flow control.
   *
   * @param options the marks and the longest pause
   * @param actions where the `reads` actions go: the core's queue
   * @param counters the counters to update (the broker's stats); fresh ones by default
   */
  constructor(
    options: PublishFlowOptions,
    actions: ActionQueue,
    counters: FlowCounters = { publishersPaused: 0, pauseTimeouts: 0 },
  ) {
    this.counters = counters;
    this.highWater = options.highWater;
    this.#lowWater = Math.min(options.lowWater, options.highWater);
    this.#timeoutMs = options.timeoutMs;
    this.#actions = actions;
  }

  /** Publishers paused now. */
  get pausedCount(): number {
    return this.#paused.size;
  }

  /**
   * Whether `link` is paused (its packets are not read; its keepalive does not run).
   *
   * @param link the connection
   * @returns true while paused
   */
  isPaused(link: LinkState): boolean {
    return this.#paused.size > 0 && this.#paused.has(link);
  }

  /**
   * `Session.deliver` calls it when a delivery left `session`'s queue at or past the high water:
   * the publisher being routed (if a client's) is paused until the session drains.
   *
   * @param session the session
   */
  filled(session: Session): void {
    const source = this.source;
    if (source === undefined || source.closing) return;
    const link = session.link;
    // Offline: nothing drains it. Its own: its acknowledgements come on the paused connection.
    // Paused itself: its acknowledgements wait too.
    if (link === undefined || link === source || link.closing || this.isPaused(link)) return;
    if (this.#overflowing.size > 0 && this.#overflowing.has(session)) return;
    let pause = this.#paused.get(source);
    if (pause === undefined) {
      pause = { since: this.now, waits: new Set() };
      this.#paused.set(source, pause);
      this.counters.publishersPaused++;
      this.#actions.reads(source, false);
    }
    pause.waits.add(session);
    let waiting = this.#full.get(session);
    if (waiting === undefined) this.#full.set(session, waiting = new Set());
    waiting.add(source);
  }

  /**
   * After `session`'s queue shrank (an acknowledgement moved the window on): at or below the low
   * water, the publishers waiting only for it are read again, and an overflowing session may
   * pause publishers again.
   *
   * @param session the session
   */
  drained(session: Session): void {
    if (this.#full.size === 0 && this.#overflowing.size === 0) return;
    if (session.outbound.queuedCount > this.#lowWater) return;
    this.#overflowing.delete(session);
    this.#release(session);
  }

  /**
   * `session` can no longer drain here (offline, discarded): nobody waits for it.
   *
   * @param session the session
   */
  forgetSession(session: Session): void {
    this.#overflowing.delete(session);
    this.#release(session);
  }

  /**
   * `link` is closing or gone: it waits for nobody.
   *
   * @param link the connection
   */
  forgetLink(link: LinkState): void {
    const pause = this.#paused.get(link);
    if (pause === undefined) return;
    this.#paused.delete(link);
    for (const session of pause.waits) this.#unwait(session, link);
  }

  /**
   * Ends the pauses that lasted `timeoutMs`: their publishers are read again, and the sessions
   * they waited for drop their oldest queued messages (counted) until they drain to the low water.
   *
   * @param now the clock, ms
   */
  tick(now: number): void {
    if (this.#paused.size === 0) return;
    for (const [link, pause] of this.#paused) {
      if (now - pause.since < this.#timeoutMs) continue;
      this.counters.pauseTimeouts++;
      // Releasing its last session resumes it (and any other publisher that waited only for them).
      for (const session of pause.waits) {
        this.#overflowing.add(session);
        this.#release(session);
      }
      if (this.#paused.delete(link)) this.#actions.reads(link, true);
    }
  }

  /** The publishers waiting for `session` wait for it no more; those waiting for none resume. */
  #release(session: Session): void {
    const waiting = this.#full.get(session);
    if (waiting === undefined) return;
    this.#full.delete(session);
    for (const link of waiting) {
      const pause = this.#paused.get(link);
      if (pause === undefined) continue;
      pause.waits.delete(session);
      if (pause.waits.size === 0) {
        this.#paused.delete(link);
        if (!link.closing) this.#actions.reads(link, true);
      }
    }
  }

  #unwait(session: Session, link: LinkState): void {
    const waiting = this.#full.get(session);
    if (waiting === undefined) return;
    waiting.delete(link);
    if (waiting.size === 0) this.#full.delete(session);
  }
}

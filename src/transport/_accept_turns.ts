/**
 * Turns of the accept loop: while the listen queue holds connections, `accept()` completes at once
 * each time (the runtime takes the next one straight from the kernel), and a loop that only awaits
 * it never lets the event loop poll the sockets it has accepted: in a storm of 1,000 connects the
 * first CONNECT was read after the 1,000th accept, so every CONNACK waited for every accept. The
 * TCP accept loop (`tcp.ts`) stops every few accepts until a socket read completes (the CONNECTs
 * that have arrived are served meanwhile), or for at most a millisecond when nothing arrives.
 *
 * @module
 */

import { setTimeout as timeout } from "node:timers";

/**
 * Accepts between two waits of the accept loop for a read (see {@linkcode readOrTick}): counted
 * in all, not only in a row, which costs a quiet listener a wait of its next read (1 ms at most)
 * every so many connections and spares a count of reads on every read.
 */
export const ACCEPT_RUN = 16;

// The waits of accept loops (in practice one), resolved by the next read that completes or by the
// timer, whichever comes first.
let waiters: (() => void)[] = [];
// The 1 ms timer that ends the waits when no read completes: one for every wait within its
// millisecond, not one per wait. A wait that a read ends leaves it running (a timer made and
// cleared per wait cost more than the rest of the wait), so a later wait may end when it fires,
// less than a millisecond after that wait began: it still ends after the event loop polled. Made
// once and armed again with `refresh()` once it has fired: a new timer each time (a `Timeout`
// object, its list entry and the runtime's tracking) was 1.3 % of the broker's CPU in bursts of
// 64 handshakes (bench/RESULTS.md, branch `connrate4`); a refresh costs a tenth of that.
let timer: ReturnType<typeof timeout> | undefined;
// Whether the timer is set to fire.
let armed = false;
// Timers made so far (for tests: one for the process).
let timersMade = 0;
// What waits for the timer to have fired (a listener closing: see timerSettled).
let settledWaiters: (() => void)[] = [];

/** Tells a waiting accept loop that a socket read has completed (the event loop polled). */
export function readDone(): void {
  if (waiters.length > 0) wake();
}

function wake(): void {
  const woken = waiters;
  waiters = [];
  for (let i = 0; i < woken.length; i++) woken[i]!();
}

function timerFired(): void {
  armed = false;
  wake();
  const settled = settledWaiters;
  settledWaiters = [];
  for (let i = 0; i < settled.length; i++) settled[i]!();
}

/**
 * Waits until some socket read completes, or 1 ms at most: the event loop then polls the
 * sockets, and the reads that are ready are served before the next accepts.
 *
 * @returns when a read has completed or the millisecond has passed
 */
export function readOrTick(): Promise<void> {
  return new Promise((resolve) => {
    waiters.push(resolve);
    if (armed) return;
    armed = true;
    if (timer === undefined) {
      timer = timeout(timerFired, 1);
      timersMade++;
    } else timer.refresh();
  });
}

/**
 * Resolves once no timer of {@linkcode readOrTick} is left running (at once when none is): a
 * listener that closes waits for it, so that nothing it started outlives it.
 *
 * @returns when the timer has fired
 */
export function timerSettled(): Promise<void> {
  if (!armed) return Promise.resolve();
  return new Promise((resolve) => settledWaiters.push(resolve));
}

/**
 * Whether a timer of {@linkcode readOrTick} is running (for tests).
 *
 * @returns whether one is
 */
export function acceptTimerRunning(): boolean {
  return armed;
}

/**
 * How many timers {@linkcode readOrTick} has made in this process (for tests).
 *
 * @returns the count
 */
export function acceptTimersMade(): number {
  return timersMade;
}

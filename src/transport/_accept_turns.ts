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

/**
 * Accepts between two waits of the accept loop for a read (see {@linkcode readOrTick}): counted
 * in all, not only in a row, which costs a quiet listener a wait of its next read (1 ms at most)
 * every so many connections and spares a count of reads on every read.
 */
export const ACCEPT_RUN = 16;

// Resolves the accept loop's wait: set while one waits, called by the next read that completes.
let waiter: (() => void) | undefined;

/** Tells a waiting accept loop that a socket read has completed (the event loop polled). */
export function readDone(): void {
  if (waiter === undefined) return;
  const wake = waiter;
  waiter = undefined;
  wake();
}

/**
 * Waits until some socket read completes, or 1 ms at most: the event loop then polls the
 * sockets, and the reads that are ready are served before the next accepts.
 *
 * @returns when a read has completed or the millisecond has passed
 */
export function readOrTick(): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      if (waiter === wake) waiter = undefined;
      resolve();
    }, 1);
    const wake = () => {
      clearTimeout(timer);
      resolve();
    };
    // Only one listener waits at a time in practice; a second one takes over the wake-up and
    // the first ends by its timer.
    waiter = wake;
  });
}

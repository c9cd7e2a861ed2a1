/**
 * Fair turns for reading: a read whose bytes are already in the kernel completes without the event
 * loop polling the other connections' reads, so one flooding connection can be served chunk after
 * chunk while the others' data waits (measured: one socket read 600 chunks of 64 KiB in a row
 * while three others had data). A channel that has decoded its budget in the current turn waits
 * for the next turn, which starts on a timer: the timer phase is where the event loop polls every
 * pending read again (a microtask, `setImmediate` or a `MessageChannel` message did not let the
 * others in). Every waiting channel resumes in the order it arrived: round robin.
 *
 * @module
 */

/** Turns shared by every channel of the process. */
export class ReadTurns {
  #turn = 0;
  #armed = false;
  #waiters: (() => void)[] = [];
  #next = () => {
    this.#armed = false;
    this.#turn++;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resume of waiters) resume();
  };

  /** The number of the current turn: it changes only when channels waited for the next one. */
  get turn(): number {
    return this.#turn;
  }

  /**
   * Waits for the next turn, after the channels that waited before.
   *
   * @returns when the next turn starts
   */
  next(): Promise<void> {
    if (!this.#armed) {
      this.#armed = true;
      setTimeout(this.#next, 0);
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}

/** The process's turns: fairness is between all connections, whichever broker or client owns them. */
export const readTurns: ReadTurns = new ReadTurns();

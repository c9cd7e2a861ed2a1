/**
 * The bounded queue of received messages between the read loop and `deliverMessage` /
 * `messages()`.
 *
 * @module
 */

/** Returned by {@linkcode Inbox.take} when the inbox is closed and empty. */
export const END: unique symbol = Symbol("end");

/** Options of {@linkcode Inbox}. */
export interface InboxOptions<T> {
  /**
   * Messages held for readers: droppable ones past it push out the oldest droppable one, others
   * past it wait for {@linkcode InboxOptions.accept} until the queue has room for them.
   */
  limit: number;
  /** Whether a message may be dropped when the inbox is full (QoS 0). */
  droppable: (item: T) => boolean;
  /**
   * Called once for every message that is not droppable, in arrival order, when it is handed to a
   * reader or fits within `limit`: the moment to acknowledge it.
   */
  accept: (item: T) => void;
}

interface Waiter<T> {
  resolve: (value: T | typeof END) => void;
  reject: (error: unknown) => void;
  cleanup: () => void;
}

interface Entry<T> {
  item: T | undefined;
  droppable: boolean;
  /** Dropped in place (a droppable entry pushed out while others were ahead of it). */
  gone: boolean;
}

/**
 * A FIFO of messages with waiting readers; closable, with or without an error.
 *
 * Bounded: droppable messages never number more than `limit` (the oldest goes first, counted in
 * {@linkcode dropped}); the others are never dropped, but past `limit` their `accept` waits until
 * readers make room, so the sender's own in-flight window bounds them.
 */
export class Inbox<T> {
  readonly #limit: number;
  readonly #droppable: (item: T) => boolean;
  readonly #accept: (item: T) => void;
  // Every entry in arrival order, from #head; dropped ones stay as `gone` until compacted.
  #entries: Entry<T>[] = [];
  #head = 0;
  #live = 0;
  // The droppable entries, oldest first: the front is the next to drop.
  #zeros: Entry<T>[] = [];
  #zerosHead = 0;
  // Entries not droppable and not accepted yet, oldest first.
  #withheld: Entry<T>[] = [];
  #withheldHead = 0;
  #dropped = 0;
  #waiters: Waiter<T>[] = [];
  // undefined: open. null: closed, readers get END. Error: closed, readers get the error.
  #closed: Error | null | undefined = null;

  /**
   * @param options the bound, which messages may be dropped, and the acceptance callback
   * @throws {RangeError} when `limit` is not a whole number of 0 or more
   */
  constructor(options: InboxOptions<T>) {
    if (!(Number.isInteger(options.limit) && options.limit >= 0)) {
      throw new RangeError(
        `Cannot create inbox: limit ${options.limit} is not a whole number >= 0`,
      );
    }
    this.#limit = options.limit;
    this.#droppable = options.droppable;
    this.#accept = options.accept;
  }

  /** Messages waiting for a reader. */
  get size(): number {
    return this.#live;
  }

  /** Droppable messages dropped so far because the inbox was full. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Messages waiting for a reader whose `accept` has not been called yet. */
  get withheld(): number {
    return this.#withheld.length - this.#withheldHead;
  }

  /** Hands a message to the oldest waiting reader, or keeps it (within the bound). */
  push(item: T): void {
    const droppable = this.#droppable(item);
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      if (!droppable) this.#accept(item);
      waiter.cleanup();
      waiter.resolve(item);
      return;
    }
    const entry: Entry<T> = { item, droppable, gone: false };
    if (droppable) {
      if (this.#live >= this.#limit) {
        this.#dropped++;
        const oldest = this.#zerosHead < this.#zeros.length
          ? this.#zeros[this.#zerosHead]
          : undefined;
        // No droppable message is queued: the new one is the oldest there is.
        if (oldest === undefined) return;
        this.#shiftZeros();
        oldest.gone = true;
        oldest.item = undefined;
        this.#live--;
        this.#compact();
      }
      this.#zeros.push(entry);
    } else if (this.withheld === 0 && this.#live < this.#limit) {
      this.#accept(item);
    } else {
      this.#withheld.push(entry);
    }
    this.#entries.push(entry);
    this.#live++;
  }

  /**
   * The next message; waits for one while the inbox is open.
   *
   * @param timeout milliseconds to wait; rejects with a `TimeoutError` `DOMException` after it
   * @param signal rejects with the signal's reason when aborted
   * @returns the message, or {@linkcode END} when closed and empty
   */
  take(timeout?: number, signal?: AbortSignal): Promise<T | typeof END> {
    if (this.#live > 0) return Promise.resolve(this.#shift());
    if (this.#closed === null) return Promise.resolve(END);
    if (this.#closed !== undefined) return Promise.reject(this.#closed);
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = () => {
        this.#remove(waiter);
        reject(signal!.reason);
      };
      const waiter: Waiter<T> = {
        resolve,
        reject,
        cleanup: () => {
          if (timer !== undefined) clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
        },
      };
      if (timeout !== undefined) {
        timer = setTimeout(() => {
          this.#remove(waiter);
          reject(new DOMException(`No message received within ${timeout} ms`, "TimeoutError"));
        }, timeout);
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  /** Lets readers wait again. */
  open(): void {
    this.#closed = undefined;
  }

  /**
   * Closes: waiting readers get {@linkcode END} (or `error`); queued messages stay readable.
   *
   * @param error the error readers get once the queue is empty
   */
  close(error?: Error): void {
    this.#closed = error ?? null;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) {
      w.cleanup();
      if (error === undefined) w.resolve(END);
      else w.reject(error);
    }
  }

  /** Removes the oldest live entry (there is one) and makes room for a withheld one. */
  #shift(): T {
    let entry = this.#entries[this.#head]!;
    while (entry.gone) entry = this.#advance();
    this.#advance();
    this.#live--;
    const item = entry.item!;
    entry.item = undefined;
    if (entry.droppable) {
      this.#shiftZeros();
    } else if (this.withheld > 0 && this.#withheld[this.#withheldHead] === entry) {
      // Only with limit 0 can the oldest message still be withheld: taking it accepts it.
      this.#shiftWithheld();
      this.#accept(item);
    }
    // One fewer accepted message is queued: the oldest withheld one fits now, in arrival order.
    while (this.withheld > 0 && this.#live - this.withheld < this.#limit) {
      this.#accept(this.#shiftWithheld().item!);
    }
    return item;
  }

  /** Moves #head past the front entry; returns the new front (meaningful only if any is left). */
  #advance(): Entry<T> {
    this.#entries[this.#head] = undefined as unknown as Entry<T>;
    this.#head++;
    if (this.#head === this.#entries.length) {
      this.#entries = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
    return this.#entries[this.#head]!;
  }

  #shiftZeros(): void {
    this.#zeros[this.#zerosHead] = undefined as unknown as Entry<T>;
    this.#zerosHead++;
    if (this.#zerosHead === this.#zeros.length) {
      this.#zeros = [];
      this.#zerosHead = 0;
    } else if (this.#zerosHead > 1024 && this.#zerosHead * 2 > this.#zeros.length) {
      this.#zeros = this.#zeros.slice(this.#zerosHead);
      this.#zerosHead = 0;
    }
  }

  #shiftWithheld(): Entry<T> {
    const entry = this.#withheld[this.#withheldHead]!;
    this.#withheld[this.#withheldHead] = undefined as unknown as Entry<T>;
    this.#withheldHead++;
    if (this.#withheldHead === this.#withheld.length) {
      this.#withheld = [];
      this.#withheldHead = 0;
    } else if (this.#withheldHead > 1024 && this.#withheldHead * 2 > this.#withheld.length) {
      this.#withheld = this.#withheld.slice(this.#withheldHead);
      this.#withheldHead = 0;
    }
    return entry;
  }

  /** Drops `gone` entries once they outnumber the live ones, so an unread inbox stays bounded. */
  #compact(): void {
    const held = this.#entries.length - this.#head;
    if (held <= 2 * this.#live + 64) return;
    const kept: Entry<T>[] = [];
    for (let i = this.#head; i < this.#entries.length; i++) {
      const e = this.#entries[i]!;
      if (!e.gone) kept.push(e);
    }
    this.#entries = kept;
    this.#head = 0;
  }

  #remove(waiter: Waiter<T>): void {
    waiter.cleanup();
    const i = this.#waiters.indexOf(waiter);
    if (i >= 0) this.#waiters.splice(i, 1);
  }
}

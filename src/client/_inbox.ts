/**
 * The queue of received messages between the read loop and `deliverMessage` / `messages()`.
 *
 * @module
 */

/** Returned by {@linkcode Inbox.take} when the inbox is closed and empty. */
export const END: unique symbol = Symbol("end");

interface Waiter<T> {
  resolve: (value: T | typeof END) => void;
  reject: (error: unknown) => void;
  cleanup: () => void;
}

/** A FIFO of messages with waiting readers; closable, with or without an error. */
export class Inbox<T> {
  #items: T[] = [];
  #head = 0;
  #waiters: Waiter<T>[] = [];
  // undefined: open. null: closed, readers get END. Error: closed, readers get the error.
  #closed: Error | null | undefined = null;

  /** Messages waiting for a reader. */
  get size(): number {
    return this.#items.length - this.#head;
  }

  /** Hands a message to the oldest waiting reader, or keeps it. */
  push(item: T): void {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      waiter.cleanup();
      waiter.resolve(item);
      return;
    }
    this.#items.push(item);
  }

  /**
   * The next message; waits for one while the inbox is open.
   *
   * @param timeout milliseconds to wait; rejects with a `TimeoutError` `DOMException` after it
   * @param signal rejects with the signal's reason when aborted
   * @returns the message, or {@linkcode END} when closed and empty
   */
  take(timeout?: number, signal?: AbortSignal): Promise<T | typeof END> {
    if (this.#head < this.#items.length) {
      const item = this.#items[this.#head]!;
      this.#items[this.#head] = undefined as T;
      this.#head++;
      if (this.#head === this.#items.length) {
        this.#items = [];
        this.#head = 0;
      } else if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
        this.#items = this.#items.slice(this.#head);
        this.#head = 0;
      }
      return Promise.resolve(item);
    }
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

  #remove(waiter: Waiter<T>): void {
    waiter.cleanup();
    const i = this.#waiters.indexOf(waiter);
    if (i >= 0) this.#waiters.splice(i, 1);
  }
}

/**
 * A byte `ReadableStream` fed by a push source that can pause (a node socket, a `ws` WebSocket):
 * the source is paused while 64 KiB wait unread and resumed when the reader catches up, so a peer
 * that outruns the broker is held back by TCP instead of filling memory.
 *
 * @module
 */

/** Bytes buffered from the peer before the source is paused. */
export const READ_HIGH_WATER = 64 * 1024;

/** What the stream needs from its source. */
export interface PausableSource {
  pause(): void;
  resume(): void;
  isPaused(): boolean;
  /** The reader cancelled the stream: close the source. */
  cancel(): void;
}

/** The stream and the two calls that feed it. */
export interface PausableReadable {
  readable: ReadableStream<Uint8Array>;
  /** Queues a chunk (as a plain `Uint8Array` view); pauses the source when the queue is full. */
  push(chunk: Uint8Array): void;
  /** Ends the stream; later pushes are ignored. Idempotent. */
  end(): void;
  /** Whether the stream has ended. */
  readonly ended: boolean;
}

/**
 * Makes the stream for a pausable source.
 *
 * @param source pause/resume/cancel of the underlying socket
 * @returns the stream with its feeding calls
 */
export function pausableReadable(source: PausableSource): PausableReadable {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let ended = false;
  const readable = new ReadableStream<Uint8Array>({
    start: (c) => controller = c,
    // Called when the queue is below the high-water mark again.
    pull: () => {
      if (source.isPaused()) source.resume();
    },
    cancel: () => {
      ended = true;
      source.cancel();
    },
  }, { highWaterMark: READ_HIGH_WATER, size: (chunk) => chunk.byteLength });
  return {
    readable,
    push(chunk) {
      if (ended) return;
      // A plain Uint8Array view: consumers should not meet Buffer's different slice().
      controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      if ((controller.desiredSize ?? 0) <= 0) source.pause();
    },
    end() {
      if (ended) return;
      ended = true;
      controller.close();
    },
    get ended() {
      return ended;
    },
  };
}

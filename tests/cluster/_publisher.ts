/**
 * A client that publishes numbered messages without pause (each once the previous one is
 * acknowledged) while a cluster test does something to the nodes. Dispose it before its client:
 * no publish is left pending, and a failed publish is not lost as an unhandled rejection.
 *
 * @module
 */

import type { MQTTClient } from "../../client.ts";
import { delay } from "../_helpers/broker.ts";

/** Publishes `0`, `1`, `2`, … on one topic until stopped. */
export class Publisher implements AsyncDisposable {
  /** Messages sent so far: the next one's number (each earlier one was acknowledged or is in flight). */
  sent = 0;
  #stop = false;
  #failed: { error: unknown } | undefined;
  readonly #loop: Promise<void>;

  /**
   * Starts publishing.
   *
   * @param client a connected client
   * @param topic where to publish
   * @param qos 1 or 2
   * @param pauseMs a pause after each acknowledgement (a test whose scenario lasts long keeps the
   *   number of messages small); none by default
   */
  constructor(client: MQTTClient, topic: string, qos: 1 | 2 = 1, pauseMs = 0) {
    this.#loop = (async () => {
      while (!this.#stop) {
        await client.publish(topic, String(this.sent++), { qos });
        if (pauseMs > 0) await delay(pauseMs);
      }
    })().catch((error) => {
      this.#failed = { error };
    });
  }

  /**
   * A condition for `until`: `n` messages sent. A failed publish ends the wait with its error.
   *
   * @param n how many
   */
  reached(n: number): () => boolean {
    return () => {
      if (this.#failed !== undefined) throw this.#failed.error;
      return this.sent >= n;
    };
  }

  /**
   * Stops after the publish in flight; then every message numbered below {@linkcode sent} is
   * acknowledged.
   *
   * @throws {Error} (as a rejection) The error of a publish that failed.
   */
  async stop(): Promise<void> {
    this.#stop = true;
    await this.#loop;
    if (this.#failed !== undefined) throw this.#failed.error;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#stop = true;
    await this.#loop;
  }
}

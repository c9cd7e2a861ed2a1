/**
 * A subscriber that acknowledges every QoS 1 PUBLISH it gets, at once, in a loop of its own: the
 * "fast" one of the memory tests, whose messages are let go as soon as they are delivered.
 *
 * @module
 */

import { PacketType } from "../../src/packet/mod.ts";
import type { TestClient } from "./test_client.ts";
import { delay } from "./broker.ts";

/** Acknowledges what `client` gets until disposed; counts it in `got`. */
export class AckingSubscriber implements AsyncDisposable {
  /** The PUBLISH packets acknowledged so far. */
  got = 0;
  /** The PINGRESP packets received so far (see {@linkcode ping}). */
  pongs = 0;
  #stop = false;
  #loop: Promise<void>;

  readonly #client: TestClient;

  constructor(client: TestClient) {
    this.#client = client;
    this.#loop = (async () => {
      while (!this.#stop) {
        const p = await client.poll(50);
        if (p?.type === PacketType.PINGRESP) this.pongs++;
        if (p?.type !== PacketType.PUBLISH) continue;
        this.got++;
        await client.send({ type: PacketType.PUBACK, packetId: p.packetId! });
      }
    })();
  }

  /**
   * Waits until `n` messages were acknowledged, or a minute of 10 ms turns went by: a guard against
   * a hang, not a speed. The caller asserts `got` afterwards.
   */
  async waitFor(n: number): Promise<void> {
    for (let i = 0; i < 6000 && this.got < n; i++) await delay(10);
  }

  /**
   * Sends a PINGREQ and waits for its PINGRESP (or a minute of 10 ms turns, a guard against a
   * hang): one round trip, so the broker reads it on its own.
   */
  async ping(): Promise<void> {
    const before = this.pongs;
    await this.#client.send({ type: PacketType.PINGREQ });
    for (let i = 0; i < 6000 && this.pongs === before; i++) await delay(10);
    if (this.pongs === before) throw new Error("No PINGRESP came back");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#stop = true;
    await this.#loop;
  }
}

/**
 * A subscriber that acknowledges every QoS 1 PUBLISH it gets, at once, in a loop of its own: the
 * "fast" one of the memory tests, whose messages are let go as soon as they are delivered.
 *
 * @module
 */

import { PacketType } from "../../src/packet/mod.ts";
import type { TestClient } from "./test_client.ts";
import { delay } from "./broker.ts";

/** When {@linkcode AckingSubscriber.waitFor} gives up, in turns of 10 ms at least. */
export interface WaitGuard {
  /** Turns without a new acknowledgement. @default {6000} */
  idleTurns?: number;
  /** Turns in all. @default {90000} */
  turns?: number;
}

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
   * Waits until `n` messages were acknowledged, or a minute of 10 ms turns went by without one
   * more, or 15 minutes of turns in all: a guard against a hang, not a speed. Without one more:
   * a loaded machine acknowledged a few thousand messages through a window of 1 at 30 a second.
   * In all: a trickle (a message moved only by a retry or a keepalive, say) would otherwise keep
   * the wait going a minute per message, days for the 4,500 of test 68; a loaded machine takes
   * a few minutes for those. The caller asserts `got` afterwards.
   *
   * @param n the messages to wait for
   * @param guard the turns of 10 ms that end the wait (for the helper's own test)
   */
  async waitFor(n: number, guard: WaitGuard = {}): Promise<void> {
    const idleTurns = guard.idleTurns ?? 6000;
    const turns = guard.turns ?? 90_000;
    let last = this.got;
    let idle = 0;
    for (let turn = 0; turn < turns && idle < idleTurns && this.got < n; turn++) {
      await delay(10);
      if (this.got === last) idle++;
      else [last, idle] = [this.got, 0];
    }
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

  /**
   * The settle step of the memory tests: waits until `n` messages were acknowledged (asserting no
   * more and no fewer), then brings the read buffers of this connection and of `other` back to
   * their idle size. A read that fills its buffer doubles the connection's read size (up to 64 KiB,
   * `src/transport/socket.ts`) and only a later small read halves it: acknowledgements read in
   * bursts (a loaded machine) otherwise leave up to 64 KiB read buffers in one measurement and not
   * in the other, hundreds of bytes per session that no session holds. One round trip per halving
   * on each connection (64 KiB down to the idle size takes nine at the most). Measuring while the
   * acknowledgements are still coming in would also count the messages still queued for this
   * subscriber.
   */
  async settle(n: number, other: TestClient): Promise<void> {
    await this.waitFor(n);
    if (this.got !== n) throw new Error(`Acknowledged ${this.got} messages, expected ${n}`);
    for (let i = 0; i < 9; i++) {
      await other.send({ type: PacketType.PINGREQ });
      await other.expect(PacketType.PINGRESP);
      await this.ping();
    }
    // No more either: checked once n came, a message on its way then was not counted yet; each
    // PINGRESP comes after what the broker wrote to this connection before it.
    if (this.got !== n) throw new Error(`Acknowledged ${this.got} messages, expected ${n}`);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#stop = true;
    await this.#loop;
  }
}

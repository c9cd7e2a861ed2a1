/**
 * The PUBRECs a connection holds back while the store is not written again after an outage. A
 * QoS 2 message whose write failed stays routed with its packet id held, and its PUBREC waits
 * until the store holds it again (`CommitGate.stored`). Only the PUBRECs wait: the rest of the
 * connection's output (deliveries, PUBACKs, PINGRESP, SUBACK…) goes on, so a client's keepalive
 * and its subscriptions are served during the outage. PUBRECs keep their order among themselves
 * (a PUBREC for a later PUBLISH, a 0x80 refusal included, never overtakes a held one): the
 * ordering rules of MQTT 3.1.1 and 5.0 ask it of a receiver's PUBRECs [MQTT-4.6.0-3]; they
 * set no order between PUBRECs and other packets.
 *
 * @module
 */

import { PacketType } from "../packet/constants.ts";
import { concatBytes } from "../packet/_concat_bytes.ts";
import { packetLength } from "../packet/packet_length.ts";

/** First byte of a PUBREC (no flags). */
const PUBREC_BYTE = PacketType.PUBREC << 4;

/**
 * PUBRECs taken out of a connection's writes while a wait is pending, and given back in order
 * once it settles.
 *
 * @example
 * ```ts
 * import { HeldPubrecs } from "./held_pubrecs.ts";
 * import assert from "node:assert/strict";
 *
 * const sent: number[][] = [];
 * const pubrecs = new HeldPubrecs((bytes) => sent.push([...bytes]), () => {});
 * const stored = Promise.withResolvers<void>();
 * pubrecs.until(stored.promise);
 * // PUBREC 7, then PINGRESP: the PINGRESP goes out now, the PUBREC once the store is written.
 * const out = pubrecs.take(new Uint8Array([0x50, 2, 0, 7, 0xd0, 0]));
 * assert.deepEqual([...out], [0xd0, 0]);
 * stored.resolve();
 * await stored.promise;
 * await Promise.resolve();
 * assert.deepEqual(sent, [[0x50, 2, 0, 7]]);
 * ```
 */
export class HeldPubrecs {
  readonly #send: (bytes: Uint8Array) => void;
  readonly #fail: (error: unknown) => void;
  readonly #queued: () => boolean;
  #waiting: Promise<void> | undefined;
  #held: Uint8Array[] = [];
  /** Writes begun whose PUBRECs are taken once their commit settles ({@linkcode takeAfter}). */
  #pending = 0;

  /**
   * @param send writes bytes after what the connection has queued (the PUBRECs given back)
   * @param fail called when a wait rejects (the PUBRECs held are dropped)
   * @param queued whether the connection has output queued that no write has taken yet: PUBRECs
   *   released then go at the front of the next write rather than after that output (which may
   *   hold later PUBRECs)
   */
  constructor(
    send: (bytes: Uint8Array) => void,
    fail: (error: unknown) => void,
    queued: () => boolean = () => false,
  ) {
    this.#send = send;
    this.#fail = fail;
    this.#queued = queued;
  }

  /** Whether PUBRECs are held now (waiting, or released and waiting for the next write). */
  get holding(): boolean {
    return this.#waiting !== undefined || this.#held.length > 0;
  }

  /**
   * Holds PUBRECs until `wait` settles, and until every wait given before has settled.
   *
   * @param wait settles when the PUBRECs may go; a rejection drops them
   */
  until(wait: Promise<void>): void {
    const all = this.#waiting === undefined
      ? wait
      : Promise.all([this.#waiting, wait]).then(() => {});
    this.#waiting = all;
    all.then(() => {
      if (this.#waiting !== all) return;
      this.#waiting = undefined;
      // A write begun meanwhile, or output queued since, may hold later PUBRECs: the ones held
      // go at the front of the next write (take), not after them [MQTT-4.6.0-3].
      if (this.#pending > 0 || this.#queued()) return;
      const held = this.#held;
      this.#held = [];
      for (const bytes of held) this.#send(bytes);
    }, (error) => {
      if (this.#waiting !== all) return;
      this.#waiting = undefined;
      this.#held = [];
      this.#fail(error);
    });
  }

  /**
   * {@linkcode take} once `committed` (the store's part of a write's wait) settles, with the
   * bytes it resolves with when they are bytes. PUBRECs released meanwhile wait for this take.
   *
   * @param committed settles when the write may go; its bytes replace `bytes`
   * @param bytes the write's bytes
   * @returns what to write
   */
  takeAfter(committed: Promise<unknown>, bytes: Uint8Array): Promise<Uint8Array> {
    this.#pending++;
    return committed.then((out) => {
      this.#pending--;
      return this.take(out instanceof Uint8Array ? out : bytes);
    }, (error) => {
      this.#pending--;
      throw error;
    });
  }

  /**
   * Takes the PUBRECs out of a write that began while PUBRECs were held: they wait behind the
   * ones held. Once the wait has settled, the PUBRECs still held go at the front of the write
   * and its own stay in it.
   *
   * @param bytes whole packets, as a connection's output holds them
   * @returns the bytes without the PUBRECs (`bytes` itself when it holds none), or with the
   *   PUBRECs released before them
   */
  take(bytes: Uint8Array): Uint8Array {
    if (this.#waiting === undefined) {
      if (this.#held.length === 0) return bytes;
      const held = this.#held;
      this.#held = [];
      held.push(bytes);
      return concatBytes(held);
    }
    const keep: [number, number][] = [];
    const pubrecs: [number, number][] = [];
    let at = 0;
    while (at < bytes.length) {
      const length = packetLength(bytes, at);
      if (length === undefined || at + length > bytes.length) break;
      (bytes[at] === PUBREC_BYTE ? pubrecs : keep).push([at, at + length]);
      at += length;
    }
    if (pubrecs.length === 0) return bytes;
    if (at < bytes.length) keep.push([at, bytes.length]);
    this.#held.push(concatBytes(pubrecs.map(([from, to]) => bytes.subarray(from, to))));
    return concatBytes(keep.map(([from, to]) => bytes.subarray(from, to)));
  }
}

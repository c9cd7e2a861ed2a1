/**
 * Where the packet ids of persistent sessions start after a restart: past every id the previous
 * run may have used, so that no id used before a crash is used again soon after it.
 *
 * Why: a receiver may keep state for an id the broker no longer does. After a crash between a
 * subscriber's PUBREC and the commit of the broker's "PUBREC received" mark, the broker sends the
 * PUBLISH again with DUP, as it must [MQTT-4.4.0-1]. libmosquitto (2.0.11, so `mosquitto_sub`)
 * then keeps a second entry for that id; the PUBREL removes only the first, and the second takes
 * the PUBREL of the next message sent with that id, which is then never delivered. A broker that
 * started its ids at 1 again after each restart met such an entry within a few messages; with ids
 * going on from a stored mark, only after the ids have gone round (65,535 deliveries to that
 * session).
 *
 * The mark is a store counter (`packet-ids/next`), written ahead in blocks: when a session's id
 * enters a block of ids not covered yet, the end of that block is journaled with the delivery, so
 * it is committed before the PUBLISH goes out (a QoS 2 delivery waits for the store), and it
 * costs one counter write per {@linkcode PACKET_ID_BLOCK} ids of the furthest session.
 *
 * @module
 */

/** The store counter that holds where ids start after a restart. */
export const PACKET_IDS_COUNTER = "packet-ids/next";

/** Ids covered by one write of the mark. */
export const PACKET_ID_BLOCK = 1024;

/** How many packet ids there are (1..65535). */
const IDS = 65535;

/**
 * Tracks how far the ids of this run went from where they started, and journals the mark.
 *
 * @example
 * ```ts
 * import { PacketIdMark } from "./packet_id_mark.ts";
 * import assert from "node:assert/strict";
 *
 * const written: number[] = [];
 * const mark = new PacketIdMark((next) => written.push(next));
 * mark.start(100);
 * assert.equal(mark.first, 100);
 * mark.used(100); // the first id of the run: the mark covers a block past it
 * mark.used(101);
 * assert.deepEqual(written, [100 + 1024]);
 * ```
 */
export class PacketIdMark {
  readonly #write: (next: number) => void;
  #first = 1;
  #loaded = false;
  /** Distance from `#first` up to which the stored mark covers the ids used. */
  #covered = 0;

  /**
   * @param write journals the id where the next run starts
   */
  constructor(write: (next: number) => void) {
    this.#write = write;
  }

  /**
   * The first packet id of every persistent session's flow in this run; `undefined` until a
   * stored mark was loaded (a new store, or one kept elsewhere: a flow then starts at 1, and a
   * restored one goes on after its last entry in flight).
   */
  get first(): number | undefined {
    return this.#loaded ? this.#first : undefined;
  }

  /**
   * Starts this run's ids where the stored mark says (at start-up, before any session).
   *
   * @param next the stored counter, 1..65535
   */
  start(next: number): void {
    if (!(Number.isInteger(next) && next >= 1 && next <= IDS)) return;
    this.#first = next;
    this.#loaded = true;
    this.#covered = 0;
  }

  /**
   * Journals the mark written last again, if any (the store lost writes: `store_rewrite.ts`).
   */
  rewrite(): void {
    if (this.#covered > 0) this.#writeMark();
  }

  /**
   * Notes an id a persistent session sends a PUBLISH with; journals a new mark when it is past
   * the one written.
   *
   * @param packetId the packet id, 1..65535
   */
  used(packetId: number): void {
    const distance = (packetId - this.#first + IDS) % IDS;
    if (distance < this.#covered) return;
    this.#covered = Math.min(IDS, (Math.floor(distance / PACKET_ID_BLOCK) + 1) * PACKET_ID_BLOCK);
    this.#writeMark();
  }

  /** Journals the id past the ones covered: where the next run starts. */
  #writeMark(): void {
    this.#write(((this.#first - 1 + this.#covered) % IDS) + 1);
  }
}

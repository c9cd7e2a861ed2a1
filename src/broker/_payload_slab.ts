/**
 * Copies of payloads that are kept a short while, carved from shared slabs: a QoS 1/2 message in
 * flight to a connected subscriber that may send it again (not a clean session's: see
 * `BrokerMessage.writtenOut`) keeps its payload until acknowledged, and its read buffer is read
 * into again (`BrokerCore.releaseReceived`). A `Uint8Array` of its own costs about four
 * native allocations in Deno whatever its length (the buffer, its backing store's records), as
 * many as the fresh read buffer it replaces; a view into a slab costs none but the slab's share.
 * A slab lives as long as any payload in it: a message that is to wait long (queued for an
 * offline session, held back by a full output) gets a buffer of its own (`BrokerMessage.detach`),
 * and so does one a connected session still keeps at the broker's sweep after the one it was
 * queued at (`Session.sweepKept`): a slow subscriber's payloads keep no slabs alive for long.
 *
 * @module
 */

/**
 * Bytes per slab: below the 1,008 bytes from which glibc's malloc merges every freed small chunk
 * before serving the request (a main-thread stall under load, see bench/RESULTS.md).
 */
const SLAB = 1000;
/** Larger payloads get a buffer of their own: a slab would hold few of them. */
const MAX_IN_SLAB = 256;

let slab = new Uint8Array(0);
let slabBuffer = slab.buffer;
let used = 0;

/**
 * A copy of `payload`: a view into the current slab for a small one, else a buffer of its own.
 *
 * @param payload the bytes to copy
 * @returns the copy
 */
export function slabCopy(payload: Uint8Array): Uint8Array {
  const n = payload.length;
  if (n > MAX_IN_SLAB) return payload.slice();
  if (used + n > slab.length) {
    slab = new Uint8Array(SLAB);
    slabBuffer = slab.buffer;
    used = 0;
  }
  slab.set(payload, used);
  // A view made with the constructor: `subarray` looks up the species constructor each time.
  const copy = new Uint8Array(slabBuffer, used, n);
  used += n;
  return copy;
}

// Lookup tables derived from the spec tables in constants.ts, shaped for the hot path.

import {
  type PacketTypeNumber,
  PROPERTY_TABLE,
  type PropertyDataType,
  REASON_CODE_PACKETS,
} from "./constants.ts";

/** Context bit for the will properties inside CONNECT (packet types use bits 1..15). */
export const WILL_CONTEXT = 16;

/** One property, ready for decoding. */
export interface PropertyEntry {
  readonly id: number;
  readonly name: string;
  readonly type: PropertyDataType;
  /** Bit n set: allowed in packet type n; bit 16: allowed in the will properties. */
  readonly mask: number;
  readonly repeatable: boolean;
}

/** Property entries by identifier (undefined for identifiers the spec does not define). */
export const PROPERTY_BY_ID: readonly (PropertyEntry | undefined)[] = (() => {
  const out: (PropertyEntry | undefined)[] = new Array(256).fill(undefined);
  for (const p of PROPERTY_TABLE) {
    let mask = 0;
    for (const c of p.contexts) mask |= 1 << (c === "will" ? WILL_CONTEXT : c);
    out[p.id] = { id: p.id, name: p.name, type: p.type, mask, repeatable: p.repeatable };
  }
  return out;
})();

/** Property entries by name (the key in `Properties`). */
export const PROPERTY_BY_NAME: ReadonlyMap<string, PropertyEntry> = new Map(
  PROPERTY_BY_ID.filter((p): p is PropertyEntry => p !== undefined).map((p) => [p.name, p]),
);

/** For each MQTT 5.0 reason code, bit n set when packet type n may carry it. */
export const REASON_CODE_MASK: Uint32Array = (() => {
  const out = new Uint32Array(256);
  for (const [code, packets] of Object.entries(REASON_CODE_PACKETS)) {
    let mask = 0;
    for (const t of packets as readonly PacketTypeNumber[]) mask |= 1 << t;
    out[Number(code)] = mask;
  }
  return out;
})();

/** Packet types a server may receive (bit n = type n). */
export const SERVER_RECEIVES = (1 << 1) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) |
  (1 << 8) | (1 << 10) | (1 << 12) | (1 << 14) | (1 << 15);

/** Packet types a client may receive (bit n = type n). DISCONNECT only at level 5. */
export const CLIENT_RECEIVES = (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) |
  (1 << 9) | (1 << 11) | (1 << 13) | (1 << 14) | (1 << 15);

/**
 * Required fixed-header flags per packet type [MQTT-2.2.2-2]: PUBREL, SUBSCRIBE and UNSUBSCRIBE
 * carry 0b0010, PUBLISH carries its own flags (-1: not checked here), all others 0.
 */
export const FIXED_FLAGS: readonly number[] = [0, 0, 0, -1, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, 0];

// The fixed-header walk behind packetLength and the decoder. Internal.

import { PACKET_NAMES } from "./constants.ts";
import { MqttPacketError } from "./packet_error.ts";

const MALFORMED = 0x81;
const TOO_LARGE = 0x95;

/**
 * The total length of the packet at `buf[start]`, from its remaining length (§2.1.4), looking no
 * further than `end`; `undefined` while the remaining length is incomplete. A remaining length
 * whose 4th byte still has its continuation bit is malformed at once, without waiting for a 5th.
 * A length over `maxPacketSize` is refused from the header, before the body is waited for.
 */
export function frameLength(
  buf: Uint8Array,
  start: number,
  end: number,
  maxPacketSize: number,
): number | undefined {
  let len = 0;
  let mult = 1;
  let p = start + 1;
  for (;;) {
    if (p >= end) return undefined;
    const byte = buf[p++];
    len += (byte & 0x7f) * mult;
    if ((byte & 0x80) === 0) break;
    // [MQTT-1.5.5-1] a Variable Byte Integer takes at most 4 bytes.
    if (p - start > 4) {
      throw frameError(buf, start, MALFORMED, "remaining length is longer than 4 bytes", p - 1);
    }
    mult *= 128;
  }
  const total = p - start + len;
  if (total > maxPacketSize) {
    throw frameError(
      buf,
      start,
      TOO_LARGE,
      `packet of ${total} bytes exceeds the maximum of ${maxPacketSize}`,
      start + 1,
    );
  }
  return total;
}

/** Where the body of the packet at `buf[start]` begins; its remaining length must be complete. */
export function bodyStart(buf: Uint8Array, start: number): number {
  let p = start + 1;
  while ((buf[p++] & 0x80) !== 0);
  return p;
}

function frameError(
  buf: Uint8Array,
  start: number,
  reasonCode: number,
  message: string,
  at: number,
): MqttPacketError {
  const type = buf[start] >> 4;
  return new MqttPacketError(
    `Cannot decode ${type === 0 ? "packet" : PACKET_NAMES[type]}: ${message}`,
    {
      reasonCode,
      offset: at - start,
      packetType: type === 0 ? undefined : type,
    },
  );
}

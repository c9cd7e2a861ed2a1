/**
 * Whether a server DISCONNECT (MQTT 5.0) should be followed by a reconnect.
 *
 * @module
 */

/**
 * Reason codes after which reconnecting would not help or would do harm:
 * - 0x8E Session taken over: another connection now uses this client id. Reconnecting would take
 *   the session back, the other client would do the same, and the two would fight forever.
 * - 0x98 Administrative action: an operator removed the client on purpose.
 * - 0x9C Use another server, 0x9D Server moved: this server will not serve us.
 * - 0x87 Not authorized, 0x8A Banned, 0x8C Bad authentication method: the same credentials get
 *   the same answer.
 */
const FINAL = new Set([0x87, 0x8a, 0x8c, 0x8e, 0x98, 0x9c, 0x9d]);

/**
 * Whether to reconnect (with back-off, under `auto_reconnect`) after a DISCONNECT from the
 * server. Everything not listed as final is transient: 0x8B Server shutting down, 0x8D Keep
 * Alive timeout, 0x89 Server busy, 0x97 Quota exceeded, 0xA0 Maximum connect time, protocol
 * errors, and so on.
 *
 * @param reasonCode the DISCONNECT reason code
 * @returns false when the client should stay disconnected
 */
export function reconnectAfter(reasonCode: number): boolean {
  return !FINAL.has(reasonCode);
}

/**
 * Fixtures for the MQTT 5.0 client tests: a scripted v5 session and small waits.
 *
 * @module
 */

import { PacketType } from "../../src/packet/constants.ts";
import type { ConnectPacket, Packet, Properties } from "../../src/packet/types.ts";
import type { ScriptedConn, ScriptedServer } from "./_helpers.ts";

/** Accepts a connection, reads its CONNECT and answers a v5 CONNACK with these properties. */
export async function acceptV5(
  server: ScriptedServer,
  properties?: Properties,
  sessionPresent = false,
): Promise<[ScriptedConn, ConnectPacket]> {
  const c = await server.accept();
  const connect = await c.next();
  if (connect?.type !== PacketType.CONNECT) throw new Error("Expected CONNECT");
  if (connect.protocolVersion !== 5) throw new Error("Expected an MQTT 5.0 CONNECT");
  const connack: Packet = { type: PacketType.CONNACK, sessionPresent, reasonCode: 0 };
  if (properties !== undefined) connack.properties = properties;
  await c.send(connack);
  return [c, connect];
}

/** The next packet of a type the test is waiting for, skipping PINGREQ. */
export async function nextNonPing(c: ScriptedConn): Promise<Packet | undefined> {
  for (;;) {
    const p = await c.next();
    if (p?.type !== PacketType.PINGREQ) return p;
  }
}

/** The URL of a scripted server. */
export const urlOf = (server: ScriptedServer) => `mqtt://127.0.0.1:${server.port}`;

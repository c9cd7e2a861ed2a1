/**
 * aMQTT's `PacketLoggerPlugin` (short id `packet_logger`).
 *
 * @module
 */

import { PACKET_NAMES } from "../packet/constants.ts";
import type { Packet } from "../packet/types.ts";
import type { BrokerPlugin, Logger, PluginContext, PluginEventMap } from "./types.ts";

/**
 * Logs every packet received from and sent to clients at debug level, as the packet name and its
 * fields in JSON. Byte fields (payloads, correlation data) appear as their length, and passwords
 * are replaced by `"<redacted>"`.
 *
 * Having this plugin makes the broker describe every packet, even when the logger discards debug
 * lines: leave it out of production configurations that care about throughput.
 *
 * @example
 * ```ts
 * import { PacketLoggerPlugin, describePacket } from "./packet_logger.ts";
 * import assert from "node:assert/strict";
 * assert.equal(describePacket({ type: 12 }), "PINGREQ {}");
 * assert.equal(new PacketLoggerPlugin().name, "packet_logger");
 * ```
 */
export class PacketLoggerPlugin implements BrokerPlugin {
  /** The plugin's short id. */
  readonly name = "packet_logger";
  #logger: Logger | undefined;

  /**
   * Keeps the logger.
   *
   * @param context The plugin's context.
   */
  init(context: PluginContext): void {
    this.#logger = context.logger;
  }

  /**
   * Logs an incoming packet.
   *
   * @param e The client id and packet.
   */
  onMqttPacketReceived(e: PluginEventMap["mqttPacketReceived"]): void {
    this.#logger?.debug(`${e.clientId ?? "(new client)"} <-in-- ${describePacket(e.packet)}`);
  }

  /**
   * Logs an outgoing packet.
   *
   * @param e The client id and packet.
   */
  onMqttPacketSent(e: PluginEventMap["mqttPacketSent"]): void {
    this.#logger?.debug(`${e.clientId ?? "(new client)"} -out-> ${describePacket(e.packet)}`);
  }
}

/**
 * Describes a packet for a log line: its name, then its other fields as JSON, with byte arrays
 * shown as `"<N bytes>"` and the CONNECT password as `"<redacted>"`.
 *
 * @param packet The packet (or any object with a numeric `type`).
 * @returns A single line.
 */
export function describePacket(packet: Packet | { type: number }): string {
  const name = PACKET_NAMES[packet.type] ?? `type ${packet.type}`;
  const json = JSON.stringify(packet, (key, value) => {
    if (key === "type") return undefined;
    if (key === "password" && value !== undefined) return "<redacted>";
    if (value instanceof Uint8Array) return `<${value.length} bytes>`;
    return value;
  });
  return `${name} ${json}`;
}

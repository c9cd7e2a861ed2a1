/**
 * What the packet events hand to plugins (`mqttPacketReceived`, `mqttPacketSent`): a packet whose
 * binary fields are bytes of its own. A decoded packet's binary fields are views into the read
 * buffer it came in (`PacketDecoder`), which is read into again once the packet is handled (a
 * PUBLISH's once routed), or into a slot of a slab shared with other connections' idle reads,
 * which a kept view would keep alive; a PUBLISH sent has its payload in a slab or a read buffer
 * too. Plugins may keep what they are given.
 *
 * @module
 */

import { type Packet, PacketType, type Properties } from "../packet/mod.ts";
import { ownProperties } from "./message.ts";

/**
 * `packet` with bytes of its own: a PUBLISH's payload, a CONNECT's password and will payload
 * copied, and every packet's binary properties (Correlation Data, Authentication Data, the will's
 * too) under {@linkcode ownProperties}. A packet without binary fields is returned as it is.
 *
 * @param packet a packet received or about to be sent
 * @returns the packet, or a shallow copy with bytes of its own
 */
export function packetOfItsOwn(packet: Packet): Packet {
  switch (packet.type) {
    case PacketType.PUBLISH: {
      const copy = { ...packet, payload: packet.payload.slice() };
      if (packet.properties !== undefined) copy.properties = ownProperties(packet.properties);
      return copy;
    }
    case PacketType.CONNECT: {
      const { password, will, properties } = packet;
      if (password === undefined && will === undefined && properties === undefined) return packet;
      const copy = { ...packet };
      if (password !== undefined) copy.password = password.slice();
      if (will !== undefined) {
        copy.will = { ...will, payload: will.payload.slice() };
        if (will.properties !== undefined) copy.will.properties = ownProperties(will.properties);
      }
      if (properties !== undefined) copy.properties = ownProperties(properties);
      return copy;
    }
    default: {
      // AUTH, CONNACK, DISCONNECT and the rest: binary data only among their properties.
      const properties = (packet as { properties?: Properties }).properties;
      const own = ownProperties(properties);
      return own === properties ? packet : { ...packet, properties: own } as Packet;
    }
  }
}

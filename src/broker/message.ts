/**
 * An application message inside the broker, with its encodings cached so that a PUBLISH fanned out
 * to many subscribers is encoded once per distinct shape, not once per subscriber.
 *
 * @module
 */

import type { ProtocolVersion, QoS } from "../packet/constants.ts";
import type { Properties } from "../packet/types.ts";
import { encodePacket, publishPacketIdOffset } from "../packet/mod.ts";

/** A message as routed by the broker. Immutable once created. */
export class BrokerMessage {
  /** The topic name. */
  readonly topic: string;
  /** The payload; a view into a read buffer until {@linkcode detach} copies it. */
  payload: Uint8Array;
  /** The QoS it was published with. */
  readonly qos: QoS;
  /** Whether it was published with RETAIN. */
  readonly retain: boolean;
  /**
   * Whether deliveries carry RETAIN = 1: true only for a retained message sent because of a new
   * subscription [MQTT-3.3.1-8]; live forwards carry 0 [MQTT-3.3.1-9].
   */
  readonly retainOut: boolean;
  /** The publishing client's id, or undefined when the host program published it. */
  readonly senderId: string | undefined;
  /** MQTT 5 properties to forward, if any. */
  readonly properties: Properties | undefined;
  // Index: qos (0-2); entries are whole encoded PUBLISH packets for levels 3 and 4 (identical
  // there), with packet id 1 as a placeholder the connection patches per subscriber.
  #encoded: (Uint8Array | undefined)[] = [undefined, undefined, undefined];
  #idOffset = 0;
  #detached = false;

  /**
   * Wraps a message for routing.
   *
   * @param topic the topic name
   * @param payload the payload bytes (kept, not copied)
   * @param options flags and origin
   */
  constructor(
    topic: string,
    payload: Uint8Array,
    options: {
      qos: QoS;
      retain: boolean;
      retainOut?: boolean;
      senderId?: string;
      properties?: Properties;
    },
  ) {
    this.topic = topic;
    this.payload = payload;
    this.qos = options.qos;
    this.retain = options.retain;
    this.retainOut = options.retainOut ?? false;
    this.senderId = options.senderId;
    this.properties = options.properties;
  }

  /**
   * Copies the payload out of the read buffer it is a view into, so that keeping this message
   * (queued for an offline session) does not keep a whole 64 KiB read buffer alive. Idempotent.
   */
  detach(): void {
    if (this.#detached) return;
    this.#detached = true;
    this.payload = this.payload.slice();
  }

  /**
   * The copy kept in the retained store: its own payload bytes, delivered with RETAIN = 1.
   *
   * @returns a message with the same topic and a copy of the payload
   */
  asRetained(): BrokerMessage {
    return new BrokerMessage(this.topic, this.payload.slice(), {
      qos: this.qos,
      retain: true,
      retainOut: true,
      senderId: this.senderId,
      properties: this.properties,
    });
  }

  /**
   * The encoded PUBLISH for a delivery at `qos` to a level 3 or 4 client, cached. For QoS > 0 the
   * packet id field holds a placeholder at {@linkcode packetIdOffset}.
   *
   * @param version the receiver's protocol level (3 or 4; level 5 encodes per subscriber)
   * @param qos the delivery QoS
   * @returns the shared bytes; callers copy them, never modify them
   */
  encoded(version: ProtocolVersion, qos: QoS): Uint8Array {
    let bytes = this.#encoded[qos];
    if (bytes === undefined) {
      bytes = encodePacket({
        type: 3,
        topic: this.topic,
        payload: this.payload,
        qos,
        retain: this.retainOut,
        dup: false,
        packetId: qos > 0 ? 1 : undefined,
      }, version === 5 ? 4 : version);
      if (qos > 0) this.#idOffset = publishPacketIdOffset(bytes);
      this.#encoded[qos] = bytes;
    }
    return bytes;
  }

  /** Offset of the packet id in {@linkcode encoded} bytes for QoS > 0. */
  get packetIdOffset(): number {
    return this.#idOffset;
  }
}

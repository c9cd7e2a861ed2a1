/**
 * amqtt: an MQTT broker and client for Deno, re-creating the Python project aMQTT.
 *
 * - `Broker` (also at `@amqtt/amqtt/broker`): an embeddable MQTT 3.1 / 3.1.1 broker.
 * - `MQTTClient` (also at `@amqtt/amqtt/client`): aMQTT's client API.
 * - The packet codec lives at `@amqtt/amqtt/packet`.
 *
 * @example
 * ```ts
 * import { Broker } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * await using broker = new Broker({ listeners: { default: { bind: "127.0.0.1:0" } } });
 * await broker.start();
 * broker.publish("greeting", "hello", { retain: true });
 * const retained = broker.retainedMessages().map((m) => m.topic);
 * assert.ok(retained.includes("greeting"));
 * ```
 *
 * @module
 */

export * from "./broker.ts";
export {
  type ApplicationMessage,
  type ClientConfigInput,
  ClientError,
  type ConnackResult,
  ConnectError,
  type ConnectionConfigInput,
  type ConnectOptions,
  type DeliverOptions,
  type DisconnectOptions,
  type EnhancedAuth,
  MQTTClient,
  type MQTTClientOptions,
  PublishError,
  type PublishOptions,
  type PublishProperties,
  type PublishResult,
  type ReasonCodes,
  type RequestOptions,
  type RespondOptions,
  scramSha256Auth,
  type ScramSha256AuthOptions,
  ServerDisconnectError,
  type SubscribeOptions,
  type SubscribeRequest,
  type UnsubscribeOptions,
  type WillConfigInput,
  type WillOptions,
} from "./client.ts";

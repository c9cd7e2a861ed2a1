/**
 * The amqtt MQTT client: aMQTT's `MQTTClient` API for Deno, over TCP, TLS, WebSocket and secure
 * WebSocket, with MQTT 3.1, 3.1.1 and 5.0.
 *
 * `connect` resolves with the CONNACK; `publish` resolves when the QoS flow completes; messages
 * arrive through `deliverMessage()` or `for await (const m of client.messages())`. The client
 * reconnects by itself after a lost link (aMQTT's `auto_reconnect`), resubscribes when the broker
 * kept no session, and resends unacknowledged QoS 1/2 messages. Received messages wait in a bounded
 * queue: past it QoS 0 is dropped (counted) and QoS 1/2 is acknowledged only once read, so the
 * broker holds it back.
 *
 * @example
 * ```ts
 * import { MQTTClient } from "./client.ts";
 * import { Broker } from "./broker.ts";
 * import assert from "node:assert/strict";
 *
 * await using broker = new Broker({ listeners: { default: { bind: "127.0.0.1:0" } } });
 * await broker.start();
 * const port = broker.listeners[0].port;
 *
 * await using client = new MQTTClient({ config: { default_qos: 1 } });
 * await client.connect(`mqtt://127.0.0.1:${port}`);
 * assert.deepEqual(await client.subscribe([{ topic: "sensors/#", qos: 1 }]), [1]);
 * await client.publish("sensors/t1", "21.5"); // resolves on PUBACK
 * const message = await client.deliverMessage({ timeout: 5000 });
 * assert.equal(message.topic, "sensors/t1");
 * assert.equal(new TextDecoder().decode(message.payload), "21.5");
 * ```
 *
 * @module
 */

export { MQTTClient } from "./src/client/mqtt_client.ts";
export { scramSha256Auth, type ScramSha256AuthOptions } from "./src/client/scram_auth.ts";
export type {
  ConnectOptions,
  DeliverOptions,
  MQTTClientOptions,
  PublishOptions,
  SubscribeRequest,
  WillOptions,
} from "./src/client/mqtt_client.ts";
export {
  ClientError,
  ConnectError,
  PublishError,
  ServerDisconnectError,
} from "./src/client/errors.ts";
export type {
  ClientErrorOptions,
  ConnectErrorOptions,
  PublishErrorOptions,
  ServerDisconnectErrorOptions,
} from "./src/client/errors.ts";
export type {
  DisconnectOptions,
  EnhancedAuth,
  PublishProperties,
  RequestOptions,
  RespondOptions,
  SubscribeOptions,
  UnsubscribeOptions,
} from "./src/client/v5_options.ts";
export type {
  ClientConfigInput,
  ConnectionConfigInput,
  WillConfigInput,
} from "./src/client/_config.ts";
export type {
  ClientConfig,
  ConnectionConfig,
  TopicPublishConfig,
  WillConfig,
} from "./src/config/client_config.ts";
export type { ClientPluginConfig, NoOptions } from "./src/config/plugin_config.ts";
export { ConfigError } from "./src/config/config_error.ts";
export type {
  ApplicationMessage,
  ConnackResult,
  PublishResult,
} from "./src/session/client_session.ts";
export type { ReasonCodes } from "./src/client/reason_codes.ts";
export type { Properties, UserProperty } from "./src/packet/types.ts";
export type { ProtocolVersion, QoS } from "./src/packet/constants.ts";

/**
 * The amqtt broker: an embeddable MQTT 3.1, 3.1.1 and 5.0 broker for Deno, configured with aMQTT's
 * keys.
 *
 * This entry holds what embedding needs: the {@linkcode Broker}, its typed configuration input
 * ({@linkcode BrokerConfigInput}), options and events, the plugin contract
 * ({@linkcode BrokerPlugin}), the store contract for a backend of one's own
 * ({@linkcode BrokerStore}), and {@linkcode socketConnection} for connections the host program
 * accepts itself. The packet codec is at `@amqtt/amqtt/packet`, the packet channel and the
 * listeners at `@amqtt/amqtt/transport`, the built-in plugins and password hashing at
 * `@amqtt/amqtt/plugins`, configuration parsing at `@amqtt/amqtt/config`.
 *
 * @example
 * ```ts
 * import { Broker } from "./broker.ts";
 * import assert from "node:assert/strict";
 *
 * await using broker = new Broker({ listeners: { default: { bind: "127.0.0.1:0" } } });
 * await broker.start();
 * assert.equal(broker.listeners[0].hostname, "127.0.0.1");
 * ```
 *
 * @module
 */

export { Broker, VERSION } from "./src/broker/broker.ts";
export type {
  BrokerEventHandler,
  BrokerEventMap,
  BrokerOptions,
  SessionSummary,
} from "./src/broker/broker.ts";
export type { BrokerStats } from "./src/broker/core.ts";
export type { DeliveryCounters } from "./src/broker/session.ts";
export type { RefusalCounters } from "./src/broker/limits.ts";
export type { BrokerConfigInput, ListenerConfigInput } from "./src/config/broker_config_input.ts";
export type { BrokerConfig } from "./src/config/broker_config.ts";
export { loadBrokerConfigFile } from "./src/config/broker_config.ts";
export { ConfigError } from "./src/config/config_error.ts";
export type {
  BrokerPlugin,
  ClientInfo,
  ClientSummary,
  Decision,
  EnhancedAuthAnswer,
  EnhancedAuthRequest,
  EventHandlerName,
  LogFields,
  Logger,
  MaybePromise,
  MessageInfo,
  PluginContext,
  PluginEventMap,
  PluginEventName,
  PluginPublishOptions,
  Refusal,
} from "./src/plugins/types.ts";
export type { ProtocolVersion, QoS } from "./src/packet/constants.ts";
export { socketConnection, type SocketConnectionOptions } from "./src/transport/socket.ts";
export type { ByteConnection, ConnectionInfo, TransportKind } from "./src/transport/types.ts";
export type { ServerListener } from "./src/transport/listener.ts";
export type { DropCounts, DropReason } from "./src/broker/drop_counters.ts";
export type { AuthDecision, Refused } from "./src/broker/policy.ts";
export { AuthUnavailableError } from "./src/plugins/auth_unavailable.ts";
export type { BrokerStore } from "./src/store/broker_store.ts";
export type { StoreMutation } from "./src/store/mutation.ts";
export type {
  DueWill,
  OutboundRecord,
  StoredSession,
  StoredState,
} from "./src/store/stored_state.ts";
export type { MessageRecord } from "./src/store/message_record.ts";
export type { SessionRecord, SubscriptionRecord, WillRecord } from "./src/store/session_record.ts";
export type { JsonProperties } from "./src/store/json_properties.ts";
export {
  StoreError,
  type StoreErrorKind,
  type StoreErrorOptions,
} from "./src/store/store_error.ts";

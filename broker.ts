/**
 * The amqtt broker: an embeddable MQTT 3.1 / 3.1.1 broker for Deno, configured with aMQTT's keys.
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
export { PacketType } from "./src/packet/constants.ts";
export type { ProtocolVersion, QoS } from "./src/packet/constants.ts";
export type { ServerListener } from "./src/transport/listener.ts";
export type { ByteConnection, ConnectionInfo, TransportKind } from "./src/transport/types.ts";
export { socketConnection } from "./src/transport/socket.ts";
export type * from "./src/plugins/types.ts";
export type * from "./src/packet/types.ts";
export { PluginHost } from "./src/broker/plugin_host.ts";
export type { EventArgs, PluginHostOptions } from "./src/broker/plugin_host.ts";
export type {
  HashPasswordOptions,
  HashScheme,
  VerifyPasswordOptions,
} from "./src/plugins/password_hash.ts";
export {
  AnonymousAuthPlugin,
  createBuiltinPlugin,
  FileAuthPlugin,
  hashPassword,
  TopicAccessControlListPlugin,
  TopicTabooPlugin,
  verifyPassword,
} from "./src/plugins/mod.ts";
export { BrokerSysPlugin } from "./src/plugins/sys.ts";
export type { BrokerSysPluginOptions, SysSnapshot } from "./src/plugins/sys.ts";
export {
  ConfigError,
  DEFAULT_BROKER_CONFIG_YAML,
  defaultBrokerConfig,
  loadBrokerConfigFile,
  parseBrokerConfigYaml,
  resolveBrokerConfig,
} from "./src/config/mod.ts";
export type * from "./src/config/mod.ts";

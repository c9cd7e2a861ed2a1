/**
 * aMQTT-compatible broker and client configuration: YAML 1.1 loading, strict validation with key
 * paths and line numbers, and resolution into typed, fully defaulted objects.
 *
 * @example Loading a broker configuration
 * ```ts
 * import { parseBrokerConfigYaml } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const config = parseBrokerConfigYaml(`
 * listeners:
 *   default: {type: tcp, bind: "127.0.0.1:1883"}
 * plugins:
 *   amqtt.plugins.authentication.AnonymousAuthPlugin: {allow-anonymous: false}
 * `);
 * assert.equal(config.listeners[0]?.port, 1883);
 * assert.deepEqual(config.plugins.map((p) => p.name), ["auth_anonymous"]);
 * ```
 *
 * @module
 */

export { type BindAddress, parseBind } from "./bind.ts";
export {
  type BrokerConfig,
  type ClientCertMode,
  DEFAULT_MAX_PACKET_SIZE,
  defaultBrokerConfig,
  type ListenerConfig,
  type ListenerType,
  loadBrokerConfigFile,
  MAX_PACKET_SIZE_LIMIT,
  parseBrokerConfigYaml,
  resolveBrokerConfig,
  type ResolveBrokerConfigOptions,
} from "./broker_config.ts";
export {
  type ClientConfig,
  type ConnectionConfig,
  DEFAULT_CLIENT_URI,
  loadClientConfigFile,
  parseClientConfigYaml,
  resolveClientConfig,
  type ResolveClientConfigOptions,
  type TopicPublishConfig,
  type WillConfig,
} from "./client_config.ts";
export type {
  AnonymousAuthInput,
  AuthSectionInput,
  BrokerConfigInput,
  BrokerPluginsInput,
  BrokerSysInput,
  ChallengeAuthInput,
  ClusterInput,
  FileAuthInput,
  ListenerConfigInput,
  NoOptionsInput,
  PersistenceInput,
  ScramAuthInput,
  SessionDbInput,
  TopicAclInput,
  TopicCheckSectionInput,
} from "./broker_config_input.ts";
export {
  type ClusterConfig,
  type ClusterTlsConfig,
  DEFAULT_CLUSTER_KEY_PREFIX,
  DEFAULT_CLUSTER_REDIS,
} from "./cluster_config.ts";
export { ConfigError, type ConfigErrorOptions } from "./config_error.ts";
export { DEFAULT_BROKER_CONFIG_YAML } from "./default_broker_yaml.ts";
export {
  DEFAULT_PERSISTENCE_PATH,
  type PersistenceConfig,
  SESSION_DB_PLUGIN_CLASSES,
} from "./persistence_config.ts";
export {
  type AnonymousAuthOptions,
  BROKER_PLUGIN_CLASSES,
  type BrokerPluginConfig,
  type BrokerPluginName,
  type BrokerSysOptions,
  type ChallengeAuthOptions,
  type ClientPluginConfig,
  type FileAuthOptions,
  type NoOptions,
  type ScramAuthOptions,
  type TopicAcl,
  type TopicAclOptions,
} from "./plugin_config.ts";

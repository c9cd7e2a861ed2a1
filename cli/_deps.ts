/**
 * Everything the command-line tools take from the library, in one place. The tools own no
 * protocol, configuration or hashing logic: they parse flags and call these.
 *
 * The `src/` imports reach modules the root package does not export yet (configuration loading,
 * password hashing, topic validation, the version); they switch to package exports once those
 * exist.
 *
 * @module
 */

export { Broker, type BrokerOptions } from "@amqtt/amqtt/broker";
export {
  type ClientConfig,
  ConnectError,
  type ConnectOptions,
  MQTTClient,
  type WillOptions,
} from "@amqtt/amqtt/client";
export { ConnackReturnCode } from "@amqtt/amqtt/packet";
export {
  type BrokerConfig,
  ConfigError,
  defaultBrokerConfig,
  loadBrokerConfigFile,
  loadClientConfigFile,
  resolveClientConfig,
} from "../src/config/mod.ts";
export { hashPassword } from "../src/plugins/password_hash.ts";
export { validateTopicFilter, validateTopicName } from "../src/topic/mod.ts";
export { VERSION } from "../src/broker/broker.ts";

/**
 * Everything the command-line tools take from the library, in one place. The tools own no
 * protocol, configuration or hashing logic: they parse flags and call these.
 *
 * @module
 */

export { Broker, type BrokerOptions, type LogFields } from "@amqtt/amqtt/broker";
export {
  type ApplicationMessage,
  type ClientConfig,
  ConnectError,
  type ConnectOptions,
  type DisconnectOptions,
  MQTTClient,
  type ProtocolVersion,
  PublishError,
  type PublishProperties,
  scramSha256Auth,
  ServerDisconnectError,
  type SubscribeOptions,
  type UnsubscribeOptions,
  type WillOptions,
} from "@amqtt/amqtt/client";
export {
  ConnackReturnCode,
  PacketType,
  type Properties,
  PROPERTY_TABLE,
  type PropertyInfo,
  reasonText,
  type UserProperty,
} from "@amqtt/amqtt/packet";
export {
  type BrokerConfig,
  ConfigError,
  defaultBrokerConfig,
  loadBrokerConfigFile,
  loadClientConfigFile,
  resolveClientConfig,
} from "@amqtt/amqtt/config";
export { hashPassword, type HashScheme, parsePasswordFile } from "@amqtt/amqtt/plugins";
export { validateTopicFilter, validateTopicName } from "@amqtt/amqtt/topic";
export { VERSION } from "@amqtt/amqtt/broker";

/**
 * The normalized plugin list of a resolved broker or client configuration, and the aMQTT plugin
 * class names that map onto our built-in plugins.
 *
 * @module
 */

/** Short ids of the built-in broker plugins (aMQTT's entry-point names). */
export type BrokerPluginName =
  | "auth_anonymous"
  | "auth_file"
  | "auth_scram"
  | "auth_challenge"
  | "topic_taboo"
  | "topic_acl"
  | "broker_sys"
  | "event_logger"
  | "packet_logger";

/** A topic ACL: username (`anonymous` for clients without one) -> allowed topic filters. */
export type TopicAcl = Record<string, string[]>;

/** Options of `auth_anonymous` (`amqtt.plugins.authentication.AnonymousAuthPlugin`). */
export type AnonymousAuthOptions = {
  /** Accept clients without a username. Default `true`. */
  allowAnonymous: boolean;
};

/** Options of `auth_file` (`amqtt.plugins.authentication.FileAuthPlugin`). */
export type FileAuthOptions = {
  /** Path of the `user:hash` password file; checked to exist when the config is resolved. */
  passwordFile: string;
};

/**
 * Options of `auth_scram` (our addition, MQTT 5.0 enhanced authentication `SCRAM-SHA-256`).
 */
export type ScramAuthOptions = {
  /** Path of the `user:SCRAM-SHA-256$…` password file; checked to exist when resolved. */
  passwordFile: string;
};

/**
 * Options of `auth_challenge` (our addition, MQTT 5.0 enhanced authentication by HMAC-SHA-256
 * challenge over shared secrets).
 */
export type ChallengeAuthOptions = {
  /** Path of the `user:secret` file; checked to exist when resolved. */
  secretsFile: string;
  /** The Authentication Method name. Default `x-hmac-sha256`. */
  method: string;
};

/**
 * Options of `topic_acl` (`amqtt.plugins.topic_checking.TopicAccessControlListPlugin`), as
 * written: `undefined` means the map was not given, which aMQTT treats differently from `{}`.
 */
export type TopicAclOptions = {
  /** aMQTT's legacy subscribe ACL (`acl`). */
  acl: TopicAcl | undefined;
  /** `subscribe_acl`. */
  subscribeAcl: TopicAcl | undefined;
  /** `publish_acl`; when not given aMQTT allows every publish. */
  publishAcl: TopicAcl | undefined;
  /** `receive_acl`: which messages a client may be sent. */
  receiveAcl: TopicAcl | undefined;
};

/** Options of `broker_sys` (`amqtt.plugins.sys.broker.BrokerSysPlugin`). */
export type BrokerSysOptions = {
  /** Seconds between `$SYS` updates; 0 turns the periodic updates off. Default 20. */
  sysInterval: number;
};

/** A plugin without options. */
export type NoOptions = Record<string, never>;

/**
 * One entry of the normalized broker plugin list: the built-in plugin's short id, the aMQTT class
 * name it stands for, and its validated options (camelCase).
 */
export type BrokerPluginConfig =
  | { name: "auth_anonymous"; className: string; options: AnonymousAuthOptions }
  | { name: "auth_file"; className: string; options: FileAuthOptions }
  | { name: "auth_scram"; className: string; options: ScramAuthOptions }
  | { name: "auth_challenge"; className: string; options: ChallengeAuthOptions }
  | { name: "topic_taboo"; className: string; options: NoOptions }
  | { name: "topic_acl"; className: string; options: TopicAclOptions }
  | { name: "broker_sys"; className: string; options: BrokerSysOptions }
  | { name: "event_logger"; className: string; options: NoOptions }
  | { name: "packet_logger"; className: string; options: NoOptions };

/** One entry of the normalized client plugin list. */
export type ClientPluginConfig = {
  name: "packet_logger";
  className: string;
  options: NoOptions;
};

/**
 * aMQTT class name of each built-in broker plugin. Configuration files may name a plugin by this
 * class name or by its short id.
 */
export const BROKER_PLUGIN_CLASSES: Readonly<Record<BrokerPluginName, string>> = Object.freeze({
  auth_anonymous: "amqtt.plugins.authentication.AnonymousAuthPlugin",
  auth_file: "amqtt.plugins.authentication.FileAuthPlugin",
  // Ours (aMQTT has no enhanced authentication), named in the same style.
  auth_scram: "amqtt.plugins.authentication.ScramAuthPlugin",
  auth_challenge: "amqtt.plugins.authentication.ChallengeAuthPlugin",
  topic_taboo: "amqtt.plugins.topic_checking.TopicTabooPlugin",
  topic_acl: "amqtt.plugins.topic_checking.TopicAccessControlListPlugin",
  broker_sys: "amqtt.plugins.sys.broker.BrokerSysPlugin",
  event_logger: "amqtt.plugins.logging_amqtt.EventLoggerPlugin",
  packet_logger: "amqtt.plugins.logging_amqtt.PacketLoggerPlugin",
});

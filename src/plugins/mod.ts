/**
 * The plugin contract and the built-in plugins: anonymous and password-file authentication,
 * SCRAM-SHA-256 and HMAC challenge enhanced authentication (MQTT 5.0),
 * topic ACL and taboo topics, event and packet logging, and password hashing.
 *
 * @module
 */

export type * from "./types.ts";
// Types the contract mentions, re-exported so the contract is complete from this module.
export type { QoS } from "../packet/constants.ts";
export type { TransportKind } from "../transport/types.ts";
export { AuthUnavailableError } from "./auth_unavailable.ts";
export { AnonymousAuthPlugin, type AnonymousAuthPluginOptions } from "./anonymous_auth.ts";
export {
  ChallengeAuthPlugin,
  type ChallengeAuthPluginOptions,
  challengeResponse,
} from "./challenge_auth.ts";
export {
  ScramAuthPlugin,
  type ScramAuthPluginOptions,
  type ScramCredentials,
  scramCredentials,
} from "./scram_auth.ts";
export {
  formatScramSecret,
  parseScramSecret,
  SCRAM_MAX_ITERATIONS,
  SCRAM_SHA_256_PREFIX,
  verifyScramPassword,
} from "./scram_secret.ts";
export {
  FileAuthPlugin,
  type FileAuthPluginOptions,
  type ParsedPasswordFile,
  parsePasswordFile,
  type PasswordFileIssue,
} from "./file_auth.ts";
export {
  type AclMap,
  ANONYMOUS_USER,
  TopicAccessControlListPlugin,
  type TopicAccessControlListPluginOptions,
} from "./topic_acl.ts";
export { TABOO_TOPICS, TopicTabooPlugin } from "./topic_taboo.ts";
export { EventLoggerPlugin } from "./event_logger.ts";
export { describePacket, PacketLoggerPlugin } from "./packet_logger.ts";
export { type BuiltinPluginId, builtinPluginId, createBuiltinPlugin } from "./builtin.ts";
export {
  DEFAULT_ARGON2ID,
  DEFAULT_PBKDF2_ITERATIONS,
  DEFAULT_SHA512_CRYPT_ROUNDS,
  hashPassword,
  type HashPasswordOptions,
  type HashScheme,
  identifyHash,
  type PasswordScheme,
  SHA_CRYPT_MAX_PASSWORD_BYTES,
  verifyPassword,
  type VerifyPasswordOptions,
} from "./password_hash.ts";
export type * from "../packet/types.ts";
export type { PacketType, ProtocolVersion } from "../packet/constants.ts";

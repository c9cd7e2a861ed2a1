/**
 * Creates the built-in plugins by the names aMQTT configurations use.
 *
 * @module
 */

import { AnonymousAuthPlugin } from "./anonymous_auth.ts";
import { ChallengeAuthPlugin } from "./challenge_auth.ts";
import { ScramAuthPlugin } from "./scram_auth.ts";
import { EventLoggerPlugin } from "./event_logger.ts";
import { FileAuthPlugin } from "./file_auth.ts";
import { PacketLoggerPlugin } from "./packet_logger.ts";
import { type AclMap, TopicAccessControlListPlugin } from "./topic_acl.ts";
import { TopicTabooPlugin } from "./topic_taboo.ts";
import type { BrokerPlugin } from "./types.ts";

/** The short ids of the built-in plugins (aMQTT's entry-point names). */
export type BuiltinPluginId =
  | "auth_anonymous"
  | "auth_file"
  | "auth_scram"
  | "auth_challenge"
  | "topic_taboo"
  | "topic_acl"
  | "event_logger"
  | "packet_logger"
  | "broker_sys";

// aMQTT names each plugin three ways: entry-point name, 0.11 class path, and (for the loggers) the
// older `*_plugin` entry-point name. All resolve to the short id.
const ALIASES: Readonly<Record<string, BuiltinPluginId>> = {
  "auth_anonymous": "auth_anonymous",
  "amqtt.plugins.authentication.AnonymousAuthPlugin": "auth_anonymous",
  "auth_file": "auth_file",
  "amqtt.plugins.authentication.FileAuthPlugin": "auth_file",
  "auth_scram": "auth_scram",
  "amqtt.plugins.authentication.ScramAuthPlugin": "auth_scram",
  "auth_challenge": "auth_challenge",
  "amqtt.plugins.authentication.ChallengeAuthPlugin": "auth_challenge",
  "topic_taboo": "topic_taboo",
  "amqtt.plugins.topic_checking.TopicTabooPlugin": "topic_taboo",
  "topic_acl": "topic_acl",
  "amqtt.plugins.topic_checking.TopicAccessControlListPlugin": "topic_acl",
  "event_logger": "event_logger",
  "event_logger_plugin": "event_logger",
  "amqtt.plugins.logging_amqtt.EventLoggerPlugin": "event_logger",
  "packet_logger": "packet_logger",
  "packet_logger_plugin": "packet_logger",
  "amqtt.plugins.logging_amqtt.PacketLoggerPlugin": "packet_logger",
  "broker_sys": "broker_sys",
  "amqtt.plugins.sys.broker.BrokerSysPlugin": "broker_sys",
};

const OPTIONS: Readonly<Record<BuiltinPluginId, readonly string[]>> = {
  auth_anonymous: ["allowAnonymous"],
  auth_file: ["passwordFile"],
  auth_scram: ["passwordFile"],
  auth_challenge: ["secretsFile", "method"],
  topic_taboo: [],
  topic_acl: ["acl", "publishAcl", "subscribeAcl", "receiveAcl"],
  event_logger: [],
  packet_logger: [],
  broker_sys: ["sysInterval"],
};

/**
 * Resolves a plugin name as written in a configuration to a built-in's short id.
 *
 * @param name A short id (`auth_file`), an aMQTT class path
 * (`amqtt.plugins.authentication.FileAuthPlugin`) or an old entry-point name
 * (`event_logger_plugin`).
 * @returns The short id, or `undefined` when the name is not a built-in.
 *
 * @example
 * ```ts
 * import { builtinPluginId } from "./builtin.ts";
 * import assert from "node:assert/strict";
 * assert.equal(builtinPluginId("amqtt.plugins.topic_checking.TopicTabooPlugin"), "topic_taboo");
 * assert.equal(builtinPluginId("my.Plugin"), undefined);
 * ```
 */
export function builtinPluginId(name: string): BuiltinPluginId | undefined {
  return Object.hasOwn(ALIASES, name) ? ALIASES[name] : undefined;
}

/**
 * Creates a built-in plugin from its configuration entry.
 *
 * Option keys may be written camelCase, snake_case or kebab-case (`allowAnonymous`,
 * `allow_anonymous`, `allow-anonymous`), as aMQTT accepts both `-` and `_`; keys inside ACL maps
 * are usernames and are kept as written. Unknown options are an error, as in aMQTT. `null` or
 * `undefined` options (a YAML key with no value) mean no options.
 *
 * @param name A built-in name, see {@linkcode builtinPluginId}.
 * @param options The plugin's options from the configuration.
 * @returns The plugin.
 * @throws {TypeError} For an unknown name, an unknown option or an option of the wrong type.
 * @throws {Error} For `broker_sys`: the `$SYS` plugin is created by the broker (src/plugins/sys.ts),
 * not here.
 *
 * @example
 * ```ts
 * import { createBuiltinPlugin } from "./builtin.ts";
 * import assert from "node:assert/strict";
 * const plugin = createBuiltinPlugin("auth_anonymous", { "allow-anonymous": false });
 * assert.equal(plugin.name, "auth_anonymous");
 * ```
 */
export function createBuiltinPlugin(
  name: string,
  options?: Readonly<Record<string, unknown>> | null,
): BrokerPlugin {
  const id = builtinPluginId(name);
  if (id === undefined) {
    throw new TypeError(
      `Cannot create plugin "${name}": not a built-in plugin (known: ${
        Object.keys(OPTIONS).join(", ")
      })`,
    );
  }
  const opts = normalizeOptions(id, options ?? {});
  switch (id) {
    case "auth_anonymous":
      return new AnonymousAuthPlugin({
        allowAnonymous: typed(id, opts, "allowAnonymous", "boolean") as boolean | undefined,
      });
    case "auth_file":
      return new FileAuthPlugin({
        passwordFile: typed(id, opts, "passwordFile", "string") as string | undefined,
      });
    case "auth_scram":
      return new ScramAuthPlugin({
        passwordFile: typed(id, opts, "passwordFile", "string") as string | undefined,
      });
    case "auth_challenge":
      return new ChallengeAuthPlugin({
        secretsFile: typed(id, opts, "secretsFile", "string") as string | undefined,
        method: typed(id, opts, "method", "string") as string | undefined,
      });
    case "topic_taboo":
      return new TopicTabooPlugin();
    case "topic_acl":
      return new TopicAccessControlListPlugin({
        acl: opts.acl as AclMap | undefined,
        publishAcl: opts.publishAcl as AclMap | undefined,
        subscribeAcl: opts.subscribeAcl as AclMap | undefined,
        receiveAcl: opts.receiveAcl as AclMap | undefined,
      });
    case "event_logger":
      return new EventLoggerPlugin();
    case "packet_logger":
      return new PacketLoggerPlugin();
    case "broker_sys":
      throw new Error(
        'Cannot create plugin "broker_sys" here: the $SYS plugin is created by the broker',
      );
  }
}

function normalizeOptions(
  id: BuiltinPluginId,
  options: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  if (typeof options !== "object" || Array.isArray(options)) {
    throw new TypeError(`Cannot create plugin "${id}": options must be a mapping`);
  }
  const known = OPTIONS[id];
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    const camel = key.replace(/[-_]+([a-z0-9])/g, (_, c: string) => c.toUpperCase());
    if (!known.includes(camel)) {
      throw new TypeError(
        `Cannot create plugin "${id}": unknown option "${key}"` +
          (known.length > 0 ? ` (known: ${known.join(", ")})` : " (it takes none)"),
      );
    }
    if (Object.hasOwn(out, camel)) {
      throw new TypeError(`Cannot create plugin "${id}": option "${camel}" is given twice`);
    }
    out[camel] = value;
  }
  return out;
}

function typed(
  id: BuiltinPluginId,
  opts: Record<string, unknown>,
  key: string,
  type: "boolean" | "string",
): unknown {
  const value = opts[key];
  if (value === undefined || value === null) return undefined;
  const actual = typeof value;
  if (actual !== type) {
    throw new TypeError(`Cannot create plugin "${id}": option "${key}" must be a ${type}`);
  }
  return value;
}

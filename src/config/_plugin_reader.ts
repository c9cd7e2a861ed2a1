/**
 * Reads aMQTT's `plugins` section (map or legacy list) and the legacy `auth` / `topic-check`
 * sections into one normalized plugin list.
 *
 * @module
 */

import {
  BROKER_PLUGIN_CLASSES,
  type BrokerPluginConfig,
  type BrokerPluginName,
  type ClientPluginConfig,
  type TopicAcl,
  type TopicAclOptions,
} from "./plugin_config.ts";
import {
  describe,
  type Entry,
  isPlainMap,
  type Path,
  readAnyMap,
  readBool,
  type ReadContext,
  readExistingPath,
  readNonEmptyString,
  readNumber,
  readSchemaMap,
} from "./_reader.ts";

/** Default `$SYS` interval in seconds (aMQTT's default_broker.yaml). */
export const DEFAULT_SYS_INTERVAL = 20;

const AUTH_PLUGINS: readonly BrokerPluginName[] = ["auth_anonymous", "auth_file"];
/** Every plugin that can let a client in (the legacy `auth` section knows the first two only). */
const LOGIN_PLUGINS: readonly BrokerPluginName[] = [
  ...AUTH_PLUGINS,
  "auth_scram",
  "auth_challenge",
];
const TOPIC_PLUGINS: readonly BrokerPluginName[] = ["topic_taboo", "topic_acl"];

const ALIASES = new Map<string, BrokerPluginName>();
for (const [id, className] of Object.entries(BROKER_PLUGIN_CLASSES)) {
  ALIASES.set(id, id as BrokerPluginName);
  ALIASES.set(className, id as BrokerPluginName);
}
// aMQTT 0.10 kept the loggers in amqtt.plugins.logging, and its entry points had these names.
ALIASES.set("amqtt.plugins.logging.EventLoggerPlugin", "event_logger");
ALIASES.set("amqtt.plugins.logging.PacketLoggerPlugin", "packet_logger");
ALIASES.set("event_logger_plugin", "event_logger");
ALIASES.set("packet_logger_plugin", "packet_logger");

/** Maps an aMQTT plugin class name (`a.b.Class` or `a.b:Class`) or short id to our id. */
export function lookupBrokerPlugin(name: string): BrokerPluginName | undefined {
  return ALIASES.get(name) ?? ALIASES.get(name.replace(":", "."));
}

function knownPluginList(): string {
  return Object.values(BROKER_PLUGIN_CLASSES).join(", ");
}

interface PluginRef {
  /** The class name or id as written. */
  written: string;
  /** Options as written (null when none). */
  value: unknown;
  /** Path of the plugin's key (map form) or list item (string form). */
  path: Path;
}

function readPluginRefs(ctx: ReadContext, entry: Entry): PluginRef[] {
  const { value, path } = entry;
  if (Array.isArray(value)) {
    // Legacy list form: `- dotted.Class` or `- dotted.Class: {options}`.
    const refs: PluginRef[] = [];
    value.forEach((item, index) => {
      const itemPath = [...path, index];
      if (typeof item === "string") {
        refs.push({ written: item, value: null, path: itemPath });
      } else if (isPlainMap(item)) {
        for (const sub of readAnyMap(ctx, item, itemPath)) {
          refs.push({
            written: sub.path[sub.path.length - 1] as string,
            value: sub.value,
            path: sub.path,
          });
        }
      } else {
        throw ctx.error(
          itemPath,
          `expected a plugin class name or a map of class name to options, got ${describe(item)}`,
        );
      }
    });
    return refs;
  }
  if (isPlainMap(value)) {
    return readAnyMap(ctx, value, path).map((sub) => ({
      written: sub.path[sub.path.length - 1] as string,
      value: sub.value,
      path: sub.path,
    }));
  }
  throw ctx.error(
    path,
    `expected a map of plugin class names to options (or a list), got ${describe(value)}`,
  );
}

function setOwn<T>(target: Record<string, T>, key: string, value: T): void {
  // defineProperty, because a username such as "__proto__" must stay an ordinary key.
  Object.defineProperty(target, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

/** Reads an ACL: `{user: [filters]}`, or aMQTT's documented list of one-key maps. */
function readAcl(ctx: ReadContext, entry: Entry): TopicAcl {
  const acl: TopicAcl = {};
  const users: Entry[] = [];
  if (Array.isArray(entry.value)) {
    entry.value.forEach((item, index) => {
      const itemPath = [...entry.path, index];
      if (!isPlainMap(item)) {
        throw ctx.error(
          itemPath,
          `expected a map of username to topic list, got ${describe(item)}`,
        );
      }
      users.push(...readAnyMap(ctx, item, itemPath));
    });
  } else {
    users.push(...readAnyMap(ctx, entry.value, entry.path));
  }
  for (const user of users) {
    const name = user.path[user.path.length - 1] as string;
    if (Object.hasOwn(acl, name)) {
      throw ctx.error(user.path, `user ${JSON.stringify(name)} is listed twice`);
    }
    const filters: string[] = [];
    if (user.value !== null && user.value !== undefined) {
      if (!Array.isArray(user.value)) {
        throw ctx.error(user.path, `expected a list of topic filters, got ${describe(user.value)}`);
      }
      user.value.forEach((filter, index) => {
        const filterPath = [...user.path, index];
        if (typeof filter !== "string") {
          throw ctx.error(
            filterPath,
            `expected a topic filter string, got ${describe(filter)} (quote it in YAML)`,
          );
        }
        if (filter === "") throw ctx.error(filterPath, "a topic filter cannot be empty");
        filters.push(filter);
      });
    }
    setOwn(acl, name, filters);
  }
  return acl;
}

function readAclOptions(ctx: ReadContext, fields: Map<string, Entry>): TopicAclOptions {
  const get = (key: string) => {
    const entry = fields.get(key);
    return entry === undefined ? undefined : readAcl(ctx, entry);
  };
  return {
    acl: get("acl"),
    subscribeAcl: get("subscribe_acl"),
    publishAcl: get("publish_acl"),
    receiveAcl: get("receive_acl"),
  };
}

function readSysInterval(ctx: ReadContext, entry: Entry): number {
  return readNumber(ctx, entry, { min: 0, unit: "seconds" });
}

/** Reads one plugin's options; `sysInterval` is `undefined` when `broker_sys` does not set it. */
function readPluginOptions(
  ctx: ReadContext,
  id: BrokerPluginName,
  ref: PluginRef,
): BrokerPluginConfig | { name: "broker_sys"; sysInterval: Entry | undefined; path: Path } {
  const className = BROKER_PLUGIN_CLASSES[id];
  const entry = { value: ref.value, path: ref.path };
  switch (id) {
    case "auth_anonymous": {
      const fields = readSchemaMap(ctx, entry.value, entry.path, ["allow_anonymous"]);
      const allow = fields.get("allow_anonymous");
      return {
        name: id,
        className,
        options: { allowAnonymous: allow === undefined ? true : readBool(ctx, allow) },
      };
    }
    case "auth_file": {
      const fields = readSchemaMap(ctx, entry.value, entry.path, ["password_file"]);
      const file = fields.get("password_file");
      if (file === undefined) {
        throw ctx.error(ref.path, `${className} needs password_file`);
      }
      return {
        name: id,
        className,
        options: { passwordFile: readExistingPath(ctx, file, "file") },
      };
    }
    case "auth_scram": {
      const fields = readSchemaMap(ctx, entry.value, entry.path, ["password_file"]);
      const file = fields.get("password_file");
      if (file === undefined) throw ctx.error(ref.path, `${className} needs password_file`);
      return {
        name: id,
        className,
        options: { passwordFile: readExistingPath(ctx, file, "file") },
      };
    }
    case "auth_challenge": {
      const fields = readSchemaMap(ctx, entry.value, entry.path, ["secrets_file", "method"]);
      const file = fields.get("secrets_file");
      if (file === undefined) throw ctx.error(ref.path, `${className} needs secrets_file`);
      const method = fields.get("method");
      return {
        name: id,
        className,
        options: {
          secretsFile: readExistingPath(ctx, file, "file"),
          method: method === undefined
            ? "x-hmac-sha256"
            : readNonEmptyString(ctx, method, "an authentication method name"),
        },
      };
    }
    case "topic_acl": {
      const fields = readSchemaMap(ctx, entry.value, entry.path, [
        "acl",
        "subscribe_acl",
        "publish_acl",
        "receive_acl",
      ]);
      return { name: id, className, options: readAclOptions(ctx, fields) };
    }
    case "broker_sys": {
      const fields = readSchemaMap(ctx, entry.value, entry.path, ["sys_interval"]);
      return { name: "broker_sys", sysInterval: fields.get("sys_interval"), path: ref.path };
    }
    case "topic_taboo":
    case "event_logger":
    case "packet_logger": {
      readSchemaMap(ctx, entry.value, entry.path, []);
      return { name: id, className, options: {} };
    }
  }
}

function warnIfNoAuth(ctx: ReadContext, plugins: BrokerPluginConfig[], path: Path): void {
  if (!plugins.some((p) => LOGIN_PLUGINS.includes(p.name))) {
    ctx.warn(
      path,
      "no authentication plugin is configured, so every connection will be refused (as in " +
        `aMQTT); add ${BROKER_PLUGIN_CLASSES.auth_anonymous} to accept anonymous clients`,
    );
  }
}

/**
 * Reads the `plugins` section (map or legacy list). `topSysInterval` is the deprecated top-level
 * `sys_interval`, used when `BrokerSysPlugin` does not set its own. `claim` takes entries that
 * configure something other than a plugin (e.g. persistence) out of the list.
 */
export function readBrokerPlugins(
  ctx: ReadContext,
  entry: Entry,
  topSysInterval: Entry | undefined,
  claim?: (name: string, options: Entry) => boolean,
): BrokerPluginConfig[] {
  const plugins: BrokerPluginConfig[] = [];
  const seen = new Map<BrokerPluginName, string>();
  for (const ref of readPluginRefs(ctx, entry)) {
    if (claim?.(ref.written, { value: ref.value, path: ref.path })) continue;
    const id = lookupBrokerPlugin(ref.written);
    if (id === undefined) {
      throw ctx.error(
        ref.path,
        `unknown plugin class ${JSON.stringify(ref.written)}; known plugins: ${knownPluginList()}`,
      );
    }
    const earlier = seen.get(id);
    if (earlier !== undefined) {
      throw ctx.error(
        ref.path,
        `plugin ${JSON.stringify(ref.written)} is listed twice (also as ${
          JSON.stringify(earlier)
        })`,
      );
    }
    seen.set(id, ref.written);
    const read = readPluginOptions(ctx, id, ref);
    if ("options" in read) {
      plugins.push(read);
      continue;
    }
    let sysInterval = DEFAULT_SYS_INTERVAL;
    if (read.sysInterval !== undefined) {
      sysInterval = readSysInterval(ctx, read.sysInterval);
      if (topSysInterval !== undefined) {
        ctx.warn(topSysInterval.path, "ignored: BrokerSysPlugin sets its own sys_interval");
      }
    } else if (topSysInterval !== undefined) {
      sysInterval = readSysInterval(ctx, topSysInterval);
    }
    plugins.push({
      name: "broker_sys",
      className: BROKER_PLUGIN_CLASSES.broker_sys,
      options: { sysInterval },
    });
  }
  if (topSysInterval !== undefined && !seen.has("broker_sys")) {
    readSysInterval(ctx, topSysInterval);
    ctx.warn(
      topSysInterval.path,
      `ignored: plugins does not list ${BROKER_PLUGIN_CLASSES.broker_sys}, so $SYS is off`,
    );
  }
  warnIfNoAuth(ctx, plugins, entry.path);
  return plugins;
}

function pluginEntry<N extends BrokerPluginName>(
  name: N,
  options: Extract<BrokerPluginConfig, { name: N }>["options"],
): BrokerPluginConfig {
  return { name, className: BROKER_PLUGIN_CLASSES[name], options } as BrokerPluginConfig;
}

/** The plugins aMQTT activates when the configuration names none (default_broker.yaml). */
export function defaultBrokerPlugins(sysInterval: number): BrokerPluginConfig[] {
  return [
    pluginEntry("event_logger", {}),
    pluginEntry("packet_logger", {}),
    pluginEntry("auth_anonymous", { allowAnonymous: true }),
    pluginEntry("broker_sys", { sysInterval }),
  ];
}

function readNameList(
  ctx: ReadContext,
  entry: Entry,
  allowed: readonly BrokerPluginName[],
  section: string,
): Map<BrokerPluginName, Path> {
  if (!Array.isArray(entry.value)) {
    throw ctx.error(entry.path, `expected a list of plugin names, got ${describe(entry.value)}`);
  }
  const names = new Map<BrokerPluginName, Path>();
  entry.value.forEach((item, index) => {
    const path = [...entry.path, index];
    const name = readNonEmptyString(ctx, { value: item, path }, "a plugin name");
    const id = lookupBrokerPlugin(name);
    if (id === undefined || !allowed.includes(id)) {
      throw ctx.error(
        path,
        `unknown ${section} plugin ${JSON.stringify(name)}; expected one of: ${allowed.join(", ")}`,
      );
    }
    if (names.has(id)) throw ctx.error(path, `plugin ${JSON.stringify(name)} is listed twice`);
    names.set(id, path);
  });
  return names;
}

/**
 * Maps the deprecated `auth` and `topic-check` sections onto the plugin list, as aMQTT's
 * entry-point fallback does: the loggers and `$SYS` always, the auth plugins filtered by
 * `auth.plugins`, and the topic plugins only when `topic-check.enabled` is true.
 */
export function legacyBrokerPlugins(
  ctx: ReadContext,
  auth: Entry | undefined,
  topicCheck: Entry | undefined,
  topSysInterval: Entry | undefined,
): BrokerPluginConfig[] {
  const plugins: BrokerPluginConfig[] = [
    pluginEntry("event_logger", {}),
    pluginEntry("packet_logger", {}),
  ];

  const authFields = auth === undefined
    ? new Map<string, Entry>()
    : readSchemaMap(ctx, auth.value, auth.path, ["plugins", "allow_anonymous", "password_file"]);
  const allowEntry = authFields.get("allow_anonymous");
  const allowAnonymous = allowEntry === undefined ? true : readBool(ctx, allowEntry);
  const fileEntry = authFields.get("password_file");
  const passwordFile = fileEntry === undefined
    ? undefined
    : readExistingPath(ctx, fileEntry, "file");
  const authList = authFields.get("plugins");
  let authNames: Map<BrokerPluginName, Path>;
  if (authList !== undefined) {
    authNames = readNameList(ctx, authList, AUTH_PLUGINS, "authentication");
  } else {
    // aMQTT enables every auth plugin when auth.plugins is omitted. The file plugin is left out
    // when no password file is given: with no users it would refuse every named client.
    authNames = new Map([["auth_anonymous", auth?.path ?? []]]);
    if (passwordFile !== undefined) authNames.set("auth_file", fileEntry!.path);
  }
  if (authNames.has("auth_anonymous")) {
    plugins.push(pluginEntry("auth_anonymous", { allowAnonymous }));
  } else if (allowEntry !== undefined) {
    ctx.warn(allowEntry.path, "ignored: auth.plugins does not list auth_anonymous");
  }
  if (authNames.has("auth_file")) {
    if (passwordFile === undefined) {
      throw ctx.error(authNames.get("auth_file")!, "auth_file needs auth.password_file");
    }
    plugins.push(pluginEntry("auth_file", { passwordFile }));
  } else if (fileEntry !== undefined) {
    ctx.warn(fileEntry.path, "ignored: auth.plugins does not list auth_file");
  }

  if (topicCheck !== undefined) {
    const fields = readSchemaMap(ctx, topicCheck.value, topicCheck.path, [
      "enabled",
      "plugins",
      "acl",
      "publish_acl",
      "subscribe_acl",
      "receive_acl",
    ]);
    const enabledEntry = fields.get("enabled");
    const enabled = enabledEntry === undefined ? false : readBool(ctx, enabledEntry);
    const acl = readAclOptions(ctx, fields);
    const topicList = fields.get("plugins");
    const topicNames = topicList === undefined
      ? new Set(TOPIC_PLUGINS)
      : new Set(readNameList(ctx, topicList, TOPIC_PLUGINS, "topic").keys());
    if (enabled) {
      if (topicNames.has("topic_taboo")) plugins.push(pluginEntry("topic_taboo", {}));
      if (topicNames.has("topic_acl")) plugins.push(pluginEntry("topic_acl", acl));
    } else if ([...fields.keys()].some((key) => key !== "enabled")) {
      ctx.warn(
        topicCheck.path,
        "ignored: topic checking is off because topic_check.enabled is not true",
      );
    }
  }

  const sysInterval = topSysInterval === undefined
    ? DEFAULT_SYS_INTERVAL
    : readSysInterval(ctx, topSysInterval);
  plugins.push(pluginEntry("broker_sys", { sysInterval }));
  warnIfNoAuth(ctx, plugins, auth?.path ?? []);
  return plugins;
}

/** Reads the client's `plugins` section: only `PacketLoggerPlugin` applies to a client. */
export function readClientPlugins(ctx: ReadContext, entry: Entry): ClientPluginConfig[] {
  const plugins: ClientPluginConfig[] = [];
  for (const ref of readPluginRefs(ctx, entry)) {
    if (lookupBrokerPlugin(ref.written) !== "packet_logger") {
      throw ctx.error(
        ref.path,
        `unknown client plugin class ${JSON.stringify(ref.written)}; known plugins: ` +
          BROKER_PLUGIN_CLASSES.packet_logger,
      );
    }
    if (plugins.length > 0) {
      throw ctx.error(ref.path, `plugin ${JSON.stringify(ref.written)} is listed twice`);
    }
    readSchemaMap(ctx, ref.value, ref.path, []);
    plugins.push({
      name: "packet_logger",
      className: BROKER_PLUGIN_CLASSES.packet_logger,
      options: {},
    });
  }
  return plugins;
}

/**
 * aMQTT's `TopicAccessControlListPlugin` (short id `topic_acl`): per-user topic lists.
 *
 * @module
 */

import { filterCovers, isValidFilter } from "./_filter_cover.ts";
import type { BrokerPlugin, ClientInfo, Decision } from "./types.ts";

/** Username -> allowed topic filters. The key `anonymous` is used for clients without username. */
export type AclMap = Readonly<Record<string, readonly string[] | null | undefined>>;

/**
 * Options for {@linkcode TopicAccessControlListPlugin}, named as in aMQTT (`acl`, `publish-acl`,
 * `subscribe-acl`, `receive-acl`).
 */
export interface TopicAccessControlListPluginOptions {
  /** Legacy name for `subscribeAcl` (hbmqtt's `acl` governed subscriptions only). */
  acl?: AclMap;
  /** Who may publish where. Unset: publishing is not restricted by this plugin. */
  publishAcl?: AclMap;
  /** Who may subscribe to what. Unset (and `acl` unset): subscribing is not restricted. */
  subscribeAcl?: AclMap;
  /** Who may receive messages on which topics. Unset: delivery is not restricted. */
  receiveAcl?: AclMap;
}

/** The user name whose entries apply to clients without a username. */
export const ANONYMOUS_USER = "anonymous";

type CompiledAcl = Map<string, readonly (readonly string[])[]>;

/**
 * Restricts publishing, subscribing and receiving to the topics listed per user.
 *
 * Each map sends a username to a list of topic filters (`+` and `#` allowed). Clients without a
 * username (or with an empty one) use the entry `anonymous`. For a configured map:
 * - **publish** and **receive**: allowed when the topic name matches one of the user's filters,
 *   exactly as a topic matches a subscription (so `a/#` allows `a` and `a/b/c`, `+/x` allows
 *   `a/x`, and no filter starting with a wildcard allows a `$` topic [MQTT-4.7.2-1]);
 * - **subscribe**: allowed when the subscribed filter is *covered* by one of the user's filters,
 *   meaning every topic the subscription could match is matched by that filter. Entry `a/#`
 *   allows subscribing to `a`, `a/+/b`, `a/#`; entry `a/+` allows `a/b` and `a/+` but not `a/#`
 *   or `a/b/c`; entry `#` allows everything except filters naming a `$` topic, such as
 *   `$SYS/#`. A shared subscription `$share/<group>/<filter>` is checked as `<filter>`. An
 *   invalid filter is refused.
 * - A user missing from the map (or listed with no filters) is refused.
 *
 * An unset map does not restrict anything: the plugin then does not implement the matching hook
 * at all, so the broker skips the check. An empty map (`{}`) refuses everyone. This fixes two aMQTT
 * bugs: there a `plugins:` configuration without `acl` refused every SUBSCRIBE, and
 * `subscribe-acl` and `receive-acl` were ignored. `subscribeAcl` takes precedence over `acl`.
 *
 * A successful check answers `true`, a failed one `false` (this plugin never abstains for a map
 * it has).
 *
 * @example
 * ```ts
 * import { TopicAccessControlListPlugin } from "./topic_acl.ts";
 * import assert from "node:assert/strict";
 * const acl = new TopicAccessControlListPlugin({
 *   subscribeAcl: { alice: ["home/#"], anonymous: ["public/+"] },
 *   publishAcl: { alice: ["home/alice/+"] },
 * });
 * const alice = {
 *   clientId: "c", username: "alice", remoteAddress: "127.0.0.1:1", transport: "tcp" as const,
 *   protocolVersion: 4 as const, anonymous: false,
 * };
 * assert.equal(acl.authorizeSubscribe!(alice, "home/+/temp"), true);
 * assert.equal(acl.authorizeSubscribe!(alice, "#"), false);
 * assert.equal(acl.authorizePublish!(alice, "home/alice/temp"), true);
 * assert.equal(acl.authorizeReceive, undefined); // no receiveAcl: no receive check at all
 * ```
 */
export class TopicAccessControlListPlugin implements BrokerPlugin {
  /** The plugin's short id. */
  readonly name = "topic_acl";

  /**
   * Present only when `publishAcl` is set.
   *
   * @param client The publishing client.
   * @param topic The topic name.
   * @returns `true` when one of the user's filters matches the topic, else `false`.
   */
  readonly authorizePublish?: (client: ClientInfo, topic: string) => Decision;

  /**
   * Present only when `subscribeAcl` or `acl` is set.
   *
   * @param client The subscribing client.
   * @param topic The filter as subscribed.
   * @returns `true` when one of the user's filters covers the subscribed filter, else `false`.
   */
  readonly authorizeSubscribe?: (client: ClientInfo, topic: string) => Decision;

  /**
   * Present only when `receiveAcl` is set.
   *
   * @param client The receiving client.
   * @param topic The message's topic name.
   * @returns `true` when one of the user's filters matches the topic, else `false`.
   */
  readonly authorizeReceive?: (client: ClientInfo, topic: string) => Decision;

  /**
   * Compiles the ACL maps; hooks are defined only for the maps given.
   *
   * @param options The ACL maps.
   * @throws {TypeError} If a map is not an object of string lists, or an entry is not a valid
   * topic filter.
   */
  constructor(options: TopicAccessControlListPluginOptions = {}) {
    this.#compile(options);
    if (this.#publish) {
      this.authorizePublish = (client, topic) =>
        this.#publish === undefined ? undefined : allows(this.#publish, client, topic);
    }
    if (this.#subscribe) {
      this.authorizeSubscribe = (client, topic) => {
        const acl = this.#subscribe;
        if (acl === undefined) return undefined;
        const filter = unshare(topic);
        return filter !== undefined && isValidFilter(filter) && allows(acl, client, filter);
      };
    }
    if (this.#receive) {
      this.authorizeReceive = (client, topic) =>
        this.#receive === undefined ? undefined : allows(this.#receive, client, topic);
    }
  }

  #publish: CompiledAcl | undefined;
  #subscribe: CompiledAcl | undefined;
  #receive: CompiledAcl | undefined;

  /**
   * Replaces the ACL maps (the broker calls it when SIGHUP reloads the configuration). A map
   * removed stops restricting at once. A map for a check that had none at start takes effect only
   * after a restart: the broker skips checks no plugin had when it started.
   *
   * @param options The new ACL maps.
   * @returns Notes on maps that cannot take effect until a restart.
   * @throws {TypeError} As the constructor; the old maps then stay in effect.
   */
  update(options: TopicAccessControlListPluginOptions): string[] {
    this.#compile(options);
    const notes: string[] = [];
    const pending = (map: CompiledAcl | undefined, hook: unknown, key: string) => {
      if (map !== undefined && hook === undefined) {
        notes.push(`topic_acl: ${key} was added; it takes effect after a restart`);
      }
    };
    pending(this.#publish, this.authorizePublish, "publish-acl");
    pending(this.#subscribe, this.authorizeSubscribe, "subscribe-acl");
    pending(this.#receive, this.authorizeReceive, "receive-acl");
    return notes;
  }

  #compile(options: TopicAccessControlListPluginOptions): void {
    const publish = compile("publishAcl", options.publishAcl);
    const subscribe = compile("subscribeAcl", options.subscribeAcl) ??
      compile("acl", options.acl);
    const receive = compile("receiveAcl", options.receiveAcl);
    this.#publish = publish;
    this.#subscribe = subscribe;
    this.#receive = receive;
  }
}

function allows(acl: CompiledAcl, client: ClientInfo, topic: string): boolean {
  const user = client.username === undefined || client.username === ""
    ? ANONYMOUS_USER
    : client.username;
  const entries = acl.get(user);
  if (entries === undefined) return false;
  const levels = topic.split("/");
  for (const entry of entries) {
    if (filterCovers(entry, levels)) return true;
  }
  return false;
}

/** `$share/<group>/<filter>` -> `<filter>`; other filters unchanged; a malformed share: undefined. */
function unshare(topic: string): string | undefined {
  if (!topic.startsWith("$share/")) return topic;
  const slash = topic.indexOf("/", 7);
  // The group name is non-empty and the filter after it non-empty [MQTT-4.8.2-1], [MQTT-4.8.2-2].
  if (slash <= 7 || slash === topic.length - 1) return undefined;
  const group = topic.slice(7, slash);
  if (group.includes("+") || group.includes("#")) return undefined;
  return topic.slice(slash + 1);
}

function compile(option: string, map: AclMap | undefined): CompiledAcl | undefined {
  if (map === undefined || map === null) return undefined;
  if (typeof map !== "object" || Array.isArray(map)) {
    throw new TypeError(`Cannot create topic_acl: ${option} must map usernames to topic lists`);
  }
  const out: CompiledAcl = new Map();
  for (const [user, list] of Object.entries(map)) {
    // YAML `user:` with nothing after it reads as null: that user may use no topic.
    if (list === null || list === undefined) {
      out.set(user, []);
      continue;
    }
    if (!Array.isArray(list)) {
      throw new TypeError(
        `Cannot create topic_acl: ${option}.${user} must be a list of topic filters`,
      );
    }
    out.set(
      user,
      list.map((entry) => {
        if (typeof entry !== "string" || !isValidFilter(entry)) {
          throw new TypeError(
            `Cannot create topic_acl: ${option}.${user} has an invalid topic filter ` +
              JSON.stringify(entry),
          );
        }
        return entry.split("/");
      }),
    );
  }
  return out;
}

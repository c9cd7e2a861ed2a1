/**
 * aMQTT's `TopicTabooPlugin` (short id `topic_taboo`), a demonstration topic filter.
 *
 * @module
 */

import type { BrokerPlugin, ClientInfo, Decision } from "./types.ts";

/** The topics the plugin refuses, as in aMQTT. */
export const TABOO_TOPICS: readonly string[] = ["prohibited", "top-secret", "data/classified"];

/**
 * Refuses publishing, subscribing and delivery on the topics `prohibited`, `top-secret` and
 * `data/classified` to every user except `admin`.
 *
 * The comparison is exact, as in aMQTT: subscribing to `#` or `data/+` is allowed, but delivery
 * of a taboo topic through such a subscription is then refused by `authorizeReceive`. For other
 * topics and for `admin` the plugin abstains.
 *
 * @example
 * ```ts
 * import { TopicTabooPlugin } from "./topic_taboo.ts";
 * import assert from "node:assert/strict";
 * const taboo = new TopicTabooPlugin();
 * const client = {
 *   clientId: "c", username: "bob", remoteAddress: "127.0.0.1:1", transport: "tcp" as const,
 *   protocolVersion: 4 as const, anonymous: false,
 * };
 * assert.equal(taboo.authorizePublish(client, "top-secret"), false);
 * assert.equal(taboo.authorizePublish({ ...client, username: "admin" }, "top-secret"), undefined);
 * ```
 */
export class TopicTabooPlugin implements BrokerPlugin {
  /** The plugin's short id. */
  readonly name = "topic_taboo";
  readonly #taboo = new Set(TABOO_TOPICS);

  /**
   * Refuses publishing to a taboo topic.
   *
   * @param client The publishing client.
   * @param topic The topic name.
   * @returns `false` for a taboo topic unless the user is `admin`, else abstains.
   */
  authorizePublish(client: ClientInfo, topic: string): Decision {
    return this.#check(client, topic);
  }

  /**
   * Refuses subscribing to a taboo topic (compared as written, wildcards included).
   *
   * @param client The subscribing client.
   * @param topic The filter as subscribed.
   * @returns `false` for a taboo topic unless the user is `admin`, else abstains.
   */
  authorizeSubscribe(client: ClientInfo, topic: string): Decision {
    return this.#check(client, topic);
  }

  /**
   * Refuses delivering a message on a taboo topic.
   *
   * @param client The receiving client.
   * @param topic The message's topic name.
   * @returns `false` for a taboo topic unless the user is `admin`, else abstains.
   */
  authorizeReceive(client: ClientInfo, topic: string): Decision {
    return this.#check(client, topic);
  }

  #check(client: ClientInfo, topic: string): Decision {
    if (client.username === "admin") return undefined;
    return this.#taboo.has(topic) ? false : undefined;
  }
}

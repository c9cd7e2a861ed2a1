/**
 * MQTT 5.0 topic aliases of one network connection, both ways: the aliases a sender assigns to
 * topic names it repeats, and the mappings a receiver learns from them. Mappings live for one
 * connection only [MQTT-3.3.2-7]; make new ones for each connection.
 *
 * @module
 */

/**
 * Aliases a sender assigns, first come first served, up to the peer's Topic Alias Maximum.
 *
 * @example
 * ```ts
 * import { OutboundTopicAliases } from "./topic_aliases.ts";
 * import assert from "node:assert/strict";
 *
 * const aliases = new OutboundTopicAliases(1);
 * assert.deepEqual(aliases.alias("a/b"), { topic: "a/b", alias: 1 }); // sets up alias 1
 * assert.deepEqual(aliases.alias("a/b"), { topic: "", alias: 1 }); // then the alias alone
 * assert.deepEqual(aliases.alias("c/d"), { topic: "c/d" }); // no alias left
 * ```
 */
export class OutboundTopicAliases {
  readonly #max: number;
  #byTopic = new Map<string, number>();

  /**
   * @param max the peer's Topic Alias Maximum; 0 assigns none
   */
  constructor(max: number) {
    this.#max = max;
  }

  /**
   * The topic field and alias to send for a PUBLISH to `topic`. Never an alias of 0 or above the
   * maximum [MQTT-3.3.2-8] [MQTT-3.3.2-9].
   *
   * @param topic the topic name
   * @returns the topic name to put in the packet (empty once the alias is known to the peer) and
   *   the alias, if any
   */
  alias(topic: string): { topic: string; alias?: number } {
    const known = this.#byTopic.get(topic);
    if (known !== undefined) return { topic: "", alias: known };
    if (this.#byTopic.size >= this.#max) return { topic };
    const alias = this.#byTopic.size + 1;
    this.#byTopic.set(topic, alias);
    return { topic, alias };
  }
}

/**
 * Mappings a receiver learns, with the checks a receiver makes.
 *
 * @example
 * ```ts
 * import { InboundTopicAliases } from "./topic_aliases.ts";
 * import assert from "node:assert/strict";
 *
 * const aliases = new InboundTopicAliases(10);
 * assert.equal(aliases.resolve("a/b", 3), "a/b"); // learns 3 -> a/b
 * assert.equal(aliases.resolve("", 3), "a/b");
 * const invalid = aliases.resolve("", 11); // above the maximum
 * assert.equal(typeof invalid === "object" && invalid.reasonCode, 0x94);
 * ```
 */
export class InboundTopicAliases {
  readonly #max: number;
  readonly #peer: string;
  // Made on the first alias learnt: most connections use none, and an empty Map costs about 180
  // bytes (memory per idle 5.0 connection).
  #byAlias: Map<number, string> | undefined;

  /**
   * @param max the Topic Alias Maximum this side sent; 0 accepts none
   * @param options `peer`: who sends the aliases, for the messages (`"Server"` on the client
   *   side, the default; `"Client"` on the broker side)
   */
  constructor(max: number, options: { peer?: "Server" | "Client" } = {}) {
    this.#max = max;
    this.#peer = options.peer ?? "Server";
  }

  /** The Topic Alias Maximum this side sent. */
  get maximum(): number {
    return this.#max;
  }

  /**
   * Resolves the topic of a PUBLISH that carries a Topic Alias, learning the mapping when the
   * topic name is present.
   *
   * @param topic the topic name field (empty when only the alias is sent)
   * @param alias the Topic Alias property
   * @returns the topic name, or the reason code and text to disconnect with: 0x94 for an alias
   *   above the maximum, 0x82 for an alias with no mapping on this connection
   */
  resolve(topic: string, alias: number): string | { reasonCode: number; message: string } {
    if (alias < 1 || alias > this.#max) {
      // No alias 0 [MQTT-3.3.2-8]; the peer must stay within the maximum we announced
      // [MQTT-3.1.2-26] [MQTT-3.3.2-11] (a server's) [MQTT-3.2.2-17] [MQTT-3.3.2-9] (a client's).
      const why = alias < 1 ? "which is not allowed" : `above the maximum ${this.#max}`;
      return {
        reasonCode: 0x94,
        message: `${this.#peer} sent topic alias ${alias}, ${why}`,
      };
    }
    if (topic !== "") {
      (this.#byAlias ??= new Map()).set(alias, topic);
      return topic;
    }
    const known = this.#byAlias?.get(alias);
    if (known !== undefined) return known;
    return {
      reasonCode: 0x82,
      message: `${this.#peer} sent topic alias ${alias} with no topic name before mapping it`,
    };
  }
}

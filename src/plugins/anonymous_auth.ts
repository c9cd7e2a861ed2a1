/**
 * aMQTT's `AnonymousAuthPlugin` (short id `auth_anonymous`).
 *
 * @module
 */

import type { BrokerPlugin, ClientInfo, Decision } from "./types.ts";

/** Options for {@linkcode AnonymousAuthPlugin} (aMQTT's `allow_anonymous` / `allow-anonymous`). */
export interface AnonymousAuthPluginOptions {
  /** Accept clients without a username; default true (aMQTT's default). */
  allowAnonymous?: boolean;
}

/**
 * Accepts anonymous clients, or, with `allowAnonymous: false`, clients that send a username.
 *
 * - `allowAnonymous: true` answers `true` for every client.
 * - `allowAnonymous: false` answers `true` for a client that sent a non-empty username and `false`
 *   for one that did not, as aMQTT does. **It never looks at the password**: a client with any
 *   username and any password gets `true` from this plugin. To check passwords, combine it with
 *   {@linkcode FileAuthPlugin} (whose `false` for a wrong password refuses the connection), or
 *   leave this plugin out.
 *
 * @example
 * ```ts
 * import { AnonymousAuthPlugin } from "./anonymous_auth.ts";
 * import assert from "node:assert/strict";
 * const plugin = new AnonymousAuthPlugin({ allowAnonymous: false });
 * const client = {
 *   clientId: "c", remoteAddress: "127.0.0.1:1", transport: "tcp" as const,
 *   protocolVersion: 4 as const, anonymous: true,
 * };
 * assert.equal(plugin.authenticate(client), false);
 * assert.equal(plugin.authenticate({ ...client, username: "bob", anonymous: false }), true);
 * ```
 */
export class AnonymousAuthPlugin implements BrokerPlugin {
  /** The plugin's short id. */
  readonly name = "auth_anonymous";
  /** Whether clients without a username are accepted. */
  readonly allowAnonymous: boolean;

  /**
   * Configures the plugin.
   *
   * @param options Whether to accept clients without a username.
   * @throws {TypeError} If `allowAnonymous` is not a boolean.
   */
  constructor(options: AnonymousAuthPluginOptions = {}) {
    const allow = options.allowAnonymous ?? true;
    if (typeof allow !== "boolean") {
      throw new TypeError(`Cannot create auth_anonymous: allowAnonymous must be a boolean`);
    }
    this.allowAnonymous = allow;
  }

  /**
   * Accepts every client when anonymous access is allowed, else clients that sent a username.
   *
   * @param client The connecting client.
   * @returns `true` to accept, `false` to refuse; never abstains.
   */
  authenticate(client: ClientInfo): Decision {
    if (this.allowAnonymous) return true;
    // aMQTT tests `if session.username`: an empty username counts as none.
    return client.username !== undefined && client.username !== "";
  }
}

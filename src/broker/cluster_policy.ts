/**
 * The plugins as a cluster node asks them: a login is decided only once the client's session is
 * here (a persistent session another node had is loaded first, see `cluster_sessions.ts`).
 *
 * @module
 */

import type { PolicyHost, Refused } from "./policy.ts";

/**
 * Wraps the combined plugins so that each login (`authenticate`, or the first step of an MQTT 5.0
 * enhanced authentication at CONNECT) waits for `prepare` of its client id first. When `prepare`
 * resolves with a refusal (the session could not be loaded in time), the login is refused with it
 * and the plugins are not asked. Everything else is asked unchanged. The core's connect timeout
 * bounds the wait, as it bounds any login.
 *
 * @param policy the combined plugins
 * @param prepare what to wait for before a login (given the client id and whether the client asked
 *   to resume its session): a promise (of a refusal, or `undefined` to go on), or `undefined` for
 *   nothing
 * @returns the wrapped policy
 *
 * @example
 * ```ts
 * import { loginAfter } from "./cluster_policy.ts";
 * import type { PolicyHost } from "./policy.ts";
 * import assert from "node:assert/strict";
 *
 * const allowAll: PolicyHost = {
 *   hasPublishHooks: false,
 *   hasSubscribeHooks: false,
 *   hasReceiveHooks: false,
 *   authenticate: () => true,
 *   authorizePublish: () => true,
 *   authorizeSubscribe: () => true,
 *   authorizeReceive: () => true,
 * };
 * const seen: string[] = [];
 * const policy = loginAfter(allowAll, (id) => Promise.resolve(void seen.push(id)));
 * const client = {
 *   clientId: "c",
 *   remoteAddress: "",
 *   transport: "tcp" as const,
 *   protocolVersion: 4 as const,
 *   anonymous: true,
 * };
 * assert.equal(await policy.authenticate(client), true);
 * assert.deepEqual(seen, ["c"]);
 * ```
 */
export function loginAfter(
  policy: PolicyHost,
  prepare: (clientId: string, resume: boolean) => Promise<Refused | undefined | void> | undefined,
): PolicyHost {
  const wrapped: PolicyHost = {
    get hasPublishHooks() {
      return policy.hasPublishHooks;
    },
    get hasSubscribeHooks() {
      return policy.hasSubscribeHooks;
    },
    get hasReceiveHooks() {
      return policy.hasReceiveHooks;
    },
    authenticate: (client) => {
      const ready = prepare(client.clientId, client.cleanStart !== true);
      return ready === undefined
        ? policy.authenticate(client)
        : ready.then((refused) => refused ?? policy.authenticate(client));
    },
    authorizePublish: (client, topic, qos, retain) =>
      policy.authorizePublish(client, topic, qos, retain),
    authorizeSubscribe: (client, topic, qos) => policy.authorizeSubscribe(client, topic, qos),
    authorizeReceive: (client, topic) => policy.authorizeReceive(client, topic),
  };
  if (policy.offersAuthenticationMethod !== undefined) {
    wrapped.offersAuthenticationMethod = (method) => policy.offersAuthenticationMethod!(method);
  }
  const enhanced = policy.authenticateEnhanced;
  if (enhanced !== undefined) {
    wrapped.authenticateEnhanced = (request) => {
      const ready = request.step === 0 && !request.reauthenticate
        ? prepare(request.client.clientId, request.client.cleanStart !== true)
        : undefined;
      return ready === undefined
        ? enhanced.call(policy, request)
        : ready.then((refused) =>
          refused
            ? {
              refuse: refused.reasonCode,
              ...(refused.reasonString === undefined ? {} : { reasonString: refused.reasonString }),
            }
            : enhanced.call(policy, request)
        );
    };
  }
  return wrapped;
}

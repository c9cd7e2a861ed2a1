/**
 * The plugins as a cluster node asks them: a login its plugins accepted is taken in only once the
 * client's session is here (a persistent session another node had is loaded first, see
 * `cluster_sessions.ts`).
 *
 * @module
 */

import type { ClusterConfig } from "../config/mod.ts";
import type { PolicyHost, Refused } from "./policy.ts";

/**
 * Seconds a login's preparation may take beyond its wait for the previous owner's handoff: its
 * Redis steps (read the session, claim it, catch up with the bus, read it again), each bounded
 * on its own in `cluster_sessions.ts` and taking milliseconds while Redis is well.
 */
const PREPARE_MARGIN = 8;

/**
 * The longest a login waits for the previous owner of its session to hand it over, in seconds:
 * a node that died has its liveness key expire within `node_timeout`, and one heartbeat more lets
 * a node reap it.
 *
 * @param config the cluster settings
 * @returns `nodeTimeout` + `heartbeatInterval`
 *
 * @example
 * ```ts
 * import { handoffWait } from "./cluster_policy.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(handoffWait({ nodeTimeout: 10, heartbeatInterval: 1 }), 11);
 * ```
 */
export function handoffWait(
  config: Pick<ClusterConfig, "nodeTimeout" | "heartbeatInterval">,
): number {
  return config.nodeTimeout + config.heartbeatInterval;
}

/**
 * The bound of a cluster node's login preparation, in seconds (the core's `prepareTimeout`):
 * `loginTimeout` when set, else {@linkcode handoffWait} and a margin for its Redis steps. It
 * replaces the connect timeout once the CONNECT was accepted: a login waiting for a cut-off or
 * dead owner gets its CONNACK when the cluster's own bound ends it (19 s with the defaults), not
 * closed by the 10 s connect timeout before; past it without progress (each part of a long
 * session read counts it again, `BrokerCore.progressed`) the login is refused as server busy.
 *
 * @param config the cluster settings
 * @returns seconds
 *
 * @example
 * ```ts
 * import { loginPreparationTimeout } from "./cluster_policy.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(loginPreparationTimeout({ nodeTimeout: 10, heartbeatInterval: 1 }), 19);
 * ```
 */
export function loginPreparationTimeout(
  config: Pick<ClusterConfig, "nodeTimeout" | "heartbeatInterval"> & { loginTimeout?: number },
): number {
  return config.loginTimeout ?? handoffWait(config) + PREPARE_MARGIN;
}

/**
 * Wraps the combined plugins so that a login that passed them (its credentials, or its MQTT 5.0
 * enhanced authentication, and its will) waits for `prepare` of its client id before the core
 * takes it in: the policy's `prepareLogin` hook, which the core asks only after authentication
 * succeeded. Preparing claims the client id cluster-wide (the node that had the session hands it
 * over and closes its connection), so it must never run for a CONNECT whose credentials were not
 * accepted: a takeover is part of an accepted CONNECT (MQTT 5.0 §3.1.4, [MQTT-3.1.4-2] before
 * [MQTT-3.1.4-3]). When `prepare` resolves with a refusal (the session could not be loaded in
 * time), the login is refused with it. Everything else is asked unchanged. The wait is bounded
 * by the core's `prepareTimeout` ({@linkcode loginPreparationTimeout}), not by its connect
 * timeout, which ends once the CONNECT was accepted.
 *
 * @param policy the combined plugins
 * @param prepare what to wait for before an accepted login (given the client id, whether the
 *   client asked to resume its session, and what to call as the preparation moves): a promise (of a refusal, or `undefined` to go on), or
 *   `undefined` for nothing
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
 * assert.deepEqual(seen, []);
 * assert.equal(await policy.prepareLogin?.(client), undefined);
 * assert.deepEqual(seen, ["c"]);
 * ```
 */
export function loginAfter(
  policy: PolicyHost,
  prepare: (
    clientId: string,
    resume: boolean,
    progress?: () => void,
  ) => Promise<Refused | undefined | void> | undefined,
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
    authenticate: (client) => policy.authenticate(client),
    authorizePublish: (client, topic, qos, retain, properties) =>
      policy.authorizePublish(client, topic, qos, retain, properties),
    authorizeSubscribe: (client, topic, qos) => policy.authorizeSubscribe(client, topic, qos),
    authorizeReceive: (client, topic) => policy.authorizeReceive(client, topic),
    prepareLogin: (client, progress) =>
      prepare(client.clientId, client.cleanStart !== true, progress),
  };
  if (policy.offersAuthenticationMethod !== undefined) {
    wrapped.offersAuthenticationMethod = (method) => policy.offersAuthenticationMethod!(method);
  }
  const enhanced = policy.authenticateEnhanced;
  if (enhanced !== undefined) {
    wrapped.authenticateEnhanced = (request) => enhanced.call(policy, request);
  }
  return wrapped;
}

/**
 * Plugin decisions as the core asks for them: the core never calls a plugin or holds a promise.
 * It hands a {@linkcode DecisionRequest} to the connection (`ClientLink.ask`), which answers at
 * once when it can; otherwise the connection runs the plugins and gives the answer back with
 * `BrokerCore.decided`, and the core holds that connection's later packets until then.
 *
 * @module
 */

import type { QoS } from "../packet/constants.ts";
import { errorText } from "./_error_text.ts";
import type { AuthDecision, ClientInfo, PolicyHost } from "./policy.ts";

/** A question for the plugins about one client. */
export type DecisionRequest =
  /** May this client log in? */
  | { kind: "authenticate"; client: ClientInfo }
  /** May this client have a will on `topic` (checked like a PUBLISH, at CONNECT)? */
  | { kind: "will"; client: ClientInfo; topic: string; qos: QoS; retain: boolean }
  /** May this client publish to `topic`? */
  | { kind: "publish"; client: ClientInfo; topic: string; qos: QoS; retain: boolean }
  /** May this client subscribe to the filter `topic`? */
  | { kind: "subscribe"; client: ClientInfo; topic: string; qos: QoS };

/**
 * Asks the plugins. A synchronous answer comes back as a value, so that the core can go on at
 * once (no promise is made when no plugin waits).
 *
 * @param policy the plugins, combined
 * @param request the question
 * @returns the answer: `true`, `false`, or `"unavailable"` for a login that was not checked
 * @throws whatever a plugin throws (see {@linkcode decisionFailure})
 */
export function askPolicy(
  policy: PolicyHost,
  request: DecisionRequest,
): AuthDecision | Promise<AuthDecision> {
  switch (request.kind) {
    case "authenticate":
      return policy.authenticate(request.client);
    case "will":
    case "publish":
      return policy.authorizePublish(request.client, request.topic, request.qos, request.retain);
    case "subscribe":
      return policy.authorizeSubscribe(request.client, request.topic, request.qos);
  }
}

/**
 * The log line for a plugin that threw or rejected: the decision is then a refusal.
 *
 * @param request the question
 * @param err what the plugin threw
 * @returns the line
 */
export function decisionFailure(request: DecisionRequest, err: unknown): string {
  switch (request.kind) {
    case "authenticate":
      return `Authentication of ${request.client.clientId} failed: ${errorText(err)}`;
    case "will":
      return `Will authorization failed: ${errorText(err)}`;
    case "publish":
      return `Publish authorization failed: ${errorText(err)}`;
    case "subscribe":
      return `Subscribe authorization failed: ${errorText(err)}`;
  }
}

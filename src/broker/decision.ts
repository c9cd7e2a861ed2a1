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
  | { kind: "subscribe"; client: ClientInfo; topic: string; qos: QoS }
  /** May this client receive a message on `topic` (aMQTT's receive ACL, per delivery)? */
  | { kind: "receive"; client: ClientInfo; topic: string };

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
    case "receive":
      return policy.authorizeReceive(request.client, request.topic);
  }
}

/**
 * Runs the plugins for a decision of the core, the way every shell does: a synchronous answer is
 * returned; otherwise `settle` gets the answer once the plugins have given it. A plugin that
 * throws or rejects is logged and refuses.
 *
 * @param policy the plugins, combined
 * @param request the question
 * @param options `log` for plugin failures; `settle` for an answer that was not ready at once
 * @returns the answer, or `undefined` when `settle` will get it
 */
export function runDecision(
  policy: PolicyHost,
  request: DecisionRequest,
  options: { log: (line: string) => void; settle: (answer: AuthDecision) => void },
): AuthDecision | undefined {
  let answer: AuthDecision | Promise<AuthDecision>;
  try {
    answer = askPolicy(policy, request);
  } catch (err) {
    options.log(decisionFailure(request, err));
    return false;
  }
  if (typeof answer !== "object") return answer;
  answer.then((value) => value, (err): AuthDecision => {
    options.log(decisionFailure(request, err));
    return false;
  }).then(options.settle).catch((err) =>
    // The core does not throw; if it ever did, the answer must not vanish as an unhandled rejection.
    options.log(`Applying a plugin decision failed: ${errorText(err)}`)
  );
  return undefined;
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
    case "receive":
      return `Receive authorization failed: ${errorText(err)}`;
  }
}

/**
 * Plugin decisions as the core asks for them: the core never calls a plugin or holds a promise.
 * It asks with an `ask` action carrying a {@linkcode DecisionRequest}; the shell runs the plugins
 * and gives the answer back with `BrokerCore.decided`, at once or later, and the core holds that
 * connection's later packets until then. An answer may carry an MQTT 5.0 reason code
 * ({@linkcode Decision}); {@linkcode connackReturnCode} maps it for a 3.1 or 3.1.1 client.
 *
 * @module
 */

import { ConnackReturnCode, ReasonCode } from "../packet/constants.ts";
import type { QoS } from "../packet/constants.ts";
import type { Properties, UserProperty } from "../packet/types.ts";
import { errorText } from "./_error_text.ts";
import type { EnhancedAuthRequest } from "../plugins/types.ts";
import { enhancedDecision } from "./enhanced_auth.ts";
import type { AuthDecision, ClientInfo, PolicyHost, Refused } from "./policy.ts";

/** A question for the plugins about one client. */
export type DecisionRequest =
  /** May this client log in? */
  | { kind: "authenticate"; client: ClientInfo }
  /** One step of MQTT 5.0 enhanced authentication (§4.12), at CONNECT or re-authenticating. */
  | { kind: "enhanced"; client: ClientInfo; step: EnhancedAuthRequest }
  /**
   * Bring the session of a client that passed every check of its CONNECT here before it logs in
   * (a cluster node: {@linkcode PolicyHost.prepareLogin}). Asked only when the policy has that
   * hook, and only after authentication succeeded. The shell adds `progress`, which the hook
   * calls as the preparation moves (`BrokerCore.progressed`).
   */
  | { kind: "prepare"; client: ClientInfo; progress?: () => void }
  /** May this client have a will on `topic` (checked like a PUBLISH, at CONNECT)? */
  | {
    kind: "will";
    client: ClientInfo;
    topic: string;
    qos: QoS;
    retain: boolean;
    properties?: Properties;
  }
  /** May this client publish to `topic`? */
  | {
    kind: "publish";
    client: ClientInfo;
    topic: string;
    qos: QoS;
    retain: boolean;
    properties?: Properties;
  }
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
 * @returns the answer: `true`, `false`, `"unavailable"` for a login that was not checked, or a
 *   {@linkcode Decision} for a step of enhanced authentication
 * @throws whatever a plugin throws (see {@linkcode decisionFailure})
 */
export function askPolicy(
  policy: PolicyHost,
  request: DecisionRequest,
): DecisionAnswer | Promise<DecisionAnswer> {
  switch (request.kind) {
    case "authenticate":
      return policy.authenticate(request.client);
    case "enhanced": {
      const answer = policy.authenticateEnhanced?.(request.step);
      return isThenable(answer) ? answer.then(enhancedDecision) : enhancedDecision(answer);
    }
    case "prepare": {
      const refused = policy.prepareLogin?.(request.client, request.progress);
      return isThenable(refused) ? refused.then(preparedDecision) : preparedDecision(refused);
    }
    case "will":
    case "publish":
      return policy.authorizePublish(
        request.client,
        request.topic,
        request.qos,
        request.retain,
        request.properties,
      );
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
  options: { log: (line: string) => void; settle: (answer: DecisionAnswer) => void },
): DecisionAnswer | undefined {
  const answer = startDecision(policy, request, { error: options.log });
  if (!isThenable(answer)) return answer;
  settleDecision(answer, request, options);
  return undefined;
}

/**
 * The first half of {@linkcode runDecision}, for a shell that builds its callbacks only when the
 * answer is not there at once (most logins are answered synchronously: nothing to allocate).
 *
 * @param policy the plugins, combined
 * @param request the question
 * @param log where a plugin that throws is reported (a `Logger` fits)
 * @returns the answer (a refusal when a plugin threw), or its promise
 */
export function startDecision(
  policy: PolicyHost,
  request: DecisionRequest,
  log: { error(line: string): void },
): DecisionAnswer | Promise<DecisionAnswer> {
  try {
    return askPolicy(policy, request);
  } catch (err) {
    log.error(decisionFailure(request, err));
    return false;
  }
}

/**
 * The second half of {@linkcode runDecision}: `settle` gets the answer once it comes; a
 * rejection is logged and refuses.
 *
 * @param answer the pending answer from {@linkcode startDecision}
 * @param request the question
 * @param options `log` for plugin failures; `settle` for the answer
 */
export function settleDecision(
  answer: Promise<DecisionAnswer>,
  request: DecisionRequest,
  options: { log: (line: string) => void; settle: (answer: DecisionAnswer) => void },
): void {
  answer.then((value) => value, (err): DecisionAnswer => {
    options.log(decisionFailure(request, err));
    return false;
  }).then(options.settle).catch((err) =>
    // The core does not throw; if it ever did, the answer must not vanish as an unhandled rejection.
    options.log(`Applying a plugin decision failed: ${errorText(err)}`)
  );
}

/** A session preparation's answer: its refusal, or `true` to go on with the login. */
function preparedDecision(refused: Refused | undefined | void): DecisionAnswer {
  return refused ?? true;
}

/**
 * Whether a value from {@linkcode startDecision} is still to come.
 *
 * @param value the answer or its promise
 * @returns true for a promise
 */
export function isThenable<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | undefined)?.then === "function";
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
    case "enhanced":
      return `Enhanced authentication (${request.step.method}) of ${request.client.clientId} failed: ${
        errorText(err)
      }`;
    case "prepare":
      return `Preparing the session of ${request.client.clientId} failed: ${errorText(err)}`;
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

/**
 * A decision with its reason: whether it allows, and for a refusal the MQTT 5.0 reason code and
 * reason string to tell the client (a 3.1.1 client gets the nearest return code it knows).
 */
export interface Decision {
  /** Whether the plugins allow it. */
  readonly allowed: boolean;
  /**
   * The MQTT 5.0 reason code of a refusal (0x80 or more), e.g. 0x86 bad user name or password,
   * 0x87 not authorized, 0x88 server unavailable, 0x8A banned.
   */
  readonly reasonCode?: number;
  /** A reason string for the client (MQTT 5.0) and the log (a refusal, a step of AUTH). */
  readonly reasonString?: string;
  /** User Properties for the client (MQTT 5.0), on the packet that refuses. */
  readonly userProperties?: UserProperty[];
  /**
   * For a step of enhanced authentication that did not refuse: whether the exchange goes on (an
   * AUTH 0x18 to the client) or succeeded, the Authentication Data to send, and the plugin's
   * state for its next step.
   */
  readonly authentication?: { continue: boolean; data?: Uint8Array; state?: unknown };
}

/** An answer to a decision as the shell gives it back: a plugin's plain answer or a {@linkcode Decision}. */
export type DecisionAnswer = AuthDecision | Decision;

const UNAVAILABLE: Decision = {
  allowed: false,
  reasonCode: ReasonCode.SERVER_UNAVAILABLE,
  reasonString: "authentication unavailable",
};
const ALLOWED: Decision = { allowed: true };
const REFUSED: Decision = { allowed: false };

/**
 * The {@linkcode Decision} an answer stands for: `"unavailable"` (a login nobody checked) is a
 * refusal with 0x88 server unavailable; a plain boolean carries no reason code.
 *
 * @param answer the answer
 * @returns the decision
 */
export function toDecision(answer: DecisionAnswer): Decision {
  if (answer === true) return ALLOWED;
  if (answer === false) return REFUSED;
  if (answer === "unavailable") return UNAVAILABLE;
  return answer;
}

/**
 * The MQTT 3.1/3.1.1 CONNACK return code for an MQTT 5.0 reason code of a refused CONNECT
 * (3.1.1 §3.2.2.3 knows five): 0x84 → 1, 0x85 → 2, 0x88/0x89/0x97/0x9F (the server cannot serve
 * now) → 3, 0x86 → 4, every other refusal → 5 not authorized.
 *
 * @param code an MQTT 5.0 reason code of 0x80 or more
 * @returns the return code
 */
export function connackReturnCode(code: number): number {
  switch (code) {
    case ReasonCode.UNSUPPORTED_PROTOCOL_VERSION:
      return ConnackReturnCode.UNACCEPTABLE_PROTOCOL_VERSION;
    case ReasonCode.CLIENT_IDENTIFIER_NOT_VALID:
      return ConnackReturnCode.IDENTIFIER_REJECTED;
    case ReasonCode.SERVER_UNAVAILABLE:
    case ReasonCode.SERVER_BUSY:
    case ReasonCode.QUOTA_EXCEEDED:
    case ReasonCode.CONNECTION_RATE_EXCEEDED:
      return ConnackReturnCode.SERVER_UNAVAILABLE;
    case ReasonCode.BAD_USER_NAME_OR_PASSWORD:
      return ConnackReturnCode.BAD_USERNAME_OR_PASSWORD;
    default:
      return ConnackReturnCode.NOT_AUTHORIZED;
  }
}

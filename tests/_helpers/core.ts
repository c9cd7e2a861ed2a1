/**
 * Driving the broker core directly, with no socket and an injected clock: a recording link and a
 * core whose plugins allow everything.
 *
 * @module
 */

import { BrokerCore } from "../../src/broker/core.ts";
import type { ClientLink, CoreOptions } from "../../src/broker/core.ts";
import type { AuthDecision, PolicyHost } from "../../src/broker/policy.ts";
import type { DecisionRequest } from "../../src/broker/decision.ts";
import type { ClientIdSource } from "../../src/broker/client_ids.ts";
import { PacketType } from "../../src/packet/mod.ts";
import type { Packet, QoS } from "../../src/packet/mod.ts";
import type { BrokerMessage } from "../../src/broker/message.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";

/** A connection as the core sees it: records what the core sends, notes when it closes. */
export class FakeLink implements ClientLink {
  readonly info = { transport: "tcp" as const, remoteAddress: "127.0.0.1:1", listener: "default" };
  protocolVersion: ClientLink["protocolVersion"] = 4;
  session: ClientLink["session"];
  client: ClientLink["client"];
  deadline = Infinity;
  keepAliveMs = 0;
  connected = false;
  closing = false;
  readonly sent: Packet[] = [];
  /** Every decision the core asked for, in order. */
  readonly asked: { id: number; request: DecisionRequest }[] = [];
  /**
   * Answers the core's decisions: at once by default (everything allowed); return `undefined` to
   * keep one pending, and give the answer later with `core.decided(id, answer, now)`.
   */
  answer: (request: DecisionRequest) => AuthDecision | undefined = () => true;
  /** How and why the core closed the link, once it has. */
  closed: { how: "close" | "abort" | "takeOver"; reason: string; code?: number } | undefined;
  sendPacket(packet: Packet): void {
    this.sent.push(packet);
  }
  /** PUBLISHes the core sent: topic, QoS, packet id (0 for QoS 0) and DUP. */
  readonly published: { topic: string; qos: number; packetId: number; dup: boolean }[] = [];
  sendPublish(message: BrokerMessage, qos: QoS, packetId: number, dup: boolean): boolean {
    this.published.push({ topic: message.topic, qos, packetId, dup });
    return true;
  }
  sendPubrel(packetId: number): void {
    this.sent.push({ type: PacketType.PUBREL, packetId });
  }
  ask(id: number, request: DecisionRequest): AuthDecision | undefined {
    this.asked.push({ id, request });
    return this.answer(request);
  }
  close(reason: string, code?: number): void {
    this.#closed("close", reason, code);
  }
  abort(reason: string, code?: number): void {
    this.#closed("abort", reason, code);
  }
  takeOver(reason: string): void {
    this.#closed("takeOver", reason);
  }
  #closed(how: "close" | "abort" | "takeOver", reason: string, code?: number): void {
    this.closing = true;
    this.closed ??= code === undefined ? { how, reason } : { how, reason, code };
  }
}

/**
 * A core with small windows, every plugin decision allowed and a silent logger.
 *
 * @param options what differs from the defaults
 * @param hooks a policy (some of its methods), a client-id source, or the answers to decisions
 *   about deliveries (`decide`, default: allowed at once) to use instead of the defaults
 * @returns the core
 */
export function testCore(
  options: Partial<CoreOptions> = {},
  hooks: {
    policy?: Partial<PolicyHost>;
    clientIds?: ClientIdSource;
    decide?: (id: number, request: DecisionRequest) => AuthDecision | undefined;
    journal?: (mutation: StoreMutation) => void;
  } = {},
): BrokerCore {
  const quiet = { debug() {}, info() {}, warning() {}, error() {} };
  return new BrokerCore({
    maxInflight: 20,
    maxQueuedMessages: 10,
    connectTimeout: 10,
    sessionExpiryInterval: undefined,
    timeoutDisconnectDelay: 0,
    ...options,
  }, {
    policy: {
      hasPublishHooks: false,
      hasSubscribeHooks: false,
      hasReceiveHooks: false,
      authenticate: () => true,
      authorizePublish: () => true,
      authorizeSubscribe: () => true,
      authorizeReceive: () => true,
      ...hooks.policy,
    },
    events: {},
    logger: quiet,
    clientIds: hooks.clientIds,
    decide: hooks.decide ?? (() => true),
    journal: hooks.journal,
  });
}

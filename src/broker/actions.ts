/**
 * What the broker core asks the shell to do. Every output of the core is an action, appended in
 * order to one {@linkcode ActionQueue} that the shell drains after each call into the core: the
 * order of the actions is the order on the wire (a CONNACK before the resends that follow it).
 *
 * The queue reuses its records, so a delivery costs no allocation: an action read from it is
 * valid until the queue is cleared, and must not be kept.
 *
 * @module
 */

import type { QoS } from "../packet/constants.ts";
import type { Packet } from "../packet/types.ts";
import type { StoreMutation } from "../store/mutation.ts";
import type { DecisionRequest } from "./decision.ts";
import type { Link } from "./link.ts";
import type { BrokerMessage } from "./message.ts";
import type { SharedWatch } from "./_shared_watch.ts";

/** One thing the core asks the shell to do. */
export type CoreAction =
  /** Write `packet` to the link, encoded at its protocol level. */
  | { readonly kind: "send"; readonly link: Link; readonly packet: Packet }
  /**
   * Write a PUBLISH of `message` at `qos` with `packetId` (0 for QoS 0), DUP set when `dup`.
   * The shell may drop a QoS 0 one past its outbound bound (counted as `outboundFull`); a QoS 1/2
   * one it holds back it reports with {@linkcode BrokerCore.unsent}.
   */
  | {
    readonly kind: "publish";
    readonly link: Link;
    readonly message: BrokerMessage;
    readonly qos: QoS;
    readonly packetId: number;
    readonly dup: boolean;
  }
  /**
   * Write a QoS 0 PUBLISH of `message` to each of `links[from]` … `links[to - 1]` (a fan-out:
   * one action for all subscribers of a QoS 0 message). `links` is the queue's own array, valid
   * until it is cleared. Like `publish`, each may be dropped past the outbound bound.
   */
  | {
    readonly kind: "fanOut";
    readonly message: BrokerMessage;
    readonly links: readonly Link[];
    readonly from: number;
    readonly to: number;
  }
  /** Write a PUBREL for `packetId`. */
  | { readonly kind: "pubrel"; readonly link: Link; readonly packetId: number }
  /**
   * Flush what is queued, then close. `code` is the MQTT 5.0 reason code of the close (what a
   * DISCONNECT to a 5.0 client carries); `reason` is for the log.
   */
  | { readonly kind: "close"; readonly link: Link; readonly reason: string; readonly code: number }
  /** Close at once, dropping what is queued. */
  | { readonly kind: "abort"; readonly link: Link; readonly reason: string; readonly code: number }
  /**
   * Close because another connection took the session over (reason code 0x8E): what is queued
   * (its CONNACK) still goes out if the peer has been keeping up, else abort.
   */
  | {
    readonly kind: "takeOver";
    readonly link: Link;
    readonly reason: string;
    readonly code: number;
  }
  /**
   * Ask the plugins; give the answer back with {@linkcode BrokerCore.decided}(`id`, …), at once
   * or later. The link's later packets wait in the core until then. `link` is undefined for a
   * delivery's receive authorization, which holds up no connection.
   */
  | {
    readonly kind: "ask";
    readonly link: Link | undefined;
    readonly id: number;
    readonly request: DecisionRequest;
  }
  /**
   * Call {@linkcode BrokerCore.tick} at or after `at` (ms since epoch) for this link; Infinity
   * clears it. A deadline only moved later by traffic (keepalive) is not announced each time:
   * the tick at the announced one re-announces it.
   */
  | { readonly kind: "deadline"; readonly link: Link; readonly at: number }
  /**
   * Stop reading the link's packets (`resume` false) or read them again (`resume` true): flow
   * control from full subscriber queues back to a publisher (see `publish_flow.ts`).
   */
  | { readonly kind: "reads"; readonly link: Link; readonly resume: boolean }
  /** A change of durable state, for the store (a no-op while persistence is not wired). */
  | { readonly kind: "journal"; readonly mutation: StoreMutation };

/** The kinds of {@linkcode CoreAction}. */
export type ActionKind = CoreAction["kind"];

/**
 * One reusable record: its references are dropped when the queue is cleared. A record lives long
 * (it is reused), so storing a new object in it costs a write barrier; the messages of `publish`
 * actions are therefore kept once per run of deliveries in the queue's message table, and the
 * record holds their index (a small integer, no barrier): a fan-out to 32 stores the message
 * once, not 32 times.
 */
class Slot {
  kind: ActionKind = "send";
  link: Link | undefined = undefined;
  packet: Packet | undefined = undefined;
  messageIndex = -1;
  readonly messages: (BrokerMessage | undefined)[];
  qos: QoS = 0;
  packetId = 0;
  dup = false;
  reason = "";
  code = 0;
  id = 0;
  request: DecisionRequest | undefined = undefined;
  at = 0;
  mutation: StoreMutation | undefined = undefined;
  from = 0;
  to = 0;
  resume = false;
  readonly links: (Link | undefined)[];

  constructor(messages: (BrokerMessage | undefined)[], links: (Link | undefined)[]) {
    this.messages = messages;
    this.links = links;
  }

  /** The message of a `publish` action. */
  get message(): BrokerMessage | undefined {
    return this.messages[this.messageIndex];
  }
}

/**
 * The core's outputs since the shell last drained them, in order.
 *
 * @example
 * ```ts
 * import { ActionQueue } from "./actions.ts";
 * import assert from "node:assert/strict";
 *
 * const queue = new ActionQueue();
 * queue.journal({ type: "deleteSession", clientId: "c" });
 * assert.equal(queue.length, 1);
 * assert.equal(queue.at(0).kind, "journal");
 * queue.clear();
 * assert.equal(queue.length, 0);
 * ```
 */
export class ActionQueue {
  /**
   * Told of shared QoS 1 deliveries to clean sessions, on a cluster node (the sessions that
   * queue into this one call it): none otherwise.
   */
  sharedWatch: SharedWatch | undefined = undefined;
  #slots: Slot[] = [];
  #length = 0;
  // The messages of publish actions, each once per run of consecutive deliveries.
  #messages: (BrokerMessage | undefined)[] = [];
  #messageCount = 0;
  // The connections of fanOut actions, each action a range.
  #links: (Link | undefined)[] = [];
  #linkCount = 0;
  // Connections added by addFanOut, after #linkCount, not yet queued by fanOutAdded.
  #pending = 0;

  /** Actions queued. */
  get length(): number {
    return this.#length;
  }

  /**
   * The action at `index` (0 = oldest). Valid until {@linkcode clear}.
   *
   * @param index below {@linkcode length}
   * @returns the action
   */
  at(index: number): CoreAction {
    return this.#slots[index] as CoreAction;
  }

  /** Forgets every action (their records are reused, their references dropped). */
  clear(): void {
    const slots = this.#slots;
    for (let i = 0; i < this.#length; i++) {
      const s = slots[i]!;
      s.link = undefined;
      s.packet = undefined;
      s.request = undefined;
      s.mutation = undefined;
    }
    this.#length = 0;
    const messages = this.#messages;
    for (let i = 0; i < this.#messageCount; i++) messages[i] = undefined;
    this.#messageCount = 0;
    const links = this.#links;
    for (let i = 0; i < this.#linkCount + this.#pending; i++) links[i] = undefined;
    this.#linkCount = 0;
    this.#pending = 0;
  }

  /**
   * Queues a packet.
   *
   * @param link the connection
   * @param packet the packet
   */
  send(link: Link, packet: Packet): void {
    const s = this.#next("send", link);
    s.packet = packet;
  }

  /**
   * Queues a PUBLISH of a message.
   *
   * @param link the connection
   * @param message the message
   * @param qos the delivery QoS
   * @param packetId its packet id, 0 for QoS 0
   * @param dup whether it is a re-delivery [MQTT-3.3.1-1]
   */
  publish(link: Link, message: BrokerMessage, qos: QoS, packetId: number, dup: boolean): void {
    const s = this.#next("publish", link);
    s.messageIndex = this.#message(message);
    s.qos = qos;
    s.packetId = packetId;
    s.dup = dup;
  }

  /**
   * Queues a QoS 0 PUBLISH of one message to the connected ones of many subscribers.
   *
   * @param message the message
   * @param subscribers the subscribers (their current connections are taken now)
   */
  fanOut(
    message: BrokerMessage,
    subscribers: readonly { readonly subscriber: { readonly link: Link | undefined } }[],
  ): void {
    const links = this.#links;
    const from = this.#linkCount;
    let to = from;
    for (let i = 0; i < subscribers.length; i++) {
      const link = subscribers[i]!.subscriber.link;
      if (link !== undefined) links[to++] = link;
    }
    if (to === from) return;
    this.#linkCount = to;
    const s = this.#next("fanOut", undefined);
    s.messageIndex = this.#message(message);
    s.from = from;
    s.to = to;
  }

  /**
   * Adds one connection to the fan-out being gathered: {@linkcode fanOutAdded} queues it. For a
   * router that picks the connections of a QoS 0 fan-out one by one (other actions may be queued
   * meanwhile: only fan-outs use the connection table).
   *
   * @param link the connection
   */
  addFanOut(link: Link): void {
    this.#links[this.#pending++ + this.#linkCount] = link;
  }

  /**
   * Queues a QoS 0 PUBLISH of `message` to the connections added with {@linkcode addFanOut}
   * since the last fan-out; nothing when none was.
   *
   * @param message the message
   */
  fanOutAdded(message: BrokerMessage): void {
    const from = this.#linkCount;
    const to = from + this.#pending;
    this.#pending = 0;
    if (to === from) return;
    this.#linkCount = to;
    const s = this.#next("fanOut", undefined);
    s.messageIndex = this.#message(message);
    s.from = from;
    s.to = to;
  }

  /**
   * Queues a PUBREL.
   *
   * @param link the connection
   * @param packetId its packet id
   */
  pubrel(link: Link, packetId: number): void {
    this.#next("pubrel", link).packetId = packetId;
  }

  /**
   * Queues a close of one of the three kinds.
   *
   * @param kind flush then close, abort, or close after a takeover
   * @param link the connection
   * @param reason for the log
   * @param code the MQTT 5.0 reason code
   */
  close(kind: "close" | "abort" | "takeOver", link: Link, reason: string, code: number): void {
    const s = this.#next(kind, link);
    s.reason = reason;
    s.code = code;
  }

  /**
   * Queues a question for the plugins.
   *
   * @param link the connection whose packets wait for it, if any
   * @param id the decision's id
   * @param request the question
   */
  ask(link: Link | undefined, id: number, request: DecisionRequest): void {
    const s = this.#next("ask", link);
    s.id = id;
    s.request = request;
  }

  /**
   * Queues a deadline for a link.
   *
   * @param link the connection
   * @param at ms since epoch; Infinity clears it
   */
  deadline(link: Link, at: number): void {
    this.#next("deadline", link).at = at;
  }

  /**
   * Queues a pause or a resumption of a link's reads.
   *
   * @param link the connection
   * @param resume true to read it again, false to stop reading it
   */
  reads(link: Link, resume: boolean): void {
    this.#next("reads", link).resume = resume;
  }

  /**
   * Queues a change of durable state.
   *
   * @param mutation the change
   */
  journal(mutation: StoreMutation): void {
    this.#next("journal", undefined).mutation = mutation;
  }

  /** The index of `message` in the message table, added unless it is the last one. */
  #message(message: BrokerMessage): number {
    let index = this.#messageCount - 1;
    if (index < 0 || this.#messages[index] !== message) {
      index = this.#messageCount++;
      this.#messages[index] = message;
    }
    return index;
  }

  #next(kind: ActionKind, link: Link | undefined): Slot {
    let s = this.#slots[this.#length];
    if (s === undefined) {
      s = new Slot(this.#messages, this.#links);
      this.#slots.push(s);
    }
    this.#length++;
    // clear() dropped the references of a record used before: only the action's own are set.
    s.kind = kind;
    s.link = link;
    return s;
  }
}

/**
 * Driving the broker core directly, with no socket and an injected clock: a recording connection
 * (`FakeLink`, the target of the core's actions) and a core whose plugins allow everything, run
 * by the same `ActionRunner` as the broker's.
 *
 * @module
 */

import { BrokerCore } from "../../src/broker/core.ts";
import type { CoreOptions } from "../../src/broker/core.ts";
import { ActionRunner, type ActionTarget } from "../../src/broker/action_runner.ts";
import type { Link } from "../../src/broker/link.ts";
import type { AuthDecision, BrokerEvents, PolicyHost } from "../../src/broker/policy.ts";
import type { DecisionAnswer, DecisionRequest } from "../../src/broker/decision.ts";
import type { ClientIdSource } from "../../src/broker/client_ids.ts";
import assert from "node:assert/strict";
import { type Packet, PacketType, type QoS } from "../../src/packet/mod.ts";
import type { BrokerMessage } from "../../src/broker/message.ts";
import type { StoredState } from "../../src/store/mod.ts";
import type { StoreMutation } from "../../src/store/mutation.ts";
import type { Logger } from "../../src/plugins/types.ts";

const PACKET_NAMES: Record<number, string> = {
  2: "CONNACK",
  3: "PUBLISH",
  4: "PUBACK",
  5: "PUBREC",
  6: "PUBREL",
  7: "PUBCOMP",
  9: "SUBACK",
  11: "UNSUBACK",
  13: "PINGRESP",
};

/** A connection as the core's actions reach it: records what it is told to do, in order. */
export class FakeLink implements ActionTarget {
  readonly info = { transport: "tcp" as const, remoteAddress: "127.0.0.1:1", listener: "default" };
  #harness: TestCore | undefined;
  #link: Link | undefined;
  /** Packets written (PUBLISH aside), PUBREL included. */
  readonly sent: Packet[] = [];
  /** PUBLISHes written: topic, QoS, packet id (0 for QoS 0) and DUP. */
  readonly published: { topic: string; qos: number; packetId: number; dup: boolean }[] = [];
  /**
   * The payloads of {@linkcode published}, in order, as written (copies, as a connection copies
   * them into its output).
   */
  readonly payloads: Uint8Array[] = [];
  /**
   * Everything the core's actions did to this link, in order: `CONNACK`, `PUBLISH m/1 1 dup`,
   * `PUBREL 3`, `close 0x8e`, `deadline 1700000010000`, `ask authenticate`, …
   */
  readonly trace: string[] = [];
  /** Every decision the core asked for, in order. */
  readonly asked: { id: number; request: DecisionRequest }[] = [];
  /**
   * Answers the core's decisions: at once by default (everything allowed); return `undefined` to
   * keep one pending, and give the answer later with `core.decided(id, answer, now)`.
   */
  answer: (request: DecisionRequest) => DecisionAnswer | undefined = () => true;
  /** How and why the link was closed, once it was. */
  closed: { how: "close" | "abort" | "takeOver"; reason: string; code: number } | undefined;
  /** Every deadline the core set, in order (Infinity: cleared). */
  readonly deadlines: number[] = [];
  /** While set, QoS 1/2 PUBLISHes are held back as a connection over its outbound bound does. */
  holding = false;
  /** Its name in {@linkcode TestCore.trace}. */
  readonly name: string;

  /**
   * Creates a link; attach it with {@linkcode TestCore.attach}.
   *
   * @param name its name in the core's trace of every link
   */
  constructor(name = "link") {
    this.name = name;
  }

  /** The core's state of this link (after `attach`). */
  get link(): Link {
    if (this.#link === undefined) throw new Error("FakeLink not attached");
    return this.#link;
  }

  /** The session, once CONNECT is accepted. */
  get session(): Link["session"] {
    return this.#link?.session;
  }

  /** The client, once CONNECT is accepted. */
  get client(): Link["client"] {
    return this.#link?.client;
  }

  /** Whether it was closed (by the core, or by the test as a shell would). */
  get closing(): boolean {
    return this.closed !== undefined;
  }

  /** Called by {@linkcode TestCore.attach}. */
  attached(harness: TestCore, link: Link): void {
    this.#harness = harness;
    this.#link = link;
  }

  sendPacket(packet: Packet): void {
    this.sent.push(packet);
    const name = PACKET_NAMES[packet.type] ?? `type ${packet.type}`;
    this.#record("packetId" in packet ? `${name} ${packet.packetId}` : name);
  }

  sendPublish(message: BrokerMessage, qos: QoS, packetId: number, dup: boolean): boolean {
    if (qos > 0 && this.holding) return false;
    this.published.push({ topic: message.topic, qos, packetId, dup });
    this.payloads.push(message.payload.slice());
    this.#record(`PUBLISH ${message.topic} ${packetId}${dup ? " dup" : ""}`);
    return true;
  }

  ask(id: number, request: DecisionRequest): void {
    this.asked.push({ id, request });
    this.#record(`ask ${request.kind}`);
    const answer = this.answer(request);
    const harness = this.#harness!;
    if (answer !== undefined) harness.core.decided(id, answer, harness.now);
  }

  setDeadline(at: number): void {
    this.deadlines.push(at);
    this.#record(`deadline ${at}`);
  }

  /** Whether the core has this link's reads paused (flow control). */
  readingPaused = false;

  setReading(reading: boolean): void {
    this.readingPaused = !reading;
    this.#record(reading ? "resume reads" : "pause reads");
  }

  close(reason: string, code = 0): void {
    this.#closed("close", reason, code);
  }

  abort(reason: string, code = 0x80): void {
    this.#closed("abort", reason, code);
  }

  takeOver(reason: string): void {
    this.#closed("takeOver", reason, 0x8e);
  }

  #record(entry: string): void {
    this.trace.push(entry);
    this.#harness?.trace.push(`${this.name}: ${entry}`);
  }

  #closed(how: "close" | "abort" | "takeOver", reason: string, code: number): void {
    this.#record(`${how} 0x${code.toString(16).padStart(2, "0")}`);
    this.closed ??= { how, reason, code };
    // A close the test makes itself is one the shell makes: the core is told.
    if (this.#link !== undefined) this.#harness?.core.closing(this.#link);
  }
}

/**
 * The core and its action runner, called the way the shell calls them: each call is followed by
 * running the actions it queued on the `FakeLink`s they name.
 */
export class TestCore {
  /** The core. */
  readonly core: BrokerCore;
  /** The clock of the last call, used for answers given at once. */
  now = 0;
  /** What the actions did to every link, in order: `name: entry` (see `FakeLink.trace`). */
  readonly trace: string[] = [];
  #runner: ActionRunner;

  /**
   * Wraps a core.
   *
   * @param core the core
   * @param decide answers receive authorizations (no link): at once, or `undefined` for later
   * @param journal takes the journal actions (the store's writer, in the broker)
   */
  constructor(
    core: BrokerCore,
    decide: (id: number, request: DecisionRequest) => AuthDecision | undefined,
    journal?: (mutation: StoreMutation) => void,
  ) {
    this.core = core;
    this.#runner = new ActionRunner(core, {
      journal,
      decide: (id, request) => {
        const answer = decide(id, request);
        if (answer !== undefined) core.decided(id, answer, this.now);
      },
    });
  }

  get sessions(): BrokerCore["sessions"] {
    return this.core.sessions;
  }
  get stats(): BrokerCore["stats"] {
    return this.core.stats;
  }
  get retained(): BrokerCore["retained"] {
    return this.core.retained;
  }
  get subscriptions(): BrokerCore["subscriptions"] {
    return this.core.subscriptions;
  }
  get links(): BrokerCore["links"] {
    return this.core.links;
  }

  /** Runs the actions queued by a call made on `core` directly. */
  run(): void {
    this.#runner.run();
  }

  attach(link: FakeLink, now: number): void {
    this.now = now;
    link.attached(this, this.core.attach({ handle: link, info: link.info }, now));
    this.run();
  }

  handle(link: FakeLink, packet: Packet, now: number): void {
    this.now = now;
    this.core.handle(link.link, packet, now);
    this.run();
  }

  decided(id: number, answer: DecisionAnswer, now: number): void {
    this.now = now;
    this.core.decided(id, answer, now);
    this.run();
  }

  tick(now: number): void {
    this.now = now;
    this.core.tick(now);
    this.run();
  }

  detach(link: FakeLink, now: number): void {
    this.now = now;
    this.core.closing(link.link);
    this.core.detach(link.link, now);
    this.run();
  }

  /** The link's output drained: PUBLISHes it held back go out. */
  drained(link: FakeLink): void {
    this.core.drained(link.link);
    this.run();
  }

  publish(message: BrokerMessage): void {
    this.core.publish(message);
    this.run();
  }

  publishWills(): void {
    this.core.publishWills();
    this.run();
  }

  restore(state: StoredState, now: number): void {
    this.now = now;
    this.core.restore(state, now);
    this.run();
  }

  drainRetained(max: number): ReturnType<BrokerCore["drainRetained"]> {
    const state = this.core.drainRetained(max);
    this.run();
    return state;
  }

  waiting(link: FakeLink): boolean {
    return this.core.waiting(link.link);
  }
}

/**
 * A core with small windows, every plugin decision allowed and a silent logger.
 *
 * @param options what differs from the defaults
 * @param hooks a policy (some of its methods), a client-id source, or the answers to decisions
 *   about deliveries (`decide`, default: allowed at once) to use instead of the defaults; with
 *   `journal`, the core journals durable state and its journal actions go there; `logger` gets
 *   the core's lines (default: none)
 * @returns the core, driven like the shell drives it
 */
export function testCore(
  options: Partial<CoreOptions> = {},
  hooks: {
    policy?: Partial<PolicyHost>;
    clientIds?: ClientIdSource;
    decide?: (id: number, request: DecisionRequest) => AuthDecision | undefined;
    journal?: (mutation: StoreMutation) => void;
    events?: BrokerEvents;
    logger?: Logger;
  } = {},
): TestCore {
  const quiet = hooks.logger ?? { debug() {}, info() {}, warning() {}, error() {} };
  const core = new BrokerCore({
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
    events: hooks.events ?? {},
    logger: quiet,
    clientIds: hooks.clientIds,
    durable: hooks.journal !== undefined,
  });
  return new TestCore(core, hooks.decide ?? (() => true), hooks.journal);
}

/** The clock core tests start from (ms since epoch). */
export const T0 = 1_700_000_000_000;

/**
 * Attaches a new link and hands it `packet` (a CONNECT); asserts the CONNACK came before
 * `handle` returned.
 *
 * @param core the core
 * @param packet the CONNECT
 * @param now the clock, ms
 * @returns the link
 */
export function connect(core: TestCore, packet: Packet, now = T0): FakeLink {
  const link = new FakeLink();
  core.attach(link, now);
  core.handle(link, packet, now);
  assert.equal(link.sent[0]?.type, PacketType.CONNACK, "no CONNACK before handle returned");
  return link;
}

/**
 * Subscribes a link to one filter (packet id 1).
 *
 * @param core the core
 * @param link the link
 * @param topic the topic filter
 * @param qos the requested QoS
 * @param now the clock, ms
 */
export function subscribe(core: TestCore, link: FakeLink, topic: string, qos: QoS, now = T0): void {
  core.handle(
    link,
    { type: PacketType.SUBSCRIBE, packetId: 1, subscriptions: [{ topic, qos }] },
    now,
  );
}

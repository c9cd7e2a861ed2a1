/**
 * The shell's side of the core's actions: after each call into {@linkcode BrokerCore}, the shell
 * runs what the core queued, in order, on the connections the actions name. The connections do
 * the writing (and may drop a QoS 0 PUBLISH or hold back a QoS 1/2 one for back-pressure, which
 * is reported back to the core); plugin questions about no connection go to `decide`.
 *
 * @module
 */

import { PacketType } from "../packet/constants.ts";
import type { QoS } from "../packet/constants.ts";
import type { Packet } from "../packet/types.ts";
import type { StoreMutation } from "../store/mutation.ts";
import type { BrokerCore } from "./core.ts";
import type { DecisionRequest } from "./decision.ts";
import { countDrop } from "./drop_counters.ts";
import type { BrokerMessage } from "./message.ts";

/** What a connection does for the core's actions (the `handle` of its link). */
export interface ActionTarget {
  /** Writes a packet. */
  sendPacket(packet: Packet): void;
  /**
   * Writes a PUBLISH.
   *
   * @returns false when nothing was written: QoS 0 dropped or QoS 1/2 held back for
   *   back-pressure, or the connection closing
   */
  sendPublish(message: BrokerMessage, qos: QoS, packetId: number, dup: boolean): boolean;
  /** Flushes, then closes. */
  close(reason: string, code: number): void;
  /** Closes at once. */
  abort(reason: string, code: number): void;
  /** Closes because the session was taken over. */
  takeOver(reason: string): void;
  /** Asks the plugins and gives the answer to `BrokerCore.decided`, at once or later. */
  ask(id: number, request: DecisionRequest): void;
  /** Notes when the core wants a tick for this connection (Infinity: never). */
  setDeadline(at: number): void;
  /** Stops reading the connection's packets (`reading` false) or reads them again (true). */
  setReading(reading: boolean): void;
}

/** Options of {@linkcode ActionRunner}. */
export interface ActionRunnerOptions {
  /** Asks the plugins about a delivery (no connection waits) and answers `core.decided`. */
  decide(id: number, request: DecisionRequest): void;
  /** Takes a change of durable state; without it, journal actions are ignored. */
  journal?(mutation: StoreMutation): void;
}

/** Runs the core's actions. One per core. */
export class ActionRunner {
  #core: BrokerCore;
  #options: ActionRunnerOptions;
  #running = false;

  /**
   * Creates the runner of a core.
   *
   * @param core the core whose actions it runs
   * @param options where decisions without a connection and journal actions go
   */
  constructor(core: BrokerCore, options: ActionRunnerOptions) {
    this.#core = core;
    this.#options = options;
  }

  /**
   * Runs every action queued, in order, then clears the queue. Actions queued meanwhile (an
   * answer given at once leads to more) run in the same pass; a call from inside a pass returns
   * at once, the pass takes care of them.
   */
  run(): void {
    if (this.#running) return;
    const core = this.#core;
    const actions = core.actions;
    if (actions.length === 0) return;
    const stats = core.stats;
    this.#running = true;
    try {
      for (let i = 0; i < actions.length; i++) {
        const a = actions.at(i);
        switch (a.kind) {
          case "publish": {
            const target = a.link.handle as ActionTarget;
            if (target.sendPublish(a.message, a.qos, a.packetId, a.dup)) stats.publishSent++;
            else if (a.qos === 0) countDrop(stats, "outboundFull");
            else core.unsent(a.link, a.packetId, a.dup);
            break;
          }
          case "fanOut": {
            const { links, message } = a;
            for (let j = a.from; j < a.to; j++) {
              const target = links[j]!.handle as ActionTarget;
              if (target.sendPublish(message, 0, 0, false)) stats.publishSent++;
              else countDrop(stats, "outboundFull");
            }
            break;
          }
          case "send":
            (a.link.handle as ActionTarget).sendPacket(a.packet);
            break;
          case "pubrel":
            (a.link.handle as ActionTarget).sendPacket({
              type: PacketType.PUBREL,
              packetId: a.packetId,
            });
            break;
          case "close":
            (a.link.handle as ActionTarget).close(a.reason, a.code);
            break;
          case "abort":
            (a.link.handle as ActionTarget).abort(a.reason, a.code);
            break;
          case "takeOver":
            (a.link.handle as ActionTarget).takeOver(a.reason);
            break;
          case "ask":
            if (a.link === undefined) this.#options.decide(a.id, a.request);
            else (a.link.handle as ActionTarget).ask(a.id, a.request);
            break;
          case "deadline":
            (a.link.handle as ActionTarget).setDeadline(a.at);
            break;
          case "reads":
            (a.link.handle as ActionTarget).setReading(a.resume);
            break;
          case "journal":
            this.#options.journal?.(a.mutation);
            break;
        }
      }
    } finally {
      actions.clear();
      this.#running = false;
    }
  }
}

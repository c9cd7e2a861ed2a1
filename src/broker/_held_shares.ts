/**
 * Messages for the shared groups of sessions on their way to this node (a move or an adoption),
 * held until the sessions are here. While a session moves, the node it leaves has no member of
 * its groups any more and passes their messages on (`only`), and the nodes that publish may pick
 * this node for them before it has the session: delivered at once, such a message would reach
 * another member here or nobody, and the session's previous owner never had it. Held and routed
 * to the group once the sessions arrived, it reaches one member, the session among them, as on
 * one broker (see ARCHITECTURE.md, "The move window").
 *
 * @module
 */

import type { MessageFrame } from "../cluster/bus_frame.ts";
import type { ShareChoice } from "../cluster/share_chooser.ts";
import { matchTopic } from "../topic/match_topic.ts";
import { parseSharedFilter } from "../topic/shared_filter.ts";

/** The most messages held for one move or adoption (a bound, not expected). */
const MAX_HELD = 100_000;

const NONE: readonly string[] = [];

interface Holding {
  /** Group (`$share/{group}/{filter}`) → its filter proper, which topics are matched against. */
  groups: Map<string, string>;
  frames: MessageFrame[];
}

/** The shared groups held for sessions on their way here, by move or adoption. */
export class HeldShares {
  readonly #holdings = new Map<string, Holding>();

  /** Whether any group is held. */
  get holding(): boolean {
    return this.#holdings.size > 0;
  }

  /**
   * Starts holding the shared groups among `filters` under `key` (a no-op without any; added to
   * what `key` holds already).
   *
   * @param key the move or adoption
   * @param filters the filters of the sessions on their way
   */
  start(key: string, filters: Iterable<string>): void {
    const groups = new Map<string, string>();
    for (const filter of filters) {
      const shared = parseSharedFilter(filter);
      if (shared !== undefined) groups.set(filter, shared.filter);
    }
    if (groups.size === 0) return;
    // A second move of the same session while the first is under way: one holding for both.
    const current = this.#holdings.get(key);
    if (current === undefined) this.#holdings.set(key, { groups, frames: [] });
    else for (const [group, filter] of groups) current.groups.set(group, filter);
  }

  /**
   * Takes out of a choice made here the held groups it gave to a departed node (the last resort
   * while no live node has members, and this node does not count its own sessions on their way):
   * this node serves them once the sessions are here (see {@linkcode local}), rather than a dead
   * stream that was read already or never will be.
   *
   * @param choice node → the groups it serves, changed in place
   * @param departed whether a node departed
   */
  claim(choice: ShareChoice, departed: (node: string) => boolean): void {
    for (const [node, shares] of choice) {
      if (!departed(node)) continue;
      const left = shares.filter((s) => !this.#held(s));
      if (left.length === 0) choice.delete(node);
      else choice.set(node, left);
    }
  }

  #held(share: string): boolean {
    for (const holding of this.#holdings.values()) if (holding.groups.has(share)) return true;
    return false;
  }

  /**
   * A message another node sent here for `shares`: the held groups among them are kept for
   * later (as a message for those groups only) and must not be delivered now.
   *
   * @param frame the message as received
   * @param shares the groups this node was asked to serve
   * @returns the groups held
   */
  received(frame: MessageFrame, shares: readonly string[]): readonly string[] {
    if (shares.length === 0 || this.#holdings.size === 0) return NONE;
    let held: string[] | undefined;
    for (const holding of this.#holdings.values()) {
      const mine = shares.filter((s) => holding.groups.has(s) && held?.includes(s) !== true);
      if (mine.length === 0) continue;
      this.#keep(holding, { ...frame, shares: mine, only: true });
      (held ??= []).push(...mine);
    }
    return held ?? NONE;
  }

  /**
   * A message published on this node: the held groups it matches that no other node was picked
   * for are kept for later (there is no member for them here yet).
   *
   * @param frame the message
   * @param given the groups another node serves for it
   * @returns whether a group was held
   */
  local(frame: MessageFrame, given: ReadonlySet<string>): boolean {
    const topic = frame.message.topic;
    const held: string[] = [];
    for (const holding of this.#holdings.values()) {
      const mine: string[] = [];
      for (const [group, filter] of holding.groups) {
        if (given.has(group) || held.includes(group) || !matchTopic(filter, topic)) continue;
        mine.push(group);
      }
      if (mine.length === 0) continue;
      this.#keep(holding, { ...frame, shares: mine, only: true });
      held.push(...mine);
    }
    return held.length > 0;
  }

  /**
   * Stops holding for `key`.
   *
   * @param key the move or adoption
   * @returns the messages held, in the order they came, each for its groups only
   */
  end(key: string): MessageFrame[] {
    const holding = this.#holdings.get(key);
    this.#holdings.delete(key);
    return holding?.frames ?? [];
  }

  #keep(holding: Holding, frame: MessageFrame): void {
    if (holding.frames.length < MAX_HELD) holding.frames.push(frame);
  }
}

/**
 * The shell between the core's journal and a store: it gathers the mutations the core makes
 * while handling packets into one batch per turn of the event loop, applies it to the store, and
 * tells connections when what they are about to write is covered by a commit, so that a PUBACK
 * or PUBREC never goes out before the message it acknowledges is stored.
 *
 * @module
 */

import type { BrokerStore } from "../store/broker_store.ts";
import type { StoreMutation } from "../store/mutation.ts";
import { errorText } from "./_error_text.ts";
import type { Logger } from "./policy.ts";
import { StoreOutage, type StoreOutageOptions } from "./store_outage.ts";
import { StoreError } from "../store/store_error.ts";

/** What a connection needs to hold its output until the store has committed. */
export interface CommitGate {
  /** Mutations journaled since start: a mark for {@linkcode committed}. */
  readonly emitted: number;
  /**
   * Whether the store is failing (see `StoreOutage`): new QoS 1/2 work is refused until a probe
   * write works again.
   */
  readonly failed: boolean;
  /**
   * Whether output produced now may be written: `undefined` when every mutation journaled so far
   * is committed, else a promise that settles with the commit covering them. It rejects when a
   * write that failed covered mutations journaled after `since`.
   *
   * @param since the connection's mark at its previous write
   */
  committed(since: number): Promise<void> | undefined;
  /**
   * Whether the QoS 2 message a session received with a packet id it still holds is stored:
   * `undefined` when it is, else (its write failed) a promise that settles once the store is
   * written again from memory after the outage, and rejects when the broker closes first. A
   * PUBREC to the message sent again waits for it.
   *
   * @param clientId the publisher's client id
   * @param packetId the packet id its session holds
   */
  stored?(clientId: string, packetId: number): Promise<void> | undefined;
  /**
   * During an outage: a promise that settles once the store is written again from memory (and
   * rejects when the broker closes first); `undefined` when there is no outage or no rewrite.
   */
  rewritten?(): Promise<void> | undefined;
}

/**
 * What a probe writes while writes fail, to learn when they work again: a message under an id the
 * journal never gives (it starts at 1) that nothing references, so the store keeps none of it
 * past its batch. Its payload is as large as the largest message that failed.
 */
const PROBE_ID = 0;
const PROBE_TOPIC = "$amqtt/store-probe";

/**
 * How many times `holdMs` batches may be held when no other batch comes (see
 * {@linkcode StoreWriterOptions.holdMs}).
 */
export const IDLE_HOLD_FACTOR = 10;

/** Options of {@linkcode StoreWriter}. */
export interface StoreWriterOptions {
  /**
   * The clock for the probes' back-off and for holding batches back, ms: monotonic by default,
   * so that a step of the wall clock (NTP, a suspended VM) neither puts the next probe off by
   * as long (a step back of an hour during an outage: an hour of refused QoS 1/2 publishes after
   * the store works again) nor holds batches that long.
   *
   * @default {performance.now}
   */
  now?: () => number;
  /** The probes' back-off. */
  outage?: StoreOutageOptions;
  /**
   * How long, in ms, batches that nothing waits for may be held back before they go to the store,
   * so that they join the next commit something waits for (one log row, not two). Only what no
   * reply depends on is held: a subscriber's PUBACK deleting a delivery, say; a crash in that time
   * loses only such changes (the delivery then comes again, as QoS 1 allows). `0` hands every
   * batch to the store in its own turn.
   *
   * The bound is checked when the next batch comes; when none comes, a timer hands them over
   * after at most {@linkcode IDLE_HOLD_FACTOR} times as long. One timer per hold would cost more
   * than the commits it saves: arming one costs about 100 µs of CPU in Deno.
   *
   * @default {0}
   */
  holdMs?: number;
  /**
   * Journals the whole state again behind a `clear`, through {@linkcode StoreWriter.write}
   * (`BrokerCore.rewriteStore`): called once a probe works, the outage ends when its write does.
   * Without it, the outage ends with the probe.
   */
  rewrite?: () => void;
  /**
   * Called before each probe, which waits for it (its failure is a failed probe): a cluster node
   * whose Redis lost its data takes a fresh block of message ids there (`ClusterLink.renewStore`).
   */
  renew?: () => Promise<void>;
}

/** The default clock of the writer: monotonic (see `StoreWriterOptions.now`). */
function monotonicNow(): number {
  return performance.now();
}

/** A QoS 2 packet id a session received, journaled at mark `at`. */
interface InboundMark {
  clientId: string;
  packetId: number;
  at: number;
}

/**
 * Batches the core's mutations into a {@linkcode BrokerStore} and tracks what is committed.
 *
 * @example
 * ```ts
 * import { StoreWriter } from "./store_writer.ts";
 * import { MemoryStore } from "../store/memory_store.ts";
 * import assert from "node:assert/strict";
 *
 * const log = { debug() {}, info() {}, warning() {}, error() {} };
 * const writer = new StoreWriter(new MemoryStore(), log);
 * writer.write({ type: "setCounter", name: "clients/maximum", value: 3 });
 * await writer.committed(0);
 * assert.equal(writer.committed(0), undefined);
 * await writer.close();
 * ```
 */
export class StoreWriter implements CommitGate {
  readonly #store: BrokerStore;
  readonly #log: Logger;
  #batch: StoreMutation[] = [];
  #scheduled = false;
  #emitted = 0;
  #committed = 0;
  #pending: Promise<void> | undefined;
  #pendingFor = 0;
  readonly #outage: StoreOutage;
  readonly #now: () => number;
  /** The end mark of the last failed write, and its error. */
  #failedUpTo = 0;
  #failure: unknown;
  /**
   * The mark the last rewrite after an outage covered: the store holds everything journaled up
   * to it, whatever failed before.
   */
  #healedUpTo = 0;
  /**
   * The end mark of the last write applied but for sessions another cluster node writes now
   * (`StoreError` kind `taken`), and its error: what it carried for them is stored nowhere, so
   * output that may depend on it is refused like a failed write's, without an outage.
   */
  #refusedUpTo = 0;
  #refusal: unknown;
  /**
   * The session of each mutation journaled since the last commit started (`undefined`: none),
   * the first after the mark `#sessionsFrom`: a commit refused for some sessions (`taken`)
   * refuses only the output that may depend on their mutations (journaled up to the last of
   * them), not every waiter of the commit. (One push per mutation: a Map of last marks cost
   * more on this path.)
   */
  #sessions: (string | undefined)[] = [];
  #sessionsFrom = 0;
  /** Whether the store may refuse a commit in part (`BrokerStore.refusesTaken`). */
  readonly #takes: boolean;
  /** The mark of the last mutation handed to the store. */
  #applied = 0;
  /** Errors of failed writes the store reported (`BrokerStore.reportFailures`), counted then. */
  readonly #reported = new WeakSet<object>();
  #probing = false;
  #failures = 0;
  /** Failed writes in the current outage. */
  #failuresNow = 0;
  /** The largest message payload journaled since the last commit was asked for. */
  #largest = 0;
  readonly #rewrite: (() => void) | undefined;
  readonly #renew: (() => Promise<void>) | undefined;
  /** Inbound QoS 2 ids journaled and not yet known to be committed, in journal order. */
  #inbound: InboundMark[] = [];
  /** Inbound QoS 2 ids whose write failed, by client, until the rewrite after the outage. */
  #unstored = new Map<string, Set<number>>();
  /** Settled when the store is written again from memory after an outage. */
  #rewritten: PromiseWithResolvers<void> | undefined;
  readonly #applyBound = () => this.#apply();
  readonly #holdMs: number;
  /** Batches held back (see {@linkcode StoreWriterOptions.holdMs}), in order. */
  #held: StoreMutation[][] = [];
  /** When the oldest batch of {@linkcode #held} was held, by {@linkcode #now}. */
  #heldAt = 0;
  #holdTimer: ReturnType<typeof setTimeout> | undefined;
  /** Set by {@linkcode close}: nothing is held back any more. */
  #closing = false;
  readonly #releaseBound = () => {
    this.#holdTimer = undefined;
    // Through a commit, so that a failed write of what was held starts an outage like any other.
    this.committed(this.#emitted);
  };

  /**
   * @param store the store, opened and loaded
   * @param logger where failures are logged
   * @param options clock, probe back-off, holding back batches nothing waits for
   */
  constructor(store: BrokerStore, logger: Logger, options: StoreWriterOptions = {}) {
    this.#store = store;
    this.#log = logger;
    this.#now = options.now ?? monotonicNow;
    this.#outage = new StoreOutage(options.outage);
    this.#holdMs = options.holdMs ?? 0;
    this.#rewrite = options.rewrite;
    this.#renew = options.renew;
    this.#takes = store.refusesTaken === true;
    store.reportFailures?.((error) => this.#writeFailed(error));
  }

  /** Where the state lives, for the log. */
  get location(): string {
    return this.#store.location;
  }

  /** Mutations journaled since start. */
  get emitted(): number {
    return this.#emitted;
  }

  /** Whether the store is failing: from a failed write until a probe works. */
  get failed(): boolean {
    return this.#outage.down;
  }

  /** Outages since start (each logged once when it starts and once when it ends). */
  get outages(): number {
    return this.#outage.episodes;
  }

  /** Commits that failed since start. */
  get failures(): number {
    return this.#failures;
  }

  /**
   * Takes one mutation from the core's journal, for the batch of this turn.
   *
   * @param mutation the mutation (kept by reference until written)
   */
  write(mutation: StoreMutation): void {
    this.#batch.push(mutation);
    this.#emitted++;
    const type = mutation.type;
    if (this.#takes) {
      // Bounded while no commit starts (an outage): past it, a refusal refuses all it covered.
      if (this.#sessions.length >= MAX_SESSION_MARKS) {
        this.#sessions = [];
        this.#sessionsFrom = this.#emitted - 1;
      }
      this.#sessions.push(
        "clientId" in mutation
          ? mutation.clientId
          : type === "putSession"
          ? mutation.session.clientId
          : undefined,
      );
    }
    if (type === "putMessage" || type === "putRetained") {
      const bytes = mutation.message.payload.length;
      if (bytes > this.#largest) this.#largest = bytes;
    } else if (type === "putInbound" && this.#rewrite !== undefined) {
      const { clientId, packetId } = mutation;
      this.#inbound.push({ clientId, packetId, at: this.#emitted });
    } else if (this.#unstored.size > 0) {
      // A released id is no longer sent again; a new PUBLISH with it is new work.
      if (type === "deleteInbound") {
        this.#unstored.get(mutation.clientId)?.delete(mutation.packetId);
      } else if (type === "deleteSession") this.#unstored.delete(mutation.clientId);
    }
    if (!this.#scheduled) {
      this.#scheduled = true;
      // The core's changes for one packet (a message and its deliveries) are one batch: the
      // store keeps a message only when a delivery in its batch refers to it.
      queueMicrotask(this.#applyBound);
    }
  }

  /**
   * See {@linkcode CommitGate.committed}.
   *
   * @param since the caller's mark at its previous write
   * @returns `undefined` when nothing is left to commit, else the commit's promise
   */
  committed(since: number): Promise<void> | undefined {
    if (this.#failedUpTo > since && this.#failedUpTo > this.#healedUpTo) {
      // Something the caller's output may depend on was lost (and not written again since): it
      // must not be acknowledged.
      return Promise.reject(this.#failure);
    }
    // Not healed by a rewrite: the refused part went to no store at all. (A caller's mark is
    // newer at its next write, so this refuses only what was journaled before the refusal.)
    if (this.#refusedUpTo > since) return Promise.reject(this.#refusal);
    if (this.#committed >= this.#emitted) return undefined;
    const target = this.#emitted;
    if (this.#pending !== undefined && this.#pendingFor >= target) {
      return this.#takes ? this.#answer(this.#pending, since) : this.#pending;
    }
    this.#apply();
    // A hold that ran out has asked for this commit already, in `#apply`.
    if (this.#pendingFor >= target) {
      return this.#takes ? this.#answer(this.#pending!, since) : this.#pending!;
    }
    this.#release();
    const largest = this.#largest;
    this.#largest = 0;
    const failedUpTo = this.#failedUpTo;
    const sessions = this.#sessions;
    const sessionsFrom = this.#sessionsFrom;
    this.#sessions = [];
    this.#sessionsFrom = this.#emitted;
    const pending = this.#store.commit().then(() => {
      // An earlier write failed meanwhile (a store writing in the background reports it before
      // a later one settles): what this commit covers may have been in it.
      if (this.#failedUpTo !== failedUpTo) throw this.#failure;
      this.#kept(target);
    }, (error) => {
      if (error instanceof StoreError && error.kind === "taken") {
        // Applied but for the sessions other nodes write: the rest is stored. Refused: what
        // was journaled up to the last mutation of those sessions.
        this.#kept(target);
        this.#fail(error, refusedMark(error, sessions, sessionsFrom, target), largest);
      } else this.#fail(error, target, largest);
      throw error;
    });
    // A caller may have gone (its connection aborted) by the time it settles.
    pending.catch(() => {});
    this.#pending = pending;
    this.#pendingFor = target;
    return this.#takes ? this.#answer(pending, since) : pending;
  }

  /**
   * A commit's promise as a caller whose mark is `since` gets it: a refusal for sessions other
   * nodes write (`taken`) that covered nothing journaled after `since` is no failure of its
   * output (its part is stored). Else every waiter of a group commit (innocent publishers,
   * 3.1.1 ones closed) shared the refusal of one moved session's part.
   */
  #answer(pending: Promise<void>, since: number): Promise<void> {
    const answer = pending.catch((error) => {
      if (error instanceof StoreError && error.kind === "taken" && this.#refusedUpTo <= since) {
        return;
      }
      throw error;
    });
    // As `pending`: a caller may have gone, or asked only to start the commit.
    answer.catch(() => {});
    return answer;
  }

  /**
   * While the store is failing, and once the back-off has passed, tries a write as large as the
   * largest message that failed; the outage ends when it works. The broker's sweep calls it.
   *
   * @param now the time, ms, by the writer's clock (`StoreWriterOptions.now`)
   * @returns `undefined` when no probe is due, else whether the probe's write worked
   */
  probe(now: number = this.#now()): Promise<boolean> | undefined {
    if (this.#probing || !this.#outage.probeDue(now)) return undefined;
    this.#probing = true;
    const written = this.#renew === undefined
      ? this.#probeWrite()
      : this.#renew().then(() => this.#probeWrite());
    return written.then(() => {
      this.#recovered();
      return true;
    }, (error) => {
      if (!this.#counted(error)) {
        this.#failures++;
        this.#failuresNow++;
      }
      this.#failure = error;
      this.#outage.probeFailed(this.#now());
      return false;
    }).finally(() => this.#probing = false);
  }

  /** The probe's write, then the rewrite once it works. */
  #probeWrite(): Promise<void> {
    const payload = new Uint8Array(this.#outage.probeBytes);
    const message = { topic: PROBE_TOPIC, payload, qos: 0, retain: false } as const;
    this.write({ type: "putMessage", id: PROBE_ID, message });
    this.#apply();
    this.#release();
    const target = this.#emitted;
    // Whoever else's batches share this write asks for its own commit and learns of a failure
    // there: the probe holds nothing anybody waits for.
    return this.#store.commit().then(() => {
      this.#kept(target);
      return this.#rewrite === undefined ? undefined : this.#writeAfresh();
    }, (error) => {
      this.#lost(target);
      throw error;
    });
  }

  /**
   * See {@linkcode CommitGate.stored}.
   *
   * @param clientId the publisher's client id
   * @param packetId the packet id its session holds
   * @returns `undefined` when stored, else the rewrite's promise
   */
  stored(clientId: string, packetId: number): Promise<void> | undefined {
    if (this.#unstored.get(clientId)?.has(packetId) !== true) return undefined;
    return this.#afresh();
  }

  /**
   * See {@linkcode CommitGate.rewritten}.
   *
   * @returns `undefined` without an outage or a rewrite, else the rewrite's promise
   */
  rewritten(): Promise<void> | undefined {
    if (this.#rewrite === undefined || !this.#outage.down) return undefined;
    return this.#afresh();
  }

  #afresh(): Promise<void> {
    if (this.#rewritten === undefined) {
      this.#rewritten = Promise.withResolvers();
      // Its connection may be gone by the time the broker closes.
      this.#rewritten.promise.catch(() => {});
    }
    return this.#rewritten.promise;
  }

  /**
   * The store is behind memory after an outage (writes were lost meanwhile): the whole state is
   * journaled again behind a `clear` (`store_rewrite.ts`) and written as one batch.
   */
  #writeAfresh(): Promise<void> {
    this.#apply();
    this.#rewrite!();
    let written: Promise<void>;
    if (this.#store.rewrite === undefined) {
      this.#apply();
      this.#release();
      written = this.#store.commit();
    } else {
      // In pieces of bounded size, atomic as a whole (a file with room for the state has room
      // for its rewrite).
      this.#release();
      const batch = this.#batch;
      this.#batch = [];
      written = this.#store.rewrite(batch);
    }
    const target = this.#emitted;
    return written.then(() => {
      this.#kept(target);
      // Failures before are healed: callers whose output depends on them need not be refused.
      this.#healedUpTo = target;
    }, (error) => {
      this.#lost(target);
      throw error;
    });
  }

  /** The outage is over: logged, the ids whose write failed are stored. */
  #recovered(): void {
    if (this.#outage.recovered()) {
      this.#log.warning(
        `Writes to the store ${this.#store.location} work again ` +
          `(${this.#failuresNow} failed write(s) meanwhile); accepting QoS 1 and 2 publishes`,
      );
    }
    if (this.#rewrite === undefined) return;
    this.#unstored.clear();
    this.#rewritten?.resolve();
    this.#rewritten = undefined;
  }

  /** A write covering the mutations up to mark `to` worked. */
  #kept(to: number): void {
    if (to > this.#committed) this.#committed = to;
    const inbound = this.#inbound;
    let n = 0;
    while (n < inbound.length && inbound[n]!.at <= to) n++;
    if (n > 0) inbound.splice(0, n);
  }

  /** A write covering the mutations up to mark `to` failed: what it held is not stored. */
  #lost(to: number): void {
    if (to > this.#failedUpTo) this.#failedUpTo = to;
    if (this.#rewrite === undefined) return;
    const inbound = this.#inbound;
    let n = 0;
    for (; n < inbound.length && inbound[n]!.at <= to; n++) {
      const { clientId, packetId } = inbound[n]!;
      let ids = this.#unstored.get(clientId);
      if (ids === undefined) this.#unstored.set(clientId, ids = new Set());
      ids.add(packetId);
    }
    if (n > 0) inbound.splice(0, n);
  }

  /**
   * Writes what is pending and closes the store. Failures are logged.
   */
  async close(): Promise<void> {
    this.#rewritten?.reject(new Error("the broker closed before the store was written again"));
    this.#rewritten = undefined;
    this.#closing = true;
    this.#apply();
    this.#release();
    clearTimeout(this.#holdTimer);
    this.#holdTimer = undefined;
    try {
      await this.#store.close();
    } catch (error) {
      if (error instanceof StoreError && (error.kind === "fenced" || error.kind === "taken")) {
        // A cluster node that left (or was reaped) first, or whose sessions (some of them) were
        // taken by other nodes meanwhile: those sessions are other nodes' now.
        this.#log.info(
          "The last changes were not written to the shared store: the sessions they were for continue on other nodes",
        );
        return;
      }
      this.#log.error(`Cannot write the last changes to the store: ${errorText(error)}`);
    }
  }

  #apply(): void {
    this.#scheduled = false;
    if (this.#batch.length === 0) return;
    const batch = this.#batch;
    this.#batch = [];
    // Not during an outage: a held batch would share the write of the next probe, as large as
    // what failed, and fail with it.
    if (this.#holdMs > 0 && !this.#outage.down && !this.#closing) {
      // Until a commit is asked for (the batches stay apart: a message is kept only when a
      // delivery in its own batch refers to it).
      const now = this.#now();
      if (this.#held.length === 0) this.#heldAt = now;
      this.#held.push(batch);
      if (now - this.#heldAt >= this.#holdMs) {
        // Held long enough: through a commit, as the timer does.
        this.committed(this.#emitted);
        return;
      }
      this.#holdTimer ??= setTimeout(this.#releaseBound, this.#holdMs * IDLE_HOLD_FACTOR);
      return;
    }
    // After what was held before, in order.
    this.#release();
    this.#applyToStore(batch);
  }

  /** Hands the held batches to the store, for the write at the end of this turn. */
  #release(): void {
    // The timer stays armed (it then finds nothing held): one timer per hold period, not one
    // set and cleared per commit.
    if (this.#held.length === 0) return;
    const held = this.#held;
    this.#held = [];
    for (const batch of held) this.#applyToStore(batch);
  }

  #applyToStore(batch: StoreMutation[]): void {
    try {
      this.#store.apply(batch);
      // Nothing journaled before is still to be handed over, unless the rewrite is being handed
      // over (then what it covers counts as applied: at worst more is counted as lost).
      this.#applied = this.#emitted;
    } catch (error) {
      // A malformed mutation is a bug; the batch is not applied, so nothing it covers may be
      // acknowledged.
      this.#fail(error, this.#emitted, 0);
    }
  }

  /**
   * A write failed: logged when it starts an outage; within one, only counted (publishers keep
   * trying, and each try would repeat the line).
   */
  #fail(error: unknown, to: number, largest: number): void {
    if (error instanceof StoreError && error.kind === "fenced") {
      // No outage: the write was refused because this cluster node was taken for dead and its
      // sessions moved to other nodes; nothing of it is stored, and the cluster closes the
      // clients it concerned (`ClusterLink`). The commit's waiters learn it from its rejection.
      this.#failures++;
      return;
    }
    if (error instanceof StoreError && error.kind === "taken") {
      // No outage either: the write was applied but for the sessions another cluster node
      // writes now (it took them while this one still held them; `ClusterLink` lets go of
      // them). What it carried for them, a message queued for a subscriber, is stored nowhere:
      // its publisher gets no PUBACK/PUBREC (the commit's waiters learn it from its rejection,
      // later callers from `committed`) and sends it again, to where the session is now.
      if (to > this.#refusedUpTo) {
        this.#refusedUpTo = to;
        this.#refusal = error;
      }
      return;
    }
    if (this.#counted(error)) {
      // The store reported it as it failed (`#writeFailed`): only what this commit covered.
      this.#lost(to);
      this.#outage.failed(this.#now(), largest);
      return;
    }
    this.#failures++;
    this.#failure = error;
    this.#lost(to);
    if (!this.#outage.failed(this.#now(), largest)) {
      this.#failuresNow++;
      return;
    }
    this.#failuresNow = 1;
    this.#log.error(
      `Cannot write to the store ${this.#store.location}: ${errorText(error)}; ` +
        "refusing QoS 1 and 2 publishes until writes work again",
    );
  }

  /**
   * The store reported a failed write (`BrokerStore.reportFailures`), before the commits waiting
   * for it settle, whether or not any does: a failed write followed by one that works would
   * otherwise go unnoticed, and the commit of the later one would count everything applied
   * before as stored. It is a failed commit covering everything handed to the store so far.
   */
  #writeFailed(error: unknown): void {
    // Close logs its own failure; no outage starts as the broker stops.
    if (this.#closing) return;
    // What was committed before is gone, not refused: nothing of it is unstored in memory, and
    // the outage's rewrite writes it again. Writes after the loss fail on their own.
    const lost = error instanceof StoreError && error.kind === "lost";
    this.#fail(error, lost ? 0 : this.#applied, lost ? 0 : this.#largest);
    if (typeof error === "object" && error !== null) this.#reported.add(error);
  }

  /** Whether the failed write `error` tells of was counted already, as the store reported it. */
  #counted(error: unknown): boolean {
    return typeof error === "object" && error !== null && this.#reported.has(error);
  }
}

/** At most this many sessions of mutations kept for `taken` refusals (see `#sessions`). */
const MAX_SESSION_MARKS = 1 << 16;

/**
 * The mark up to which a commit refused for the sessions another node writes (`taken`) is
 * refused: that of the last of their mutations it carried (`sessions`, the session of each
 * mutation after the mark `from`), else its end (`to`).
 */
function refusedMark(
  error: StoreError,
  sessions: readonly (string | undefined)[],
  from: number,
  to: number,
): number {
  if (error.sessions === undefined) return to;
  const refused = new Set(error.sessions);
  for (let i = sessions.length - 1; i >= 0; i--) {
    if (refused.has(sessions[i]!)) return from + i + 1;
  }
  // None of this commit's (carried by an earlier one): all of it, to be safe.
  return to;
}

/**
 * Persistent sessions that move between cluster nodes. Every node keeps its persistent sessions in
 * one store shared by the cluster (`RedisStore`, the same contract as the SQLite and memory
 * stores), and a session has one owner at a time (`ClusterBus.claim`). When a client connects to
 * a node that does not hold its session:
 *
 * 1. before its login is decided, the node reads the session and claims it in one Redis call
 *    (`ClusterBus.claimRead`); a session with subscriptions is read only by that call: the node
 *    announces its filters and keeps what other nodes forward to it from then on, then claims the
 *    session with a read again. The previous owner gets a takeover notice, reads what other
 *    nodes forwarded to it until then (those publishers were acknowledged), closes the old
 *    connection (0x8E at 5.0), drops the session from memory **without** writing its end to the
 *    store (`BrokerCore.evict` with `handOver`), waits until everything it wrote of the session
 *    is committed, and answers with a `handoff` frame that says, per origin node, the last
 *    message it had routed (`MessageFrame.order`);
 * 2. the new node waits for that answer, or, when the previous owner died, until its liveness key
 *    has expired (a dead node writes nothing more);
 * 3. it loads that one session from the store (`RedisStore.loadSession`: subscriptions, window,
 *    queue, inbound QoS 2 ids, will, expiry) into its core, and declares its interest; the login
 *    then finds the session there, as after a restart: session present, in-flight messages resent
 *    with DUP, PUBREL resent, the queue delivered. The messages kept since step 1 that came
 *    later than the previous owner's marks go to the session next (the others are in its store
 *    already): interest overlaps during the move, so a message published on a third node then
 *    reaches the session once (see ARCHITECTURE.md, "Persistent sessions move").
 *
 * A clean start discards the loaded session like any other (its deletion is written to the store).
 *
 * A chain of moves (a login on a third node claims the session while this node's login still
 * waits for its previous owner's handoff, or reads it) goes one move at a time: this node restores
 * the session first, with what its previous owner wrote last and what it kept for it, then hands
 * it on; its own login is refused as server busy (see `#handOn`).
 *
 * When a node dies or leaves, the persistent sessions it owned are adopted: one other node per
 * session (`ClusterBus.adopt`, which also hands it the will kept for a client that was connected
 * there) loads it from the store and declares its interest, so that messages published meanwhile
 * are queued for it as on one broker until its client comes back, anywhere.
 * Message ids: the nodes write messages into one store, so each takes blocks of ids from one Redis
 * counter (`RedisStore.reserveMessageIds`), a new block when half of the current one is used.
 *
 * @module
 */

import { type ClusterBus, isFencedError } from "../cluster/cluster_bus.ts";
import type { RedisStore } from "../cluster/redis_store.ts";
import { background } from "../cluster/_background.ts";
import type { StoredState } from "../store/stored_state.ts";
import type { MessageRecord } from "../store/message_record.ts";
import type { StoreMutation } from "../store/mutation.ts";
import type { MessageFrame } from "../cluster/bus_frame.ts";
import type { Session, SessionSubscription } from "./session.ts";
import type { BrokerCore } from "./core.ts";
import type { Logger } from "./policy.ts";
import { errorText } from "./_error_text.ts";
import { HeldShares } from "./_held_shares.ts";
import type { ShareChoice } from "../cluster/share_chooser.ts";
import type { Refused } from "./policy.ts";
import { ReasonCode } from "../packet/constants.ts";

/** Message ids reserved at a time. */
const ID_BLOCK = 2 ** 24;
/** How often a node waiting for a handoff looks whether the previous owner died. */
const ALIVE_POLL_MS = 250;
/**
 * The longest a login waits for Redis to claim or read a session: a slow Redis must not hold
 * logins much longer than a slow plugin would (the client then gets what this node has).
 */
const REDIS_WAIT_MS = 1000;
/** The most messages kept for one session while it moves here (a bound, not expected). */
const MAX_KEPT = 100_000;
/** How long a departed node's dead stream is kept (the bus's reaping script), ms. */
const DEAD_STREAM_MS = 600_000;
/** The longest pause between tries of reading a departed node's streams, ms. */
const DEAD_RETRY_MAX_MS = 5000;

/**
 * The longest a login waits for Redis, while it is connected, to read or to claim the client's
 * session (a slow Redis), or for the next part of a session read in parts (a long queue: the
 * read as a whole takes as long as its parts take, `withinSteps`): the session is here before
 * the CONNACK. Past it the login is refused as server busy (see {@linkcode SESSION_BUSY}). The whole preparation is
 * bounded by the core's `prepareTimeout` (`loginPreparationTimeout` in `cluster_policy.ts`: the
 * handoff wait and room for two of these steps).
 */
const LOGIN_WAIT_MS = 4000;

/**
 * A login whose stored session could not be read or claimed within {@linkcode LOGIN_WAIT_MS}:
 * going on with an empty session would replace a persistent one silently, against resuming
 * "based on state from the current Session" [MQTT-3.1.2-4] (5.0: [MQTT-3.1.2-5]). Refused instead,
 * 0x89 Server busy (3.1.1: return code 3, server unavailable), with Session Present 0
 * [MQTT-3.2.2-4] [MQTT-3.2.2-6] and the connection closed [MQTT-3.2.2-5] [MQTT-3.2.2-7]; the
 * client tries again.
 */
const SESSION_BUSY: Refused = busy("Redis did not answer in time");

/**
 * The same refusal for a login this node cannot serve now for another reason, said in its
 * reason string (5.0) and log.
 */
function busy(why: string): Refused {
  return {
    allowed: false,
    reasonCode: ReasonCode.SERVER_BUSY,
    reasonString: `session not loaded: ${why}`,
  };
}

/** Refused while this node, taken for dead, registers again (its claims are fenced meanwhile). */
const REJOINING_BUSY: Refused = busy("this node is joining the cluster again");

/**
 * Refused as another node claimed the session while this node waited, in vain, for its previous
 * owner's handoff, or while it read the session: the client's next try claims it from that node,
 * which hands it over.
 */
const CLAIMED_AWAY_BUSY: Refused = busy("another node claimed the session meanwhile");

/**
 * What a preparation of a session brought here for no login of its client answers when another
 * node holds it (`prepare` with `unowned`): not taken from that node (see `#keep`).
 */
const HELD_ELSEWHERE: Refused = busy("another node holds the session");

/** Refused as its claim was made before this node was taken for dead (the adopter has it). */
const STEPPED_DOWN_BUSY: Refused = busy("this node was taken for dead while it loaded the session");

/**
 * A login resuming a session whose load failed as Redis was lost meanwhile (its claim may have
 * gone through): refused as with {@linkcode SESSION_BUSY}. (A login that finds Redis away before
 * anything was asked is served with a provisional session instead: see
 * {@linkcode ClusterSessions.provisional}.)
 */
const SESSION_AWAY: Refused = busy("Redis is unreachable");

/**
 * A login resuming a session whose stored rows cannot be read (not JSON, a record truncated, a
 * filter the subscription tree refuses: written by another release, or by hand): refused, the
 * rows left as they are for an operator to look at (the log names the problem), the node serving
 * its other clients.
 */
const SESSION_UNREADABLE: Refused = busy("its stored session cannot be read");

/** Whether a load failed on the rows it read rather than on Redis: their decoding threw. */
function unreadable(error: unknown): boolean {
  return error instanceof SyntaxError || error instanceof RangeError || error instanceof TypeError;
}

/** Redis did not answer within the time given (see {@linkcode within}). */
class NoAnswerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NoAnswerError";
  }
}

/** `promise`, or a rejection after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new NoAnswerError(`${what}: no answer from Redis in ${ms} ms`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * `read(step)`, or a rejection once `ms` pass without a step: a read in parts (a long queue, some
 * 50 round trips for 100,000 entries, seconds on a busy machine) making progress is not stuck,
 * and bounded as a whole it would refuse such a login on every try, the client never resuming
 * its session. Each part must come within `ms`; each part also calls `progress` (the core's
 * `progressed`), so that the login's bound, the core's `prepareTimeout`, counts from the last
 * part too: a read of millions of entries outlasts it, moving all along.
 */
async function withinSteps<T>(
  read: (step: () => void) => Promise<T>,
  ms: number,
  what: string,
  progress?: () => void,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stuck = Promise.withResolvers<never>();
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(
      () => stuck.reject(new NoAnswerError(`${what}: no answer from Redis in ${ms} ms`)),
      ms,
    );
  };
  const step = () => {
    arm();
    progress?.();
  };
  try {
    arm();
    return await Promise.race([read(step), stuck.promise]);
  } finally {
    clearTimeout(timer);
  }
}

/** Options of {@linkcode ClusterSessions}. */
export interface ClusterSessionsOptions {
  /** The node's bus. */
  bus: ClusterBus;
  /** The store the nodes share. */
  store: RedisStore;
  /** The node's core. */
  core: BrokerCore;
  /** Runs the actions a call into the core queued. */
  run: () => void;
  /** Where to log. */
  logger: Logger;
  /** Resolves when everything the core journaled so far is committed (`undefined`: it is). */
  committed: () => Promise<void> | undefined;
  /** The longest wait for a previous owner's handoff, ms (a dead node's key expires by then). */
  maxWait: number;
  /** Declares a session's interest on the bus (after it was loaded here). */
  declare: (clientId: string) => void;
  /** Withdraws the interest of a session that left this node (no event says so). */
  withdraw: (clientId: string) => void;
  /** Announces a filter ahead of a session's arrival: settled when the other nodes were told. */
  announce: (filter: string) => Promise<unknown> | undefined;
  /** Writes a mutation to the store with what the core journals in this turn. */
  write: (mutation: StoreMutation) => void;
  /** How many mutations were written so far (the store writer's count). */
  journaled: () => number;
  /**
   * Routes a message another node had been sent and may not have stored, to `sessions` only
   * (sessions adopted from that node); without `sessions`, a message held for shared groups, to
   * those groups.
   */
  replay: (frame: MessageFrame, sessions?: ReadonlySet<unknown>) => void;
  /** Publishes a will taken over from a node that died. */
  publishWill: (clientId: string, will: MessageRecord, why: string) => void;
}

/** An empty state that only moves the core's message ids to `next`. */
function idsFrom(next: number): StoredState {
  return {
    sessions: [],
    messages: new Map(),
    nextMessageId: next,
    retained: [],
    counters: new Map(),
    dueWills: [],
  };
}

/**
 * Whether stream entry `id` comes after a departed node's read mark: it was forwarded to that
 * node and not stored by it.
 *
 * @param id the entry id (`ms-seq`)
 * @param mark the last entry the node stored what it read of: `[ms, seq]`
 */
function pastMark(id: string, [markMs, markSeq]: readonly [number, number]): boolean {
  const [ms, seq] = id.split("-").map(Number) as [number, number];
  return ms > markMs || (ms === markMs && seq > markSeq);
}

/**
 * A login here that claims a session, as a takeover from another node sees it
 * ({@linkcode ClusterSessions.takenOver}): a chain of moves hands the session on through it.
 */
interface Move {
  /** The previous owner its claim named, once answered (`undefined`: none, or no claim made). */
  previous: Promise<string | undefined>;
  /** Settled when the login's preparation is over. */
  done: Promise<void>;
  /** Set while a takeover waits for the login to restore the session here, to hand it on. */
  handOn: boolean;
}

/** A departed node's stream entries, and the last entry it stored what it read of (ms, seq). */
interface DeadStream {
  entries: { id: string; frame: MessageFrame }[];
  mark: [number, number];
  /** Origin node → the `order` up to which the departed node had stored its messages. */
  stored: Record<string, number>;
}

/** Moves persistent sessions between nodes through the shared store (see the module doc). */
export class ClusterSessions {
  readonly #o: ClusterSessionsOptions;
  /** Work started in the background failed unexpectedly (a bug, or data it could not use). */
  readonly #fault = (what: string, error: unknown): void => {
    this.#o.logger.error(`Cluster: ${what} failed: ${errorText(error)}`);
  };
  /**
   * Logins waiting for a previous owner's handoff, by client id: told of each handoff frame for
   * the client (the node that sent it, its marks), and woken with no node when this node closes.
   */
  readonly #waiting = new Map<
    string,
    (node: string | undefined, marks?: Record<string, number>) => void
  >();
  /** Messages other nodes forwarded here while a session moves here, by client id. */
  readonly #moving = new Map<string, MessageFrame[]>();
  /** Messages for the shared groups of sessions on their way here, by the same keys. */
  readonly #held = new HeldShares();
  /** Origin node → the highest `order` of its messages read here (routed to the sessions here). */
  readonly #seen = new Map<string, number>();
  /** Adoptions under way, by client id: a takeover waits for them. */
  readonly #adopting = new Map<string, Promise<void>>();
  /**
   * Handovers under way (`takenOver`), by client id: an adoption started after one waits for it
   * (see {@linkcode adoptAll}). Each waits only for the other that started first: no cycle.
   */
  readonly #handing = new Map<string, Promise<void>>();
  /**
   * Preparations under way, by client id: one of the same client id waits for them. Two at once
   * would each listen for the handover (the second taking the first's place) and the second,
   * claiming from this node itself, would restore the session as read before the handover.
   */
  readonly #preparing = new Map<string, Promise<Refused | undefined>>();
  /**
   * Client ids whose session another node claimed from this one while a login here prepared it
   * (`takenOver`): the session was handed over with nothing in the core, so the login, once its
   * read is done, restores it only if this node owns it still.
   */
  readonly #takenWhilePreparing = new Set<string>();
  /** The login here claiming each client's session, while it prepares (see {@linkcode Move}). */
  readonly #moves = new Map<string, Move>();
  /** Ownership being given back after a busy refusal, by client id ({@linkcode #giveBack}). */
  readonly #givingBack = new Map<string, Promise<void>>();
  #blockEnd = 0;
  /** The store writer's count at the last read mark. */
  #markedAt = -1;
  /** Origin node → the `order` last written with a read mark (see {@linkcode #read}). */
  readonly #storedOrders = new Map<string, number>();
  #reserving = false;
  #closed = false;
  /**
   * Stream entries read while deliveries wait on a receive authorization, with the number of the
   * last authorization asked by then: marked read once those are answered.
   */
  readonly #undecided: { id: string; asked: number }[] = [];
  /** Adoptions so far (each keeps what arrives under its own key in `#moving`). */
  #adoptions = 0;
  #adopted = 0;
  /** Sessions of departed nodes adopted here so far (for `$SYS` and `/metrics`). */
  get adopted(): number {
    return this.#adopted;
  }
  /** Pauses between tries (a dead stream's read, an adoption script), ended by {@linkcode close}. */
  readonly #pauses = new Set<() => void>();
  /**
   * This node stepped down ({@linkcode steppedDown}: it was taken for dead, and every session it
   * had is on other nodes now) and is not ready again yet: what it has is nothing of a session.
   */
  #rejoining = false;
  /** Step-downs so far: a login that saw one while it prepared made its claim as a reaped node. */
  #stepDowns = 0;
  /**
   * Clients that started clean here while Redis was away, their session not held here: what
   * Redis or another node holds of it is to be discarded once Redis is back (see
   * {@linkcode reclaimClean}).
   */
  readonly #startedClean = new Set<string>();
  /**
   * Clients served here with a provisional session (see {@linkcode provisional}): resuming a
   * session this node did not hold, while Redis was away.
   */
  readonly #provisional = new Set<string>();
  /**
   * Per provisional session, when it began on Redis's clock (`ClusterBus.redisNow`): a session of
   * its client that began in Redis at or after it is a newer one, which its subscriptions do not
   * go into (`ClusterBus.pendSubscriptions`).
   */
  readonly #provisionalSince = new Map<string, number>();

  /** @param options bus, store, core and callbacks */
  constructor(options: ClusterSessionsOptions) {
    this.#o = options;
    options.bus.on("state", ({ state }) => {
      if (state === "ready") this.#rejoining = false;
    });
    options.bus.on("handoff", ({ clientId, node, marks }) => {
      this.#waiting.get(clientId)?.(node, marks);
    });
    options.bus.on("read", ({ id }) => this.#readUpTo(id));
    // What it read and has not stored stays in its stream, for whoever takes its sessions.
    options.bus.keepUntilStored();
  }

  /**
   * Reserves the first block of message ids; call once, before any connection.
   *
   * @returns settled when the core's ids continue in the block
   * @throws {StoreError} (as a rejection) If Redis cannot be reached.
   */
  async start(): Promise<void> {
    await this.#reserve();
    // Sessions no node owns (the whole cluster was stopped) are adopted as after a node left:
    // messages for them are queued from now on. In the background: clients may connect meanwhile.
    background(
      Promise.all([this.#o.store.sessionIds(), this.#o.bus.ownedSessions()]).then(
        ([ids, owned]) =>
          this.adoptAll(ids.filter((id) => !owned.has(id)), "no node had its session"),
        (error) =>
          this.#o.logger.warning(`Cluster: cannot list the stored sessions: ${errorText(error)}`),
      ),
      "the adoption of the sessions no node had",
      this.#fault,
    );
  }

  /**
   * A client is about to log in here: when its session is kept by another node or only in the
   * store, it is brought here first (see the module doc). Never rejects. A login that asked to
   * resume a session this node does not hold while Redis is away goes on with a provisional
   * session ({@linkcode provisional}); one whose session could not be loaded is refused: Redis lost
   * meanwhile ({@linkcode SESSION_AWAY}), failing, or not answering in time
   * ({@linkcode LOGIN_WAIT_MS}, {@linkcode SESSION_BUSY}); this node claims only a session it
   * loaded or the store showed does not exist. A clean start waits 1 s at most for each step and
   * goes on with a new session (its stored session is discarded anyway; Redis pausing writes
   * during a failover must not refuse it). Logins of one client id are prepared one after the
   * other.
   *
   * @param clientId the client id
   * @param resume whether the client asked to resume its session (Clean Start 0)
   * @param options `progress`: called as each part of a long session read comes (the core's
   *   `progressed`: the login's bound counts from the last part); `unowned`: the session is
   *   brought here for no login of its client (`#keep`),
   *   only when no other node owns it (`ClusterBus.claimReadUnowned`)
   * @returns settled when the login may be decided: `undefined`, or the refusal to answer it with
   */
  prepare(
    clientId: string,
    resume = true,
    options: { unowned?: boolean; progress?: () => void } = {},
  ): Promise<Refused | undefined> {
    const unowned = options.unowned ?? false;
    const progress = options.progress;
    const before = this.#preparing.get(clientId);
    const run = before === undefined
      ? this.#prepare(clientId, resume, unowned, progress)
      : before.then(() => this.#prepare(clientId, resume, unowned, progress));
    this.#preparing.set(clientId, run);
    const done = () => {
      if (this.#preparing.get(clientId) === run) this.#preparing.delete(clientId);
    };
    run.then(done, done);
    return run;
  }

  /**
   * Whether a login of the client is being prepared here (its session read, claimed, or waited
   * for): the session is not in the core yet, but this node's claim is to stand.
   *
   * @param clientId the client id
   * @returns true while {@linkcode prepare} runs for it
   */
  loading(clientId: string): boolean {
    return this.#preparing.has(clientId);
  }

  async #prepare(
    clientId: string,
    resume: boolean,
    unowned: boolean,
    progress: (() => void) | undefined,
  ): Promise<Refused | undefined> {
    const { bus, core, store } = this.#o;
    // Kept here already: this node owns it (a takeover elsewhere would have evicted it). While
    // Redis is away, those logins go on: the node serves its local clients meanwhile.
    await this.#adopting.get(clientId);
    await this.#givingBack.get(clientId);
    if (this.#provisional.has(clientId)) {
      if (!core.sessions.has(clientId)) {
        // It ended here (expired) before Redis was back: nothing of it to settle.
        this.#provisional.delete(clientId);
      } else if (!resume) {
        // A clean start discards the provisional session, and the session it stood in for
        // wherever it is: claimed as any clean start served while Redis was away.
        this.#provisional.delete(clientId);
        this.#startedClean.add(clientId);
      }
    }
    if (core.sessions.has(clientId) || this.#closed) return;
    if (!bus.ready) {
      // A clean start goes on (nothing stored is resumed) and claims the session when Redis is
      // back, discarding it then (`reclaimClean`); a login resuming a session this node does not
      // hold cannot know where it is: it is served with a provisional session, settled when
      // Redis is back (`settleProvisional`).
      if (!resume) {
        this.#startedClean.add(clientId);
        return;
      }
      if (this.#rejoining) {
        // Stepped down, the node may have registered again (its writes go through) before it is
        // ready: an empty session here would be written over the stored one, which is on another
        // node, and the client told to drop its own [MQTT-3.2.2-4]. It comes back once ready.
        this.#o.logger.warning(
          `Cluster: the login of ${clientId} is refused as server busy: this node is joining again`,
        );
        return REJOINING_BUSY;
      }
      this.#provisional.add(clientId);
      this.#provisionalSince.set(clientId, bus.redisNow());
      this.#o.logger.info(
        `Cluster: ${clientId} is served with a provisional session (Redis is unreachable): kept here, not stored, until Redis is back`,
      );
      return;
    }
    const stepDowns = this.#stepDowns;
    const claimed = Promise.withResolvers<string | undefined>();
    const over = Promise.withResolvers<void>();
    const move: Move = { previous: claimed.promise, done: over.promise, handOn: false };
    this.#moves.set(clientId, move);
    let claim: Promise<unknown> | undefined;
    const wait = resume ? LOGIN_WAIT_MS : REDIS_WAIT_MS;
    let kept: MessageFrame[] | undefined;
    this.#takenWhilePreparing.delete(clientId);
    try {
      // The read and the claim in one call (`ClusterBus.claimRead`), read after what this node
      // wrote so far: Redis claims the session unless it has subscriptions, whose filters are
      // announced first (below). The handoff may come before the call's reply: listened for now.
      const start = Date.now();
      const readable = store.readable();
      if (readable !== undefined) await within(readable, wait, "load");
      let answer = this.#listen(clientId);
      let call = unowned ? bus.claimReadUnowned(clientId) : bus.claimRead(clientId, true, !resume);
      claim = call;
      let read = await within(call, Math.max(1, wait - (Date.now() - start)), "claim");
      if (unowned && !read.claimed) {
        // Held by another node, whose client may be connected there now: not taken from it.
        this.#o.logger.info(
          `Cluster: the session of ${clientId} is held by node ${read.previous}: not brought here (its client may be connected there)`,
        );
        return HELD_ELSEWHERE;
      }
      let state = await this.#session(read.rows, wait, progress);
      if (!read.claimed) {
        // Interest overlaps while the session moves: its filters are announced here (and what
        // other nodes forward kept) before the previous owner lets go of it and withdraws them.
        const filters = state.sessions[0]?.subscriptions.map((s) => s.filter) ?? [];
        if (filters.length > 0) {
          kept = [];
          this.#moving.set(clientId, kept);
          this.#held.start(clientId, filters);
          await Promise.all(filters.map((filter) => this.#o.announce(filter)));
        }
        // Read again with the claim, atomically: what a previous owner wrote meanwhile is in it.
        answer = this.#listen(clientId);
        call = bus.claimRead(clientId, false, !resume);
        claim = call;
        read = await within(call, wait, "claim");
        state = await this.#session(read.rows, wait, progress);
      }
      const previous = read.previous;
      claimed.resolve(previous);
      const answered = answer(previous);
      let marks: Record<string, number> = {};
      let dead: DeadStream | undefined;
      let unread = false;
      if (previous !== undefined && previous !== bus.nodeId) {
        const handed = await this.#handedOver(answered, previous, clientId);
        if (handed === "dead") {
          // A chain of moves (this node claimed the session from `previous` before the node
          // `previous` claimed it from had handed over) whose middle node died: the node before
          // it in the chain still writes the session (its writer mark, HAND_OFF_SCRIPT) and sends
          // its handoff here too. Loaded before that, the session would miss its last writes,
          // refused once this node read it (a message its publisher had a PUBACK for).
          const writer = await within(bus.chainWriter(clientId, previous), REDIS_WAIT_MS, "owner")
            .catch(() => undefined);
          if (writer !== undefined) {
            this.#o.logger.info(
              `Cluster: node ${previous} died before handing the session of ${clientId} on; node ${writer} still writes it: waiting for its handoff`,
            );
            await this.#handedOver(answer(writer), writer, clientId);
          }
        }
        if (handed === "dead" && kept !== undefined) {
          // It died before handing over (not reaped yet): what it was sent and had not stored
          // is in its stream, and its read mark says which of the kept messages it stored.
          dead = await this.#deadStream(previous);
          unread = dead === undefined;
        } else if (handed === "late") {
          // No answer in time. The session may have been claimed from this node meanwhile: by the
          // previous owner, back from an outage, for a client that logged in there while it was
          // away (its claim made again at its resync, see ClusterLink's takeover), which then
          // holds the session; this node's takeover handling found nothing here to hand over.
          // Restored here too, the session would have two owners [MQTT-3.1.4-3].
          const owner = await within(bus.ownerOf(clientId), wait, "owner");
          if (owner !== bus.nodeId) {
            if (!resume) return;
            this.#o.logger.warning(
              `Cluster: the login of ${clientId} is refused as server busy: node ${owner} claimed its session meanwhile`,
            );
            return CLAIMED_AWAY_BUSY;
          }
        } else if (handed !== "dead") {
          marks = handed ?? {};
        }
        // Closing (its wait for the handoff cut short): not read. The read would make this node
        // the session's writer and end the chain of moves it is in (`LOAD_SESSION_SCRIPT`), so
        // that the node still writing it (the chain's first) has its last writes refused, and
        // the session's adopter, once this node has left, loads it without waiting for them.
        if (this.#closed) return;
        // What other nodes sent here before that point is read (and kept) before the session is
        // restored: a message they also wrote to the previous owner's stream, read here as
        // handled by it or as unread, would otherwise arrive after the move and be routed again.
        await bus.caughtUp(REDIS_WAIT_MS);
        if (this.#closed) return;
        state = await withinSteps(
          (onPart) => store.loadSession(clientId, Date.now(), { onPart }),
          wait,
          "load",
          progress,
        );
      }
      let handingOn: string | undefined;
      if (this.#takenWhilePreparing.has(clientId)) {
        // Claimed from this node while it read the session, or waited for its previous owner's
        // handoff (a login on a third node): that node loads and restores the session too, and
        // restored here as well it would have two owners [MQTT-3.1.4-3], each delivering its
        // queue. Unless this node's claim came last, the login is refused. The takeover waits
        // for this login (`#handOn`) when this node's claim came before that node's: the
        // session is then restored here all the same, with what the previous owner wrote last
        // and what this node kept for it, and handed on whole (a chain of moves).
        const owner = await within(bus.ownerOf(clientId), wait, "owner");
        if (owner !== bus.nodeId) {
          if (!resume) return;
          // Owned by nobody now (that node let go of it: it left, say), not restored here
          // either: restored and accepted, the session would be held here while owned by
          // nobody, or by the node adopting it meanwhile.
          if (!move.handOn || owner === undefined) {
            this.#o.logger.warning(
              `Cluster: the login of ${clientId} is refused as server busy: ${
                owner === undefined
                  ? "another node claimed its session and let go of it"
                  : `node ${owner} claimed its session`
              } while this node loaded it`,
            );
            return CLAIMED_AWAY_BUSY;
          }
          handingOn = owner;
        }
      }
      // Stored and owned by nobody (Redis lost the ownership with its data, say), the claim's
      // read marked this node as the session's writer (`CLAIM_SCRIPT`), so that the rewrite of a
      // node that had it before, cut off meanwhile, leaves it as read here rather than mixing its
      // rows with this node's writes [MQTT-3.1.2-4].
      if (core.sessions.has(clientId) || this.#closed) return;
      if (this.#stepDowns !== stepDowns) {
        // Claimed by the incarnation that was reaped since: the session went to the node that
        // adopted it, and restored here too it would have two owners.
        if (!resume) return;
        this.#o.logger.warning(
          `Cluster: the login of ${clientId} is refused as server busy: this node was taken for dead while it loaded the session`,
        );
        return STEPPED_DOWN_BUSY;
      }
      if (state.sessions.length === 0 && state.dueWills.length === 0) {
        return handingOn === undefined ? undefined : CLAIMED_AWAY_BUSY;
      }
      core.restore(state, Date.now());
      this.#o.run();
      if (state.sessions.length > 0) {
        const session = core.sessions.get(clientId);
        if (kept !== undefined && session !== undefined) {
          if (dead !== undefined) {
            this.#replayDead(previous!, dead, kept, new Set([session]));
          } else {
            this.#deliverKept(kept, marks, session);
            if (unread) this.#replayLate(clientId, previous!, session, kept);
          }
        }
        this.#o.declare(clientId);
        // What a provisional session that gave way left for it in Redis (`#keep`).
        if (resume) await this.#applyPending(clientId, "");
        this.#o.logger.info(
          `Cluster: session of ${clientId} loaded from the shared store${
            previous !== undefined && previous !== bus.nodeId ? ` (was on node ${previous})` : ""
          }`,
        );
      }
      if (handingOn !== undefined) {
        this.#o.logger.warning(
          `Cluster: the login of ${clientId} is refused as server busy: node ${handingOn} claimed its session while this node loaded it (restored here to be handed on)`,
        );
        return CLAIMED_AWAY_BUSY;
      }
    } catch (error) {
      // Not loaded (Redis slow, or lost meanwhile, or the claim refused as this node's
      // incarnation was reaped: the session is on another node): a login resuming its session is
      // refused, and a claim sent is given back once answered (it may go through when Redis is
      // back). What the claim's read answers, late or not read to its end, nobody reads: the
      // mark of a long queue's read in parts by a reader that is not the writer is deleted (a
      // claim's read, by the session's writer, makes none: `RedisStore.discardRead`).
      if (claim !== undefined) claim = this.#discardRead(claim);
      if (resume && !this.#closed) {
        this.#o.logger.warning(
          `Cluster: cannot load the stored session of ${clientId} (${
            errorText(error)
          }): its login is refused as server busy`,
        );
        if (claim !== undefined) this.#giveBack(clientId, claim);
        if (isFencedError(error)) return REJOINING_BUSY;
        if (unreadable(error)) return SESSION_UNREADABLE;
        return error instanceof NoAnswerError && bus.ready ? SESSION_BUSY : SESSION_AWAY;
      }
      this.#o.logger.warning(
        `Cluster: cannot load the stored session of ${clientId} (${
          errorText(error)
        }): it continues with what this node has`,
      );
    } finally {
      // Logins of one client are prepared one at a time: this one's, if any.
      claimed.resolve(undefined);
      if (this.#moves.get(clientId) === move) this.#moves.delete(clientId);
      over.resolve();
      this.#waiting.delete(clientId);
      this.#takenWhilePreparing.delete(clientId);
      if (kept !== undefined && this.#moving.get(clientId) === kept) {
        this.#moving.delete(clientId);
        this.#routeHeld(clientId);
      }
    }
  }

  /**
   * A claim with its read whose rows nobody reads: settled once answered (or failed), the mark
   * of a long queue's read in parts, if any, deleted (`RedisStore.discardRead`).
   */
  #discardRead(claim: Promise<unknown>): Promise<unknown> {
    return claim.then(
      (read) => this.#o.store.discardRead((read as { rows: unknown[] }).rows),
      () => undefined,
    );
  }

  /** A session read with a claim, its load-time expiry's deletion (if any) written. */
  async #session(
    rows: unknown[],
    wait: number,
    progress: (() => void) | undefined,
  ): Promise<StoredState> {
    // Messages past the read's part are read after it, on the store's connection.
    // A long queue takes many parts: each is bounded, not the whole (`withinSteps`).
    const all = await withinSteps(
      (onPart) => this.#o.store.readRest(rows, { onPart }),
      wait,
      "load",
      progress,
    );
    const { state, committed } = this.#o.store.sessionFrom(all, Date.now());
    if (committed !== undefined) await within(committed, wait, "load");
    return state;
  }

  /**
   * Listens for the handoff of a session's previous owner, before its claim: the answer may come
   * before the claim's reply. Only the previous owner's answer counts: a node that was cut off
   * from Redis answers a takeover notice it missed when it is back (see `ClusterBus`'s resync),
   * which may be a move older than this one; taken for this one's, the session would be loaded
   * before its owner let go of it. The caller deletes its `#waiting` entry when done.
   *
   * @returns for the owner the claim named, its answer (`undefined` too when this node closes)
   */
  #listen(
    clientId: string,
  ): (previous: string | undefined) => Promise<Record<string, number> | undefined> {
    const heard = new Map<string, Record<string, number> | undefined>();
    let closing = false;
    let check = () => {};
    this.#waiting.set(clientId, (node, marks) => {
      if (node === undefined) closing = true;
      else heard.set(node, marks);
      check();
    });
    return (previous) =>
      new Promise((resolve) => {
        check = () => {
          if (closing) resolve(undefined);
          else if (previous !== undefined && heard.has(previous)) resolve(heard.get(previous));
        };
        check();
      });
  }

  /**
   * Whether a client started clean here while Redis was away, its session not held here: its
   * claim is to be made with {@linkcode reclaimClean}.
   *
   * @param clientId the client id
   * @returns whether it did (and its claim has not gone through since)
   */
  startedClean(clientId: string): boolean {
    return this.#startedClean.has(clientId);
  }

  /**
   * Forgets the clients that started clean here while Redis was away: called once the claims of
   * those still connected were made again (the session of a client gone meanwhile stays as Redis
   * has it: this node cannot order its clean start against what happened to the session since,
   * see ARCHITECTURE.md, "A clean start whose client is gone before Redis is back").
   */
  forgetStartedClean(): void {
    this.#startedClean.clear();
  }

  /**
   * The claim of a client that started clean here while Redis was away ({@linkcode startedClean}),
   * made again once Redis is back while it is still connected here: the session its clean
   * start discarded [MQTT-3.1.2-6] may be stored, and held by another node, which lets go of it at
   * this claim. Once that node handed it over (or died, or did not answer in time), what Redis
   * holds of it is deleted, or, when this node stores a session of its own for the client (a 5.0
   * one with an expiry), replaced by that session written whole (the store's rewrite after the
   * outage may have run before this claim and left the other node's rows). Before, the session
   * stayed stored,
   * and a later login anywhere resumed it. Runs as a login's preparation: the client's next login
   * waits for it.
   *
   * @param clientId the client id
   * @param will the client's will, kept with the claim (as {@linkcode ClusterBus.claim})
   * @returns the previous owner, when another node
   * @throws {Error} (as a rejection) If Redis is unreachable (tried again at the next resync)
   */
  reclaimClean(clientId: string, will?: MessageRecord): Promise<string | undefined> {
    const before = this.#preparing.get(clientId);
    const run = (before ?? Promise.resolve()).then(() => this.#reclaimClean(clientId, will));
    const settled = run.then(() => undefined, () => undefined);
    this.#preparing.set(clientId, settled);
    settled.then(() => {
      if (this.#preparing.get(clientId) === settled) this.#preparing.delete(clientId);
    });
    return run;
  }

  async #reclaimClean(clientId: string, will?: MessageRecord): Promise<string | undefined> {
    const { bus, core, store } = this.#o;
    this.#startedClean.delete(clientId);
    const answer = this.#listen(clientId);
    try {
      const previous = await bus.claim(clientId, will, true);
      const other = previous !== undefined && previous !== bus.nodeId;
      if (other) await this.#handedOver(answer(previous), previous, clientId);
      if (this.#closed) return undefined;
      if (core.rewriteSession(clientId)) {
        // A session of its own, stored (5.0, Session Expiry Interval above 0): written whole
        // now that this node owns it and the holder let go, in place of what Redis holds. The
        // store's rewrite after the outage may have run before this claim, and left the
        // holder's rows (it owned the session and wrote it last: `tg`); this node's writes since
        // went on top of them [MQTT-3.1.2-6].
        this.#o.run();
        this.#o.logger.info(
          `Cluster: the session of ${clientId}, which started clean here while Redis was away, is written whole in place of the one it discarded${
            other ? ` (node ${previous} handed it over)` : ""
          }`,
        );
        return other ? previous : undefined;
      }
      await store.deleteDiscarded(clientId);
      this.#o.logger.info(
        `Cluster: the session of ${clientId}, which started clean here while Redis was away, is discarded cluster-wide${
          other ? ` (node ${previous} handed it over)` : ""
        }`,
      );
      return other ? previous : undefined;
    } catch (error) {
      this.#startedClean.add(clientId);
      throw error;
    } finally {
      this.#waiting.delete(clientId);
    }
  }

  /**
   * Whether a client's session here is provisional: served while Redis was away to a login
   * resuming a session this node did not hold (Clean Start 0), which the node cannot tell from
   * one whose session lives on another node or only in the store. The core keeps it in memory
   * and journals nothing of it (`BrokerCore.provisional`): its subscriptions work here, messages
   * routed here are delivered, and nothing of it is claimed or written until Redis is back
   * ({@linkcode settleProvisional}). Served so, the client is told Session Present 0
   * [MQTT-3.2.2-2]: this node knows no session of it.
   *
   * @param clientId the client id
   * @returns whether its session is provisional
   */
  provisional(clientId: string): boolean {
    return this.#provisional.has(clientId);
  }

  /** The clients whose sessions are provisional, to settle once Redis is back. */
  provisionals(): string[] {
    return [...this.#provisional];
  }

  /**
   * Settles a provisional session ({@linkcode provisional}) once Redis is back: when no session of
   * the client exists cluster-wide (no other node owns one, the store holds none:
   * `ClusterBus.claimUnlessExists`, one atomic call), this node claims it and writes it whole
   * (`BrokerCore.storeSession`), and it is a session like any other from then on. Else it gives
   * way to the one that exists (`BrokerCore.giveWay`): its connection is closed with 0x89 Server
   * busy (3.1.1: closed), so that the client logs in again and resumes that session, and nothing
   * of the provisional one is written but its subscriptions, added to the session that exists
   * once brought here (`#keep`); the session that exists keeps everything acknowledged for it
   * [MQTT-3.1.2-4], and there is one owner [MQTT-3.1.4-3]. Runs as a login's preparation, after
   * an adoption of the client's session under way here: the client's next login waits for it.
   *
   * @param clientId the client id
   * @param will the client's will, kept with the claim (as {@linkcode ClusterBus.claim})
   * @returns `"stored"`, `"gaveWay"`, or `undefined` when the session is not provisional (any
   *   more) or this node closed
   * @throws {Error} (as a rejection) If Redis is unreachable: the session stays provisional, and
   *   is settled at the next resync
   */
  settleProvisional(
    clientId: string,
    will?: MessageRecord,
  ): Promise<"stored" | "gaveWay" | undefined> {
    const before = this.#preparing.get(clientId);
    const run = (before ?? Promise.resolve()).then(() => this.#settle(clientId, will));
    const settled = run.then(() => undefined, () => undefined);
    this.#preparing.set(clientId, settled);
    settled.then(() => {
      if (this.#preparing.get(clientId) === settled) this.#preparing.delete(clientId);
    });
    return run;
  }

  async #settle(clientId: string, will?: MessageRecord): Promise<"stored" | "gaveWay" | undefined> {
    const { bus, core } = this.#o;
    // An adoption of the client's session here under way (its node died meanwhile): the
    // provisional session gives way to the session adopted (`#adoptAll`).
    await this.#adopting.get(clientId);
    if (!this.#provisional.has(clientId) || this.#closed) return undefined;
    if (!core.sessions.has(clientId)) {
      this.#provisional.delete(clientId);
      return undefined;
    }
    // A will waiting for a delay: a login of the client anywhere before it is over, noted in
    // Redis from the give-way on, cancels it [MQTT-3.1.3-9].
    const session = core.sessions.get(clientId)!;
    const delayed = session.will !== undefined && session.willDelay > 0;
    const { claimed, owner } = await bus.claimUnlessExists(clientId, will, delayed);
    if (this.#closed) return undefined;
    if (claimed) {
      this.#provisional.delete(clientId);
      if (!core.sessions.has(clientId)) {
        // Ended here while the claim was made (expired): not this node's to keep.
        bus.release(clientId).catch(() => {});
        return undefined;
      }
      // Nothing to write of one that ends with its connection (5.0, Session Expiry Interval 0).
      core.storeSession(clientId);
      this.#o.run();
      this.#o.logger.info(
        `Cluster: the provisional session of ${clientId} is this node's: no session of it existed, claimed and written whole`,
      );
      return "stored";
    }
    const subscriptions = [...core.sessions.get(clientId)?.subscriptions.values() ?? []];
    // Left in Redis before the give-way (a rejection here leaves the session provisional, settled
    // again): the session that exists gets them wherever it is or goes (`#keep`).
    let holder = owner;
    let left: "left" | "newer" | "none" = "none";
    if (subscriptions.length > 0) {
      const since = this.#provisionalSince.get(clientId) ?? 0;
      ({ left, owner: holder } = await bus.pendSubscriptions(clientId, since, subscriptions));
      if (this.#closed || !this.#provisional.has(clientId)) return undefined;
    }
    this.#provisionalSince.delete(clientId);
    this.#giveWay(clientId, owner === undefined ? "in the shared store" : `on node ${owner}`);
    if (left === "left") this.#keep(clientId, subscriptions.length, holder);
    else if (left === "none" && subscriptions.length > 0) {
      this.#o.logger.warning(
        `Cluster: the ${subscriptions.length} subscriptions ${clientId} made in its provisional session are dropped: its session ended as this one gave way`,
      );
    } else if (left === "newer") {
      this.#o.logger.info(
        `Cluster: the ${subscriptions.length} subscriptions ${clientId} made in its provisional session are not kept: its session ${
          holder === undefined ? "" : `on node ${holder} `
        }began after the provisional one (a clean start, or none found) [MQTT-3.1.2-4]`,
      );
    }
    return "gaveWay";
  }

  /**
   * The subscriptions of a provisional session that gave way are kept in the session that
   * exists: the client was granted them (SUBACK), and its reconnection resumes that session.
   * They are left in Redis for it (`ClusterBus.pendSubscriptions`, before the give-way), and
   * whichever node holds or loads the session adds them ({@linkcode #applyPending}) and drops
   * them from Redis once stored with it: a holder cut off from Redis adds them when it is back,
   * a holder dead before it did leaves them to the session's adopter. Held by another node
   * (`owner`), the session stays there: its client may be connected there now, and taking the
   * session would close that connection for no login of the client [MQTT-3.1.4-3]; that node is
   * told at once (a `subscribed` frame, `ClusterBus.sendSubscribed`: lost when it is away from
   * Redis, which the resync makes up for). Held by no node (only stored), the session is brought
   * here as a login here would bring it (`prepare`, read from the store, the subscriptions added
   * by the load), only while no other node owns it (`ClusterBus.claimReadUnowned`: a login
   * elsewhere meanwhile claimed it first, that node is told instead); it is then held here
   * offline, and the client's next login resumes it here or moves it as usual.
   */
  #keep(clientId: string, count: number, owner: string | undefined): void {
    const { logger, bus } = this.#o;
    if (owner !== undefined && owner !== bus.nodeId) {
      this.#sendSubscribed(clientId, owner, count);
      return;
    }
    // Added before a login of the client prepared after this one (its `then` comes first).
    const merging = this.prepare(clientId, true, { unowned: true }).then(async (refused) => {
      if (refused === HELD_ELSEWHERE) {
        const holder = await within(bus.ownerOf(clientId), REDIS_WAIT_MS, "owner")
          .catch(() => undefined);
        if (holder !== undefined && holder !== bus.nodeId && !this.#closed) {
          this.#sendSubscribed(clientId, holder, count);
        }
        return;
      }
      if (!this.#closed && !this.#o.core.sessions.has(clientId)) {
        logger.warning(
          `Cluster: the session of ${clientId} could not be brought here to add the ${count} subscriptions made in its provisional session: they stay in Redis for its next holder`,
        );
        // Claimed from nobody and found missing: not kept here as owned by this node.
        if (refused === undefined) this.#giveBack(clientId, Promise.resolve());
      }
    });
    background(merging, `the merge of ${clientId}'s provisional subscriptions`, this.#fault);
  }

  /** Tells `node`, which holds the client's session, of the subscriptions left for it (`#keep`). */
  #sendSubscribed(clientId: string, node: string, count: number): void {
    const { bus, logger } = this.#o;
    bus.sendSubscribed(node, clientId).then(() => {
      logger.info(
        `Cluster: the ${count} subscriptions ${clientId} made in its provisional session are left for node ${node}, which holds its session`,
      );
    }, (error) => {
      logger.warning(
        `Cluster: cannot tell node ${node}, which holds the session of ${clientId}, of the ${count} subscriptions made in its provisional session (${
          errorText(error)
        }): they stay in Redis, added when it is back from an outage or the session moves`,
      );
    });
  }

  /**
   * A node whose provisional session of the client gave way to the session this node holds left
   * its subscriptions in Redis for it (a `subscribed` frame, see `#keep`): added to that session
   * without moving it ({@linkcode #applyPending}), after a login of the client being prepared
   * here. Its client, connected here or not, keeps its connection.
   *
   * @param clientId the client id
   * @param node the node whose provisional session gave way
   */
  addSubscribed(clientId: string, node: string): void {
    const before = this.#preparing.get(clientId) ?? Promise.resolve();
    const adding = before.then(() => undefined, () => undefined).then(() => {
      if (!this.#closed) return this.#applyPending(clientId, ` on node ${node}`);
    });
    background(adding, `the merge of ${clientId}'s subscriptions from node ${node}`, this.#fault);
  }

  /**
   * Adds to every session held here what provisional sessions that gave way left for it in
   * Redis ({@linkcode #applyPending}): run when this node is back from an outage, during which
   * it heard of none (a `subscribed` frame is not kept), and for the sessions it adopts.
   *
   * @param only the clients to look at (all held here when not given)
   */
  async applyAllPending(only?: ReadonlySet<string>): Promise<void> {
    const { bus, core, logger } = this.#o;
    let clients: string[];
    try {
      clients = await within(bus.pendingClients(), REDIS_WAIT_MS, "owner");
    } catch (error) {
      logger.warning(
        `Cluster: cannot look for subscriptions left for sessions held here (${
          errorText(error)
        }): looked for again at the next outage's end, or added when the sessions move`,
      );
      return;
    }
    for (const clientId of clients) {
      if (only !== undefined && !only.has(clientId)) continue;
      if (core.sessions.has(clientId) && !this.#provisional.has(clientId)) {
        await this.#applyPending(clientId, "");
      }
    }
  }

  /**
   * Adds to the client's session held here the subscriptions provisional sessions that gave way
   * left for it in Redis (`ClusterBus.pendSubscriptions`), journaled as a SUBSCRIBE's
   * (`BrokerCore.mergeSubscriptions`: each replaces the session's subscription to its filter
   * [MQTT-3.8.4-3], within the session's limits; no SUBACK, no retained message: the client had
   * them), then drops them from Redis once the store has them (`ClusterBus.appliedPending`): a
   * node that dies or is cut off in between leaves them there, added again by the session's
   * next holder (the same subscriptions again: no change).
   *
   * @param from for the log: where the provisional session was (`" on node b"`), or ""
   */
  async #applyPending(clientId: string, from: string): Promise<void> {
    const { bus, core, logger, store } = this.#o;
    let pending: Awaited<ReturnType<typeof bus.pendingSubscriptions>>;
    try {
      pending = await within(bus.pendingSubscriptions(clientId), REDIS_WAIT_MS, "load");
    } catch (error) {
      logger.warning(
        `Cluster: cannot read the subscriptions left for the session of ${clientId} (${
          errorText(error)
        }): added later, by this node after an outage or by the session's next holder`,
      );
      return;
    }
    if (pending.stored.size === 0) return;
    const held = core.sessions.has(clientId) && !this.#provisional.has(clientId);
    if (this.#closed || !held) return;
    const merged = core.mergeSubscriptions(clientId, pending.subscriptions);
    this.#o.run();
    this.#o.declare(clientId);
    logger.info(
      `Cluster: the ${merged} subscriptions ${clientId} made in its provisional session${from} are kept in its session, held here`,
    );
    try {
      await store.readable();
      await bus.appliedPending(clientId, pending.stored);
    } catch (error) {
      logger.warning(
        `Cluster: the subscriptions left for the session of ${clientId} stay in Redis (${
          errorText(error)
        }): added again by its next holder`,
      );
    }
  }

  /** A provisional session gives way to the one that exists `where` (see `settleProvisional`). */
  #giveWay(clientId: string, where: string): void {
    // Still provisional while its connection closes: its end claims and drops nothing in Redis.
    this.#o.core.giveWay(
      clientId,
      `its session exists ${where}: served provisionally while Redis was away`,
      Date.now(),
    );
    this.#provisional.delete(clientId);
    this.#provisionalSince.delete(clientId);
    this.#o.run();
    this.#o.logger.info(
      `Cluster: the provisional session of ${clientId} gives way to the session that exists ${where}: its connection closed (server busy), nothing of it written`,
    );
  }

  /**
   * A login refused as server busy after its claim was sent: the claim makes this node the
   * session's owner in Redis while the session is held nowhere here (the previous owner let go of
   * it), so the cluster would take it as kept here: a node adopting sessions nobody owns (a node
   * starting) would skip it, and a takeover would ask this node for it. So the ownership is given
   * back once the claim is answered, if this node still has it and has not taken the session in
   * meanwhile; the session stays in the store for the client's next try (its next login here
   * waits for this). Messages published until the client returns are not queued for it, as
   * before the claim.
   */
  #giveBack(clientId: string, claim: Promise<unknown>): void {
    // A claim refused (fenced, or Redis lost: it may have gone through) is given back too, so
    // that the resync does not claim again a session this node does not hold.
    const done = claim.catch(() => undefined).then(async () => {
      if (this.#o.core.sessions.has(clientId) || this.#closed) return;
      if (await this.#o.bus.release(clientId)) {
        this.#o.logger.info(
          `Cluster: gave the session of ${clientId} back (its login was refused as server busy)`,
        );
      }
    }).catch(() => {
      // Redis away: the bus releases it again at its resync, unless claimed here meanwhile.
    });
    this.#givingBack.set(clientId, done);
    done.finally(() => {
      if (this.#givingBack.get(clientId) === done) this.#givingBack.delete(clientId);
    });
  }

  /** The messages held for the shared groups of sessions that came (or failed to), to them. */
  #routeHeld(key: string): void {
    for (const frame of this.#held.end(key)) this.#o.replay(frame);
  }

  /**
   * A message another node forwarded here: noted as routed, and kept for the sessions moving
   * here; its shared groups that such a session is a member of are held for when it is here.
   * The core routes it next, without those groups.
   *
   * @param frame the message as received
   * @returns the groups held (not to be served now)
   */
  received(frame: MessageFrame): readonly string[] {
    const held = this.#held.received(frame, frame.shares ?? []);
    // A message passed on for a shared group comes by another node's stream, out of its
    // origin's order.
    if (frame.only === true) return held;
    if (frame.order !== undefined) {
      this.#seen.set(frame.origin, Math.max(frame.order, this.#seen.get(frame.origin) ?? 0));
    }
    if (this.#moving.size === 0) return held;
    // The held groups get it once the sessions are here, not again with the kept ones.
    const keep = held.length === 0
      ? frame
      : { ...frame, shares: frame.shares!.filter((s) => !held.includes(s)) };
    for (const kept of this.#moving.values()) if (kept.length < MAX_KEPT) kept.push(keep);
    return held;
  }

  /**
   * A choice of nodes for the shared groups of a message published here, before it is
   * forwarded: the groups of sessions on their way here that it gave to a departed node are
   * served here instead (see `HeldShares.claim`).
   *
   * @param choice node → the groups it serves, changed in place
   */
  claimShares(choice: ShareChoice): void {
    if (this.#held.holding) this.#held.claim(choice, (node) => this.#o.bus.departed(node));
  }

  /**
   * This node stepped down (`ClusterLink`: it was taken for dead, learnt from the bus's `fenced`
   * event or from a store write the fence refused, whichever came first): until it is ready
   * again, a login resuming a session is refused as busy, not served provisionally. Its bus may
   * be not ready before it registers again (it heard of its reap): read as "Redis unreachable",
   * the client was served an empty provisional session with Session Present 0 [MQTT-3.2.2-4]
   * while its session was on the node that adopted it.
   */
  steppedDown(): void {
    this.#rejoining = true;
    this.#stepDowns++;
  }

  /** Whether a session is moving here: local messages are to be kept ({@linkcode local}). */
  get moving(): boolean {
    return this.#moving.size > 0;
  }

  /**
   * A message published on this node while a session moves here: kept for it as well (the
   * previous owner had it when it was forwarded there early enough, see `#deliverKept`).
   *
   * @param message the message record
   * @param publisher its publisher's client id (`""`: the host program)
   * @param order its `order` when it was forwarded to other nodes
   * @param choice the nodes picked for its shared groups
   * @returns whether shared groups of a session moving here were held for it (no node serves
   *   them for this message now)
   */
  local(
    message: MessageRecord,
    publisher: string,
    order: number | undefined,
    choice: ShareChoice | undefined,
  ): boolean {
    const frame: MessageFrame = {
      type: "message",
      origin: this.#o.bus.nodeId,
      publisher,
      seq: 0,
      message,
    };
    if (order !== undefined) frame.order = order;
    for (const kept of this.#moving.values()) if (kept.length < MAX_KEPT) kept.push(frame);
    const given = new Set<string>();
    for (const shares of choice?.values() ?? []) for (const share of shares) given.add(share);
    return this.#held.local(frame, given);
  }

  /**
   * A node left: its messages' order is no longer needed.
   *
   * @param node the node id
   */
  forget(node: string): void {
    this.#seen.delete(node);
  }

  /**
   * The messages kept while `session` moved here that its previous owner had not routed (later
   * than its marks: it had routed every earlier one of each origin, since interest overlapped),
   * to that session only, in the order they came.
   */
  #deliverKept(
    kept: readonly MessageFrame[],
    marks: Record<string, number>,
    session: Session,
  ): void {
    const only = new Set([session]);
    for (const frame of kept) {
      // Not forwarded (a local message no other node wanted): the previous owner never had it.
      const mark = marks[frame.origin];
      if (mark !== undefined && frame.order !== undefined && frame.order <= mark) continue;
      this.#o.replay(frame, only);
    }
  }

  /** Origin node → the last message routed here: every earlier one of it was routed too. */
  #marks(): Record<string, number> {
    const marks = Object.fromEntries(this.#seen);
    marks[this.#o.bus.nodeId] = this.#o.bus.lastOrder;
    return marks;
  }

  /**
   * Another node claimed a session: unless the client is back here meanwhile, the session is
   * handed over (see the module doc) and that node told when the store has all of it. A session
   * that ended here while Redis was away has its end written first.
   *
   * @param clientId the client id
   * @param node the new owner
   * @param missed whether the claim was made while this node was away from Redis (found at its
   *   resync; for the log)
   * @returns settled when answered
   */
  takenOver(clientId: string, node: string, missed = false): Promise<void> {
    // Taken now, before anything is awaited: an adoption that started before this takeover is
    // waited for, one that starts after it waits for this takeover (`#adopt`).
    const adopting = this.#adopting.get(clientId);
    const done = this.#takenOver(clientId, node, missed, adopting);
    const handing = done.catch(() => {});
    this.#handing.set(clientId, handing);
    return done.finally(() => {
      if (this.#handing.get(clientId) === handing) this.#handing.delete(clientId);
    });
  }

  async #takenOver(
    clientId: string,
    node: string,
    missed: boolean,
    adopting: Promise<void> | undefined,
  ): Promise<void> {
    const { bus, core } = this.#o;
    let storing: Promise<void> | undefined;
    if (this.#provisional.has(clientId) && core.sessions.has(clientId)) {
      // A provisional session whose claim went through as Redis was lost (its answer lost: see
      // `settleProvisional`), then claimed from this node: it was this node's, and is handed
      // over whole, with what was queued for it and acknowledged to its publishers. (Redis
      // names this node the owner only after that claim.) At once: before the settle, asked
      // again, gives it way. Were this node not the session's writer, the store would refuse it.
      this.#provisional.delete(clientId);
      storing = this.#storeWhole(clientId);
    }
    // A login here claiming the session as the notice came (whose claim may come before that
    // node's: see `#handOn`).
    const move = this.#moves.get(clientId);
    await adopting;
    let owner: string | undefined = node;
    let marks: Record<string, number> | undefined;
    try {
      owner = await bus.ownerOf(clientId);
    } catch {
      // Redis is away: the claim stands.
    }
    if (owner !== bus.nodeId && move !== undefined) {
      // A login here reading the session meanwhile must not restore it (`#prepare`).
      if (this.#preparing.has(clientId)) this.#takenWhilePreparing.add(clientId);
      await this.#handOn(move, clientId, node);
      // The wait may be long (at most `maxWait`): the session may be this node's again by now
      // (that node left or died meanwhile, and this node adopted the session, or its login
      // claimed it from nobody). Evicted, its client would be closed as taken over by a node
      // that let go of it, and the session owned here held nowhere.
      try {
        owner = await bus.ownerOf(clientId);
      } catch {
        // Redis is away: the claim stands.
      }
      if (owner === bus.nodeId) {
        this.#o.logger.info(
          `Cluster: the session of ${clientId} is this node's again (node ${node}, which claimed it, let go of it while this node waited to hand it on): kept here`,
        );
      }
    }
    if (owner !== bus.nodeId) {
      // A login here reading the session meanwhile must not restore it (`#prepare`).
      if (this.#preparing.has(clientId)) this.#takenWhilePreparing.add(clientId);
      // Messages other nodes forwarded here before the takeover go into the session first, so
      // that they are in the store the new owner loads (their publishers were acknowledged).
      // The new owner announced the session's filters before its claim: once every node has
      // answered a fence here, what they sent here before they heard of it is read (and only
      // then the new owner's interest takes over), then the rest of the stream.
      await bus.fence(REDIS_WAIT_MS);
      await bus.caughtUp(REDIS_WAIT_MS).catch(() => {});
      await storing;
      const evicted = core.evict(clientId, `session taken over by node ${node}`, Date.now(), true);
      this.#o.run();
      if (evicted) {
        marks = this.#marks();
        // At once, not at the next sweep: the new owner announced the session's filters already,
        // and a withdrawal left pending would undo its own announcement when the session returns.
        this.#o.withdraw(clientId);
      }
      if (evicted) {
        this.#o.logger.info(`Cluster: ${clientId} continues on node ${node}: handed over`);
      } else if (!core.sessions.has(clientId)) {
        // Ended here while Redis was away, and its deletion maybe not written yet (when that
        // node claimed it meanwhile, it learns of it now, at this node's resync): that node
        // loads the session once handed over, and must not get back one that ended
        // [MQTT-3.1.2-6]. Not written, no handoff: the node waits until its bound, by when the
        // rewrite may have written it.
        try {
          await this.#o.store.deleteEnded(clientId);
        } catch (error) {
          this.#o.logger.warning(
            `Cluster: cannot write the end of the session of ${clientId}, claimed by node ${node} (${
              errorText(error)
            })`,
          );
          return;
        }
        if (missed) {
          this.#o.logger.info(
            `Cluster: ${clientId} was claimed by node ${node} while Redis was away, after this node let go of it (its session ended here, or its login was refused): handed over`,
          );
        }
      }
    }
    try {
      await this.#o.committed();
    } catch {
      // A failed write was logged by the writer; the other node loads what the store has.
    }
    await bus.handOver(clientId, node, marks).catch((error) => {
      // Redis lost again (said in the log): that node waits until its bound.
      this.#o.logger.debug(
        `Cluster: cannot hand the session of ${clientId} over to node ${node} (${
          errorText(error)
        })`,
      );
    });
  }

  /**
   * Journals a provisional session whole (`BrokerCore.storeSession`) and waits until the store
   * committed it, writing it again while the store's connection is not back yet (it comes back
   * on a schedule of its own, after the bus's, and a write that fails meanwhile is not made
   * again for a session handed over since): for {@linkcode LOGIN_WAIT_MS} at most.
   */
  async #storeWhole(clientId: string): Promise<void> {
    const end = Date.now() + LOGIN_WAIT_MS;
    for (;;) {
      if (!this.#o.core.storeSession(clientId)) return;
      this.#o.run();
      try {
        await this.#o.committed();
        return;
      } catch (error) {
        if (this.#closed || Date.now() >= end) {
          this.#o.logger.warning(
            `Cluster: cannot store the provisional session of ${clientId} before handing it over (${
              errorText(error)
            })`,
          );
          return;
        }
      }
      await this.#pause(100);
    }
  }

  /**
   * A chain of moves: a login here claimed the session from node A and waits for A's handoff,
   * when node `node` claims it from this node. Handed over at once (nothing is held here yet),
   * `node` would load the session before A's last writes (a message queued for it and
   * acknowledged to its publisher, a subscription acknowledged), and miss what this node kept
   * for the session since it announced its filters. So the takeover waits until the login here
   * has restored the session (it is refused as server busy then: `#prepare`), at most `maxWait`
   * (that node's own wait for this one), and hands it on as any session held here. The same for
   * a claim from nobody (a large session read in parts): what this node kept for the session
   * since it announced its filters went nowhere else. Not when this login's claim came after that
   * node's (it names `node` as the previous owner: that node waits for this one's handoff, and
   * this one for that node's).
   */
  async #handOn(move: Move, clientId: string, node: string): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = Symbol("late");
    const bound = new Promise<typeof late>((resolve) => {
      timer = setTimeout(() => resolve(late), this.#o.maxWait);
    });
    try {
      const previous = await Promise.race([move.previous, bound]);
      if (previous === late || previous === node) return;
      move.handOn = true;
      if (await Promise.race([move.done, bound]) === late) {
        this.#o.logger.warning(
          `Cluster: the session of ${clientId} is handed over to node ${node} before the login here restored it (not within ${
            this.#o.maxWait / 1000
          } s${previous === undefined ? "" : `: node ${previous} did not hand it over`})`,
        );
      }
    } finally {
      move.handOn = false;
      clearTimeout(timer);
    }
  }

  /**
   * A node died or left: each session it owned is adopted by one node (maybe this one). The
   * winner publishes the will kept for a client that was connected there and loads a persistent
   * session from the store; a clean one (not stored) is released again.
   *
   * The sessions' filters are announced and every node fenced before the sessions are restored
   * here, while what arrives meanwhile is kept (as for a move): the other nodes kept the departed
   * node's interest and wrote what matched it to its dead stream until they heard of this node's,
   * so a message published meanwhile is in that stream or among those kept. The stream's messages
   * the departed node had not stored go to the adopted sessions, then the kept ones the stream
   * did not have (see ARCHITECTURE.md, "Adoption").
   *
   * @param clients the client ids the node owned
   * @param why for the log line of a will published (how the node ended)
   * @param node the node, when it was a node (not a whole cluster's restart)
   * @returns settled when every adoption this node won is done
   */
  adoptAll(clients: readonly string[], why: string, node?: string): Promise<void> {
    // Closed: the nodes that stay adopt them (this one is leaving, or left already).
    if (this.#closed) return Promise.resolve();
    // This node's own handovers of these sessions under way now (another node claimed one from
    // this node, and died or left before this node handed it over): each session's adoption
    // waits for its handover, taken now, before anything is awaited (a takeover starting after
    // this adoption waits for it instead). Else the adoption, finding the session still here,
    // kept it as held here, and the handover then evicted it: owned here, held nowhere, and what
    // was published for it until its client returned was lost.
    const handing = new Map<string, Promise<void>>();
    for (const clientId of clients) {
      const running = this.#handing.get(clientId);
      if (running !== undefined) handing.set(clientId, running);
    }
    // One promise per session, settled when its own adoption is done: a session adopted at once
    // does not wait (nor does its client's login) for one that waits for a chain's writer.
    const each = new Map<string, PromiseWithResolvers<void>>();
    for (const clientId of clients) {
      const settled = Promise.withResolvers<void>();
      each.set(clientId, settled);
      this.#adopting.set(clientId, settled.promise);
    }
    const settle = (ids: Iterable<string>) => {
      for (const clientId of ids) {
        const settled = each.get(clientId);
        if (settled === undefined) continue;
        each.delete(clientId);
        settled.resolve();
        if (this.#adopting.get(clientId) === settled.promise) this.#adopting.delete(clientId);
      }
    };
    const done = this.#adoptAll(clients, why, handing, node, settle).catch((error) => {
      this.#o.logger.warning(`Cluster: cannot adopt sessions (${why}): ${errorText(error)}`);
    });
    return done.finally(() => settle([...each.keys()]));
  }

  async #adoptAll(
    clients: readonly string[],
    why: string,
    handing: ReadonlyMap<string, Promise<void>>,
    node: string | undefined,
    settle: (clientIds: Iterable<string>) => void,
  ): Promise<void> {
    const kept: MessageFrame[] = [];
    const key = `\0adopting:${node ?? ""}:${++this.#adoptions}`;
    if (node !== undefined) this.#moving.set(key, kept);
    try {
      const won: { clientId: string; state: StoredState }[] = [];
      const failed: string[] = [];
      // Sessions a node of a chain still writes (`#chainHandedOn`): loaded in a second round, so
      // that the others (and their clients' logins) do not wait for that node's handoff.
      const later: string[] = [];
      await Promise.all(
        clients.map((clientId) =>
          this.#adopt(
            clientId,
            why,
            { won, failed, handing: handing.get(clientId), later },
            false,
            node,
          )
        ),
      );
      await this.#adoptFailed(failed, won, why, handing, node);
      await this.#restoreWon(won, clients.length, key, kept, node);
      if (later.length === 0 || this.#closed) return;
      const waiting = new Set(later);
      settle(clients.filter((clientId) => !waiting.has(clientId)));
      const wonLater: { clientId: string; state: StoredState }[] = [];
      const failedLater: string[] = [];
      await Promise.all(
        later.map((clientId) =>
          this.#loadAdopted(clientId, { won: wonLater, failed: failedLater }, false, node)
        ),
      );
      await this.#adoptFailed(failedLater, wonLater, why, handing, node);
      await this.#restoreWon(wonLater, clients.length, key, kept, node);
    } finally {
      this.#moving.delete(key);
      this.#routeHeld(key);
    }
  }

  /**
   * Runs the adoptions in `failed` again after a pause until they work: an adoption script that
   * did not run (Redis away), or a session won and not read, is adopted or read again, else the
   * session would be adopted by no node until its client returns. What arrives meanwhile is
   * kept; the dead stream has the rest. Meanwhile this node keeps the departed node's interest
   * past the grace (so do the others whose adoption fails), counted again from each try and from
   * the last, which may have found the session won by another node: that node announces the
   * sessions' filters next.
   */
  async #adoptFailed(
    failed: string[],
    won: { clientId: string; state: StoredState }[],
    why: string,
    handing: ReadonlyMap<string, Promise<void>>,
    node: string | undefined,
  ): Promise<void> {
    const end = Date.now() + DEAD_STREAM_MS;
    for (let attempt = 1; failed.length > 0 && !this.#closed && Date.now() < end; attempt++) {
      if (node !== undefined) this.#o.bus.keepDeparted(node);
      if (!(await this.#retryPause(attempt))) break;
      const again = failed.splice(0);
      await Promise.all(
        again.map((clientId) =>
          this.#adopt(clientId, why, { won, failed, handing: handing.get(clientId) }, true, node)
        ),
      );
      if (node !== undefined) this.#o.bus.keepDeparted(node);
    }
  }

  /**
   * Restores the sessions `won` (of the `of` the departed node owned) after the departed node's
   * stream was read, with the messages kept meanwhile (`kept`, under `key`), in one turn.
   */
  async #restoreWon(
    won: { clientId: string; state: StoredState }[],
    of: number,
    key: string,
    kept: readonly MessageFrame[],
    node: string | undefined,
  ): Promise<void> {
    if (won.length === 0 || this.#closed) return;
    // A provisional session of an adopted client whose will waits for a delay: a login of the
    // client anywhere before it is over cancels it (the claim of another node drops the watch)
    // [MQTT-3.1.3-9]. Written, and answered, before the give-way below closes the connection:
    // a login elsewhere that follows the close then comes after it. Sent without waiting, a
    // slow write could land after that login's claim, and the will be published though the
    // client came back.
    await Promise.all(won.map(({ clientId }) => this.#watchGivenWay(clientId)));
    if (this.#closed) return;
    let dead: DeadStream = { entries: [], mark: [-1, -1], stored: {} };
    if (node !== undefined) {
      const filters = new Set(
        won.flatMap(({ state }) => state.sessions[0]!.subscriptions.map((s) => s.filter)),
      );
      this.#held.start(key, filters);
      dead = await this.#fencedDead(node, filters);
    }
    // From here on in one turn: nothing arrives between the restore and the kept messages.
    const adopted = new Set<Session>();
    for (const { clientId, state } of won) {
      if (this.#closed) continue;
      const provisional = this.#o.core.sessions.get(clientId);
      let merging: SessionSubscription[] = [];
      if (this.#provisional.has(clientId) && provisional !== undefined) {
        // Served here provisionally meanwhile: it gives way to the session adopted (its delayed
        // will watched, above).
        merging = [...provisional.subscriptions.values()];
        this.#giveWay(clientId, "in the shared store, adopted here");
      }
      if (this.#o.core.sessions.has(clientId)) continue;
      this.#o.core.restore(state, Date.now());
      // Those the client made in its provisional session are kept in it (see `#keep`).
      if (merging.length > 0) {
        const merged = this.#o.core.mergeSubscriptions(clientId, merging);
        this.#o.logger.info(
          `Cluster: the ${merged} subscriptions ${clientId} made in its provisional session are kept in its session, adopted here`,
        );
      }
      this.#o.run();
      this.#o.declare(clientId);
      const session = this.#o.core.sessions.get(clientId);
      if (session !== undefined) adopted.add(session);
      // At debug: a node with many sessions dies, and each node adopting them would write a
      // line per session; the line below sums them up and names the first few.
      this.#o.logger.debug(
        `Cluster: adopted the session of ${clientId}, kept here until its client returns`,
      );
    }
    if (adopted.size === 0) return;
    // What provisional sessions that gave way left in Redis for them: their node died before
    // it added them (`#keep`).
    background(
      this.applyAllPending(new Set([...adopted].map((session) => session.clientId))),
      "adding the subscriptions left for the sessions adopted here",
      this.#fault,
    );
    this.#adopted += adopted.size;
    this.#o.logger.info(adoptedLine(adopted, of, node));
    if (node !== undefined) this.#replayDead(node, dead, kept, adopted);
  }

  /**
   * Watches in Redis for a login of a client whose provisional session here is about to give way
   * to its session adopted here, when its will waits for a delay (`ClusterBus.watchGivenWay`):
   * settled once Redis answered. Not answered (Redis lost, or slow past
   * {@linkcode LOGIN_WAIT_MS}), nothing can be known of a login elsewhere: the will is published
   * once its delay is over unless the client logs in here ({@linkcode unwatched}), as while
   * Redis is away; logged.
   */
  async #watchGivenWay(clientId: string): Promise<void> {
    const session = this.#o.core.sessions.get(clientId);
    if (!this.#provisional.has(clientId) || session === undefined) return;
    if (session.will === undefined || session.willDelay === 0) return;
    try {
      await within(this.#o.bus.watchGivenWay(clientId), LOGIN_WAIT_MS, "owner");
    } catch (error) {
      this.#o.logger.warning(
        `Cluster: cannot note in Redis that the provisional session of ${clientId} gives way with a delayed will (${
          errorText(error)
        }): its will is published once its delay is over unless the client logs in here`,
      );
      this.#unwatched.add(clientId);
    }
  }

  /** Clients whose given-way delayed will could not be watched in Redis (`#watchGivenWay`). */
  readonly #unwatched = new Set<string>();

  /**
   * Whether the delayed will of a client whose provisional session gave way here could not be
   * watched in Redis (see `#watchGivenWay`): then it is published at the end of its delay without
   * asking Redis, which would answer that a login cancelled it. Forgotten once asked.
   *
   * @param clientId the client id
   * @returns true when the will is to be published without asking Redis
   */
  unwatched(clientId: string): boolean {
    return this.#unwatched.delete(clientId);
  }

  /**
   * A session adopted from `departed` in a chain of moves (`departed` claimed it from a node
   * that had not handed it on yet, and left or died meanwhile): a node before it in the chain
   * still writes it (its writer mark: `ClusterBus.chainWriter`; its handoff passes the mark on,
   * `HAND_OFF_SCRIPT`). Loaded before that node handed over, the session would miss its last
   * writes, refused once this node read it (a message its publisher had a PUBACK for). Waits
   * until the mark moved, that node is dead (reaped: it writes nothing more), or `maxWait`. A
   * look that Redis does not answer in time (slow, or away) says nothing of the mark: it is made
   * again until then, rather than read as "the mark moved".
   */
  async #chainHandedOn(clientId: string, departed: string): Promise<void> {
    const { bus, logger } = this.#o;
    const deadline = Date.now() + this.#o.maxWait;
    let waited = false;
    let unanswered = false;
    while (!this.#closed) {
      let writer: string | undefined;
      try {
        writer = await within(bus.chainWriter(clientId, departed), REDIS_WAIT_MS, "owner");
      } catch (error) {
        if (!unanswered) {
          unanswered = true;
          logger.info(
            `Cluster: cannot learn whether a node still writes the session of ${clientId}, adopted from node ${departed} (${
              errorText(error)
            }): asking again until ${this.#o.maxWait / 1000} s have passed`,
          );
        }
        if (Date.now() >= deadline) {
          logger.warning(
            `Cluster: no answer on who writes the session of ${clientId} within ${
              this.#o.maxWait / 1000
            } s: adopted, maybe without the last writes of a node before it`,
          );
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, ALIVE_POLL_MS));
        continue;
      }
      if (writer === undefined) return;
      if (!waited) {
        waited = true;
        logger.info(
          `Cluster: node ${writer} still writes the session of ${clientId}, adopted from node ${departed}: waiting for its handoff`,
        );
      }
      if (Date.now() >= deadline) {
        logger.warning(
          `Cluster: node ${writer} did not hand the session of ${clientId} over within ${
            this.#o.maxWait / 1000
          } s: adopted without its last writes`,
        );
        return;
      }
      if (!await within(bus.alive(writer), REDIS_WAIT_MS, "liveness").catch(() => true)) {
        // Reaped before the load: it writes nothing more, and what it wrote is in the load.
        await within(bus.heartbeat(), REDIS_WAIT_MS, "reap").catch(() => {});
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, ALIVE_POLL_MS));
    }
  }

  /**
   * Announces the adopted sessions' filters, fences every node, then reads the departed node's
   * streams. While the read fails (Redis away, or refusing), all three again after a pause, until
   * it works: restored without them, the sessions would miss what the node had not stored and
   * what the others write there until they hear of this node's interest (their grace counts from
   * Redis's return). Meanwhile what arrives is kept, and a login of an adopted client waits.
   * Gives up when this node closes, or once the dead stream's life is over.
   */
  async #fencedDead(node: string, filters: ReadonlySet<string>): Promise<DeadStream> {
    const end = Date.now() + DEAD_STREAM_MS;
    for (let attempt = 1;; attempt++) {
      await within(
        Promise.all([...filters].map((filter) => this.#o.announce(filter))),
        REDIS_WAIT_MS,
        "announce",
      ).catch(() => {}); // Redis is away: what comes meanwhile is not sent anywhere
      // Once every node answered, each has heard of this node's interest: what it sent for
      // the departed node's interest before is in its dead stream.
      await this.#o.bus.fence(REDIS_WAIT_MS);
      try {
        const dead = await this.#readDead(node, false);
        if (attempt > 1) {
          this.#o.logger.warning(
            `Cluster: read what node ${node} had not stored at try ${attempt}`,
          );
        }
        return dead;
      } catch (error) {
        const last = this.#closed || Date.now() >= end;
        if (attempt === 1 || last) {
          this.#o.logger.warning(
            `Cluster: cannot read what node ${node} had not stored (${errorText(error)})${
              last ? "" : ": trying again"
            }`,
          );
        }
        // Until the read works, the others' announcement of this node's interest may be what
        // failed too: this node keeps the departed node's interest meanwhile.
        this.#o.bus.keepDeparted(node);
        if (last || !(await this.#retryPause(attempt))) {
          return { entries: [], mark: [-1, -1], stored: {} };
        }
      }
    }
  }

  /**
   * Waits before the next try of a retry (100 ms doubling, at most `DEAD_RETRY_MAX_MS`), or
   * until {@linkcode close}.
   *
   * @param attempt the try that failed, from 1
   * @returns whether to try again: false once closed
   */
  async #retryPause(attempt: number): Promise<boolean> {
    await this.#pause(Math.min(DEAD_RETRY_MAX_MS, 100 * 2 ** (attempt - 1)));
    return !this.#closed;
  }

  /** Waits `ms`, or until {@linkcode close}. */
  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#pauses.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#pauses.add(wake);
    });
  }

  /**
   * A departed node's streams and how far it had stored what it read from them; with `dead`, the
   * node is known dead though still registered (not reaped yet), so its live stream is read too.
   */
  async #readDead(node: string, dead: boolean): Promise<DeadStream> {
    const origins = [...new Set([node, this.#o.bus.nodeId, ...this.#o.bus.nodes])];
    const [entries, [ms, seq, ...orders]] = await Promise.all([
      this.#o.bus.deadStream(node, dead),
      this.#o.store.counters([
        `read:${node}:ms`,
        `read:${node}:seq`,
        ...origins.map((origin) => `read:${node}:o:${origin}`),
      ]),
    ]);
    const stored: Record<string, number> = {};
    origins.forEach((origin, i) => {
      if (orders[i] !== undefined) stored[origin] = orders[i]!;
    });
    return { entries, mark: [ms ?? -1, seq ?? -1], stored };
  }

  /** {@linkcode #readDead} for a previous owner that died: undefined (logged) when Redis fails. */
  async #deadStream(node: string): Promise<DeadStream | undefined> {
    try {
      return await within(this.#readDead(node, true), REDIS_WAIT_MS, "dead stream");
    } catch (error) {
      this.#o.logger.warning(
        `Cluster: cannot read what node ${node} had not stored (${
          errorText(error)
        }): trying again after the login`,
      );
      return undefined;
    }
  }

  /**
   * A login took over the session of a node that died, and the node's streams could not be read
   * in time (a login does not wait for Redis): they are read again in the background until that
   * works, and what the node had not stored and the session did not get among the kept messages
   * goes to the session then, late (after what came since) but once. Given up when the session
   * left this node meanwhile, when this node closes, or once the dead stream's life is over.
   */
  #replayLate(
    clientId: string,
    node: string,
    session: Session,
    kept: readonly MessageFrame[],
  ): void {
    const had = new Set<string>();
    for (const frame of kept) {
      if (frame.order !== undefined) had.add(`${frame.origin} ${frame.order}`);
    }
    // Per origin, the last message routed here by now: every later one the dead node was sent
    // was sent here too (its origin knew of this node's interest, announced before the claim),
    // and is routed to the session as it arrives.
    const upTo = this.#marks();
    const end = Date.now() + DEAD_STREAM_MS;
    const here = () => !this.#closed && this.#o.core.sessions.get(clientId) === session;
    (async () => {
      for (let attempt = 1; here() && Date.now() < end; attempt++) {
        if (!(await this.#retryPause(attempt)) || !here()) break;
        let dead: DeadStream;
        try {
          dead = await this.#readDead(node, true);
        } catch {
          continue;
        }
        if (!here()) break;
        const late: MessageFrame[] = [];
        for (const { id, frame } of dead.entries) {
          if (!pastMark(id, dead.mark)) continue;
          if (frame.order !== undefined) {
            if (had.has(`${frame.origin} ${frame.order}`)) continue;
            if (frame.order > (upTo[frame.origin] ?? Infinity)) continue;
          }
          late.push(frame);
        }
        late.sort((a, b) => (a.order ?? 0) - (b.order ?? 0));
        const only = new Set([session]);
        for (const frame of late) this.#o.replay(frame, only);
        this.#o.logger.warning(
          `Cluster: ${late.length} message(s) node ${node} had not stored went to ${clientId} late`,
        );
        return;
      }
      if (this.#closed) return;
      this.#o.logger.warning(
        `Cluster: what node ${node} had not stored did not reach ${clientId} (${
          here() ? "its stream could not be read" : "the session left this node"
        })`,
      );
    })().catch((error) => {
      this.#o.logger.warning(
        `Cluster: what node ${node} had not stored did not reach ${clientId}: ${errorText(error)}`,
      );
    });
  }

  /**
   * This node read its stream up to `id`. A delivery of what it read that waits on a receive
   * authorization is in memory only: the entry is marked read (and may be trimmed) once every
   * authorization asked until then is answered, so that a node adopting the sessions of this one
   * when it dies replays it.
   */
  #readUpTo(id: string): void {
    const core = this.#o.core;
    if (this.#undecided.length === 0 && core.receivesAnsweredBelow > core.receivesAsked) {
      this.#read(id);
      return;
    }
    // Entries behind the same authorizations go together: one waits for as many as are asked.
    const asked = core.receivesAsked;
    const tail = this.#undecided.at(-1);
    if (tail?.asked === asked) tail.id = id;
    else this.#undecided.push({ id, asked });
    this.#readDecided();
  }

  /** Marks read the entries whose deliveries' receive authorizations are all answered. */
  #readDecided(): void {
    const below = this.#o.core.receivesAnsweredBelow;
    let last: string | undefined;
    while (this.#undecided.length > 0 && this.#undecided[0]!.asked < below) {
      last = this.#undecided.shift()!.id;
    }
    if (last !== undefined) this.#read(last);
  }

  /**
   * This node read its stream up to `id` (every delivery of it decided): when the core journaled
   * something since the last mark, the mark goes with it (same store write), so that a node adopting its sessions knows
   * which of its stream's messages are stored already.
   */
  #read(id: string): void {
    // The stream may be trimmed up to `id` once everything journaled so far is committed.
    const committed = this.#o.committed();
    if (committed === undefined) this.#o.bus.stored(id);
    else committed.then(() => this.#o.bus.stored(id), () => {});
    if (this.#o.journaled() === this.#markedAt) return;
    const [ms, seq] = id.split("-");
    const me = this.#o.bus.nodeId;
    this.#o.write({ type: "setCounter", name: `read:${me}:ms`, value: Number(ms) });
    this.#o.write({ type: "setCounter", name: `read:${me}:seq`, value: Number(seq) });
    // And per origin the last message routed here (this node's own: the last it forwarded):
    // every earlier one is stored with this write, even once trimmed from the stream, so that a
    // node taking a session from this one when it dies mid-move does not deliver it again.
    for (const [origin, order] of [...this.#seen, [me, this.#o.bus.lastOrder] as const]) {
      if (this.#storedOrders.get(origin) === order) continue;
      this.#storedOrders.set(origin, order);
      this.#o.write({ type: "setCounter", name: `read:${me}:o:${origin}`, value: order });
    }
    this.#markedAt = this.#o.journaled();
  }

  /**
   * Delivers to `sessions` the messages of a departed node's stream past its read mark, in the
   * order of each origin (what other nodes wrote there before and after they heard of the
   * departure came through two streams), then those kept meanwhile that the stream did not have.
   */
  #replayDead(
    node: string,
    { entries, mark, stored }: DeadStream,
    kept: readonly MessageFrame[],
    sessions: ReadonlySet<Session>,
  ): void {
    const had = new Set<string>();
    const unread: MessageFrame[] = [];
    for (const { id, frame } of entries) {
      if (frame.order !== undefined) had.add(`${frame.origin} ${frame.order}`);
      if (pastMark(id, mark)) unread.push(frame);
    }
    unread.sort((a, b) => (a.order ?? 0) - (b.order ?? 0));
    for (const frame of unread) this.#o.replay(frame, sessions);
    let late = 0;
    for (const frame of kept) {
      if (frame.order !== undefined) {
        // In its streams (replayed above if it had not stored it), or stored by it already.
        if (had.has(`${frame.origin} ${frame.order}`)) continue;
        if (frame.order <= (stored[frame.origin] ?? -1)) continue;
      }
      this.#o.replay(frame, sessions);
      late++;
    }
    if (unread.length + late > 0) {
      this.#o.logger.info(
        `Cluster: ${unread.length} message(s) node ${node} had not stored went to the ${sessions.size} session(s) taken from it, and ${late} published meanwhile`,
      );
    }
  }

  /**
   * Adopts a session when this node wins it; a stored one goes into `won`, not restored yet.
   * `handing`: this node's own handover of the session, under way when the adoption started; won,
   * the session is loaded once it is done (see {@linkcode adoptAll}).
   */
  async #adopt(
    clientId: string,
    why: string,
    into: {
      won: { clientId: string; state: StoredState }[];
      failed: string[];
      handing: Promise<void> | undefined;
      later?: string[];
    },
    retry = false,
    departed?: string,
  ): Promise<void> {
    const { failed, handing } = into;
    const { bus, logger } = this.#o;
    if (this.#closed) return;
    try {
      let adopted: { will: MessageRecord | undefined } | undefined;
      try {
        adopted = await bus.adopt(clientId, retry);
      } catch (error) {
        // The script did not run (Redis away), or its answer was lost with the connection: tried
        // again (logged the first time only), a session this node owns then taken as adopted.
        failed.push(clientId);
        if (!retry) {
          logger.warning(
            `Cluster: cannot adopt the session of ${clientId} (${errorText(error)}): trying again`,
          );
        }
        return;
      }
      if (retry) logger.warning(`Cluster: the adoption of the session of ${clientId} ran again`);
      if (adopted === undefined || this.#closed) return;
      if (adopted.will !== undefined) this.#o.publishWill(clientId, adopted.will, why);
      if (handing !== undefined && !retry) {
        logger.info(
          `Cluster: the session of ${clientId} is adopted here while this node hands it over: loaded once handed over`,
        );
      }
      await handing;
      if (
        departed !== undefined && into.later !== undefined &&
        await this.#chainWritten(clientId, departed)
      ) {
        into.later.push(clientId);
        return;
      }
      await this.#loadAdopted(clientId, into, retry, departed);
    } catch (error) {
      logger.warning(`Cluster: cannot adopt the session of ${clientId}: ${errorText(error)}`);
    }
  }

  /**
   * Whether a node of a chain may still write the session of `clientId` adopted from `departed`
   * (`ClusterBus.chainWriter`), at one look: an unanswered look counts as yes.
   */
  #chainWritten(clientId: string, departed: string): Promise<boolean> {
    return within(this.#o.bus.chainWriter(clientId, departed), REDIS_WAIT_MS, "owner")
      .then((writer) => writer !== undefined, () => true);
  }

  /**
   * Loads a session won by its adoption, once a node of its chain handed it over
   * (`#chainHandedOn`); a stored one goes into `won`, not restored yet.
   */
  async #loadAdopted(
    clientId: string,
    into: { won: { clientId: string; state: StoredState }[]; failed: string[] },
    retry: boolean,
    departed: string | undefined,
  ): Promise<void> {
    const { won, failed } = into;
    const { bus, core, store, logger } = this.#o;
    try {
      let state: StoredState | undefined;
      if (departed !== undefined) await this.#chainHandedOn(clientId, departed);
      // A provisional session here is not the client's session: the one adopted is loaded, and
      // the provisional one gives way to it (`#adoptAll`).
      const held = () => core.sessions.has(clientId) && !this.#provisional.has(clientId);
      if (!held()) {
        try {
          state = await store.loadSession(clientId, Date.now());
        } catch (error) {
          if (unreadable(error)) {
            // Rows no node can read: tried again, it would fail forever (and hold the client's
            // logins meanwhile). Left in Redis as they are, owned by nobody; the client's logins
            // are refused as busy until an operator fixes or deletes them.
            logger.error(
              `Cluster: the stored session of ${clientId} cannot be read (${
                errorText(error)
              }): not adopted, its rows left in Redis (its logins are refused until they are fixed or deleted)`,
            );
            await bus.release(clientId).catch(() => {});
            return;
          }
          // Won (this node owns it now) but not read (Redis lost or refusing): tried again, the
          // script first (it answers that this node owns it), so that the session and what is
          // published for it meanwhile are kept [MQTT-3.1.2-4], not owned here and held nowhere.
          failed.push(clientId);
          if (!retry) {
            logger.warning(
              `Cluster: cannot load the session of ${clientId} after its adoption (${
                errorText(error)
              }): trying again`,
            );
          }
          return;
        }
      }
      const stored = state?.sessions[0];
      if (held()) return;
      if (state === undefined || stored === undefined || this.#closed) {
        if (!held()) await bus.release(clientId);
        return;
      }
      // A client connected at the node's death: its will came with the adoption (published
      // above), so the session does not keep it.
      if (stored.session.offlineSince === undefined) stored.session.will = undefined;
      won.push({ clientId, state });
    } catch (error) {
      logger.warning(`Cluster: cannot adopt the session of ${clientId}: ${errorText(error)}`);
    }
  }

  /**
   * Reserves the next block of message ids when half of the current one is used, and marks
   * read what waited for receive authorizations answered since.
   */
  sweep(): void {
    if (this.#undecided.length > 0) this.#readDecided();
    if (this.#reserving || this.#closed) return;
    if (this.#o.store.highestMessageId < this.#blockEnd - ID_BLOCK / 2) return;
    this.#reserve().catch((error) => {
      this.#o.logger.warning(`Cluster: cannot reserve message ids: ${errorText(error)}`);
    });
  }

  /**
   * Stops loading sessions (waiting logins go on at once) and waits until what the core wrote of
   * its sessions is committed: the nodes that adopt them once this one has left load all of it.
   *
   * @returns settled when committed (a failed write was logged by the writer)
   */
  async close(): Promise<void> {
    this.#closed = true;
    for (const wake of this.#pauses) wake();
    for (const wake of this.#waiting.values()) wake(undefined);
    // Adoptions under way stop at their next step; a script sent already is waited for (for a
    // bounded time), so that the bus leaves after it: a session won here is then among those
    // the leaving script hands to the other nodes, and nothing of it reaches Redis once this
    // node is gone.
    const adopting = new Set(this.#adopting.values());
    if (adopting.size > 0) {
      await within(Promise.all(adopting), REDIS_WAIT_MS, "adoptions").catch(() => {});
    }
    await this.#o.committed()?.catch(() => {});
  }

  /**
   * When Redis lost its data (`RedisStore.dataLost`): a fresh block of ids, every message this
   * node holds renumbered from it, before the store writer's probe and rewrite (see
   * `RedisStore.renewIds` for why).
   *
   * @returns settled when renewed, or at once when Redis kept its data
   * @throws {StoreError} (as a rejection) If Redis cannot be reached.
   */
  async renew(): Promise<void> {
    const store = this.#o.store;
    if (!store.dataLost || this.#closed) return;
    await store.renewIds(ID_BLOCK, (first) => {
      this.#blockEnd = first + ID_BLOCK;
      this.#o.core.renumberIds(first);
    });
  }

  async #reserve(): Promise<void> {
    this.#reserving = true;
    try {
      const first = await this.#o.store.reserveMessageIds(ID_BLOCK);
      this.#blockEnd = first + ID_BLOCK;
      this.#o.core.restore(idsFrom(first), Date.now());
    } finally {
      this.#reserving = false;
    }
  }

  /**
   * Waits for the previous owner's handoff (its marks), or until it is dead (its liveness key
   * expired: `"dead"`), at most `maxWait` (`"late"`, said in the log: unless another node claimed
   * the session meanwhile, it is then loaded as stored, without what that node may not have
   * committed yet).
   */
  async #handedOver(
    answered: Promise<Record<string, number> | undefined>,
    previous: string,
    clientId: string,
  ): Promise<Record<string, number> | "dead" | "late" | undefined> {
    const deadline = Date.now() + this.#o.maxWait;
    let done = false;
    let marks: Record<string, number> | undefined;
    answered.then((m) => {
      done = true;
      marks = m;
    }, () => {}); // Its rejection is the race's below.
    while (!done && !this.#closed && Date.now() < deadline) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        answered,
        new Promise((resolve) => timer = setTimeout(resolve, ALIVE_POLL_MS)),
      ]);
      clearTimeout(timer);
      if (done) return marks;
      const alive = within(this.#o.bus.alive(previous), REDIS_WAIT_MS, "liveness");
      if (!await alive.catch(() => true)) {
        // Reaped before its session is loaded (any node may reap it; this one does not wait):
        // the reap fences its incarnation, so a node only paused writes nothing more to the
        // session, and what it wrote before is in what is loaded next.
        await within(this.#o.bus.heartbeat(), REDIS_WAIT_MS, "reap").catch(() => {});
        return "dead";
      }
    }
    if (done || this.#closed) return marks;
    this.#o.logger.warning(
      `Cluster: node ${previous} did not hand the session of ${clientId} over within ${
        this.#o.maxWait / 1000
      } s`,
    );
    return "late";
  }
}

/** Client ids an adoption's log line names; the others are counted. */
const NAMED_ADOPTIONS = 10;

/**
 * The one line of an adoption: how many sessions of those `node` owned (or no node, after the
 * whole cluster stopped) are adopted here, naming the first {@linkcode NAMED_ADOPTIONS}.
 */
function adoptedLine(adopted: ReadonlySet<Session>, of: number, node: string | undefined): string {
  const names: string[] = [];
  for (const session of adopted) {
    if (names.length === NAMED_ADOPTIONS) break;
    names.push(JSON.stringify(session.clientId));
  }
  const more = adopted.size - names.length;
  return `Cluster: adopted ${adopted.size} of the ${of} sessions ${
    node === undefined ? "no node owned" : `node ${node} owned`
  }, kept here until their clients return: ${names.join(", ")}${
    more > 0 ? ` and ${more} more` : ""
  } (the others are clean, adopted by other nodes, or back with their clients)`;
}

/**
 * The shared store of a cluster: the {@linkcode BrokerStore} contract on Redis, so that a
 * persistent session's subscriptions and queued messages are where any node can load them.
 *
 * @module
 */

import { CallBatch } from "./_call_batch.ts";
import { EndSignal } from "./_end_signal.ts";
import { Buffer } from "node:buffer";
import type { Redis } from "ioredis";
import type { BrokerStore } from "../store/broker_store.ts";
import type { MessageRecord } from "../store/message_record.ts";
import type { StoreMutation } from "../store/mutation.ts";
import {
  mapSession,
  type SessionRecord,
  type SessionShape,
  type SubscriptionRecord,
} from "../store/session_record.ts";
import type { OutboundRecord, StoredSession, StoredState } from "../store/stored_state.ts";
import { StoreError } from "../store/store_error.ts";
import { decodeMessage, encodeMessage } from "../store/record_codec.ts";
import { messageProblem, subscriptionProblem } from "./_record_problem.ts";
import { GroupCommitStore } from "../store/_group_commit.ts";
import { expireAtLoad } from "../store/_load_expiry.ts";
import { closeRedis, createRedis, redactUrl, type RedisConnectOptions } from "./redis_connect.ts";
import { checkRedisVersion, RedisVersionError } from "./_redis_version.ts";
import { validateBatch } from "../store/mutation.ts";
import {
  APPLY_SCRIPT,
  APPLY_STAGED_SCRIPT,
  DATA_LOST,
  EPOCH_SCRIPT,
  LOAD_SCRIPT,
  LOAD_SESSION_SCRIPT,
  OPS,
  READ_DONE_SCRIPT,
  READ_ENTRIES_SCRIPT,
  RESERVE_SCRIPT,
} from "./_redis_store_scripts.ts";

/**
 * Where a session read in parts has its entries read from (`READ_SESSION_LUA`'s seventh row):
 * the key (the session's own `P out:ID`), how many, the client id, 1 when read by the session's
 * writer, else 0 and the token of the read's mark (`P reading`).
 */
type ReadFrom = [Buffer, number, Buffer, number, Buffer?];

/** Options of {@linkcode RedisStore.readRest} and {@linkcode RedisStore.loadSession}. */
export interface ReadRestOptions {
  /**
   * Called as each part of a session read is answered (the read's script, each part of a long
   * queue's entries, each group of messages): a caller bounds the wait for the next part.
   *
   * @default undefined
   */
  onPart?: () => void;
}

/** Options of {@linkcode RedisStore.open}. */
export interface RedisStoreOptions extends RedisConnectOptions {
  /**
   * Prefix of every key the store writes, so several brokers or clusters can share one Redis.
   *
   * @default {"amqtt:"}
   */
  prefix?: string;
  /**
   * A cluster node's ownership of sessions: the bus's hash of client id → owning node (a key in
   * the same Redis) and this node's id. A session whose deletion failed to be written (it ended
   * while Redis was away) is deleted by the next `rewrite` unless that hash names another node
   * and that node wrote the session's record since, or read it as its owner (the store notes
   * which node wrote each record last, and marks the owner's reads the same way): a node that claimed it meanwhile, and only waits for this one to hand it over,
   * must not resume a session that ended. Without it, such a session is deleted by the next
   * `rewrite` in any case. With it, the operations of a write (other than a `rewrite`'s and a
   * load-time expiry's) on a session whose record another node wrote last, or read as its owner,
   * are refused when the hash does not name this node its owner, the rest of the write applied,
   * and `taken` is called with the session and that node (then the commit rejects with a
   * {@linkcode StoreError} of kind `taken`: what the write carried for that session is stored
   * nowhere, and must not be acknowledged): after Redis lost its data, the
   * incarnation `fence` lets through the writes of a node cut off meanwhile, until its
   * registration tells it that another node took its session; the node lets go of it.
   */
  owner?: { key: string; node: string; taken?: (clientId: string, node: string) => void };
  /**
   * A cluster node's incarnation (`ClusterBus.incarnation`): every write carries the one current
   * when its batch was applied, and Redis refuses the whole write, atomically, when `key` names
   * another (the node was reaped while only paused, and its sessions adopted elsewhere). Such a
   * write rejects with a {@linkcode StoreError} of kind `fenced`, after `refused` was called with
   * it and the incarnation it carried (synchronously, before anyone waiting for the commit learns
   * of it): the sessions moved, it is no outage, and nothing of it is stored. A `key` gone
   * refuses the write as well while `epochKey` holds what `epoch` returns (the cluster's epoch the
   * node registered under: the `reaped` mark expired while the node was paused, and Redis did not
   * lose its data); without `epochKey`, or with `epoch` `""`, a key gone fences nothing; nor
   * while `genKey` holds less than `gen` returns (the last value of the cluster's `P count` the
   * node got: Redis went back to data older than its registration, see `ClusterBus`). Without
   * a fence, no write is fenced. With `nodeGenKey` (the node's own counter, `P gen:ID`), every
   * write that passes the fence INCRs it, and `counted` gets its value and the epoch the write
   * carried, before anyone waiting for the commit learns of it: a write acknowledged after a
   * snapshot Redis goes back to leaves the counter below what the node got, which the node's
   * next heartbeat finds (`ClusterBus.counted`); and a key gone is no fence while that counter
   * is gone too and `nodeGen` returns more than 0 (the last value of it the node got, 0 when its
   * last script was answered longer ago than a reaped mark lives: Redis went back to data older
   * than its registration).
   */
  fence?: {
    key: string;
    token: () => string;
    epochKey?: string;
    epoch?: () => string;
    genKey?: string;
    gen?: () => number;
    nodeGenKey?: string;
    nodeGen?: () => number;
    counted?: (gen: number, epoch: string) => void;
    refused?: (error: StoreError, token: string) => void;
  };
  /**
   * Milliseconds between the store's own checks that Redis kept its data
   * ({@linkcode RedisStore.checkData}), made only when no write was answered since the last one
   * (each write checks it: `ep`): an idle store learns of a loss no reconnection tells (its keys
   * deleted or evicted, FLUSHALL, a replica without the data promoted behind the same address)
   * without waiting for its next write or for the cluster's bus, which looks at its own keys only
   * and may use another server. 0 turns the checks off.
   *
   * @default {1000}
   */
  dataCheckInterval?: number;
}

type Arg = string | Buffer;
type ScriptedRedis = Redis & {
  amqttStoreApply(prefix: string, ops: Arg[]): Promise<number | unknown[]>;
  amqttStoreApplyStaged(...args: Arg[]): Promise<number>;
  amqttStoreLoadBuffer(...args: Arg[]): Promise<unknown>;
  amqttStoreReserve(...args: Arg[]): Promise<[number, Buffer | string]>;
  amqttStoreEpoch(prefix: string, token: string): Promise<string>;
  amqttStoreSessionBuffer(...args: Arg[]): Promise<unknown>;
  amqttStoreEntriesBuffer(...args: Arg[]): Promise<[Buffer, Buffer[], Buffer[], Buffer[][]]>;
  amqttStoreReadDone(...args: Arg[]): Promise<number>;
};

function bytes(value: Uint8Array): Buffer {
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

function encodeSession(session: SessionRecord): string {
  return JSON.stringify(mapSession(session, (m) => encodeMessage(m).toBase64()));
}

function decodeSession(text: string): SessionRecord {
  const json = JSON.parse(text) as SessionShape<string>;
  return mapSession(json, (m) => decodeMessage(Uint8Array.fromBase64(m)));
}

/** Appends the script arguments of one mutation. */
function encodeMutation(m: StoreMutation, args: Arg[]): void {
  switch (m.type) {
    case "putSession":
      args.push(OPS.putSession, m.session.clientId, encodeSession(m.session));
      return;
    case "deleteSession":
      args.push(OPS.deleteSession, m.clientId);
      return;
    case "putSubscription":
      args.push(
        OPS.putSubscription,
        m.clientId,
        m.subscription.filter,
        JSON.stringify(m.subscription),
      );
      return;
    case "deleteSubscription":
      args.push(OPS.deleteSubscription, m.clientId, m.filter);
      return;
    case "putMessage":
      args.push(OPS.putMessage, String(m.id), bytes(encodeMessage(m.message)));
      return;
    case "queueOutbound":
      args.push(
        OPS.queueOutbound,
        m.clientId,
        String(m.seq),
        String(m.messageId),
        String(m.qos),
        m.packetId === undefined ? "" : String(m.packetId),
      );
      return;
    case "sendOutbound":
      args.push(OPS.sendOutbound, m.clientId, String(m.seq), String(m.packetId));
      return;
    case "pubrelOutbound":
      args.push(OPS.pubrelOutbound, m.clientId, String(m.seq));
      return;
    case "deleteOutbound":
      args.push(OPS.deleteOutbound, m.clientId, String(m.seq));
      return;
    case "putInbound":
      args.push(OPS.putInbound, m.clientId, String(m.packetId));
      return;
    case "deleteInbound":
      args.push(OPS.deleteInbound, m.clientId, String(m.packetId));
      return;
    case "putRetained":
      args.push(OPS.putRetained, m.message.topic, bytes(encodeMessage(m.message)));
      return;
    case "deleteRetained":
      args.push(OPS.deleteRetained, m.topic);
      return;
    case "setCounter":
      args.push(OPS.setCounter, m.name, String(m.value));
      return;
    case "clear":
      args.push(OPS.clear);
      return;
  }
}

/** Argument bytes a piece of a rewrite sends at most, when it can (`rewrite`). */
const PIECE_BYTES = 1024 * 1024;
/** How long a staged rewrite is kept if it is never applied (its writer died), seconds. */
const STAGED_TTL_S = 3600;
/** Default ms between an idle store's checks that Redis kept its data (`dataCheckInterval`). */
const DATA_CHECK_MS = 1000;

function argBytes(arg: Arg): number {
  return typeof arg === "string" ? arg.length * 3 : arg.byteLength;
}

/** Pairs of a flat HGETALL reply. */
function* pairs(flat: unknown): Generator<[Buffer, Buffer]> {
  const list = flat as Buffer[];
  for (let i = 0; i + 1 < list.length; i += 2) yield [list[i]!, list[i + 1]!];
}

function parseOutbound(seq: Buffer, value: Buffer): OutboundRecord {
  const [state, qos, packetId, messageId] = value.toString("utf8").split("|");
  return {
    seq: Number(seq.toString("utf8")),
    qos: Number(qos) as 0 | 1 | 2,
    state: state as OutboundRecord["state"],
    packetId: packetId === "" ? undefined : Number(packetId),
    messageId: messageId === "" ? undefined : Number(messageId),
  };
}

/**
 * Why a session's rows read back cannot be restored, or undefined: what the core and its
 * subscription tree would throw on, half-way through a restore (`_record_problem.ts`).
 */
function storedSessionProblem(
  stored: StoredSession,
  messages: ReadonlyMap<number, MessageRecord>,
): string | undefined {
  if (typeof stored.session?.clientId !== "string") return "session record without a client id";
  for (const sub of stored.subscriptions) {
    if (typeof sub !== "object" || sub === null) return "subscription record not an object";
    const problem = subscriptionProblem(sub.filter, sub as unknown as Record<string, unknown>);
    if (problem !== undefined) return `subscription ${problem}`;
  }
  for (const out of stored.outbound) {
    const id = out.packetId;
    if (
      !Number.isSafeInteger(out.seq) || !(out.qos === 0 || out.qos === 1 || out.qos === 2) ||
      (id !== undefined && !(Number.isInteger(id) && id >= 1 && id <= 0xffff))
    ) {
      return `outbound entry ${out.seq} malformed`;
    }
  }
  for (const [id, message] of messages) {
    const problem = messageProblem(message);
    if (problem !== undefined) return `message ${id}: ${problem}`;
  }
  return undefined;
}

function view(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** The most sessions read in one script call (a call of Redis's runs alone: kept short). */
const MAX_SESSION_READS = 64;

/**
 * A {@linkcode BrokerStore} on Redis (`ioredis`), shared by every node of a cluster.
 *
 * Every key starts with a prefix. Batches applied during one event-loop turn are sent as one Lua
 * script run, which Redis executes atomically (group commit): all of it or nothing is seen by
 * other clients. Messages are stored once, binary-safe, with a reference count, and deleted
 * with their last reference. Durability is Redis's own (`appendonly`, `appendfsync`): a commit
 * resolves when Redis has executed it.
 *
 * While Redis is unreachable, `ioredis` reconnects by itself and reads wait for it; a commit
 * that fails rejects with a {@linkcode StoreError} of kind `write` (and is never sent later), and
 * a read sent on a connection that then closes rejects with one of kind `io`.
 *
 * @example
 * ```ts ignore
 * import { RedisStore } from "./redis_store.ts";
 *
 * await using store = await RedisStore.open({ url: "redis://127.0.0.1:6379", prefix: "amqtt:" });
 * store.apply([{ type: "setCounter", name: "clients/maximum", value: 12 }]);
 * await store.commit();
 * console.log((await store.load(Date.now())).counters.get("clients/maximum")); // 12
 * ```
 */
export class RedisStore extends GroupCommitStore<Arg[]> implements BrokerStore {
  /** The Redis URL (password hidden) and the prefix. */
  readonly location: string;
  readonly #redis: ScriptedRedis;
  readonly #prefix: string;
  #transactions = 0;
  #highestMessageId = 0;
  /** The last id of the blocks this store reserved (`reserveMessageIds`), 0 before any. */
  #reservedUpTo = 0;
  /** Fails the commands pending when the connection closes: a write not answered may be lost. */
  #closed = new EndSignal();
  /** Settled when Redis is back, for the reads that wait for it (`#answered`). */
  #back: Promise<void> | undefined;
  /** Writes applied during a rewrite go to Redis after it (`rewrite`). */
  #rewriting: Promise<unknown> | undefined;
  /**
   * Writes handed to Redis (or waiting for a rewrite to be) and not answered yet: a read on
   * another connection waits for them ({@linkcode readable}), where one on this connection would
   * come after them.
   */
  readonly #unanswered = new Set<Promise<unknown>>();
  readonly #owner: RedisStoreOptions["owner"];
  /** Set while the deletions of a load-time expiry are applied (`#applyExpiry`). */
  #expiry = false;
  /** The client ids a batch deletes the session of, by the batch's arguments (`prepare`). */
  readonly #deletes = new WeakMap<Arg[], string[]>();
  /** Sessions whose deletion was in a write that failed, until a rewrite deletes them. */
  readonly #ended = new Set<string>();
  readonly #fence: RedisStoreOptions["fence"];
  /** The cluster epoch each run's head carried (`#head`), with a fence. */
  readonly #clusterEpochs = new WeakMap<Arg[], string>();
  /** The incarnation each batch was applied under (`prepare`), with a fence. */
  readonly #tokens = new WeakMap<Arg[], string>();
  /**
   * Session reads of concurrent logins as one script call. A call unanswered when the connection
   * closes is dropped by `ioredis` (`autoResendUnfulfilledCommands`: its promise never settles),
   * so the close ends it: else every later read would wait behind it for good.
   */
  readonly #sessionReads = new CallBatch<string, unknown[]>(
    (clientIds) =>
      this.#closed.wait(
        this.#redis.amqttStoreSessionBuffer(
          this.#prefix,
          // The owner's reads mark it as the sessions' writer (see LOAD_SESSION_SCRIPT).
          this.#owner?.key ?? "",
          this.#owner?.node ?? "",
          ...clientIds,
        ),
      ) as Promise<unknown[][]>,
    MAX_SESSION_READS,
  );
  /**
   * `P epoch` as this store last wrote to it: every write carries it and changes nothing when
   * Redis holds another (or none), see {@linkcode dataLost}.
   */
  #epoch = "";
  /** The epoch each batch was prepared under (`prepare`): one from before a renewal is stale. */
  readonly #epochs = new WeakMap<Arg[], string>();
  #dataLost = false;
  #losses = 0;
  #onFailure: ((error: unknown) => void) | undefined;
  /** The periodic data check (`dataCheckInterval`), until the store closes. */
  #checkTimer: ReturnType<typeof setInterval> | undefined;
  /** A write was answered since the last periodic check: it checked the epoch itself. */
  #wroteSince = false;
  #checking = false;
  /**
   * The server's version was checked since the connection's return ({@linkcode RedisVersionError}
   * otherwise): nothing is sent before (a failover may land on an older server, whose scripts would
   * fail halfway), and a Redis too old is an outage for this store (`#tooOld` says why).
   */
  #versionOk = true;
  #tooOld: string | undefined;
  #versionChecking = false;
  /** The reads waiting for Redis (`#whenBack`), woken once its version is checked. */
  readonly #wakes = new Set<() => void>();

  /** Whether a commit may be refused in part as another node's (`owner`: see `BrokerStore`). */
  get refusesTaken(): boolean {
    return this.#owner !== undefined;
  }

  private constructor(
    redis: Redis,
    location: string,
    prefix: string,
    owner?: RedisStoreOptions["owner"],
    fence?: RedisStoreOptions["fence"],
  ) {
    super(location);
    this.#owner = owner;
    this.#fence = fence;
    this.#redis = redis as ScriptedRedis;
    this.location = location;
    this.#prefix = prefix;
    this.#redis.defineCommand("amqttStoreApply", { numberOfKeys: 0, lua: APPLY_SCRIPT });
    this.#redis.defineCommand("amqttStoreApplyStaged", {
      numberOfKeys: 0,
      lua: APPLY_STAGED_SCRIPT,
    });
    this.#redis.on("close", () => {
      this.#closed.end(new Error("the connection to Redis closed"));
      this.#closed.renew();
    });
    this.#redis.defineCommand("amqttStoreLoad", { numberOfKeys: 0, lua: LOAD_SCRIPT });
    this.#redis.defineCommand("amqttStoreReserve", { numberOfKeys: 0, lua: RESERVE_SCRIPT });
    this.#redis.defineCommand("amqttStoreSession", { numberOfKeys: 0, lua: LOAD_SESSION_SCRIPT });
    this.#redis.defineCommand("amqttStoreEntries", { numberOfKeys: 0, lua: READ_ENTRIES_SCRIPT });
    this.#redis.defineCommand("amqttStoreReadDone", { numberOfKeys: 0, lua: READ_DONE_SCRIPT });
    // (`amqttStoreEpoch` is defined by `open`, which asks it first.) Each return of Redis: did it
    // keep its data? An idle node would otherwise learn it from its next write only, and until
    // then its sessions would be missing for the other nodes.
    this.#redis.on("ready", () => {
      this.#versionOk = false;
      this.#checkVersion();
    });
  }

  /**
   * Asks the server its version after a reconnection: recent enough, the store is usable again
   * (and checks whether Redis kept its data); too old, it stays as without Redis, asked again by
   * the periodic check ({@linkcode #idleCheck}) and at the next reconnection.
   */
  #checkVersion(): void {
    if (this.#versionChecking) return;
    this.#versionChecking = true;
    // Ended by a close: its INFO, unanswered then, would never settle (not sent again), and no
    // later return would ask again (`#versionChecking`).
    this.#closed.wait(checkRedisVersion(this.#redis)).then(() => true, (error) => {
      if (error instanceof RedisVersionError) {
        this.#tooOld = error.message;
        return false;
      }
      // Not answered: lost again (its return asks again), or a server that does not say, tried
      // as it is (as at open).
      return this.#redis.status === "ready";
    }).then((usable) => {
      this.#versionChecking = false;
      if (!usable) return;
      this.#tooOld = undefined;
      this.#versionOk = true;
      for (const wake of [...this.#wakes]) wake();
      this.checkData();
    });
  }

  /**
   * Whether Redis lost its data since this store last wrote to it (restarted without persistence,
   * or emptied): its `P epoch` key is gone or holds another token. Found at each reconnect and by
   * the writes (they fail then, changing nothing) until {@linkcode renewIds}.
   */
  get dataLost(): boolean {
    return this.#dataLost;
  }

  /** Times this store found that Redis lost its data ({@linkcode dataLost}), since it opened. */
  get losses(): number {
    return this.#losses;
  }

  /**
   * Checks whether Redis lost its data since this store last wrote to it ({@linkcode dataLost}),
   * and if so reports it to the writer as a failed write (`reportFailures`), which starts its
   * outage and the rewrite after it. Done at each reconnection; a cluster node asks too when its
   * bus found the cluster's data gone with no connection closed (FLUSHALL): an idle node would
   * otherwise learn it from its next write only.
   *
   * @returns whether the data is lost (`false` too when Redis did not answer: asked again later)
   *
   * @example
   * ```ts ignore
   * if (await store.checkData()) console.log("Redis lost its data: the sessions are rewritten");
   * ```
   */
  async checkData(): Promise<boolean> {
    if (this.#epoch === "" || this.#dataLost) return this.#dataLost;
    let epoch: string | null;
    try {
      // Through `#answered`: sent directly, a GET whose connection closes before its answer
      // would never settle (`ioredis` drops it, `autoResendUnfulfilledCommands`), and the periodic
      // check, one at a time (`#idleCheck`), would never run again.
      epoch = await this.#answered(() => this.#redis.get(`${this.#prefix}epoch`));
    } catch {
      return false; // lost again: the next return checks
    }
    if (epoch !== this.#epoch) this.#lost();
    return this.#dataLost;
  }

  /**
   * The periodic check: skipped while writes are answered (each one carries the epoch, `ep`), while
   * Redis is not connected (its return checks) and while a check is in flight.
   */
  #idleCheck(): void {
    if (!this.#versionOk && this.#redis.status === "ready") return this.#checkVersion();
    if (this.#wroteSince) {
      this.#wroteSince = false;
      return;
    }
    if (this.#checking || !this.#writable()) return;
    this.#checking = true;
    this.checkData().finally(() => this.#checking = false);
  }

  /** Redis lost its data: said to the writer as a failed write, which starts its outage. */
  #lost(): void {
    if (this.#dataLost) return;
    this.#dataLost = true;
    this.#losses++;
    this.#onFailure?.(
      new StoreError(
        `Cannot write store ${this.location}: Redis lost its data (restarted empty?); ` +
          "this node's sessions are written again",
        { kind: "lost" },
      ),
    );
  }

  /**
   * See `BrokerStore.reportFailures`; also told when Redis is found to have lost its data.
   *
   * @param listener called with the error of each failed write
   */
  override reportFailures(listener: (error: unknown) => void): void {
    this.#onFailure = listener;
    super.reportFailures(listener);
  }

  /** The highest message id written through this store so far (0: none): for id blocks. */
  get highestMessageId(): number {
    return this.#highestMessageId;
  }

  /**
   * The highest id this store reserved or wrote, 0 for none: every write raises Redis's id
   * counter to it, so that a Redis restarted without its data hands out none of the ids this
   * node holds or may still give (its block) again.
   */
  get #idFloor(): number {
    return Math.max(this.#reservedUpTo, this.#highestMessageId);
  }

  /** Appends the operation raising Redis's id counter to {@linkcode #idFloor}, if any. */
  #raiseIds(args: Arg[]): void {
    const floor = this.#idFloor;
    if (floor > 0) args.push(OPS.idFloor, String(floor));
  }

  /** Script runs (transactions) so far: with group commit, fewer than the batches applied. */
  get transactions(): number {
    return this.#transactions;
  }

  /**
   * Connects to Redis.
   *
   * @param options URL, credentials, TLS and key prefix
   * @returns the open store
   * @throws {TypeError} If the URL or prefix is invalid.
   * @throws {StoreError} (kind `io`) If Redis cannot be reached or refuses the credentials.
   */
  static async open(options: RedisStoreOptions): Promise<RedisStore> {
    const prefix = options.prefix ?? "amqtt:";
    if (typeof prefix !== "string") throw new TypeError("Invalid Redis key prefix: not a string");
    const location = `${redactUrl(options.url)} (prefix ${JSON.stringify(prefix)})`;
    // One attempt at open, so a wrong address fails now; reconnects are unbounded afterwards.
    let opened = false;
    let epoch = "";
    const redis = createRedis(options, {
      retryStrategy: (times) => opened ? Math.min(50 * times, 2000) : null,
      // A write in flight when the connection closes is reported failed (`#written`): it must not
      // be sent again once Redis is back, after the rewrite that replaces what it changed.
      autoResendUnfulfilledCommands: false,
    });
    // ioredis reports connection errors as events; without a listener they would be thrown.
    redis.on("error", () => {});
    redis.defineCommand("amqttStoreEpoch", { numberOfKeys: 0, lua: EPOCH_SCRIPT });
    try {
      await redis.connect();
      // Too old a Redis (no XADD MINID for the cluster): refused now, as the cluster's bus does.
      await checkRedisVersion(redis);
      opened = true;
      epoch = await (redis as ScriptedRedis).amqttStoreEpoch(prefix, crypto.randomUUID());
    } catch (error) {
      await closeRedis(redis);
      throw new StoreError(
        `Cannot open store ${location}: ${error instanceof Error ? error.message : error}`,
        { kind: "io", cause: error },
      );
    }
    const store = new RedisStore(redis, location, prefix, options.owner, options.fence);
    store.#epoch = epoch;
    const every = options.dataCheckInterval ?? DATA_CHECK_MS;
    if (every > 0) store.#checkTimer = setInterval(() => store.#idleCheck(), every);
    return store;
  }

  /**
   * Reserves a block of message ids no other node sharing this store will use: in a cluster,
   * every node writes messages into the same store, so ids come from one Redis counter rather
   * than from each node's own `nextMessageId`. The first reservation starts above the ids
   * already stored; ids are never handed out twice, even after `clear`. A block always starts
   * above the ids this store reserved or wrote before, and each write raises the counter to them:
   * a Redis restarted without its data (its counter gone) hands out none of them again once the
   * node holding them has written (its rewrite after the outage writes, at the latest).
   *
   * @param count how many ids, at least 1
   * @returns the first id of the block `[first, first + count)`
   * @throws {RangeError} If `count` is not a positive safe integer.
   * @throws {StoreError} (as a rejection) If Redis cannot be reached.
   */
  async reserveMessageIds(count: number): Promise<number> {
    this.assertOpen();
    if (!Number.isSafeInteger(count) || count < 1) {
      throw new RangeError(`Invalid count ${count}: expected a positive integer`);
    }
    try {
      const [last] = await this.#answered(() =>
        this.#redis.amqttStoreReserve(
          this.#prefix,
          String(count),
          String(this.#idFloor),
          this.#epoch,
          "0",
        )
      );
      if (last > this.#reservedUpTo) this.#reservedUpTo = last;
      return last - count + 1;
    } catch (error) {
      if (String((error as Error)?.message).includes(DATA_LOST)) this.#lost();
      throw new StoreError(
        `Cannot reserve message ids in ${this.location}: ${(error as Error).message}`,
        {
          kind: "io",
          cause: error,
        },
      );
    }
  }

  /**
   * After Redis lost its data ({@linkcode dataLost}): reserves a fresh block of ids and makes this
   * store write to Redis as it is now. The ids this node holds are not safe any more: Redis's
   * counter started again, and another node, or one started since, may already have a block
   * holding them (a node idle across the restart has written nothing that would raise it). So
   * nothing holding them is written again: `renumber` gives every message the caller holds a new
   * id from this block before any write of the new state is made, and writes prepared before
   * (with the old ids) fail, changing nothing. Chosen over a floor kept in Redis (lost with the
   * data, and a node joining after the loss knows no other's ids) or per-node id spaces (numbered
   * how, without Redis?): the blocks of one Redis counter never overlap, and after this every id
   * this node writes comes from one. Sessions whose deletion failed before are not deleted by
   * the next {@linkcode rewrite}: they went with the data, and what Redis holds under their client
   * ids now was written since by the nodes holding them (their ownership may not be written yet).
   *
   * @param count how many ids, at least 1
   * @param renumber called with the first id of the block `[first, first + count)`, at once
   * @throws {StoreError} (as a rejection) If Redis cannot be reached.
   */
  async renewIds(count: number, renumber: (first: number) => void): Promise<void> {
    this.assertOpen();
    if (!Number.isSafeInteger(count) || count < 1) {
      throw new RangeError(`Invalid count ${count}: expected a positive integer`);
    }
    let reply: [number, Buffer | string];
    try {
      reply = await this.#answered(() =>
        this.#redis.amqttStoreReserve(
          this.#prefix,
          String(count),
          String(this.#idFloor),
          crypto.randomUUID(),
          "1",
        )
      );
    } catch (error) {
      throw new StoreError(
        `Cannot reserve message ids in ${this.location}: ${(error as Error).message}`,
        { kind: "io", cause: error },
      );
    }
    const [last, epoch] = reply;
    if (last > this.#reservedUpTo) this.#reservedUpTo = last;
    // Their sessions went with the data (called without a loss, nothing is lost).
    if (this.#epoch !== String(epoch)) this.#ended.clear();
    this.#epoch = String(epoch);
    this.#dataLost = false;
    renumber(last - count + 1);
  }

  /**
   * Applies load-time expiry, writing the deletions, and reads everything held, in one atomic
   * read.
   *
   * @param now wall-clock time, ms since the epoch
   * @returns the state after expiry
   * @throws {StoreError} (as a rejection) If Redis cannot be read.
   */
  async load(now: number): Promise<StoredState> {
    this.assertOpen();
    const written = this.flush();
    if (written !== undefined) await written;
    let reply: unknown[];
    try {
      reply = await this.#answered(() =>
        this.#redis.amqttStoreLoadBuffer(this.#prefix)
      ) as unknown[];
    } catch (error) {
      throw new StoreError(`Cannot read store ${this.location}: ${(error as Error).message}`, {
        kind: "io",
        cause: error,
      });
    }
    const [sessionsFlat, per, messagesFlat, retainedFlat, countersFlat] = reply;
    const sessions: StoredSession[] = [];
    let index = 0;
    for (const [, record] of pairs(sessionsFlat)) {
      const [subs, out, inbound] = (per as unknown[][])[index++]!;
      const subscriptions: SubscriptionRecord[] = [];
      for (const [, sub] of pairs(subs)) subscriptions.push(JSON.parse(sub.toString("utf8")));
      const outbound: OutboundRecord[] = [];
      for (const [seq, value] of pairs(out)) outbound.push(parseOutbound(seq, value));
      sessions.push({
        session: decodeSession(record.toString("utf8")),
        subscriptions,
        outbound,
        inbound: (inbound as Buffer[]).map((b) => Number(b.toString("utf8"))),
      });
    }
    const messages = new Map<number, MessageRecord>();
    for (const [id, record] of pairs(messagesFlat)) {
      messages.set(Number(id.toString("utf8")), decodeMessage(view(record)));
    }
    const retained: MessageRecord[] = [];
    for (const [, record] of pairs(retainedFlat)) retained.push(decodeMessage(view(record)));
    const counters = new Map<string, number>();
    for (const [name, value] of pairs(countersFlat)) {
      counters.set(name.toString("utf8"), Number(value.toString("utf8")));
    }
    const { state, mutations } = expireAtLoad({ sessions, messages, retained, counters }, now);
    if (mutations.length > 0) {
      this.#applyExpiry(mutations);
      await this.commit();
    }
    return state;
  }

  /**
   * Reads one session with everything stored beside it, in one atomic read, and applies the
   * load-time expiry to it: what a cluster node does when a client whose session another node
   * kept connects to it. Unlike {@linkcode load}, it reads nothing else (no retained messages,
   * counters or other sessions).
   *
   * @param clientId the client id
   * @param now wall-clock time, ms since the epoch
   * @param options `onPart`, called as each part of the read is answered (see
   *   {@linkcode readRest})
   * @returns the state with that session (none when it is not stored or has expired: its will is
   *   then in `dueWills`) and the messages its deliveries reference; `nextMessageId` is 0, since
   *   ids come from {@linkcode reserveMessageIds}
   * @throws {StoreError} (as a rejection) If Redis cannot be read.
   */
  async loadSession(
    clientId: string,
    now: number,
    options: ReadRestOptions = {},
  ): Promise<StoredState> {
    this.assertOpen();
    const written = this.flush();
    if (written !== undefined) await written;
    let reply: unknown[];
    try {
      reply = await this.#answered(() => this.#sessionReads.add(clientId));
    } catch (error) {
      throw new StoreError(
        `Cannot read the session of ${clientId} in ${this.location}: ${(error as Error).message}`,
        { kind: "io", cause: error },
      );
    }
    options.onPart?.();
    const { state, committed } = this.sessionFrom(await this.readRest(reply, options), now);
    if (committed !== undefined) await committed;
    return state;
  }

  /**
   * What a session read left to read after it, fetched on this store's connection, one command at
   * a time (each reply bounded, other commands served between them): the outbound entries of a
   * session with more than `READ_PART_ENTRIES` (or more than its batch of reads had left), where
   * they are (`READ_ENTRIES_SCRIPT`, about `READ_PART_ENTRIES` a call, with their messages up to
   * `READ_PART_BYTES`), then the messages past `READ_PART_BYTES` (a long queue of large messages,
   * or a batch's sessions past their shared part), one HMGET per group the reads named: the rows
   * complete, as {@linkcode sessionFrom} takes them. Read by the session's owner and writer (its
   * claim or its read as the owner made it the writer), nothing else changes the session
   * meanwhile, and each part checks it is still the writer; read by another reader (or outside a
   * cluster), each part checks the read's mark (`P reading`), which every write of the session's
   * entries deletes: the parts are the entries as the read found them, or the read fails. A
   * message the read named and gone since fails the read (Redis lost its data, or the session was
   * taken over, meanwhile), rather than be left out and its delivery deleted as of a message gone;
   * so does a message gone whose entry the session no longer holds as read.
   *
   * A long queue takes many parts (100,000 entries: some 25 of entries and as many of messages,
   * seconds on a busy machine): `onPart` is called as each is answered, so that a caller bounds
   * the wait for the next part rather than the whole read (a read making progress is not stuck).
   *
   * @param rows the rows the script answered for the session
   * @param options `onPart`, called as each part is answered
   * @returns the rows with every entry and message read
   * @throws {StoreError} (as a rejection) If Redis cannot be read, or the session changed since
   *   the read.
   */
  async readRest(rows: unknown[], options: ReadRestOptions = {}): Promise<unknown[]> {
    const from = rows[6] as ReadFrom | null | undefined;
    const groups = [...(rows[5] ?? []) as Buffer[][]];
    if (!from && groups.length === 0) return rows;
    const messages = [...rows[4] as Buffer[]];
    let out = rows[2];
    try {
      if (from) out = await this.#readEntries(from, messages, groups, options.onPart);
      const key = `${this.#prefix}msg`;
      // One group at a time: pipelined, Redis would answer them all before the next command of
      // another connection (a heartbeat), as one reply would.
      for (const ids of groups) {
        const bodies = await this.#answered(() => this.#redis.hmgetBuffer(key, ...ids));
        ids.forEach((id, j) => {
          const body = bodies[j];
          // Listed by the read, which only its owner and writer (this node) removes from the
          // session: gone, Redis lost its data or went back to older data since the read, or
          // another node took the session over and wrote it. Left out, the load-time expiry
          // would delete its delivery, as of a message gone (`expireAtLoad`), and a QoS 1/2
          // message acknowledged to its publisher would be lost: the read fails instead, as one
          // whose connection was lost (the login is refused as busy, an adoption tried again).
          if (body === null) throw new Error(`message ${id} of the session is gone since its read`);
          messages.push(id, body);
        });
        options.onPart?.();
      }
    } catch (error) {
      throw new StoreError(
        `Cannot read a session in parts in ${this.location}: ${(error as Error).message}`,
        { kind: "io", cause: error },
      );
    }
    return [rows[0], rows[1], out, rows[3], messages];
  }

  /**
   * Ends the read in parts of rows nobody reads (the answer of a claim with its read that came
   * after its login gave up on it): the mark of a reader that is not the session's writer
   * (`P reading`) is deleted, else kept until it expires (`READ_MARK_TTL_S`), costing every
   * write of any session's entries an HDEL meanwhile.
   *
   * @param rows the rows a read answered for a session
   * @returns settled when done (also when Redis is away: the mark expires then)
   */
  async discardRead(rows: unknown[]): Promise<void> {
    const from = (rows as unknown[] | undefined)?.[6] as ReadFrom | null | undefined;
    await this.#readDone(from);
  }

  /** Deletes the mark of a read in parts by a reader that is not the writer, if it is one. */
  async #readDone(from: ReadFrom | null | undefined): Promise<void> {
    // By the writer (or read whole): no mark.
    if (!from || from[4] === undefined || !this.#writable()) return;
    await this.#closed.wait(this.#redis.amqttStoreReadDone(this.#prefix, from[2], from[4]))
      .catch(() => {});
  }

  /**
   * The outbound entries of a session read in parts (`from`: where, how many, the client id,
   * whether by the writer, the read's token), a part at a time where they are; their messages
   * added to `messages` (flat) and `groups`. Every entry counted is read (`HSCAN` may answer one
   * twice), else fails; a read given up has its mark deleted.
   */
  async #readEntries(
    from: ReadFrom,
    messages: Buffer[],
    groups: Buffer[][],
    onPart: (() => void) | undefined,
  ): Promise<Buffer[]> {
    const [key, count, clientId, , token] = from;
    const entries = new Map<string, [Buffer, Buffer]>();
    let cursor = "0";
    let done = false;
    try {
      do {
        const [next, flat, msgs, rest] = await this.#answered(() =>
          this.#redis.amqttStoreEntriesBuffer(
            this.#prefix,
            key,
            cursor,
            clientId,
            this.#owner?.node ?? "",
            token ?? "",
          )
        );
        for (let i = 0; i + 1 < flat.length; i += 2) {
          entries.set(flat[i]!.toString("latin1"), [flat[i]!, flat[i + 1]!]);
        }
        for (const m of msgs) messages.push(m);
        for (const ids of rest) groups.push(ids);
        cursor = next.toString("latin1");
        onPart?.();
      } while (cursor !== "0");
      done = true;
    } finally {
      // Given up before its last part (which deletes it): else kept until it expires.
      if (!done) await this.#readDone(from);
    }
    if (entries.size !== Number(count)) {
      throw new Error(
        `the session's outbound entries read in parts are ${entries.size}, not the ${count} counted`,
      );
    }
    const out: Buffer[] = [];
    for (const [seq, entry] of entries.values()) out.push(seq, entry);
    return out;
  }

  /**
   * The key prefix of this store's keys: a cluster's claim reads a session under it
   * (`ClusterBus.claimRead`).
   */
  get prefix(): string {
    return this.#prefix;
  }

  /**
   * When a session may be read by another connection to the same Redis as this store would read
   * it ({@linkcode loadSession}): once every write applied so far is answered, and this store is
   * connected (waiting for it while Redis is away). The writes sent already count as well as those
   * pending (a read on this store's connection would come after them, one on another connection
   * may overtake them): the group commit's, a rewrite's and those waiting for it, the deletions
   * written at once ({@linkcode deleteEnded}, {@linkcode deleteDiscarded}).
   *
   * @returns `undefined` when it may be read now, else settled then
   * @throws {StoreError} (as a rejection) If a write failed, or the store was closed.
   */
  readable(): Promise<void> | undefined {
    this.assertOpen();
    // The batches pending join the writes unanswered, which a read on this store's connection
    // would come after (a Redis connection answers in order): the group commit's writes sent
    // already, the rewrite's and those waiting for it, and the deletions written at once.
    this.flush();
    if (this.#unanswered.size === 0 && this.#writable()) return undefined;
    const writes = [...this.#unanswered];
    return (async () => {
      await Promise.all(writes);
      await this.#answered(() => Promise.resolve());
    })();
  }

  /** `write` until it settles among {@linkcode #unanswered}; returned as it is. */
  #unansweredUntilDone<T>(write: Promise<T>): Promise<T> {
    this.#unanswered.add(write);
    const done = () => this.#unanswered.delete(write);
    write.then(done, done);
    return write;
  }

  /**
   * A session as read by `LOAD_SESSION_SCRIPT` or a claim with its read (`READ_SESSION_LUA`),
   * with the load-time expiry applied (its deletion written), as {@linkcode loadSession} returns
   * it.
   *
   * @param rows the rows the script answered for the session
   * @param now wall-clock time, ms since the epoch
   * @returns the state with that session, or none; with `committed` when the expiry deleted
   *   something: settled once written, rejected with a `StoreError` if it cannot be
   * @throws {RangeError} If the rows cannot be restored (a filter the subscription tree refuses,
   *   a message topic that is no topic name…); `SyntaxError` or `TypeError` if they cannot be
   *   decoded at all.
   */
  sessionFrom(
    rows: unknown[],
    now: number,
  ): { state: StoredState; committed?: Promise<void> } {
    const [record, subs, out, inbound, messagesFlat] = rows as [Buffer | null, ...unknown[]];
    const sessions: StoredSession[] = [];
    const messages = new Map<number, MessageRecord>();
    if (record !== null && record !== undefined) {
      const subscriptions: SubscriptionRecord[] = [];
      for (const [, sub] of pairs(subs)) subscriptions.push(JSON.parse(sub.toString("utf8")));
      subscriptions.sort((a, b) => a.filter < b.filter ? -1 : a.filter > b.filter ? 1 : 0);
      const outbound: OutboundRecord[] = [];
      for (const [seq, value] of pairs(out)) outbound.push(parseOutbound(seq, value));
      sessions.push({
        session: decodeSession(record.toString("utf8")),
        subscriptions,
        outbound,
        inbound: (inbound as Buffer[]).map((b) => Number(b.toString("utf8"))).sort((a, b) => a - b),
      });
      for (const [id, body] of pairs(messagesFlat)) {
        messages.set(Number(id.toString("utf8")), decodeMessage(view(body)));
      }
      const problem = storedSessionProblem(sessions[0]!, messages);
      if (problem !== undefined) {
        throw new RangeError(`Cannot read the stored session: ${problem}`);
      }
    }
    const { state, mutations } = expireAtLoad(
      { sessions, messages, retained: [], counters: new Map() },
      now,
    );
    const result: { state: StoredState; committed?: Promise<void> } = {
      state: { ...state, nextMessageId: 0 },
    };
    if (mutations.length > 0) {
      this.#applyExpiry(mutations);
      result.committed = this.commit();
    }
    return result;
  }

  /**
   * One session's rows as the session script answers them. While one call is unanswered, reads
   * wait for it and go together: under load the logins of a batch cost one call, not one each,
   * and alone a read goes at once.
   */
  /**
   * Reads counters (`setCounter`) without loading anything else.
   *
   * @param names counter names
   * @returns their values, `undefined` for those never set
   * @throws {StoreError} (as a rejection) If Redis cannot be read.
   */
  async counters(names: readonly string[]): Promise<(number | undefined)[]> {
    this.assertOpen();
    const written = this.flush();
    if (written !== undefined) await written;
    try {
      const values = await this.#answered(() =>
        this.#redis.hmget(`${this.#prefix}counters`, ...names)
      );
      return values.map((v) => v === null ? undefined : Number(v));
    } catch (error) {
      throw new StoreError(`Cannot read store ${this.location}: ${(error as Error).message}`, {
        kind: "io",
        cause: error,
      });
    }
  }

  /**
   * The client ids of the sessions stored, in no particular order: a cluster node starting adopts
   * those no node owns (the whole cluster was stopped).
   *
   * @returns the client ids
   * @throws {StoreError} (as a rejection) If Redis cannot be read.
   */
  async sessionIds(): Promise<string[]> {
    this.assertOpen();
    try {
      return await this.#answered(() => this.#redis.hkeys(`${this.#prefix}sessions`));
    } catch (error) {
      throw new StoreError(`Cannot read store ${this.location}: ${(error as Error).message}`, {
        kind: "io",
        cause: error,
      });
    }
  }

  /**
   * Applies the deletions of a load-time expiry outside the `wo` check (see
   * {@linkcode RedisStoreOptions.owner}): an expired session is deleted whoever wrote it; the
   * first read of a session with subscriptions comes before its login's claim, and the new
   * session it starts must not get the expired one's rows. Deleted by its owner, it stays marked
   * the owner's (`ds`).
   */
  #applyExpiry(mutations: readonly StoreMutation[]): void {
    this.#expiry = true;
    try {
      this.apply(mutations);
    } finally {
      this.#expiry = false;
    }
  }

  /**
   * Encodes a batch into script arguments at once, so the caller may reuse the records afterwards.
   */
  protected prepare(batch: readonly StoreMutation[]): Arg[] {
    const args: Arg[] = [];
    const owner = this.#owner;
    // A load-time expiry's deletions: `wo` off for them, on again after (it is in the run's head).
    const expiry = this.#expiry && owner !== undefined;
    if (expiry) args.push(OPS.writerOrOwner, "", "");
    let deletes: string[] | undefined;
    for (const m of batch) {
      if (m.type === "putMessage" && m.id > this.#highestMessageId) this.#highestMessageId = m.id;
      else if (m.type === "deleteSession") (deletes ??= []).push(m.clientId);
      encodeMutation(m, args);
    }
    args.push(OPS.endBatch);
    if (expiry) args.push(OPS.writerOrOwner, owner.key, owner.node);
    if (deletes !== undefined) this.#deletes.set(args, deletes);
    if (this.#fence !== undefined) this.#tokens.set(args, this.#fence.token());
    this.#epochs.set(args, this.#epoch);
    return args;
  }

  /**
   * The batches of a turn as one script run, atomic in Redis. A write fails while Redis is not
   * connected, and when the connection closes before its answer (it may or may not have been
   * applied; Redis may have come back without its data): the broker then has an outage, and
   * writes the state again from memory once writes work (`rewrite`), rather than have these
   * writes wait and land on a Redis that lost what they change.
   */
  protected writeBatches(batches: Arg[][]): Promise<void> {
    return this.#unansweredUntilDone(this.#writeRuns(batches));
  }

  #writeRuns(batches: Arg[][]): Promise<void> {
    const rewriting = this.#rewriting;
    if (rewriting !== undefined) {
      // After the rewrite, whose state they change.
      const after = () => this.#writeRuns(batches);
      return rewriting.then(after, after);
    }
    // One script run per incarnation the batches were applied under (one, but for a turn in
    // which this node registered again): a batch of the reaped one is refused, not the others.
    const runs: Arg[][][] = [];
    let token: string | undefined;
    for (const batch of batches) {
      const next = this.#tokens.get(batch);
      if (runs.length === 0 || next !== token) runs.push([]);
      runs.at(-1)!.push(batch);
      token = next;
    }
    const writes = runs.map((run) => {
      const token = this.#tokens.get(run[0]!) ?? this.#fence?.token() ?? "";
      // A batch prepared before `renewIds` holds ids that are not safe any more: the write fails.
      const stale = run.some((batch) => this.#epochs.get(batch) !== this.#epoch);
      const epoch = stale ? "" : this.#epoch;
      const args = this.#head(epoch, token);
      for (const batch of run) for (const arg of batch) args.push(arg);
      this.#raiseIds(args);
      // The operations as one array (ioredis sends its items as arguments), not spread into the
      // call: a turn's batches can hold more arguments than a JavaScript call takes (a replay of
      // 16,000 deliveries threw "Maximum call stack size exceeded", and the write was lost).
      return this.#written(
        () =>
          this.#redis.amqttStoreApply(this.#prefix, args).then((applied) =>
            this.#check(applied, token, args, true)
          ),
        true,
        epoch,
      ).catch((error) => {
        // Applied or not, the sessions these batches ended go at the rewrite after the outage;
        // not those of a refused write (they moved to other nodes), nor of one applied but for
        // the sessions another node writes (`taken`).
        if (!(error instanceof StoreError && (error.kind === "fenced" || error.kind === "taken"))) {
          for (const batch of run) {
            for (const clientId of this.#deletes.get(batch) ?? []) this.#ended.add(clientId);
          }
        }
        throw error;
      });
    });
    return writes.length === 1 ? writes[0]! : Promise.all(writes).then(() => {});
  }

  /**
   * A run's first operations: its epoch, the fence of the incarnation `token` (when there is a
   * fence), and, when there is an owner, this node as the writer of the session records it puts
   * (see the `de` operation) and, unless `rewrite` (whose `tg` has its own rule), the refusal of
   * the operations on sessions another node holds (`wo`).
   */
  #head(epoch: string, token: string, rewrite = false): Arg[] {
    const args: Arg[] = [OPS.epoch, epoch];
    const fence = this.#fence;
    if (fence !== undefined) {
      const clusterEpoch = fence.epoch?.() ?? "";
      args.push(
        OPS.fence,
        fence.key,
        token,
        fence.epochKey ?? "",
        clusterEpoch,
        fence.genKey ?? "",
        String(fence.gen?.() ?? 0),
        fence.nodeGenKey ?? "",
        String(fence.nodeGen?.() ?? 0),
      );
      this.#clusterEpochs.set(args, clusterEpoch);
    }
    const owner = this.#owner;
    if (owner !== undefined) {
      args.push(OPS.writer, owner.node);
      if (!rewrite) args.push(OPS.writerOrOwner, owner.key, owner.node);
    }
    return args;
  }

  /**
   * A script's answer to the run `args` (from {@linkcode #head}): 0 is a write refused by the
   * fence (see {@linkcode RedisStoreOptions}); a list names the sessions whose operations `wo`
   * refused, with the node holding each, after the node's own counter when the fence counts.
   * With `committed` (a group commit's run, which connections wait for before they acknowledge
   * what it holds), such a refusal rejects the write with a {@linkcode StoreError} of kind
   * `taken` once `taken` was called for each session: the rest of the write is applied, but
   * what it carried for those sessions (a message queued for a subscriber) is stored nowhere,
   * so the publisher waiting for it must not be acknowledged.
   */
  #check(applied: unknown, token: string, args: Arg[], committed = false): void {
    const fence = this.#fence;
    if (fence?.nodeGenKey && Array.isArray(applied) && applied.length > 0) {
      fence.counted?.(Number(applied[0]), this.#clusterEpochs.get(args) ?? "");
      applied = applied.slice(1);
    }
    if (Array.isArray(applied)) {
      const taken = this.#owner?.taken;
      const sessions: string[] = [];
      for (let i = 0; i + 1 < applied.length; i += 2) {
        sessions.push(String(applied[i]));
        taken?.(String(applied[i]), String(applied[i + 1]));
      }
      if (committed && sessions.length > 0) {
        const names = sessions.slice(0, 3).map((c) => JSON.stringify(c)).join(", ");
        const more = sessions.length > 3 ? ` and ${sessions.length - 3} more` : "";
        throw new StoreError(
          `Cannot write store ${this.location}: the sessions of ${names}${more} are written by other nodes (their part of the write refused)`,
          { kind: "taken", sessions },
        );
      }
      return;
    }
    if (Number(applied) !== 0) return;
    const error = new StoreError(
      `Cannot write store ${this.location}: this node was taken for dead and its sessions moved to other nodes (write refused)`,
      { kind: "fenced" },
    );
    this.#fence?.refused?.(error, token);
    throw error;
  }

  /**
   * Replaces the sessions `batch` names, each whole (its rows are deleted first), with what the
   * batch holds, as one atomic change; with a `clear` in it, everything. The broker's rewrite
   * after an outage: on a cluster node `batch` holds this node's persistent sessions (no
   * `clear`: the store holds other nodes' sessions). It is sent in pieces of about 1 MiB to a
   * staging list, and applied from there by one script, so a connection or a node lost in the
   * middle leaves the state before it (the staging list expires). Writes applied meanwhile go to
   * Redis after it. Sessions whose deletion was in a write that failed (they ended while Redis
   * was away) and that `batch` does not name are deleted too, unless another node owns them
   * and wrote them since ({@linkcode RedisStoreOptions.owner}): Redis then holds what this node
   * holds. With an owner, a session `batch` names is left as Redis has it when another node
   * owns it and wrote it since: that node took it over while this one was away, without a
   * handoff (Redis lost the ownership with its data), and this node lets go of it once its
   * registration tells it so.
   *
   * @param batch the state of the sessions to replace
   * @throws {StoreError} (as a rejection) If Redis cannot be written; nothing of the batch is
   * applied then.
   * @throws {TypeError} If a mutation is malformed, or the store is closed.
   */
  rewrite(batch: readonly StoreMutation[]): Promise<void> {
    this.assertOpen();
    validateBatch(batch);
    const incarnation = this.#fence?.token() ?? "";
    const epoch = this.#epoch;
    const args = this.#head(epoch, incarnation, true);
    const named = new Set<string>();
    for (const m of batch) if (m.type === "putSession") named.add(m.session.clientId);
    const ended = [...this.#ended].filter((clientId) => !named.has(clientId));
    for (const clientId of ended) {
      args.push(OPS.deleteEnded, clientId, this.#owner?.key ?? "", this.#owner?.node ?? "");
    }
    for (const m of batch) {
      if (m.type === "putSession") {
        if (this.#owner !== undefined) {
          args.push(OPS.unlessTaken, m.session.clientId, this.#owner.key, this.#owner.node);
        }
        encodeMutation({ type: "deleteSession", clientId: m.session.clientId }, args);
      }
      if (m.type === "putMessage" && m.id > this.#highestMessageId) this.#highestMessageId = m.id;
      encodeMutation(m, args);
    }
    args.push(OPS.endBatch);
    this.#raiseIds(args);
    const previous = this.flush() ?? Promise.resolve();
    const done = previous.catch(() => {}).then(() => this.#stage(args, incarnation, epoch)).then(
      () => {
        // Those it names are this node's again (made anew after they ended): not to be deleted.
        for (const clientId of ended) this.#ended.delete(clientId);
        for (const clientId of named) this.#ended.delete(clientId);
      },
    );
    this.#unansweredUntilDone(done);
    const rewriting = done.finally(() => {
      if (this.#rewriting === rewriting) this.#rewriting = undefined;
    });
    rewriting.catch(() => {});
    this.#rewriting = rewriting;
    return done;
  }

  /**
   * Writes at once the deletion of a session that ended on this node while Redis was away (see
   * {@linkcode rewrite}), when it is still to be written: another node claimed the session
   * meanwhile and waits for this node to hand it over before it loads it, and must find it gone.
   * Deleted on the rewrite's terms (not when another node wrote it since). Waits for Redis to be
   * connected, after the writes handed over before.
   *
   * @param clientId the client id
   * @returns whether a deletion was pending (and is written now)
   * @throws {StoreError} (as a rejection) If Redis cannot be written.
   */
  async deleteEnded(clientId: string): Promise<boolean> {
    this.assertOpen();
    if (!this.#ended.has(clientId)) return false;
    await this.#writeNow(() => {
      if (!this.#ended.has(clientId)) return undefined; // the rewrite wrote it meanwhile
      return [OPS.deleteEnded, clientId, this.#owner?.key ?? "", this.#owner?.node ?? ""];
    });
    this.#ended.delete(clientId);
    return true;
  }

  /**
   * Writes at once the deletion of a stored session that a clean start on this node discarded
   * while Redis was away [MQTT-3.1.2-6], once this node owns it again (the node that held it
   * handed it over): the session this node holds instead is not stored (a clean one), so nothing
   * else would delete what Redis holds, and a later login anywhere would resume it. Waits for
   * Redis to be connected, after the writes handed over before.
   *
   * @param clientId the client id
   * @returns settled when written
   * @throws {StoreError} (as a rejection) If Redis cannot be written.
   */
  async deleteDiscarded(clientId: string): Promise<void> {
    this.assertOpen();
    await this.#writeNow(() => [OPS.deleteSession, clientId]);
  }

  /**
   * Writes one batch at once, outside the group commit: after the writes handed over before, once
   * Redis is writable; `ops` (asked then) gives its operations, or `undefined` for none.
   */
  #writeNow(ops: () => Arg[] | undefined): Promise<void> {
    return this.#unansweredUntilDone(this.#writeNowAfter(ops));
  }

  async #writeNowAfter(ops: () => Arg[] | undefined): Promise<void> {
    await this.flush()?.catch(() => {});
    while (!this.#writable()) {
      if (this.#redis.status === "end") break; // `#written` says why
      await this.#whenBack();
    }
    const batch = ops();
    if (batch === undefined) return;
    const epoch = this.#epoch;
    const token = this.#fence?.token() ?? "";
    const args = this.#head(epoch, token);
    args.push(...batch, OPS.endBatch);
    await this.#written(
      () =>
        this.#redis.amqttStoreApply(this.#prefix, args).then((a) => this.#check(a, token, args)),
      true,
      epoch,
    );
  }

  async #stage(args: Arg[], incarnation: string, epoch: string): Promise<void> {
    const token = crypto.randomUUID();
    const key = `${this.#prefix}rewrite:${token}`;
    let piece: Arg[] = [];
    let bytes = 0;
    const send = async () => {
      await this.#written(
        () =>
          this.#redis.multi().call("RPUSH", [key, ...piece]).expire(key, STAGED_TTL_S).exec().then(
            (r) => {
              const error = r?.find(([e]) => e !== null)?.[0];
              if (error) throw error;
            },
          ),
        false,
      );
      piece = [];
      bytes = 0;
    };
    for (const arg of args) {
      piece.push(arg);
      bytes += argBytes(arg);
      if (bytes >= PIECE_BYTES) await send();
    }
    if (piece.length > 0) await send();
    await this.#written(
      () =>
        this.#redis.amqttStoreApplyStaged(this.#prefix, token).then((applied) =>
          this.#check(applied, incarnation, args)
        ),
      true,
      epoch,
    );
  }

  /**
   * Whether a command sent now goes to Redis now. `ioredis` queues it until the next connection
   * not only while its status is not `ready`, but also while the socket is already closed and
   * the status not updated yet (Redis just died): the same test as its `sendCommand`.
   */
  #writable(): boolean {
    const stream = this.#redis.stream as
      | { writable: boolean; writableEnded?: boolean }
      | undefined;
    return this.#redis.status === "ready" && stream !== undefined && stream.writable &&
      stream.writableEnded !== true && this.#versionOk;
  }

  /**
   * The answer to a command other than a write (`#written`): one sent now and not answered when
   * the connection closes is not sent again (`autoResendUnfulfilledCommands`), so it fails then.
   * One asked while Redis is away waits for it and is sent then: left in `ioredis`'s queue, it
   * would be sent at the reconnection without this store knowing, and its answer, lost with a
   * connection that closes again, would never come.
   */
  async #answered<T>(command: () => Promise<T>): Promise<T> {
    while (!this.#writable()) {
      if (this.#redis.status === "end") throw new Error("the connection to Redis is closed");
      await this.#whenBack();
    }
    return await this.#closed.wait(command()) as T;
  }

  /**
   * Settled when Redis is connected again (`ready`, and its version checked: `#checkVersion`) or
   * the connection ends for good.
   */
  #whenBack(): Promise<void> {
    this.#back ??= new Promise<void>((resolve) => {
      const done = () => {
        this.#wakes.delete(done);
        this.#redis.off("end", done);
        this.#back = undefined;
        resolve();
      };
      this.#wakes.add(done);
      this.#redis.on("end", done);
    });
    return this.#back;
  }

  /**
   * A write's outcome: a failure, a lost connection or none at all is a `StoreError`. `epoch` is
   * the one the write carried (`ep`): refused as from before a loss that {@linkcode renewIds}
   * has dealt with since (the epoch changed, or it was stale), it tells of no new loss.
   */
  #written(write: () => Promise<unknown>, count = true, epoch?: string): Promise<void> {
    // Not queued until Redis is back: it may come back without the state this write changes,
    // and the write, reported failed, would land later (after the rewrite that replaces it).
    if (!this.#writable()) {
      const why = this.#tooOld ?? "Redis is not connected";
      return Promise.reject(
        new StoreError(`Cannot write store ${this.location}: ${why}`, { kind: "write" }),
      );
    }
    return this.#closed.wait(write()).then(
      () => {
        if (count) this.#transactions++;
        this.#wroteSince = true;
      },
      (error) => {
        if (error instanceof StoreError && error.kind === "taken") {
          // Applied, but for the sessions other nodes write (see `#check`).
          if (count) this.#transactions++;
          this.#wroteSince = true;
          throw error;
        }
        if (error instanceof StoreError && error.kind === "fenced") throw error;
        // Changing nothing: the node's state is written again once its ids are renewed.
        if (String((error as Error)?.message).includes(DATA_LOST)) {
          if (epoch !== undefined && epoch !== this.#epoch) {
            // Made before the renewal (with ids that are not safe any more): what it changed is
            // in memory, written by the rewrite after the renewal. Taking Redis for lost again
            // would renew and renumber once more for nothing.
            throw new StoreError(
              `Cannot write store ${this.location}: a write made before Redis lost its data ` +
                "was refused (its state is written again with new ids)",
              { kind: "lost", cause: error },
            );
          }
          this.#lost();
        }
        throw new StoreError(`Cannot write store ${this.location}: ${(error as Error).message}`, {
          kind: "write",
          cause: error,
        });
      },
    );
  }

  /** Closes the connection, after the last write. */
  protected async shutdown(written: Promise<void> | undefined): Promise<void> {
    clearInterval(this.#checkTimer);
    try {
      if (written !== undefined) await written;
    } finally {
      await closeRedis(this.#redis);
    }
  }
}

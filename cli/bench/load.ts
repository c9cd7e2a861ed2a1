/**
 * The load generator behind `amqtt bench`: groups of publishers, subscribers and idle connections
 * over raw sockets, with message counts, loss detection and latency taken from a timestamp that
 * publishers put at the start of every payload.
 *
 * Payload layout (big-endian): bytes 0-7 the send time as a float64 of wall-clock milliseconds
 * (`performance.timeOrigin + performance.now()`, comparable between processes on one machine),
 * bytes 8-11 the publisher's client index, bytes 12-15 its sequence number; the rest is filler.
 *
 * @module
 */

import { encodePacket } from "@amqtt/amqtt/packet";
import type { QoS } from "@amqtt/amqtt/packet";
import { BenchConnection, type BenchTarget, type PacketSink, sleep } from "./_connection.ts";
import { LatencyHistogram } from "./_histogram.ts";

export type { BenchTarget } from "./_connection.ts";
export { LatencyHistogram } from "./_histogram.ts";

/** Bytes of the payload header (timestamp, publisher index, sequence number). */
export const PAYLOAD_HEADER = 16;

/** Options shared by every group of connections. */
export interface GroupOptions {
  target: BenchTarget;
  /** How many connections. */
  connections: number;
  /** Client index of the first connection (`%i`); default 1. */
  startIndex?: number;
  /** Client identifiers are this prefix followed by the client index. */
  clientIdPrefix: string;
  /** Handshakes in progress at once while connecting; default 64. */
  concurrency?: number;
}

/** Options of {@linkcode Publishers}. */
export interface PublishersOptions extends GroupOptions {
  /** Topic name; `%i` becomes the client index and `%c` the client identifier. */
  topic: string;
  qos: QoS;
  retain?: boolean;
  /** Payload size in bytes, at least {@linkcode PAYLOAD_HEADER}. */
  size: number;
  /** Messages per second per connection; 0 sends as fast as the socket takes them. */
  rate: number;
  /** Messages per connection; 0 for no limit (then `duration` must be set). */
  limit: number;
  /** Seconds to publish for; 0 for no limit (then `limit` must be set). */
  duration: number;
  /** QoS 1/2 messages awaiting acknowledgement per connection; default 20. */
  inflight?: number;
  /** Seconds to wait for outstanding acknowledgements at the end; default 10. */
  drainTimeout?: number;
  /** Checked before each batch: while it returns true, publishing pauses (for flow coupling). */
  throttle?: () => boolean;
}

/** Options of {@linkcode Subscribers}. */
export interface SubscribersOptions extends GroupOptions {
  /** Topic filter, or several; `%i` becomes the client index and `%c` the client identifier. */
  topic: string | string[];
  qos: QoS;
  /** Messages per connection after which it is done; 0 for no limit. */
  limit: number;
  /** Seconds after which the group is done; 0 for no limit. */
  duration: number;
}

/** Options of {@linkcode openConnections}. */
export interface ConnectionsOptions extends GroupOptions {
  /** New connections per second; 0 for as fast as possible (bounded by `concurrency`). */
  rate: number;
}

/** Result of a publisher run. */
export interface PublishReport {
  connections: number;
  /** Connections that failed to open or closed early. */
  failed: number;
  sent: number;
  /** QoS 1/2 flows completed (PUBACK or PUBCOMP); equals `sent` at QoS 0. */
  acked: number;
  seconds: number;
}

/** Result of a subscriber run. */
export interface SubscribeReport {
  connections: number;
  failed: number;
  received: number;
  seconds: number;
  /** Messages missing between received sequence numbers, per publisher and subscriber. */
  gaps: number;
  /** Messages whose sequence number was not above the last one seen (duplicates, reordering). */
  duplicates: number;
  /** Latency from the payload timestamp, microseconds. */
  latency: LatencyHistogram;
}

/** Result of {@linkcode openConnections}. */
export interface ConnectReport {
  connections: number;
  failed: number;
  seconds: number;
  /** Time from starting the socket to the CONNACK, microseconds. */
  latency: LatencyHistogram;
  /** The first failure, for the message. */
  firstError?: string;
}

/** Wall-clock milliseconds with sub-millisecond precision. */
export function wallClock(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Replaces `%i` and `%c` in a topic pattern.
 *
 * @param pattern the topic pattern
 * @param index the client index
 * @param clientId the client identifier
 * @returns the topic
 */
export function expandTopic(pattern: string, index: number, clientId: string): string {
  return pattern.replaceAll("%i", String(index)).replaceAll("%c", clientId);
}

/** Opens `count` connections with a bound on concurrent handshakes and an optional rate. */
async function connectAll(
  options: GroupOptions,
  rate: number,
  onConnected: (c: BenchConnection, index: number, micros: number) => void,
  onFailed: (index: number, err: unknown) => void,
  signal?: AbortSignal,
): Promise<void> {
  const first = options.startIndex ?? 1;
  const concurrency = Math.max(1, options.concurrency ?? 64);
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < options.connections && !signal?.aborted) {
      const k = next++;
      if (rate > 0) {
        const due = t0 + (k * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
      }
      const index = first + k;
      const started = performance.now();
      try {
        const c = await BenchConnection.connect(options.target, options.clientIdPrefix + index);
        onConnected(c, index, (performance.now() - started) * 1000);
      } catch (err) {
        onFailed(index, err);
      }
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(concurrency, options.connections) }, worker),
  );
}

/**
 * Idle connections: opens them (optionally at a fixed rate) and keeps them until
 * {@linkcode IdleConnections.close}.
 */
export class IdleConnections {
  readonly #conns: BenchConnection[];
  readonly report: ConnectReport;

  private constructor(conns: BenchConnection[], report: ConnectReport) {
    this.#conns = conns;
    this.report = report;
  }

  /** Connections currently open. */
  get open(): number {
    return this.#conns.length;
  }

  /** Sends DISCONNECT on every connection and closes it. */
  async close(): Promise<void> {
    const all = this.#conns.splice(0);
    for (let i = 0; i < all.length; i += 256) {
      await Promise.all(all.slice(i, i + 256).map((c) => c.disconnect()));
    }
  }

  /** @internal */
  static _make(conns: BenchConnection[], report: ConnectReport): IdleConnections {
    return new IdleConnections(conns, report);
  }
}

/**
 * Opens idle connections and measures the handshake latency and the connection rate.
 *
 * @param options target, count, rate and concurrency
 * @param progress called with (connected, failed) as connections complete
 * @param signal stops opening new connections when aborted
 * @returns the open connections and the report
 */
export async function openConnections(
  options: ConnectionsOptions,
  progress?: (connected: number, failed: number) => void,
  signal?: AbortSignal,
): Promise<IdleConnections> {
  const conns: BenchConnection[] = [];
  const report: ConnectReport = {
    connections: 0,
    failed: 0,
    seconds: 0,
    latency: new LatencyHistogram(),
  };
  const t0 = performance.now();
  await connectAll(options, options.rate, (c, _i, micros) => {
    conns.push(c);
    c.start({ publish() {}, ack() {}, chunkStart() {}, chunkDone() {} });
    report.connections++;
    report.latency.record(micros);
    progress?.(report.connections, report.failed);
  }, (_i, err) => {
    report.failed++;
    report.firstError ??= err instanceof Error ? err.message : String(err);
    progress?.(report.connections, report.failed);
  }, signal);
  report.seconds = (performance.now() - t0) / 1000;
  return IdleConnections._make(conns, report);
}

/** A group of subscribers, reading from the moment {@linkcode Subscribers.connect} resolves. */
export class Subscribers {
  readonly #conns: BenchConnection[] = [];
  readonly #options: SubscribersOptions;
  readonly #latency = new LatencyHistogram();
  #received = 0;
  #gaps = 0;
  #duplicates = 0;
  #failed = 0;
  #firstError: string | undefined;
  #t0 = 0;
  #firstAt = 0;
  #lastAt = 0;

  private constructor(options: SubscribersOptions) {
    this.#options = options;
  }

  /**
   * Connects and subscribes every connection, then starts reading.
   *
   * @param options target, count, topic filter, QoS and limits
   * @returns the running group
   * @throws {Error} when no connection could be opened
   */
  static async connect(options: SubscribersOptions): Promise<Subscribers> {
    const group = new Subscribers(options);
    const pending: Promise<void>[] = [];
    await connectAll(options, 0, (c, index) => {
      pending.push(
        group.#add(c, index).catch((err) => {
          group.#fail(err);
          c.close();
        }),
      );
    }, (_i, err) => group.#fail(err));
    await Promise.all(pending);
    if (group.#conns.length === 0) {
      throw new Error(
        `No subscriber could connect: ${group.#firstError ?? "no connections asked"}`,
      );
    }
    group.#t0 = performance.now();
    return group;
  }

  /** Messages received so far, over all connections. */
  get received(): number {
    return this.#received;
  }

  /** Connections subscribed and reading. */
  get connections(): number {
    return this.#conns.length;
  }

  /** The latency histogram so far. */
  get latency(): LatencyHistogram {
    return this.#latency;
  }

  /** `performance.now()` of the last message received, 0 before the first. */
  get lastMessageAt(): number {
    return this.#lastAt;
  }

  /**
   * Waits until every connection reached `limit`, `duration` passed, `signal` aborted, or nothing
   * arrived for `idleSeconds` after at least one message (whichever first), then disconnects.
   *
   * @param signal ends the wait early
   * @param idleSeconds stop after this long without a message (0: never)
   * @returns the report
   */
  async wait(signal?: AbortSignal, idleSeconds = 0): Promise<SubscribeReport> {
    const o = this.#options;
    const target = o.limit > 0 ? o.limit * this.#conns.length : Infinity;
    const until = o.duration > 0 ? this.#t0 + o.duration * 1000 : Infinity;
    while (!signal?.aborted && this.#received < target && performance.now() < until) {
      if (
        idleSeconds > 0 && this.#lastAt > 0 &&
        performance.now() - this.#lastAt > idleSeconds * 1000
      ) break;
      if (this.#conns.every((c) => c.writeError !== undefined)) break;
      await sleep(5);
    }
    return await this.stop();
  }

  /**
   * Disconnects every connection and reports.
   *
   * @returns the report
   */
  async stop(): Promise<SubscribeReport> {
    // The rate counts from the first message to the last, not from the subscription.
    const start = this.#received > 0 ? this.#firstAt : this.#t0;
    const end = this.#received > 0 ? this.#lastAt : performance.now();
    await Promise.all(this.#conns.map((c) => c.disconnect()));
    return {
      connections: this.#conns.length,
      failed: this.#failed,
      received: this.#received,
      seconds: Math.max(0, end - start) / 1000,
      gaps: this.#gaps,
      duplicates: this.#duplicates,
      latency: this.#latency,
    };
  }

  #fail(err: unknown): void {
    this.#failed++;
    this.#firstError ??= err instanceof Error ? err.message : String(err);
  }

  async #add(c: BenchConnection, index: number): Promise<void> {
    const o = this.#options;
    const filters = typeof o.topic === "string" ? [o.topic] : o.topic;
    await c.subscribe(filters.map((t) => expandTopic(t, index, c.clientId)), o.qos);
    this.#conns.push(c);
    const last = new Map<number, number>();
    let now = 0;
    const minStamp = wallClock() - 3_600_000;
    const sink: PacketSink = {
      chunkStart: () => {
        now = wallClock();
        this.#lastAt = performance.now();
      },
      publish: (qos, id, _buf, view, start, end) => {
        if (this.#received++ === 0) this.#firstAt = this.#lastAt;
        if (qos === 1) c.queueAck(4, id);
        else if (qos === 2) c.queueAck(5, id);
        if (end - start < PAYLOAD_HEADER) return;
        const stamp = view.getFloat64(start);
        // Not our payload (a retained message, another tool): no latency, no sequence.
        if (!(stamp > minStamp && stamp < now + 1000)) return;
        this.#latency.record((now - stamp) * 1000);
        const who = view.getUint32(start + 8);
        const seq = view.getUint32(start + 12);
        const prev = last.get(who);
        if (prev === undefined || seq > prev) {
          if (prev !== undefined) this.#gaps += seq - prev - 1;
          last.set(who, seq);
        } else {
          this.#duplicates++;
        }
      },
      ack: (type, id) => {
        if (type === 6) c.queueAck(7, id);
      },
      chunkDone: () => {
        if (c.queued > 0) c.flush();
      },
    };
    c.start(sink);
  }
}

/** One publishing connection's state. */
interface Pub {
  conn: BenchConnection;
  index: number;
  template: Uint8Array;
  /** Offsets in the template: packet identifier (QoS 1/2) and payload start. */
  idAt: number;
  payloadAt: number;
  sent: number;
  acked: number;
  inflight: number;
  nextId: number;
  busy: Uint8Array;
  wake: (() => void) | undefined;
  closed: boolean;
}

/** A group of publishers. Connect with {@linkcode Publishers.connect}, then {@linkcode run}. */
export class Publishers {
  readonly #options: PublishersOptions;
  readonly #pubs: Pub[] = [];
  #failed = 0;
  #firstError: string | undefined;
  #stopped = false;

  private constructor(options: PublishersOptions) {
    this.#options = options;
  }

  /**
   * Opens every connection.
   *
   * @param options target, count, topic, QoS, payload size, rate and limits
   * @returns the group, ready to {@linkcode run}
   * @throws {RangeError} when the payload is smaller than the timestamp header, or neither a limit
   *   nor a duration is set
   * @throws {Error} when no connection could be opened
   */
  static async connect(options: PublishersOptions): Promise<Publishers> {
    if (options.size < PAYLOAD_HEADER) {
      throw new RangeError(
        `Invalid payload size ${options.size}: at least ${PAYLOAD_HEADER} bytes carry the timestamp`,
      );
    }
    if (options.limit <= 0 && options.duration <= 0) {
      throw new RangeError("Invalid publisher options: set a message limit or a duration");
    }
    const group = new Publishers(options);
    await connectAll(options, 0, (c, index) => group.#add(c, index), (_i, err) => {
      group.#failed++;
      group.#firstError ??= err instanceof Error ? err.message : String(err);
    });
    if (group.#pubs.length === 0) {
      throw new Error(`No publisher could connect: ${group.#firstError ?? "no connections asked"}`);
    }
    return group;
  }

  /** Messages sent so far. */
  get sent(): number {
    let n = 0;
    for (const p of this.#pubs) n += p.sent;
    return n;
  }

  /** QoS 1/2 flows completed so far (at QoS 0, messages sent). */
  get acked(): number {
    let n = 0;
    for (const p of this.#pubs) n += p.acked;
    return n;
  }

  /** Connections open. */
  get connections(): number {
    return this.#pubs.length;
  }

  /** Makes {@linkcode run} stop sending and drain. */
  stop(): void {
    this.#stopped = true;
    for (const p of this.#pubs) p.wake?.();
  }

  /**
   * Publishes until every connection reached its limit or the duration passed (or
   * {@linkcode stop}), waits for outstanding acknowledgements, then disconnects.
   *
   * @returns the report
   */
  async run(): Promise<PublishReport> {
    const o = this.#options;
    const t0 = performance.now();
    const until = o.duration > 0 ? t0 + o.duration * 1000 : Infinity;
    await Promise.all(this.#pubs.map((p) => this.#publishLoop(p, t0, until)));
    const drainUntil = performance.now() + (o.drainTimeout ?? 10) * 1000;
    while (
      o.qos > 0 && this.#pubs.some((p) => p.inflight > 0 && !p.closed) &&
      performance.now() < drainUntil
    ) {
      await sleep(5);
    }
    const seconds = (performance.now() - t0) / 1000;
    const closedEarly = this.#pubs.filter((p) => p.closed).length;
    await Promise.all(this.#pubs.map((p) => p.conn.disconnect()));
    return {
      connections: this.#pubs.length,
      failed: this.#failed + closedEarly,
      sent: this.sent,
      acked: this.acked,
      seconds,
    };
  }

  #add(c: BenchConnection, index: number): void {
    const o = this.#options;
    const topic = expandTopic(o.topic, index, c.clientId);
    const payload = new Uint8Array(o.size).fill(0x61);
    const template = encodePacket({
      type: 3,
      topic,
      payload,
      qos: o.qos,
      retain: o.retain ?? false,
      dup: false,
      packetId: o.qos > 0 ? 1 : undefined,
    }, o.target.protocolVersion);
    const payloadAt = template.length - o.size;
    const pub: Pub = {
      conn: c,
      index,
      template,
      idAt: payloadAt - 2,
      payloadAt,
      sent: 0,
      acked: 0,
      inflight: 0,
      nextId: 1,
      busy: new Uint8Array(65536),
      wake: undefined,
      closed: false,
    };
    this.#pubs.push(pub);
    c.start({
      publish() {},
      chunkStart() {},
      ack: (type, id) => {
        if (type === 5) {
          c.queueAck(6, id);
          return;
        }
        if ((type === 4 || type === 7) && pub.busy[id] === 1) {
          pub.busy[id] = 0;
          pub.inflight--;
          pub.acked++;
          const wake = pub.wake;
          pub.wake = undefined;
          wake?.();
        }
      },
      chunkDone: () => {
        if (c.queued > 0) c.flush();
      },
    });
    c.ended.then(() => {
      pub.closed = true;
      pub.wake?.();
    });
  }

  async #publishLoop(p: Pub, t0: number, until: number): Promise<void> {
    const o = this.#options;
    const len = p.template.length;
    const batchMax = Math.max(1, Math.floor(16384 / len));
    const window = o.qos > 0 ? Math.max(1, o.inflight ?? 20) : Infinity;
    for (;;) {
      if (this.#stopped || p.closed || p.conn.writeError !== undefined) return;
      if (o.limit > 0 && p.sent >= o.limit) return;
      const now = performance.now();
      if (now >= until) return;
      let n = batchMax;
      if (o.limit > 0) n = Math.min(n, o.limit - p.sent);
      if (o.rate > 0) n = Math.min(n, Math.floor((o.rate * (now - t0)) / 1000) + 1 - p.sent);
      let windowFull = false;
      if (window - p.inflight < n) {
        n = window - p.inflight;
        windowFull = n <= 0;
      }
      if (o.throttle?.()) n = 0;
      if (n <= 0) {
        if (windowFull) {
          // Woken by the acknowledgement that frees a slot; the timeout re-checks the deadline.
          await new Promise<void>((resolve) => {
            const timer = setTimeout(() => {
              p.wake = undefined;
              resolve();
            }, 50);
            p.wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
        } else {
          await sleep(1);
        }
        continue;
      }
      this.#queue(p, n);
      await p.conn.flush();
    }
  }

  /** Copies `n` stamped messages into the connection's output buffer. */
  #queue(p: Pub, n: number): void {
    const len = p.template.length;
    const { out, at } = p.conn.reserve(n * len);
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    const stamp = wallClock();
    const qos = this.#options.qos;
    let pos = at;
    for (let k = 0; k < n; k++) {
      out.set(p.template, pos);
      if (qos > 0) {
        let id = p.nextId;
        while (p.busy[id] === 1) id = id === 65535 ? 1 : id + 1;
        p.busy[id] = 1;
        p.nextId = id === 65535 ? 1 : id + 1;
        p.inflight++;
        out[pos + p.idAt] = id >> 8;
        out[pos + p.idAt + 1] = id & 0xff;
      }
      const payload = pos + p.payloadAt;
      view.setFloat64(payload, stamp);
      view.setUint32(payload + 8, p.index);
      view.setUint32(payload + 12, p.sent);
      p.sent++;
      pos += len;
    }
    if (qos === 0) p.acked += n;
    p.conn.commit(pos);
  }
}

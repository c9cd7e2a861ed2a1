/**
 * The `$SYS` topics aMQTT publishes: `$SYS/broker/version` once, retained, after start, and every
 * `sys_interval` seconds the broker's counters under `$SYS/broker/…`.
 *
 * @module
 */

import type { BrokerPlugin, PluginContext } from "./types.ts";

/** A snapshot of the broker's counters, taken at each interval. */
export interface SysSnapshot {
  /** Bytes read from clients. */
  bytesReceived: number;
  /** Bytes written to clients. */
  bytesSent: number;
  /** Packets received. */
  messagesReceived: number;
  /** Packets sent. */
  messagesSent: number;
  /** PUBLISH packets received. */
  publishReceived: number;
  /** PUBLISH packets sent. */
  publishSent: number;
  /** Clients connected now. */
  clientsConnected: number;
  /** Persistent sessions whose client is offline. */
  clientsDisconnected: number;
  /** The most clients connected at once since start (never reset). */
  clientsMaximum: number;
  /** Connections accepted since start. */
  clientsTotal: number;
  /** Incoming QoS 2 messages awaiting PUBREL. */
  inflightIn: number;
  /** Outgoing QoS 1/2 messages awaiting acknowledgement. */
  inflightOut: number;
  /** Messages queued behind in-flight windows. */
  inflightStored: number;
  /** Retained messages stored. */
  retainedCount: number;
  /** Subscriptions in the tree. */
  subscriptionsCount: number;
  /** Messages dropped since start, all reasons: `$SYS/broker/publish/messages/dropped`. */
  dropped?: number;
  /**
   * Messages dropped since start by reason, keyed by topic level (`queue-full`, `outbound-full`,
   * `not-authorized`…): `$SYS/broker/publish/messages/dropped/<reason>`.
   */
  droppedBy?: Readonly<Record<string, number>>;
  /**
   * Work refused by the broker's limits since start, keyed by limit (`topic-levels`,
   * `subscriptions`, `sessions`, `retained`, `memory`): `$SYS/broker/refused/<limit>`.
   */
  refusedBy?: Readonly<Record<string, number>>;
  /** Further topics under `$SYS/broker/` and their values (a cluster node's `cluster/…`). */
  extra?: Readonly<Record<string, string>>;
}

/** Options of {@linkcode BrokerSysPlugin}. */
export interface BrokerSysPluginOptions {
  /** Seconds between publications; 0 publishes only the version. Default 20. */
  sysInterval?: number;
  /** Reads the broker's counters. */
  snapshot: () => SysSnapshot;
  /** The broker's start time, ms since epoch. */
  startedAt: () => number;
  /** The version string published on `$SYS/broker/version`. */
  version: string;
}

const MB = 1024 * 1024;

/**
 * Publishes `$SYS/broker/…`. It has no timer of its own: the broker's sweep calls
 * {@linkcode BrokerSysPlugin.tick}.
 *
 * @example
 * ```ts
 * import { BrokerSysPlugin } from "./sys.ts";
 * import assert from "node:assert/strict";
 *
 * const published: string[] = [];
 * const zero = { bytesReceived: 0, bytesSent: 0, messagesReceived: 0, messagesSent: 0,
 *   publishReceived: 0, publishSent: 0, clientsConnected: 0, clientsDisconnected: 0,
 *   clientsMaximum: 0, clientsTotal: 0, inflightIn: 0, inflightOut: 0, inflightStored: 0,
 *   retainedCount: 0, subscriptionsCount: 0 };
 * const sys = new BrokerSysPlugin({ sysInterval: 20, snapshot: () => zero, startedAt: () => 0,
 *   version: "amqtt version 0.1.0" });
 * sys.init({ logger: console as never, publish: (t) => { published.push(t); return Promise.resolve(); } });
 * await sys.onBrokerPostStart();
 * assert.deepEqual(published, ["$SYS/broker/version"]);
 * ```
 */
export class BrokerSysPlugin implements BrokerPlugin {
  /** The plugin's short id. */
  readonly name = "broker_sys";
  #options: BrokerSysPluginOptions;
  #context: PluginContext | undefined;
  #next = 0;
  #cpuMax = 0;
  #heapMax = 0;
  #lastCpu: { at: number; usage: number } | undefined;

  /**
   * Creates the plugin.
   *
   * @param options interval and counter sources
   */
  constructor(options: BrokerSysPluginOptions) {
    this.#options = options;
  }

  /**
   * Keeps the context for publishing.
   *
   * @param context the plugin context
   */
  init(context: PluginContext): void {
    this.#context = context;
  }

  /**
   * Publishes the retained version topic once the listeners are open, as aMQTT does. (Publishing
   * from `init` would send a retained-message event to plugins that are not initialised yet.)
   */
  async onBrokerPostStart(): Promise<void> {
    await this.#context?.publish("$SYS/broker/version", this.#options.version, { retain: true });
  }

  /**
   * Publishes the counters when an interval has passed. The first batch comes one interval after
   * the first call, as aMQTT does.
   *
   * @param now the clock, ms since epoch
   */
  tick(now: number): void {
    const interval = (this.#options.sysInterval ?? 20) * 1000;
    if (interval <= 0 || this.#context === undefined) return;
    if (this.#next === 0) {
      this.#next = now + interval;
      return;
    }
    if (now < this.#next) return;
    this.#next = now + interval;
    this.publishNow(now);
  }

  /**
   * Publishes every counter at once.
   *
   * @param now the clock, ms since epoch
   */
  publishNow(now: number): void {
    const context = this.#context;
    if (context === undefined) return;
    const s = this.#options.snapshot();
    const startedAt = this.#options.startedAt();
    const heap = Deno.memoryUsage().heapUsed / MB;
    if (heap > this.#heapMax) this.#heapMax = heap;
    const cpu = this.#cpuPercent(now);
    if (cpu > this.#cpuMax) this.#cpuMax = cpu;
    const values: [string, string][] = [
      ["load/bytes/received", String(s.bytesReceived)],
      ["load/bytes/sent", String(s.bytesSent)],
      ["messages/received", String(s.messagesReceived)],
      ["messages/sent", String(s.messagesSent)],
      ["time", String(Math.floor(now / 1000))],
      ["uptime", String(Math.floor((now - startedAt) / 1000))],
      ["uptime/formatted", new Date(startedAt).toISOString()],
      ["clients/connected", String(s.clientsConnected)],
      ["clients/disconnected", String(s.clientsDisconnected)],
      ["clients/maximum", String(s.clientsMaximum)],
      ["clients/total", String(s.clientsTotal)],
      ["messages/inflight", String(s.inflightIn + s.inflightOut)],
      ["messages/inflight/in", String(s.inflightIn)],
      ["messages/inflight/out", String(s.inflightOut)],
      ["messages/inflight/stored", String(s.inflightStored)],
      ["messages/publish/received", String(s.publishReceived)],
      ["messages/publish/sent", String(s.publishSent)],
      ["messages/retained/count", String(s.retainedCount)],
      ["messages/subscriptions/count", String(s.subscriptionsCount)],
      ["heap/size", heap.toFixed(3)],
      ["heap/maximum", this.#heapMax.toFixed(3)],
      ["cpu/percent", cpu.toFixed(3)],
      ["cpu/maximum", this.#cpuMax.toFixed(3)],
    ];
    // Mosquitto's name for the total, so existing dashboards find it; then one topic per reason.
    if (s.dropped !== undefined) values.push(["publish/messages/dropped", String(s.dropped)]);
    for (const [reason, n] of Object.entries(s.droppedBy ?? {})) {
      values.push([`publish/messages/dropped/${reason}`, String(n)]);
    }
    for (const [limit, n] of Object.entries(s.refusedBy ?? {})) {
      values.push([`refused/${limit}`, String(n)]);
    }
    for (const [topic, value] of Object.entries(s.extra ?? {})) values.push([topic, value]);
    for (const [topic, value] of values) {
      context.publish(`$SYS/broker/${topic}`, value).catch(() => {});
    }
  }

  #cpuPercent(now: number): number {
    let usage: number;
    try {
      const stat = Deno.readTextFileSync("/proc/self/stat");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      usage = (Number(fields[11]) + Number(fields[12])) * 10; // clock ticks of 10 ms -> ms
    } catch {
      return 0; // Not Linux: no cheap process CPU counter.
    }
    const last = this.#lastCpu;
    this.#lastCpu = { at: now, usage };
    if (last === undefined || now <= last.at) return 0;
    return ((usage - last.usage) / (now - last.at)) * 100;
  }
}

/**
 * The `/metrics` endpoint's content: the broker's figures in the Prometheus text format. Names
 * follow Prometheus conventions: an `amqtt_` prefix, base units (`_bytes`, `_seconds`), counters
 * ending in `_total`, one family per quantity with labels for its parts (`qos`, `listener`,
 * `reason`).
 *
 * @module
 */

import type { BrokerStats } from "../core.ts";
import type { DecisionHistograms } from "./decision_timer.ts";
import { Exposition, type Sample } from "./_exposition.ts";
import { refusalsByName } from "../limits.ts";
import type { ProcessFigures } from "./process_figures.ts";
import type { ClusterFigures } from "../cluster_member.ts";

/** Connection figures of one listener. */
export interface ListenerFigures {
  /** The listener's name in the configuration. */
  name: string;
  /** Open connections now (before and after CONNECT). */
  open: number;
  /** Connections accepted since start. */
  accepted: number;
  /** Connections refused since start, by reason (`max_connections`, `bad_username_or_password`, …). */
  refused: Record<string, number>;
}

/** Everything `/metrics` reports, gathered by the broker at scrape time. */
export interface MetricsInput {
  /** The broker's version. */
  version: string;
  /** When the broker started, ms since the epoch. */
  startedAt: number;
  /** The broker's counters. */
  stats: Readonly<BrokerStats>;
  /** Per listener (MQTT listeners only). */
  listeners: readonly ListenerFigures[];
  /** Sessions with a connection. */
  sessionsOnline: number;
  /** Persistent sessions without a connection. */
  sessionsOffline: number;
  /** Subscriptions of every session. */
  subscriptions: number;
  /** Shared subscription groups (distinct `$share/{group}/{filter}`). */
  sharedGroups: number;
  /** Retained messages stored. */
  retainedCount: number;
  /** Payload bytes of the retained messages. */
  retainedBytes: number;
  /** Outgoing QoS 1/2 messages awaiting acknowledgement, over every session. */
  inflight: number;
  /** Outgoing messages queued behind the in-flight windows, over every session. */
  queued: number;
  /** Plugin decision times. */
  decisions: DecisionHistograms;
  /** Process figures. */
  process: ProcessFigures;
  /** Event-loop delay: latest sample and the largest since the previous scrape, seconds. */
  eventLoopDelay: { last: number; max: number };
  /** The store, when persistence is on. */
  store?: StoreFigures;
  /** This node's cluster figures, when it is a cluster node. */
  cluster?: ClusterFigures;
}

/** What `/metrics` tells of the store. */
export interface StoreFigures {
  /** Whether writes work (QoS 1/2 publishes are refused while they do not). */
  writable: boolean;
  /** Commits that failed since start. */
  writeFailures: number;
}

/**
 * The drop counters of `stats` by reason (`stats.droppedBy`), in snake_case. Drops counted in the
 * total but under no reason are reported as `unclassified`.
 *
 * @param stats the broker's counters
 * @returns drops by reason in snake_case
 */
export function dropsByReason(stats: Readonly<BrokerStats>): Record<string, number> {
  const out: Record<string, number> = {};
  let classified = 0;
  for (const [reason, n] of Object.entries(stats.droppedBy)) {
    out[snakeCase(reason)] = n;
    classified += n;
  }
  out.unclassified = Math.max(0, stats.dropped - classified);
  return out;
}

function snakeCase(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").replace(/[^a-zA-Z0-9]+/g, "_").toLowerCase();
}

const REFUSALS: Record<number, string> = {
  1: "unacceptable_protocol_version",
  2: "identifier_rejected",
  3: "server_unavailable",
  4: "bad_username_or_password",
  5: "not_authorized",
  // MQTT 5.0 reason codes of a refused CONNECT, named as their 3.1.1 counterparts where one exists.
  0x80: "unspecified_error",
  0x84: "unsupported_protocol_version",
  0x85: "identifier_rejected",
  0x86: "bad_username_or_password",
  0x87: "not_authorized",
  0x88: "server_unavailable",
  0x89: "server_busy",
  0x8a: "banned",
  0x8c: "bad_authentication_method",
  0x97: "quota_exceeded",
};

/**
 * The `reason` label of a refused CONNECT.
 *
 * @param code the CONNACK return code (or MQTT 5.0 reason code)
 * @returns its name in snake_case
 */
export function refusalReason(code: number): string {
  return REFUSALS[code] ?? `code_${code}`;
}

const QOS = ["0", "1", "2"] as const;

function byQos(values: readonly number[]): Sample[] {
  return QOS.map((qos, i) => ({ labels: { qos }, value: values[i] ?? 0 }));
}

/**
 * Renders the metrics.
 *
 * @param m the figures
 * @returns the exposition text
 */
export function renderMetrics(m: MetricsInput): string {
  const e = new Exposition();
  const st = m.stats;
  e.family("amqtt_build_info", "gauge", "Always 1; the broker version as a label", [
    { labels: { version: m.version }, value: 1 },
  ]);
  e.single(
    "amqtt_start_time_seconds",
    "gauge",
    "When the broker started, seconds since the epoch",
    m.startedAt / 1000,
  );

  e.family(
    "amqtt_connections",
    "gauge",
    "Open network connections per listener",
    m.listeners.map((l) => ({ labels: { listener: l.name }, value: l.open })),
  );
  e.family(
    "amqtt_connections_accepted_total",
    "counter",
    "Network connections accepted per listener",
    m.listeners.map((l) => ({ labels: { listener: l.name }, value: l.accepted })),
  );
  e.family(
    "amqtt_connections_refused_total",
    "counter",
    "Connections refused per listener and reason",
    m.listeners.flatMap((l) =>
      Object.entries(l.refused).map(([reason, value]) => ({
        labels: { listener: l.name, reason },
        value,
      }))
    ),
  );
  e.single("amqtt_clients_connected", "gauge", "Clients connected now", st.clientsConnected);
  e.single(
    "amqtt_clients_connected_max",
    "gauge",
    "The most clients connected at once since start",
    st.clientsMaximum,
  );
  e.single(
    "amqtt_client_connects_total",
    "counter",
    "CONNECTs accepted since start",
    st.clientsTotal,
  );
  e.family("amqtt_sessions", "gauge", "Sessions by state", [
    { labels: { state: "online" }, value: m.sessionsOnline },
    { labels: { state: "offline" }, value: m.sessionsOffline },
  ]);
  e.single("amqtt_subscriptions", "gauge", "Subscriptions of every session", m.subscriptions);
  e.single(
    "amqtt_shared_subscription_groups",
    "gauge",
    "Shared subscription groups (distinct $share/{group}/{filter})",
    m.sharedGroups,
  );
  e.single("amqtt_retained_messages", "gauge", "Retained messages stored", m.retainedCount);
  e.single(
    "amqtt_retained_payload_bytes",
    "gauge",
    "Payload bytes of the retained messages",
    m.retainedBytes,
  );
  if (m.store !== undefined) {
    const writable = "Whether the store can be written (QoS 1/2 publishes are refused if not)";
    e.single("amqtt_store_writable", "gauge", writable, m.store.writable ? 1 : 0);
    e.single(
      "amqtt_store_write_failures_total",
      "counter",
      "Store commits that failed",
      m.store.writeFailures,
    );
  }

  e.family(
    "amqtt_messages_received_total",
    "counter",
    "PUBLISH packets received from clients by QoS",
    byQos(st.publishReceivedByQos),
  );
  e.family(
    "amqtt_messages_sent_total",
    "counter",
    "PUBLISH packets sent to clients by QoS, resends included",
    byQos(st.publishSentByQos),
  );
  e.family(
    "amqtt_message_payload_received_bytes_total",
    "counter",
    "Payload bytes of the PUBLISH packets received by QoS",
    byQos(st.payloadBytesReceivedByQos),
  );
  e.family(
    "amqtt_message_payload_sent_bytes_total",
    "counter",
    "Payload bytes of the PUBLISH packets sent by QoS",
    byQos(st.payloadBytesSentByQos),
  );
  e.single("amqtt_packets_received_total", "counter", "MQTT packets received", st.messagesReceived);
  e.single("amqtt_packets_sent_total", "counter", "MQTT packets sent", st.messagesSent);
  e.single("amqtt_network_received_bytes_total", "counter", "Bytes read", st.bytesReceived);
  e.single("amqtt_network_sent_bytes_total", "counter", "Bytes written", st.bytesSent);
  e.family(
    "amqtt_messages_dropped_total",
    "counter",
    "Messages dropped instead of delivered, by reason",
    Object.entries(dropsByReason(st)).map(([reason, value]) => ({ labels: { reason }, value })),
  );
  e.single(
    "amqtt_publishers_paused_total",
    "counter",
    "Times a publisher was not read because a subscriber's queue reached flow_control_high_water",
    st.publishersPaused,
  );
  e.single(
    "amqtt_publisher_pause_timeouts_total",
    "counter",
    "Publisher pauses that lasted flow_control_timeout (the queues they waited for then drop)",
    st.pauseTimeouts,
  );
  e.family(
    "amqtt_limit_refusals_total",
    "counter",
    "Work refused by the broker's state limits, by limit",
    Object.entries(refusalsByName(st)).map(([limit, value]) => ({
      labels: { limit: limit.replaceAll("-", "_") },
      value,
    })),
  );
  e.single(
    "amqtt_messages_inflight",
    "gauge",
    "Outgoing QoS 1/2 messages awaiting acknowledgement",
    m.inflight,
  );
  e.single(
    "amqtt_messages_queued",
    "gauge",
    "Outgoing messages queued behind the in-flight windows",
    m.queued,
  );
  e.histogram(
    "amqtt_plugin_decision_duration_seconds",
    "Time plugins took to decide, by decision",
    Object.entries(m.decisions).map(([decision, h]) => ({
      labels: { decision },
      bounds: h.bounds,
      cumulative: h.cumulative(),
      count: h.count,
      sum: h.sum,
    })),
  );

  if (m.cluster !== undefined) renderCluster(e, m.cluster);

  const p = m.process;
  e.single("process_resident_memory_bytes", "gauge", "Resident memory size", p.residentBytes);
  e.single("process_cpu_seconds_total", "counter", "User and system CPU time", p.cpuSeconds);
  e.single(
    "process_start_time_seconds",
    "gauge",
    "When the process started, seconds since the epoch",
    p.startTimeSeconds,
  );
  if (p.openFds !== undefined) {
    e.single("process_open_fds", "gauge", "Open file descriptors", p.openFds);
  }
  e.single("deno_heap_used_bytes", "gauge", "V8 heap in use", p.heapUsedBytes);
  e.single("deno_heap_total_bytes", "gauge", "V8 heap reserved", p.heapTotalBytes);
  e.single("deno_external_memory_bytes", "gauge", "Memory held by buffers", p.externalBytes);
  e.single(
    "deno_event_loop_delay_seconds",
    "gauge",
    "Event-loop delay of the latest sample",
    m.eventLoopDelay.last,
  );
  e.single(
    "deno_event_loop_delay_max_seconds",
    "gauge",
    "The largest event-loop delay since the previous scrape",
    m.eventLoopDelay.max,
  );
  return e.text();
}

/** A cluster node's figures: its id as a label, the nodes it sees, its traffic through Redis. */
function renderCluster(e: Exposition, c: ClusterFigures): void {
  e.family("amqtt_cluster_node_info", "gauge", "Always 1; this node's cluster id as a label", [
    { labels: { node: c.nodeId }, value: 1 },
  ]);
  e.single("amqtt_cluster_nodes", "gauge", "Cluster nodes alive, this one included", c.nodes);
  e.single("amqtt_cluster_ready", "gauge", "1 while Redis is connected and in sync", +c.ready);
  e.single(
    "amqtt_cluster_forwarded_total",
    "counter",
    "Messages sent to other nodes, one per receiving node",
    c.forwarded,
  );
  e.single(
    "amqtt_cluster_received_total",
    "counter",
    "Messages received from other nodes",
    c.received,
  );
  e.single(
    "amqtt_cluster_dropped_total",
    "counter",
    "Messages not forwarded: Redis away or the forwarding queue full",
    c.dropped,
  );
  e.single(
    "amqtt_cluster_nodes_dead_total",
    "counter",
    "Other nodes found dead (stopped responding) and removed",
    c.nodesDead,
  );
  e.single(
    "amqtt_cluster_sessions_adopted_total",
    "counter",
    "Sessions of departed nodes adopted by this node",
    c.sessionsAdopted,
  );
  e.single(
    "amqtt_cluster_taken_for_dead_total",
    "counter",
    "Times the other nodes took this node for dead and its sessions continued elsewhere",
    c.takenForDead,
  );
  e.single(
    "amqtt_cluster_redis_data_lost_total",
    "counter",
    "Times this node found that Redis lost the cluster's data",
    c.redisDataLost,
  );
  e.single(
    "amqtt_cluster_store_data_lost_total",
    "counter",
    "Times this node's store found that Redis lost the sessions' data",
    c.storeDataLost,
  );
  e.single(
    "amqtt_cluster_malformed_total",
    "counter",
    "Frames and records read from Redis refused as malformed (ignored)",
    c.malformed,
  );
}

/**
 * The broker's view of its configuration: listeners with parsed addresses and the limits.
 *
 * @module
 */

/** One listener, resolved. */
export interface ListenerSettings {
  type: "tcp" | "ws";
  hostname: string;
  port: number;
  maxConnections: number;
}

/** Everything the broker reads from its configuration. */
export interface BrokerSettings {
  listeners: Record<string, ListenerSettings>;
  maxInflight: number;
  maxQueuedMessages: number;
  maxPacketSize: number;
  maxOutboundBytes: number;
  drainTimeout: number;
  connectTimeout: number;
  sessionExpiryInterval: number | undefined;
  timeoutDisconnectDelay: number;
}

/**
 * Resolves a configuration object. (Temporary minimal resolver until src/config lands.)
 *
 * @param config aMQTT-style configuration
 * @returns the settings
 */
export function resolveSettings(config: Record<string, unknown> = {}): BrokerSettings {
  const get = (key: string) => config[key] ?? config[key.replaceAll("_", "-")];
  const listeners: Record<string, ListenerSettings> = {};
  const raw = (get("listeners") ?? { default: { bind: "0.0.0.0:1883" } }) as Record<
    string,
    Record<string, unknown>
  >;
  for (const [name, l] of Object.entries(raw)) {
    const bind = String(l.bind ?? "0.0.0.0:1883");
    const i = bind.lastIndexOf(":");
    listeners[name] = {
      type: (l.type as "tcp" | "ws") ?? "tcp",
      hostname: i > 0 ? bind.slice(0, i) : "0.0.0.0",
      port: Number(i >= 0 ? bind.slice(i + 1) : bind),
      maxConnections: Number(l["max_connections"] ?? l["max-connections"] ?? 0),
    };
  }
  return {
    listeners,
    maxInflight: Number(get("max_inflight") ?? 20),
    maxQueuedMessages: Number(get("max_queued_messages") ?? 1000),
    maxPacketSize: Number(get("max_packet_size") ?? 1 << 20),
    maxOutboundBytes: Number(get("max_outbound_bytes") ?? 8 << 20),
    drainTimeout: Number(get("drain_timeout") ?? 30),
    connectTimeout: Number(get("connect_timeout") ?? 10),
    sessionExpiryInterval: get("session_expiry_interval") as number | undefined,
    timeoutDisconnectDelay: Number(get("timeout_disconnect_delay") ?? 0),
  };
}

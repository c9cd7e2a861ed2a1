/**
 * The resolved cluster settings: whether this broker is one node of a cluster on Redis, which
 * Redis, and how nodes find each other's liveness.
 *
 * @module
 */

/** Default Redis of a cluster: a local server on its standard port. */
export const DEFAULT_CLUSTER_REDIS = "redis://127.0.0.1:6379";
/** Default prefix of the cluster's Redis keys and channels. */
export const DEFAULT_CLUSTER_KEY_PREFIX = "amqtt:";

/** TLS settings for the connection to Redis. */
export interface ClusterTlsConfig {
  /** PEM file of CA certificates to trust instead of the system's. */
  cafile: string | undefined;
  /** PEM file of a client certificate (with `keyfile`). */
  certfile: string | undefined;
  /** PEM file of the client certificate's private key. */
  keyfile: string | undefined;
  /** Verify the server's certificate. Default `true`. */
  verify: boolean;
}

/**
 * The `cluster` section: several broker processes, on one machine or many, acting as one broker
 * through a shared Redis.
 *
 * ```yaml
 * cluster:
 *   enabled: true                # default true when the section is given; false without it
 *   node_id: node-1              # unique per node; default: host name and process id
 *   redis: redis://10.0.0.5:6379 # or rediss:// for TLS; or a list, tried in order at start
 *   username: amqtt              # Redis 6 ACL user (or in the URL)
 *   password: secret             # (or in the URL)
 *   tls:
 *     cafile: /etc/amqtt/redis-ca.pem
 *     certfile: /etc/amqtt/node.pem
 *     keyfile: /etc/amqtt/node.key
 *     verify: true
 *   key_prefix: "amqtt:"         # shared by all nodes of one cluster
 *   heartbeat_interval: 1        # seconds
 *   node_timeout: 10             # seconds without heartbeat before a node counts as dead
 * ```
 */
export interface ClusterConfig {
  /** Run as a node of a cluster. Default `false`; `true` when the section is given. */
  enabled: boolean;
  /** This node's id, unique in the cluster; `undefined`: chosen at start (host name and pid). */
  nodeId: string | undefined;
  /**
   * Redis URLs (`redis://` or `rediss://`), tried in order at start; the first reachable one is
   * used, and when a reconnect to it fails the next one in turn (failover). Default one local
   * server.
   */
  redis: string[];
  /** Redis ACL user name, when not in the URL. */
  username: string | undefined;
  /** Redis password, when not in the URL. */
  password: string | undefined;
  /** TLS settings; `undefined` unless the `tls` key is given (a `rediss://` URL uses TLS too). */
  tls: ClusterTlsConfig | undefined;
  /** Prefix of every Redis key and channel of the cluster. Default `amqtt:`. */
  keyPrefix: string;
  /** Seconds between a node's heartbeats. Default 1. */
  heartbeatInterval: number;
  /**
   * Seconds a node may go without heartbeat before the others count it dead (its liveness key's
   * lifetime); more than `heartbeatInterval`. Default 10: a loaded node's event loop can stall
   * for seconds (a major GC, a burst of connections, CPU shared with other processes; six
   * CPU-starved workers of the 100k-connection benchmark took each other for dead at 3 s), and a
   * node taken for dead while alive has all its clients closed and their sessions moved (nothing
   * is lost: its writes are fenced). Longer delays the wills of a node that really died and the
   * login of a client resuming its session elsewhere: it waits for the handoff of the session's
   * previous owner, or, when that node is cut off or dead, at most `nodeTimeout` +
   * `heartbeatInterval` (11 s by default), then goes on. That wait, not the broker's
   * `connect_timeout` (10 s, which covers the CONNECT's arrival and its authentication), bounds
   * the login; with its Redis steps the CONNACK comes within `nodeTimeout` +
   * `heartbeatInterval` + 8 s (19 s by default), under clients' usual 30 s connect timeout, or
   * the login is refused as server busy. Redis Cluster's `cluster-node-timeout` is 15 s for the
   * same trade.
   */
  nodeTimeout: number;
  /**
   * Seconds a login's session preparation may go without progress before it is refused as
   * server busy (the core's `prepareTimeout`): the handoff wait and the Redis steps; each part
   * of a long session read counts it again from then, so a queue of millions of entries read in
   * parts is not refused while it moves. `undefined`: `nodeTimeout` + `heartbeatInterval` + 8 s
   * (19 s by default, `loginPreparationTimeout`). Shorter than the handoff wait, a login waiting
   * for a dead owner is refused before that owner is found dead.
   */
  loginTimeout: number | undefined;
}

/** The settings when the `cluster` section is left out. */
export function defaultClusterConfig(): ClusterConfig {
  return {
    enabled: false,
    nodeId: undefined,
    redis: [DEFAULT_CLUSTER_REDIS],
    username: undefined,
    password: undefined,
    tls: undefined,
    keyPrefix: DEFAULT_CLUSTER_KEY_PREFIX,
    heartbeatInterval: 1,
    nodeTimeout: 10,
    loginTimeout: undefined,
  };
}

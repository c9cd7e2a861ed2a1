/**
 * The broker configuration used when none is given (the CLI without `-c`).
 *
 * @module
 */

/**
 * The embedded default broker configuration, as commented aMQTT-compatible YAML: plain MQTT on
 * 0.0.0.0:1883, anonymous clients allowed, `$SYS` every 20 seconds. The comments show a
 * WebSocket listener, TLS, a password file and a topic ACL.
 *
 * @example
 * ```ts
 * import { DEFAULT_BROKER_CONFIG_YAML, parseBrokerConfigYaml } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const config = parseBrokerConfigYaml(DEFAULT_BROKER_CONFIG_YAML);
 * assert.equal(config.listeners[0]?.port, 1883);
 * ```
 */
export const DEFAULT_BROKER_CONFIG_YAML: string = `\
# amqtt broker configuration (compatible with aMQTT's YAML).
# Keys may be written with "-" or "_". Unknown keys are errors.

listeners:
  # Every other listener inherits the fields it leaves out from "default".
  default:
    type: tcp              # tcp | ws | external
    bind: 0.0.0.0:1883     # "1883", ":1883", "host:port" or "[::]:1883"
    max_connections: 0     # 0 = unlimited

  # MQTT over WebSocket:
  # ws:
  #   type: ws
  #   bind: 0.0.0.0:8080
  #   path: /mqtt          # omit to accept any URL path, as aMQTT does

  # MQTT over TLS (8883 is the registered port for MQTT over TLS):
  # tls:
  #   bind: 0.0.0.0:8883
  #   ssl: on
  #   certfile: /etc/amqtt/server.crt
  #   keyfile: /etc/amqtt/server.key
  #   # To verify client certificates:
  #   # cafile: /etc/amqtt/ca.crt
  #   # client_cert_mode: required          # none | optional | required
  #   # use_cert_cn_as_username: true

plugins:
  amqtt.plugins.logging_amqtt.EventLoggerPlugin:
  amqtt.plugins.logging_amqtt.PacketLoggerPlugin:
  amqtt.plugins.authentication.AnonymousAuthPlugin:
    allow_anonymous: true
  amqtt.plugins.sys.broker.BrokerSysPlugin:
    sys_interval: 20       # seconds between $SYS updates; 0 = off

  # Users and passwords ("user:hash" lines). With allow_anonymous: false above, clients
  # must send a username:
  # amqtt.plugins.authentication.FileAuthPlugin:
  #   password_file: /etc/amqtt/passwd

  # Per-user topic access ("anonymous" is the user without a username):
  # amqtt.plugins.topic_checking.TopicAccessControlListPlugin:
  #   subscribe_acl:
  #     alice: ["sensors/#", "$SYS/#"]
  #     anonymous: ["public/#"]
  #   publish_acl:
  #     alice: ["sensors/alice/#"]
  #     anonymous: []

# Seconds a disconnected persistent session is kept (default 259200, 3 days; "never" keeps it):
# session_expiry_interval: 3600

# Limits (amqtt additions; the values shown are the defaults):
# max_inflight: 20                 # QoS 1/2 messages in flight per client
# max_queued_messages: 1000        # queued per client, oldest dropped; 0 = unlimited
# max_packet_size: 2097152         # bytes
# connect_timeout: 10              # seconds to send CONNECT
# max_outbound_bytes: 8388608      # unsent bytes per connection
# drain_timeout: 30                # seconds a stalled write may take before disconnect
# flow_control_high_water: 500     # queued per subscriber at which its publishers are paused; 0 = off
# flow_control_low_water: 250      # queued at or below which they are read again
# flow_control_timeout: 1          # seconds a publisher stays paused at most, then queues drop
# max_topic_levels: 200            # levels of a topic or filter; 0 = unlimited
# max_subscriptions_per_client: 1000
# max_sessions: 100000             # connected and offline; more get CONNACK 3
# max_retained_messages: 1000000
# max_retained_bytes: 536870912    # retained topics and payloads
# max_memory: 0                    # bytes; omit for half the heap limit, 0 = no budget

# Shared subscriptions $share/{group}/{filter} (3.1.1 and 5.0 clients): which member of a group
# gets each message, round_robin or random:
# shared_subscription_strategy: round_robin

# MQTT 5.0 limits, announced in CONNACK (the values shown are the defaults):
# receive_maximum: 1024            # QoS 1/2 PUBLISH a 5.0 client may have unacknowledged
# topic_alias_maximum: 10          # topic aliases a 5.0 client may set; 0 = none
# server_keep_alive: 60            # seconds imposed on 5.0 clients; omit for each client's own
# outbound_topic_aliases: false    # send repeated topics to 5.0 clients as aliases
# maximum_qos: 2                   # 0 or 1: higher PUBLISH/wills refused, subscriptions capped
# retain_available: true           # false: retained PUBLISH and wills refused, none served
# server_reference: host:1883      # 5.0 clients told to use it on shutdown or a full broker
# wildcard_subscription_available: true     # false: filters with + or # refused
# subscription_identifiers_available: true  # false: SUBSCRIBE with an identifier refused
# shared_subscription_available: true       # false: $share/ filters refused
`;

// BrokerConfigInput, the typed broker configuration: every key the resolver accepts is typed (so
// an editor completes it), and nothing typed is refused.

import assert from "node:assert/strict";
import {
  type AnonymousAuthInput,
  type AuthSectionInput,
  BROKER_PLUGIN_CLASSES,
  type BrokerConfigInput,
  type BrokerPluginsInput,
  type BrokerSysInput,
  type ChallengeAuthInput,
  type ClusterInput,
  ConfigError,
  type FileAuthInput,
  type ListenerConfigInput,
  type PersistenceInput,
  resolveBrokerConfig,
  type ScramAuthInput,
  SESSION_DB_PLUGIN_CLASSES,
  type TopicAclInput,
  type TopicCheckSectionInput,
} from "../../src/config/mod.ts";
import { withTemp } from "./_helpers.ts";

/** The named keys of T, without an index signature. */
type NamedKeys<T> = keyof {
  [K in keyof T as string extends K ? never : number extends K ? never : K]: T[K];
};

/** One entry per key: the compiler refuses a missing or an extra one. */
type Every<T> = Record<NamedKeys<T>, true>;

const TOP: Every<BrokerConfigInput> = {
  listeners: true,
  plugins: true,
  timeout_disconnect_delay: true,
  session_expiry_interval: true,
  max_inflight: true,
  max_queued_messages: true,
  max_packet_size: true,
  connect_timeout: true,
  max_outbound_bytes: true,
  drain_timeout: true,
  flow_control_high_water: true,
  flow_control_low_water: true,
  flow_control_timeout: true,
  sys_interval: true,
  auth: true,
  topic_check: true,
  qos1_puback_timeout: true,
  persistence: true,
  max_login_failures: true,
  login_failure_window: true,
  log_summary_interval: true,
  max_topic_levels: true,
  max_subscriptions_per_client: true,
  max_sessions: true,
  max_retained_messages: true,
  max_retained_bytes: true,
  max_memory: true,
  cluster: true,
  receive_maximum: true,
  topic_alias_maximum: true,
  server_keep_alive: true,
  shared_subscription_strategy: true,
  outbound_topic_aliases: true,
  maximum_qos: true,
  retain_available: true,
  server_reference: true,
  wildcard_subscription_available: true,
  subscription_identifiers_available: true,
  shared_subscription_available: true,
};
const LISTENER: Every<ListenerConfigInput> = {
  type: true,
  bind: true,
  max_connections: true,
  ssl: true,
  cafile: true,
  capath: true,
  cadata: true,
  certfile: true,
  keyfile: true,
  client_cert_mode: true,
  use_cert_cn_as_username: true,
  path: true,
  admins: true,
  password_file: true,
};
const AUTH: Every<AuthSectionInput> = { plugins: true, allow_anonymous: true, password_file: true };
const TOPIC_CHECK: Every<TopicCheckSectionInput> = {
  enabled: true,
  plugins: true,
  acl: true,
  subscribe_acl: true,
  publish_acl: true,
  receive_acl: true,
};
const PLUGIN_OPTIONS: Record<string, Record<string, true>> = {
  auth_anonymous: { allow_anonymous: true } satisfies Every<AnonymousAuthInput>,
  auth_file: { password_file: true } satisfies Every<FileAuthInput>,
  auth_scram: { password_file: true } satisfies Every<ScramAuthInput>,
  auth_challenge: { secrets_file: true, method: true } satisfies Every<ChallengeAuthInput>,
  topic_acl: {
    acl: true,
    subscribe_acl: true,
    publish_acl: true,
    receive_acl: true,
  } satisfies Every<TopicAclInput>,
  broker_sys: { sys_interval: true } satisfies Every<BrokerSysInput>,
  topic_taboo: {},
  event_logger: {},
  packet_logger: {},
};

/** The keys the resolver accepts where `input` puts an unknown key, from its error message. */
function acceptedKeys(input: unknown): string[] {
  try {
    resolveBrokerConfig(input);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    if (error.message.includes("no options are accepted here")) return [];
    const list = /expected one of: (.*)$/.exec(error.message)?.[1];
    assert.ok(list !== undefined, error.message);
    return list.split(", ").sort();
  }
  throw new Error("expected the unknown key to be refused");
}

const sorted = (keys: object) => Object.keys(keys).sort();

Deno.test("BrokerConfigInput types every top-level key the resolver accepts", () => {
  assert.deepEqual(sorted(TOP), acceptedKeys({ "not a key": 1 }));
});

Deno.test("ListenerConfigInput types every listener key the resolver accepts", () => {
  assert.deepEqual(sorted(LISTENER), acceptedKeys({ listeners: { default: { "not a key": 1 } } }));
});

Deno.test("PersistenceInput types every persistence key the resolver accepts", () => {
  const keys: Every<PersistenceInput> = {
    enabled: true,
    path: true,
    file: true,
    sync: true,
    clear_on_shutdown: true,
  };
  assert.deepEqual(sorted(keys), acceptedKeys({ persistence: { "not a key": 1 } }));
});

Deno.test("ClusterInput types every cluster key the resolver accepts", () => {
  const keys: Every<ClusterInput> = {
    enabled: true,
    node_id: true,
    redis: true,
    username: true,
    password: true,
    tls: true,
    key_prefix: true,
    heartbeat_interval: true,
    node_timeout: true,
    login_timeout: true,
  };
  assert.deepEqual(sorted(keys), acceptedKeys({ cluster: { "not a key": 1 } }));
  const tls: Every<Exclude<ClusterInput["tls"], boolean | undefined>> = {
    cafile: true,
    certfile: true,
    keyfile: true,
    verify: true,
  };
  assert.deepEqual(sorted(tls), acceptedKeys({ cluster: { tls: { "not a key": 1 } } }));
});

Deno.test("BrokerConfigInput types the deprecated auth and topic_check sections' keys", () => {
  assert.deepEqual(sorted(AUTH), acceptedKeys({ auth: { "not a key": 1 } }));
  assert.deepEqual(sorted(TOPIC_CHECK), acceptedKeys({ topic_check: { "not a key": 1 } }));
});

Deno.test("BrokerPluginsInput names every built-in plugin by class and short id, with its options", () => {
  const named: Every<BrokerPluginsInput> = {
    "amqtt.plugins.authentication.AnonymousAuthPlugin": true,
    "amqtt.plugins.authentication.FileAuthPlugin": true,
    "amqtt.plugins.authentication.ScramAuthPlugin": true,
    "amqtt.plugins.authentication.ChallengeAuthPlugin": true,
    "amqtt.plugins.topic_checking.TopicTabooPlugin": true,
    "amqtt.plugins.topic_checking.TopicAccessControlListPlugin": true,
    "amqtt.plugins.sys.broker.BrokerSysPlugin": true,
    "amqtt.plugins.logging_amqtt.EventLoggerPlugin": true,
    "amqtt.plugins.logging_amqtt.PacketLoggerPlugin": true,
    auth_anonymous: true,
    auth_file: true,
    auth_scram: true,
    auth_challenge: true,
    topic_taboo: true,
    topic_acl: true,
    broker_sys: true,
    event_logger: true,
    packet_logger: true,
    "amqtt.contrib.persistence.SessionDBPlugin": true,
    "amqtt.plugins.persistence.SessionDBPlugin": true,
  };
  assert.deepEqual(
    sorted(named),
    [
      ...Object.keys(BROKER_PLUGIN_CLASSES),
      ...Object.values(BROKER_PLUGIN_CLASSES),
      ...SESSION_DB_PLUGIN_CLASSES,
    ].sort(),
  );
  assert.deepEqual(Object.keys(PLUGIN_OPTIONS).sort(), Object.keys(BROKER_PLUGIN_CLASSES).sort());
  for (const [id, options] of Object.entries(PLUGIN_OPTIONS)) {
    assert.deepEqual(
      sorted(options),
      acceptedKeys({ plugins: { [id]: { "not a key": 1 } } }),
      `options of ${id}`,
    );
  }
});

Deno.test("BrokerConfigInput using every typed key resolves", async () => {
  await withTemp(async (temp) => {
    const pem = await temp.file("-----BEGIN CERTIFICATE-----\n", ".pem");
    const dir = await temp.dir();
    const passwords = await temp.file("user:$6$salt$hash\n");
    const input: BrokerConfigInput = {
      listeners: {
        default: { type: "tcp", bind: "127.0.0.1:0", max_connections: 10 },
        secure: {
          bind: 8883,
          ssl: true,
          cafile: pem,
          capath: dir,
          cadata: "-----BEGIN CERTIFICATE-----\n",
          certfile: pem,
          keyfile: pem,
          client_cert_mode: "required",
          use_cert_cn_as_username: true,
        },
        web: { type: "ws", bind: "127.0.0.1:0", path: "/mqtt" },
      },
      plugins: {
        "amqtt.plugins.authentication.AnonymousAuthPlugin": { allow_anonymous: false },
        auth_file: { password_file: passwords },
        "amqtt.plugins.topic_checking.TopicTabooPlugin": null,
        topic_acl: { publish_acl: { alice: ["a/#"] }, acl: { alice: ["#"] } },
        broker_sys: { sys_interval: 0 },
        event_logger: {},
      },
      timeout_disconnect_delay: 2,
      session_expiry_interval: 3600,
      max_inflight: 10,
      max_queued_messages: 0,
      max_packet_size: 65536,
      connect_timeout: 5,
      max_outbound_bytes: 1024 * 1024,
      drain_timeout: 10,
    };
    const config = resolveBrokerConfig(input);
    assert.deepEqual(config.listeners.map((l) => l.name), ["default", "secure", "web"]);
    assert.equal(config.listeners[1].clientCertMode, "required");
    assert.equal(config.maxInflight, 10);
    assert.deepEqual(config.plugins.map((p) => p.name), [
      "auth_anonymous",
      "auth_file",
      "topic_taboo",
      "topic_acl",
      "broker_sys",
      "event_logger",
    ]);

    const legacy: BrokerConfigInput = {
      sys_interval: 5,
      auth: { plugins: ["auth_file"], allow_anonymous: false, password_file: passwords },
      topic_check: { enabled: true, plugins: ["topic_acl"], publish_acl: { alice: ["a"] } },
      qos1_puback_timeout: 5,
    };
    assert.deepEqual(resolveBrokerConfig(legacy).plugins.map((p) => p.name), [
      "event_logger",
      "packet_logger",
      "auth_file",
      "topic_acl",
      "broker_sys",
    ]);
  });
});

Deno.test("BrokerConfigInput refuses a misspelt key at compile time", () => {
  // @ts-expect-error: max_infligt is not a key (max_inflight is).
  const typo: BrokerConfigInput = { max_infligt: 10 };
  assert.throws(() => resolveBrokerConfig(typo), ConfigError);
  // @ts-expect-error: a listeners map needs the default listener.
  const noDefault: BrokerConfigInput = { listeners: { web: { type: "ws" } } };
  assert.throws(() => resolveBrokerConfig(noDefault), ConfigError);
});

import assert from "node:assert/strict";
import {
  BROKER_PLUGIN_CLASSES,
  ConfigError,
  DEFAULT_CLIENT_URI,
  loadClientConfigFile,
  parseClientConfigYaml,
  resolveClientConfig,
} from "../../src/config/mod.ts";
import { assertConfigError, withTemp } from "./_helpers.ts";

const PACKET_LOGGER = {
  name: "packet_logger",
  className: BROKER_PLUGIN_CLASSES.packet_logger,
  options: {},
};

Deno.test("resolveClientConfig with no input gives aMQTT's ClientConfig defaults", () => {
  assert.deepEqual(resolveClientConfig(), {
    keepAlive: 10,
    pingDelay: 1,
    defaultQos: 0,
    defaultRetain: false,
    autoReconnect: true,
    connectionTimeout: 60,
    reconnectRetries: 2,
    reconnectMaxInterval: 10,
    cleanSession: true,
    topics: {},
    will: undefined,
    connection: {
      uri: "mqtt://127.0.0.1:1883",
      cafile: undefined,
      capath: undefined,
      cadata: undefined,
      certfile: undefined,
      keyfile: undefined,
    },
    checkHostname: true,
    verifyCert: true,
    qos1PubackTimeout: 5,
    plugins: [PACKET_LOGGER],
    warnings: [],
  });
  assert.equal(DEFAULT_CLIENT_URI, "mqtt://127.0.0.1:1883");
  assert.deepEqual(resolveClientConfig(null), resolveClientConfig({}));
});

Deno.test("resolveClientConfig reads every key when set", async () => {
  await withTemp(async (temp) => {
    const ca = await temp.file("ca");
    const caDir = await temp.dir();
    const cert = await temp.file("cert");
    const key = await temp.file("key");
    const config = resolveClientConfig({
      keep_alive: 30,
      ping_delay: 2,
      default_qos: 1,
      default_retain: true,
      auto_reconnect: false,
      connection_timeout: 5,
      reconnect_retries: -1,
      reconnect_max_interval: 20,
      cleansession: false,
      topics: { "a/b": { qos: 2, retain: false }, c: { retain: true }, d: null },
      will: { topic: "status/x", message: "bye", qos: 2, retain: true },
      connection: {
        uri: "wss://user:pw@broker.example:8884/mqtt",
        cafile: ca,
        capath: caDir,
        cadata: "-----BEGIN CERTIFICATE-----",
        certfile: cert,
        keyfile: key,
      },
      check_hostname: false,
      verify_cert: false,
      qos1_puback_timeout: 1.5,
      plugins: { "amqtt.plugins.logging_amqtt.PacketLoggerPlugin": {} },
    });
    assert.deepEqual(config, {
      keepAlive: 30,
      pingDelay: 2,
      defaultQos: 1,
      defaultRetain: true,
      autoReconnect: false,
      connectionTimeout: 5,
      reconnectRetries: -1,
      reconnectMaxInterval: 20,
      cleanSession: false,
      // Per-topic values left out fall back to default_qos / default_retain.
      topics: {
        "a/b": { qos: 2, retain: false },
        c: { qos: 1, retain: true },
        d: { qos: 1, retain: true },
      },
      will: { topic: "status/x", message: "bye", qos: 2, retain: true },
      connection: {
        uri: "wss://user:pw@broker.example:8884/mqtt",
        cafile: ca,
        capath: caDir,
        cadata: "-----BEGIN CERTIFICATE-----",
        certfile: cert,
        keyfile: key,
      },
      checkHostname: false,
      verifyCert: false,
      qos1PubackTimeout: 1.5,
      plugins: [PACKET_LOGGER],
      warnings: [],
    });
  });
});

Deno.test("resolveClientConfig treats -, _ and camelCase keys alike, and clean_session as cleansession", () => {
  const dashed = resolveClientConfig({
    "keep-alive": 20,
    "default-qos": 2,
    "clean-session": false,
  });
  const underscored = resolveClientConfig({ keep_alive: 20, default_qos: 2, cleansession: false });
  const camel = resolveClientConfig({ keepAlive: 20, defaultQos: 2, cleanSession: false });
  assert.deepEqual(dashed, underscored);
  assert.deepEqual(camel, underscored);
  assert.equal(underscored.cleanSession, false);
  assertConfigError(() => resolveClientConfig({ cleansession: true, clean_session: false }), {
    path: "clean_session",
    message: /duplicate key/,
  });
});

Deno.test("aMQTT's default_client.yaml loads, with a warning for the deprecated broker key", () => {
  const config = parseClientConfigYaml(
    "---\nkeep_alive: 10\nping_delay: 1\ndefault_qos: 0\ndefault_retain: false\n" +
      "auto_reconnect: true\ncleansession: true\nreconnect_max_interval: 10\n" +
      'reconnect_retries: 2\nbroker:\n  uri: "mqtt://127.0.0.1"',
  );
  assert.equal(config.connection.uri, "mqtt://127.0.0.1");
  assert.deepEqual(config.warnings, [
    "broker: deprecated: use connection instead of broker (line 10)",
  ]);
  assert.deepEqual({ ...config, connection: undefined, warnings: undefined }, {
    ...resolveClientConfig(),
    connection: undefined,
    warnings: undefined,
  });
});

Deno.test("the deprecated broker key wins over connection, as in aMQTT", () => {
  const config = resolveClientConfig({
    broker: { uri: "mqtt://a" },
    connection: { uri: "mqtt://b" },
  });
  assert.equal(config.connection.uri, "mqtt://a");
  assert.deepEqual(config.warnings, [
    "broker: deprecated: use connection instead of broker",
    "connection: ignored: broker is given and takes precedence (as in aMQTT)",
  ]);
});

Deno.test("resolveClientConfig rejects unknown keys with path and line", () => {
  assertConfigError(() => parseClientConfigYaml("keep_alive: 10\nconnection:\n  url: mqtt://x\n"), {
    path: "connection.url",
    line: 3,
    message:
      /^connection\.url: unknown key "url"; expected one of: uri, cafile, capath, cadata, certfile, keyfile \(line 3\)$/,
  });
  assertConfigError(() => resolveClientConfig({ keepalive: 10 }), {
    path: "keepalive",
    message: /unknown key "keepalive"/,
  });
});

Deno.test("resolveClientConfig rejects wrong types and out-of-range values", () => {
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ default_qos: 3 }, "default_qos", /expected a QoS of 0, 1 or 2, got number 3/],
    [{ keep_alive: 70000 }, "keep_alive", /in the range 0-65535 seconds/],
    [{ keep_alive: "10" }, "keep_alive", /expected an integer, got the string "10"/],
    [{ ping_delay: -1 }, "ping_delay", /out of range/],
    [{ ping_delay: 10 }, "ping_delay", /ping_delay \(10\) must be less than keep_alive \(10\)/],
    [{ connection_timeout: 0 }, "connection_timeout", /positive/],
    [{ reconnect_retries: 1.5 }, "reconnect_retries", /expected an integer/],
    [{ reconnect_max_interval: -1 }, "reconnect_max_interval", /out of range/],
    [{ auto_reconnect: 1 }, "auto_reconnect", /expected a boolean/],
    [{ topics: { a: { qos: 5 } } }, "topics.a.qos", /QoS/],
    [{ topics: { a: { priority: 1 } } }, "topics.a.priority", /unknown key/],
    [{ topics: ["a"] }, "topics", /expected a map, got a list/],
    [{ verify_cert: false }, "verify_cert", /verify_cert: false needs check_hostname: false/],
    [{ qos1_puback_timeout: 0 }, "qos1_puback_timeout", /positive/],
    [
      { plugins: { "amqtt.plugins.logging_amqtt.EventLoggerPlugin": {} } },
      'plugins["amqtt.plugins.logging_amqtt.EventLoggerPlugin"]',
      /unknown client plugin class/,
    ],
    [{ plugins: ["packet_logger", "packet_logger"] }, "plugins[1]", /listed twice/],
    [
      { plugins: { packet_logger: { level: "debug" } } },
      "plugins.packet_logger.level",
      /no options/,
    ],
  ];
  for (const [input, path, message] of cases) {
    assertConfigError(() => resolveClientConfig(input), { path, message });
  }
  // keep_alive 0 turns keep-alive off, so any ping_delay is fine.
  assert.equal(resolveClientConfig({ keep_alive: 0, ping_delay: 5 }).keepAlive, 0);
  assert.deepEqual(resolveClientConfig({ plugins: [] }).plugins, []);
});

Deno.test("resolveClientConfig validates the will", () => {
  assertConfigError(() => resolveClientConfig({ will: { message: "x" } }), {
    path: "will",
    message: "will: will needs a topic",
  });
  assertConfigError(() => resolveClientConfig({ will: { topic: "t" } }), {
    path: "will",
    message: /will needs a message/,
  });
  assertConfigError(() => resolveClientConfig({ will: { topic: "a/+", message: "x" } }), {
    path: "will.topic",
    message: /contains a wildcard/,
  });
  assertConfigError(() => parseClientConfigYaml("will:\n  topic: t\n  message: 42\n"), {
    path: "will.message",
    line: 3,
    message: /expected a message string \(quote it in YAML\), got number 42/,
  });
  assertConfigError(() => resolveClientConfig({ will: { topic: "t", message: "", qos: 3 } }), {
    path: "will.qos",
  });
  const will = resolveClientConfig({ will: { topic: "t", message: "" } }).will;
  assert.deepEqual(will, { topic: "t", message: "", qos: 0, retain: false });
});

Deno.test("resolveClientConfig validates the connection URI and TLS files", async () => {
  assertConfigError(() => resolveClientConfig({ connection: { uri: "http://x" } }), {
    path: "connection.uri",
    message: /unsupported scheme "http" in "http:\/\/x"; expected mqtt, mqtts, ws or wss/,
  });
  assertConfigError(() => resolveClientConfig({ connection: { uri: "not a uri" } }), {
    path: "connection.uri",
    message: /is not a valid URI/,
  });
  assertConfigError(() => resolveClientConfig({ connection: { cafile: "/no/such/ca.pem" } }), {
    path: "connection.cafile",
    message: /file "\/no\/such\/ca\.pem" does not exist/,
  });
  await withTemp(async (temp) => {
    const cert = await temp.file("cert");
    assertConfigError(() => resolveClientConfig({ connection: { certfile: cert } }), {
      path: "connection.certfile",
      message: /keyfile is required with certfile/,
    });
    assertConfigError(() => resolveClientConfig({ connection: { keyfile: cert } }), {
      path: "connection.keyfile",
      message: /certfile is required with keyfile/,
    });
  });
  for (const uri of ["mqtt://h", "mqtts://h:8883", "ws://h/mqtt", "wss://[::1]:443/"]) {
    assert.equal(resolveClientConfig({ connection: { uri } }).connection.uri, uri);
  }
});

Deno.test("parseClientConfigYaml reads YAML 1.1 booleans but keeps y and n as strings, like PyYAML", () => {
  const config = parseClientConfigYaml(
    "auto_reconnect: off\ncleansession: no\ncheck_hostname: OFF\nverify_cert: False\n" +
      "will:\n  topic: t\n  message: n\n  retain: yes\n",
  );
  assert.equal(config.autoReconnect, false);
  assert.equal(config.cleanSession, false);
  assert.equal(config.checkHostname, false);
  assert.equal(config.verifyCert, false);
  assert.deepEqual(config.will, { topic: "t", message: "n", qos: 0, retain: true });
});

Deno.test("loadClientConfigFile reads a file; a missing file is a ConfigError", async () => {
  await withTemp(async (temp) => {
    const path = await temp.file("default_qos: 2\n", ".yaml");
    assert.equal((await loadClientConfigFile(path)).defaultQos, 2);
    const dir = await temp.dir();
    await assert.rejects(loadClientConfigFile(`${dir}/none.yaml`), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /^Cannot read config file ".*none\.yaml": file does not exist$/);
      return true;
    });
    const bad = await temp.file("keep_alive: [\n", ".yaml");
    await assert.rejects(loadClientConfigFile(bad), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /^Cannot parse YAML: /);
      assert.equal(error.source, bad);
      assert.equal(typeof error.line, "number");
      return true;
    });
  });
});

Deno.test("resolveClientConfig gives line numbers when passed the YAML text", () => {
  assertConfigError(
    () => resolveClientConfig({ default_qos: 7 }, { text: "\n\ndefault_qos: 7\n" }),
    { path: "default_qos", line: 3 },
  );
});

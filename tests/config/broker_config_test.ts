import assert from "node:assert/strict";
import {
  type BrokerConfig,
  ConfigError,
  DEFAULT_MAX_PACKET_SIZE,
  type ListenerConfig,
  loadBrokerConfigFile,
  MAX_PACKET_SIZE_LIMIT,
  parseBrokerConfigYaml,
  resolveBrokerConfig,
} from "../../src/config/mod.ts";
import { assertConfigError, withTemp } from "./_helpers.ts";

function listener(config: BrokerConfig, name: string): ListenerConfig {
  const found = config.listeners.find((l) => l.name === name);
  assert.ok(found, `listener ${name} not found`);
  return found;
}

// ---------------------------------------------------------------- top-level defaults and keys

Deno.test("resolveBrokerConfig with no input gives every default", () => {
  const config = resolveBrokerConfig();
  assert.deepEqual(config.listeners, [{
    name: "default",
    type: "tcp",
    bind: "0.0.0.0:1883",
    hostname: "0.0.0.0",
    port: 1883,
    maxConnections: 0,
    ssl: false,
    cafile: undefined,
    capath: undefined,
    cadata: undefined,
    certfile: undefined,
    keyfile: undefined,
    clientCertMode: "none",
    useCertCnAsUsername: false,
    path: undefined,
  }]);
  assert.equal(config.timeoutDisconnectDelay, 0);
  assert.equal(config.sessionExpiryInterval, 259200); // 3 days, not forever
  assert.equal(config.maxInflight, 20);
  assert.equal(config.maxQueuedMessages, 1000);
  assert.equal(config.maxPacketSize, DEFAULT_MAX_PACKET_SIZE);
  assert.equal(config.maxPacketSize, 2097152);
  assert.equal(config.connectTimeout, 10);
  assert.equal(config.maxOutboundBytes, 8 * 1024 * 1024);
  assert.equal(config.drainTimeout, 30);
  assert.equal(config.maxTopicLevels, 200);
  assert.equal(config.maxSubscriptionsPerClient, 1000);
  assert.equal(config.maxSessions, 100_000);
  assert.equal(config.maxRetainedMessages, 1_000_000);
  assert.equal(config.maxRetainedBytes, 512 * 1024 * 1024);
  assert.equal(config.maxMemory, undefined);
  assert.deepEqual(config.plugins.map((p) => p.name), [
    "event_logger",
    "packet_logger",
    "auth_anonymous",
    "broker_sys",
  ]);
  assert.deepEqual(config.warnings, []);
  assert.deepEqual(resolveBrokerConfig(null), config);
  assert.deepEqual(resolveBrokerConfig({}), config);
});

Deno.test("resolveBrokerConfig reads every top-level key when set", () => {
  const config = resolveBrokerConfig({
    timeout_disconnect_delay: 2,
    session_expiry_interval: 3600,
    max_inflight: 5,
    max_queued_messages: 0,
    max_packet_size: 1024,
    connect_timeout: 2.5,
    max_outbound_bytes: 65536,
    drain_timeout: 1,
    sys_interval: 7,
  });
  assert.equal(config.timeoutDisconnectDelay, 2);
  assert.equal(config.sessionExpiryInterval, 3600);
  assert.equal(config.maxInflight, 5);
  assert.equal(config.maxQueuedMessages, 0);
  assert.equal(config.maxPacketSize, 1024);
  assert.equal(config.connectTimeout, 2.5);
  assert.equal(config.maxOutboundBytes, 65536);
  assert.equal(config.drainTimeout, 1);
  assert.deepEqual(config.plugins.find((p) => p.name === "broker_sys")?.options, {
    sysInterval: 7,
  });
});

Deno.test("resolveBrokerConfig treats null values as not set", () => {
  const config = resolveBrokerConfig({ session_expiry_interval: null, max_inflight: null });
  assert.equal(config.sessionExpiryInterval, 259200);
  assert.equal(config.maxInflight, 20);
});

Deno.test("resolveBrokerConfig keeps offline sessions forever with session_expiry_interval never", () => {
  assert.equal(
    resolveBrokerConfig({ session_expiry_interval: "never" }).sessionExpiryInterval,
    undefined,
  );
  assert.equal(resolveBrokerConfig({ session_expiry_interval: 0 }).sessionExpiryInterval, 0);
});

Deno.test("resolveBrokerConfig reads the state limits, dashes or underscores, 0 turning one off", () => {
  const config = parseBrokerConfigYaml(
    "max-topic-levels: 10\nmax_subscriptions_per_client: 0\nmax-sessions: 5\n" +
      "max_retained_messages: 7\nmax-retained-bytes: 4096\nmax_memory: 0\n",
  );
  assert.equal(config.maxTopicLevels, 10);
  assert.equal(config.maxSubscriptionsPerClient, 0);
  assert.equal(config.maxSessions, 5);
  assert.equal(config.maxRetainedMessages, 7);
  assert.equal(config.maxRetainedBytes, 4096);
  assert.equal(config.maxMemory, 0);
  for (const key of ["max_topic_levels", "max_sessions", "max_memory"]) {
    assertConfigError(() => resolveBrokerConfig({ [key]: -1 }), {
      path: key,
      message: /at least 0/,
    });
    assertConfigError(() => resolveBrokerConfig({ [key]: 1.5 }), { path: key, message: /integer/ });
  }
});

Deno.test("resolveBrokerConfig rejects out-of-range and mistyped top-level values", () => {
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ max_inflight: 0 }, "max_inflight", /0 is out of range: expected in the range 1-65535/],
    [{ max_inflight: 65536 }, "max_inflight", /out of range/],
    [{ max_inflight: 1.5 }, "max_inflight", /expected an integer, got 1\.5/],
    [{ max_inflight: "20" }, "max_inflight", /expected an integer, got the string "20"/],
    [{ max_queued_messages: -1 }, "max_queued_messages", /expected at least 0/],
    [{ max_packet_size: 63 }, "max_packet_size", /in the range 64-268435460 bytes/],
    [{ max_packet_size: MAX_PACKET_SIZE_LIMIT + 1 }, "max_packet_size", /out of range/],
    [{ connect_timeout: 0 }, "connect_timeout", /expected a positive number of seconds/],
    [{ max_outbound_bytes: 100 }, "max_outbound_bytes", /at least 1024 bytes/],
    [{ drain_timeout: -1 }, "drain_timeout", /positive number/],
    [{ timeout_disconnect_delay: "x" }, "timeout_disconnect_delay", /expected a number/],
    [{ session_expiry_interval: -5 }, "session_expiry_interval", /out of range/],
    [{ sys_interval: -1 }, "sys_interval", /out of range/],
    [{ sys_interval: true }, "sys_interval", /expected a number, got boolean true/],
    [{ listeners: [] }, "listeners", /expected a map, got a list/],
  ];
  for (const [input, path, message] of cases) {
    assertConfigError(() => resolveBrokerConfig(input), { path, message });
  }
});

Deno.test("resolveBrokerConfig rejects a top level that is not a map", () => {
  assertConfigError(() => resolveBrokerConfig([1, 2]), {
    path: "",
    message: "Expected a map of broker settings at the top level, got a list",
  });
  assertConfigError(() => parseBrokerConfigYaml("- a\n- b\n"), { path: "", message: /got a list/ });
});

Deno.test("resolveBrokerConfig rejects an unknown key and lists the known ones", () => {
  const error = assertConfigError(() => resolveBrokerConfig({ max_inflights: 3 }), {
    path: "max_inflights",
    line: undefined,
  });
  assert.match(error.message, /^max_inflights: unknown key "max_inflights"; expected one of: /);
  assert.match(error.message, /max_inflight, max_queued_messages/);
});

Deno.test("resolveBrokerConfig treats -, _ and camelCase spellings as the same key", () => {
  const dashed = resolveBrokerConfig({
    "timeout-disconnect-delay": 3,
    "max-inflight": 4,
    listeners: { default: { "max-connections": 9, "use-cert-cn-as-username": false } },
  });
  const underscored = resolveBrokerConfig({
    timeout_disconnect_delay: 3,
    max_inflight: 4,
    listeners: { default: { max_connections: 9, use_cert_cn_as_username: false } },
  });
  const camel = resolveBrokerConfig({
    timeoutDisconnectDelay: 3,
    maxInflight: 4,
    listeners: { default: { maxConnections: 9, useCertCnAsUsername: false } },
  });
  assert.deepEqual(dashed, underscored);
  assert.deepEqual(camel, underscored);
  assert.equal(underscored.listeners[0]?.maxConnections, 9);
  assert.equal(underscored.timeoutDisconnectDelay, 3);
});

Deno.test("resolveBrokerConfig rejects the same key written twice in different spellings", () => {
  assertConfigError(
    () =>
      resolveBrokerConfig({ listeners: { default: { "max-connections": 1, max_connections: 2 } } }),
    {
      path: "listeners.default.max_connections",
      message: /duplicate key: "max-connections" and "max_connections" are the same key/,
    },
  );
});

Deno.test("resolveBrokerConfig warns that qos1_puback_timeout is ignored by the broker", () => {
  const config = resolveBrokerConfig({ qos1_puback_timeout: 5 });
  assert.equal(config.warnings.length, 1);
  assert.match(config.warnings[0]!, /^qos1_puback_timeout: ignored/);
});

// ---------------------------------------------------------------- listeners

Deno.test("resolveBrokerConfig requires a default listener when listeners are given", () => {
  assertConfigError(() => resolveBrokerConfig({ listeners: { tcp1: { bind: ":1883" } } }), {
    path: "listeners",
    message: 'listeners: a "default" listener is required',
  });
  assertConfigError(() => resolveBrokerConfig({ listeners: {} }), { path: "listeners" });
});

Deno.test("resolveBrokerConfig: listeners inherit every field they leave out from default", async () => {
  await withTemp(async (temp) => {
    const cert = await temp.file("cert");
    const key = await temp.file("key");
    const ca = await temp.file("ca");
    const caDir = await temp.dir();
    const config = resolveBrokerConfig({
      listeners: {
        default: {
          type: "ws",
          max_connections: 50,
          ssl: true,
          certfile: cert,
          keyfile: key,
          cafile: ca,
          capath: caDir,
          cadata: "-----BEGIN CERTIFICATE-----",
          client_cert_mode: "required",
          use_cert_cn_as_username: true,
          path: "/mqtt",
        },
        child: { bind: "127.0.0.1:9001" },
      },
    });
    assert.deepEqual(config.listeners, [{
      name: "child",
      type: "ws",
      bind: "127.0.0.1:9001",
      hostname: "127.0.0.1",
      port: 9001,
      maxConnections: 50,
      ssl: true,
      cafile: ca,
      capath: caDir,
      cadata: "-----BEGIN CERTIFICATE-----",
      certfile: cert,
      keyfile: key,
      clientCertMode: "required",
      useCertCnAsUsername: true,
      path: "/mqtt",
    }]);
  });
});

Deno.test("resolveBrokerConfig: a listener's own fields override default's", () => {
  const config = resolveBrokerConfig({
    listeners: {
      default: { type: "ws", max_connections: 50, path: "/mqtt" },
      plain: { type: "tcp", bind: ":1884", max_connections: 0 },
      web: { bind: ":8080", path: "/" },
    },
  });
  const plain = listener(config, "plain");
  assert.equal(plain.type, "tcp");
  assert.equal(plain.maxConnections, 0);
  const web = listener(config, "web");
  assert.equal(web.type, "ws");
  assert.equal(web.path, "/");
  assert.equal(web.maxConnections, 50);
});

Deno.test("resolveBrokerConfig: default without bind is only a template when others exist", () => {
  const config = resolveBrokerConfig({
    listeners: { default: { max_connections: 500 }, a: { bind: "127.0.0.1:1883" } },
  });
  assert.deepEqual(config.listeners.map((l) => l.name), ["a"]);
  const bound = resolveBrokerConfig({
    listeners: { default: { bind: "127.0.0.1:1883" }, a: { bind: "127.0.0.1:1884" } },
  });
  assert.deepEqual(bound.listeners.map((l) => [l.name, l.port]), [["default", 1883], ["a", 1884]]);
  const alone = resolveBrokerConfig({ listeners: { default: { type: "tcp" } } });
  assert.deepEqual(alone.listeners.map((l) => l.bind), ["0.0.0.0:1883"]);
});

Deno.test("resolveBrokerConfig: default ports are 1883 tcp, 8883 tcp+ssl, 8883 ws and wss", async () => {
  await withTemp(async (temp) => {
    const cert = await temp.file("cert");
    const key = await temp.file("key");
    const config = resolveBrokerConfig({
      listeners: {
        default: { bind: "127.0.0.1" },
        tls: { bind: "127.0.0.2", ssl: true, certfile: cert, keyfile: key },
        ws: { type: "ws", bind: "127.0.0.3" },
        wss: { type: "ws", bind: "127.0.0.4", ssl: true, certfile: cert, keyfile: key },
      },
    });
    assert.deepEqual(config.listeners.map((l) => [l.name, l.port]), [
      ["default", 1883],
      ["tls", 8883],
      ["ws", 8883],
      ["wss", 8883],
    ]);
  });
});

Deno.test("resolveBrokerConfig accepts every aMQTT bind form, a numeric bind and port 0", () => {
  const config = resolveBrokerConfig({
    listeners: {
      default: { bind: "127.0.0.1:0" },
      a: { bind: 1884 },
      b: { bind: ":1885" },
      c: { bind: "[::1]:1886" },
      d: { bind: "localhost:1887" },
      e: { bind: "127.0.0.1:0" },
    },
  });
  assert.deepEqual(config.listeners.map((l) => [l.hostname, l.port, l.bind]), [
    ["127.0.0.1", 0, "127.0.0.1:0"],
    ["0.0.0.0", 1884, "0.0.0.0:1884"],
    ["0.0.0.0", 1885, "0.0.0.0:1885"],
    ["::1", 1886, "[::1]:1886"],
    ["localhost", 1887, "localhost:1887"],
    ["127.0.0.1", 0, "127.0.0.1:0"],
  ]);
});

Deno.test("resolveBrokerConfig rejects a bad port with key path and line", () => {
  const yaml = "listeners:\n  default:\n    type: tcp\n    bind: 0.0.0.0:70000\n";
  assertConfigError(() => parseBrokerConfigYaml(yaml), {
    path: "listeners.default.bind",
    line: 4,
    message: "listeners.default.bind: port 70000 is out of range 0-65535 (line 4)",
  });
  assertConfigError(() => parseBrokerConfigYaml(yaml, "broker.yaml"), {
    path: "listeners.default.bind",
    message: "listeners.default.bind: port 70000 is out of range 0-65535 (broker.yaml line 4)",
  });
  assertConfigError(
    () => resolveBrokerConfig({ listeners: { default: { bind: "h:port" } } }),
    { path: "listeners.default.bind", line: undefined, message: /port "port" .* is not a number/ },
  );
  assertConfigError(
    () => resolveBrokerConfig({ listeners: { default: { bind: true } } }),
    { path: "listeners.default.bind", message: /expected a bind address/ },
  );
});

Deno.test("resolveBrokerConfig rejects two listeners on the same port", () => {
  assertConfigError(
    () =>
      resolveBrokerConfig({
        listeners: { default: { bind: "0.0.0.0:1883" }, other: { bind: "127.0.0.1:1883" } },
      }),
    { path: "listeners.other", message: /"default" \(0\.0\.0\.0:1883\) and "other"/ },
  );
  assertConfigError(
    () =>
      resolveBrokerConfig({
        listeners: { default: { type: "tcp", bind: ":1883" }, ws: { type: "ws" } },
      }),
    { path: "listeners.ws", message: /same port/ },
  );
  // A child that inherits default's bind collides with it too.
  assertConfigError(
    () => resolveBrokerConfig({ listeners: { default: { bind: ":1883" }, copy: {} } }),
    { path: "listeners.copy" },
  );
});

Deno.test("resolveBrokerConfig: max_connections 0 and negative values mean unlimited", () => {
  const config = resolveBrokerConfig({
    listeners: {
      default: { bind: ":1", max_connections: -1 },
      b: { bind: ":2", max_connections: 7 },
    },
  });
  assert.deepEqual(config.listeners.map((l) => l.maxConnections), [0, 7]);
  assertConfigError(
    () => resolveBrokerConfig({ listeners: { default: { max_connections: 1.5 } } }),
    { path: "listeners.default.max_connections", message: /expected an integer/ },
  );
});

Deno.test("resolveBrokerConfig accepts type external and passes it through", () => {
  const config = resolveBrokerConfig({
    listeners: { default: { bind: ":1883" }, embedded: { type: "external" } },
  });
  assert.equal(listener(config, "embedded").type, "external");
  assertConfigError(
    () => resolveBrokerConfig({ listeners: { default: { type: "udp" } } }),
    { path: "listeners.default.type", message: /expected one of "tcp", "ws", "external"/ },
  );
});

Deno.test("resolveBrokerConfig reads YAML 1.1 booleans for ssl", async () => {
  await withTemp(async (temp) => {
    const cert = await temp.file("cert");
    const key = await temp.file("key");
    for (const word of ["on", "yes", "true", "On", "YES"]) {
      const config = parseBrokerConfigYaml(
        `listeners:\n  default:\n    bind: 127.0.0.1:8883\n    ssl: ${word}\n` +
          `    certfile: ${cert}\n    keyfile: ${key}\n`,
      );
      assert.equal(config.listeners[0]?.ssl, true, word);
    }
    for (const word of ["off", "no", "false"]) {
      const config = parseBrokerConfigYaml(`listeners:\n  default:\n    ssl: ${word}\n`);
      assert.equal(config.listeners[0]?.ssl, false, word);
    }
    // Embedded users may pass the aMQTT strings too.
    const fromObject = resolveBrokerConfig({
      listeners: { default: { ssl: "on", certfile: cert, keyfile: key } },
    });
    assert.equal(fromObject.listeners[0]?.ssl, true);
  });
  assertConfigError(
    () => resolveBrokerConfig({ listeners: { default: { ssl: "maybe" } } }),
    { path: "listeners.default.ssl", message: /expected a boolean/ },
  );
});

// ---------------------------------------------------------------- TLS files

Deno.test("resolveBrokerConfig rejects certfile without keyfile and keyfile without certfile", async () => {
  await withTemp(async (temp) => {
    const cert = await temp.file("cert");
    assertConfigError(
      () => resolveBrokerConfig({ listeners: { default: { certfile: cert } } }),
      {
        path: "listeners.default.certfile",
        message: /keyfile is required with certfile \(listener "default"\)/,
      },
    );
    assertConfigError(
      () => resolveBrokerConfig({ listeners: { default: { keyfile: cert } } }),
      { path: "listeners.default.keyfile", message: /certfile is required with keyfile/ },
    );
  });
});

Deno.test("resolveBrokerConfig rejects ssl on without certfile and keyfile", () => {
  const yaml = "listeners:\n  default:\n    bind: :1883\n  secure:\n    bind: :8883\n    ssl: on\n";
  assertConfigError(() => parseBrokerConfigYaml(yaml), {
    path: "listeners.secure",
    line: 4,
    message: "listeners.secure: ssl is on but certfile and keyfile are not set (line 4)",
  });
});

Deno.test("resolveBrokerConfig rejects a certificate file that does not exist", () => {
  const yaml = "listeners:\n  default:\n    ssl: on\n    certfile: /no/such/cert.pem\n" +
    "    keyfile: /no/such/key.pem\n";
  assertConfigError(() => parseBrokerConfigYaml(yaml), {
    path: "listeners.default.certfile",
    line: 4,
    message: 'listeners.default.certfile: file "/no/such/cert.pem" does not exist (line 4)',
  });
});

Deno.test("resolveBrokerConfig checks capath is a directory and cafile a file", async () => {
  await withTemp(async (temp) => {
    const file = await temp.file("x");
    const dir = await temp.dir();
    assertConfigError(
      () => resolveBrokerConfig({ listeners: { default: { capath: file } } }),
      { path: "listeners.default.capath", message: /is not a directory/ },
    );
    assertConfigError(
      () => resolveBrokerConfig({ listeners: { default: { cafile: dir } } }),
      { path: "listeners.default.cafile", message: /is not a file/ },
    );
    assertConfigError(
      () => resolveBrokerConfig({ listeners: { default: { cadata: 5 } } }),
      { path: "listeners.default.cadata", message: /expected PEM certificate text/ },
    );
  });
});

Deno.test("resolveBrokerConfig: client_cert_mode defaults to optional with a CA, none without", async () => {
  await withTemp(async (temp) => {
    const cert = await temp.file("cert");
    const key = await temp.file("key");
    const ca = await temp.file("ca");
    const config = resolveBrokerConfig({
      listeners: {
        default: { bind: ":0", ssl: true, certfile: cert, keyfile: key },
        withCa: { bind: ":0", cafile: ca },
        withData: { bind: ":0", cadata: "-----BEGIN CERTIFICATE-----" },
        plain: { bind: ":0", ssl: false, cafile: ca },
      },
    });
    assert.deepEqual(config.listeners.map((l) => [l.name, l.clientCertMode]), [
      ["default", "none"],
      ["withCa", "optional"],
      ["withData", "optional"],
      ["plain", "none"],
    ]);
  });
});

Deno.test("resolveBrokerConfig: client_cert_mode and use_cert_cn_as_username rules", async () => {
  await withTemp(async (temp) => {
    const cert = await temp.file("cert");
    const key = await temp.file("key");
    const ca = await temp.file("ca");
    const tls = { ssl: true, certfile: cert, keyfile: key };
    assertConfigError(
      () =>
        resolveBrokerConfig({ listeners: { default: { ...tls, client_cert_mode: "required" } } }),
      {
        path: "listeners.default.client_cert_mode",
        message: /"required" needs cafile, capath or cadata/,
      },
    );
    assertConfigError(
      () => resolveBrokerConfig({ listeners: { default: { client_cert_mode: "optional" } } }),
      { path: "listeners.default.client_cert_mode", message: /needs ssl: on/ },
    );
    assertConfigError(
      () => resolveBrokerConfig({ listeners: { default: { client_cert_mode: "always" } } }),
      { path: "listeners.default.client_cert_mode", message: /"none", "optional", "required"/ },
    );
    assertConfigError(
      () =>
        resolveBrokerConfig({ listeners: { default: { ...tls, use_cert_cn_as_username: true } } }),
      { path: "listeners.default.use_cert_cn_as_username", message: /needs ssl: on/ },
    );
    // A template's TLS-only settings do not apply to a child that turns ssl off.
    const config = resolveBrokerConfig({
      listeners: {
        default: {
          ...tls,
          cafile: ca,
          client_cert_mode: "required",
          use_cert_cn_as_username: true,
        },
        secure: { bind: ":0" },
        plain: { bind: ":0", ssl: false },
      },
    });
    assert.deepEqual(
      config.listeners.map((l) => [l.name, l.clientCertMode, l.useCertCnAsUsername]),
      [
        ["secure", "required", true],
        ["plain", "none", false],
      ],
    );
    const none = resolveBrokerConfig({
      listeners: { default: { ...tls, cafile: ca, client_cert_mode: "none" } },
    });
    assert.equal(none.listeners[0]?.clientCertMode, "none");
  });
});

Deno.test("resolveBrokerConfig: use_cert_cn_as_username makes client certificates required, never optional", async () => {
  await withTemp(async (temp) => {
    const tls = {
      ssl: true,
      certfile: await temp.file("cert"),
      keyfile: await temp.file("key"),
      cafile: await temp.file("ca"),
    };
    // Without a written mode, a CA gives "optional", and the CN as user name gives "required".
    const config = resolveBrokerConfig({
      listeners: {
        default: { ...tls, bind: ":0" },
        named: { bind: ":0", use_cert_cn_as_username: true },
      },
    });
    assert.deepEqual(
      config.listeners.map((l) => [l.name, l.clientCertMode, l.useCertCnAsUsername]),
      [["default", "optional", false], ["named", "required", true]],
    );
    // With "optional" a client without a certificate would keep its CONNECT user name.
    assertConfigError(
      () =>
        resolveBrokerConfig({
          listeners: {
            default: { ...tls, client_cert_mode: "optional", use_cert_cn_as_username: true },
          },
        }),
      {
        path: "listeners.default.client_cert_mode",
        message: /needs client_cert_mode "required", not "optional": a client without a /,
      },
    );
  });
});

Deno.test("resolveBrokerConfig: ws path defaults to any path and must start with /", () => {
  const config = resolveBrokerConfig({
    listeners: { default: { type: "ws", bind: ":0" }, root: { bind: ":0", path: "/" } },
  });
  assert.deepEqual(config.listeners.map((l) => l.path), [undefined, "/"]);
  assertConfigError(
    () => resolveBrokerConfig({ listeners: { default: { type: "ws", path: "mqtt" } } }),
    { path: "listeners.default.path", message: /must start with "\/"/ },
  );
});

// ---------------------------------------------------------------- YAML and files

Deno.test("parseBrokerConfigYaml reports an unknown key with its path and line", () => {
  const yaml = "listeners:\n  default:\n    bind: :1883\n  ws-1:\n    type: ws\n    bnd: :8080\n";
  const error = assertConfigError(() => parseBrokerConfigYaml(yaml), {
    path: "listeners.ws-1.bnd",
    line: 6,
  });
  assert.match(
    error.message,
    /^listeners\.ws-1\.bnd: unknown key "bnd"; expected one of: type, bind/,
  );
  assert.match(error.message, /\(line 6\)$/);
});

Deno.test("parseBrokerConfigYaml reports a wrong type with its path and line", () => {
  assertConfigError(
    () => parseBrokerConfigYaml("listeners:\n  default:\n    max-connections: lots\n"),
    {
      path: "listeners.default.max-connections",
      line: 3,
      message:
        'listeners.default.max-connections: expected an integer, got the string "lots" (line 3)',
    },
  );
});

Deno.test("parseBrokerConfigYaml turns a YAML syntax error into a ConfigError with its line", () => {
  const error = assertConfigError(
    () => parseBrokerConfigYaml("listeners:\n  default: {type: tcp\nplugins: {}\n", "b.yaml"),
    { path: "", line: 3 },
  );
  assert.match(error.message, /^Cannot parse YAML: .+ \(b\.yaml line 3\)$/);
  assert.doesNotMatch(error.message, /\n/);
});

Deno.test("parseBrokerConfigYaml rejects a key written twice, with its line", () => {
  const error = assertConfigError(
    () => parseBrokerConfigYaml("listeners:\n  default:\n    ssl: on\n    ssl: off\n"),
    { path: "", line: 4 },
  );
  assert.match(error.message, /Map keys must be unique/);
});

Deno.test("parseBrokerConfigYaml gives defaults for an empty document", () => {
  assert.deepEqual(parseBrokerConfigYaml(""), resolveBrokerConfig());
  assert.deepEqual(parseBrokerConfigYaml("# only a comment\n"), resolveBrokerConfig());
});

Deno.test("parseBrokerConfigYaml supports YAML anchors and << merge keys", () => {
  const config = parseBrokerConfigYaml(
    "listeners:\n  default: &base\n    bind: 127.0.0.1:0\n    max_connections: 3\n" +
      "  other:\n    <<: *base\n    bind: 127.0.0.1:1\n",
  );
  assert.deepEqual(config.listeners.map((l) => [l.name, l.port, l.maxConnections]), [
    ["default", 0, 3],
    ["other", 1, 3],
  ]);
});

Deno.test("resolveBrokerConfig gives line numbers when passed the YAML text", () => {
  const text = "max_inflight: 0\n";
  assertConfigError(() => resolveBrokerConfig({ max_inflight: 0 }, { text, source: "x.yaml" }), {
    path: "max_inflight",
    line: 1,
    message: /\(x\.yaml line 1\)$/,
  });
});

Deno.test("loadBrokerConfigFile reads a YAML file and names it in errors", async () => {
  await withTemp(async (temp) => {
    const good = await temp.file("listeners:\n  default:\n    bind: 127.0.0.1:0\n", ".yaml");
    const config = await loadBrokerConfigFile(good);
    assert.equal(config.listeners[0]?.hostname, "127.0.0.1");
    const bad = await temp.file("max_inflight: none\n", ".yaml");
    await assert.rejects(loadBrokerConfigFile(bad), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.source, bad);
      assert.equal(error.line, 1);
      assert.ok(error.message.endsWith(`(${bad} line 1)`), error.message);
      return true;
    });
  });
});

Deno.test("loadBrokerConfigFile turns a missing file into a ConfigError", async () => {
  await withTemp(async (temp) => {
    const dir = await temp.dir();
    const missing = `${dir}/absent.yaml`;
    await assert.rejects(loadBrokerConfigFile(missing), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.message, `Cannot read config file "${missing}": file does not exist`);
      assert.equal(error.path, "");
      return true;
    });
    await assert.rejects(loadBrokerConfigFile(dir), ConfigError);
  });
});

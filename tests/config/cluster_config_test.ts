// The cluster section: off by default, resolved with defaults when given, Redis URLs, TLS files
// and timing checked, errors with key path and line; no warning (the broker joins the cluster).
import assert from "node:assert/strict";
import { parseBrokerConfigYaml, resolveBrokerConfig } from "../../src/config/mod.ts";
import { assertConfigError, withTemp } from "./_helpers.ts";

const DEFAULTS = {
  enabled: false,
  nodeId: undefined,
  redis: ["redis://127.0.0.1:6379"],
  username: undefined,
  password: undefined,
  tls: undefined,
  keyPrefix: "amqtt:",
  heartbeatInterval: 1,
  nodeTimeout: 10,
  loginTimeout: undefined,
};

Deno.test("cluster is off by default, with documented defaults and no warning", () => {
  const config = resolveBrokerConfig(undefined);
  assert.deepEqual(config.cluster, DEFAULTS);
  assert.deepEqual(config.warnings, []);
});

Deno.test("cluster section: every key resolved, on when given, without a warning", async () => {
  await withTemp(async (temp) => {
    const ca = await temp.file("-----BEGIN CERTIFICATE-----\n", ".pem");
    const cert = await temp.file("-----BEGIN CERTIFICATE-----\n", ".pem");
    const key = await temp.file("-----BEGIN PRIVATE KEY-----\n", ".key");
    const config = parseBrokerConfigYaml(
      [
        "cluster:",
        "  node-id: node-1",
        "  redis:",
        "    - rediss://user:pw@redis-a.example:6380/2",
        "    - redis://redis-b.example",
        "  username: amqtt",
        "  password: secret",
        "  tls:",
        `    cafile: ${ca}`,
        `    certfile: ${cert}`,
        `    keyfile: ${key}`,
        '  key_prefix: "{prod}:"',
        "  heartbeatInterval: 0.5",
        "  node_timeout: 2",
        "  login_timeout: 60",
        "",
      ].join("\n"),
      "broker.yaml",
    );
    assert.deepEqual(config.cluster, {
      enabled: true,
      nodeId: "node-1",
      redis: ["rediss://user:pw@redis-a.example:6380/2", "redis://redis-b.example"],
      username: "amqtt",
      password: "secret",
      tls: { cafile: ca, certfile: cert, keyfile: key, verify: true },
      keyPrefix: "{prod}:",
      heartbeatInterval: 0.5,
      nodeTimeout: 2,
      loginTimeout: 60,
    });
    assert.deepEqual(config.warnings, []);
  });
});

Deno.test("cluster: on/off as a value, enabled: off, one URL as a string, tls: on", () => {
  const on = parseBrokerConfigYaml("cluster: on\n");
  assert.deepEqual(on.cluster, { ...DEFAULTS, enabled: true });
  assert.deepEqual(on.warnings, []);
  const off = parseBrokerConfigYaml("cluster: off\n");
  assert.deepEqual([off.cluster, off.warnings], [DEFAULTS, []]);
  const disabled = parseBrokerConfigYaml("cluster:\n  enabled: no\n  redis: redis://r:1\n");
  assert.deepEqual([disabled.cluster.enabled, disabled.cluster.redis, disabled.warnings], [
    false,
    ["redis://r:1"],
    [],
  ]);
  const tls = resolveBrokerConfig({ cluster: { tls: true, nodeId: "n" } }).cluster;
  assert.deepEqual(tls.tls, {
    cafile: undefined,
    certfile: undefined,
    keyfile: undefined,
    verify: true,
  });
  assert.equal(tls.nodeId, "n");
});

Deno.test("cluster: turning certificate verification off is accepted with a warning", () => {
  const config = parseBrokerConfigYaml("cluster:\n  tls:\n    verify: false\n");
  assert.equal(config.cluster.tls?.verify, false);
  assert.ok(
    config.warnings.some((w) =>
      /^cluster\.tls\.verify: the Redis server's certificate is not verified/.test(w)
    ),
    config.warnings.join("\n"),
  );
});

Deno.test("cluster section errors name the key and line", () => {
  const cases: [string, string, number, RegExp][] = [
    [
      "cluster:\n  redis: http://x:6379\n",
      "cluster.redis",
      2,
      /redis:\/\/ or rediss:\/\/ URL, got a http URL/,
    ],
    ["cluster:\n  redis: not a url\n", "cluster.redis", 2, /expected a Redis URL/],
    ["cluster:\n  redis: []\n", "cluster.redis", 2, /at least one Redis URL/],
    [
      "cluster:\n  redis:\n    - redis://a\n    - 6379\n",
      "cluster.redis[1]",
      4,
      /expected a Redis URL/,
    ],
    ["cluster:\n  redis: redis://a/x\n", "cluster.redis", 2, /database number/],
    ["cluster:\n  node_id: two words\n", "cluster.node_id", 2, /printable ASCII/],
    ['cluster:\n  node_id: ""\n', "cluster.node_id", 2, /empty string/],
    ["cluster:\n  key_prefix: 7\n", "cluster.key_prefix", 2, /expected a key prefix/],
    ["cluster:\n  heartbeat_interval: 0\n", "cluster.heartbeat_interval", 2, /positive/],
    ["cluster:\n  login_timeout: 0\n", "cluster.login_timeout", 2, /positive/],
    ["cluster:\n  node_timeout: 1\n", "cluster.node_timeout", 2, /longer than heartbeat_interval/],
    // Not shorter than the default node_timeout (10 s).
    ["cluster:\n  heartbeat_interval: 12\n", "cluster.heartbeat_interval", 2, /longer than/],
    ["cluster:\n  tls:\n    cafile: /no/such/ca.pem\n", "cluster.tls.cafile", 3, /does not exist/],
    ["cluster:\n  tls: off\n", "cluster.tls", 2, /leave tls out/],
    ["cluster:\n  tls:\n    verify: maybe\n", "cluster.tls.verify", 3, /boolean/],
    [
      "cluster:\n  nodes: 3\n",
      "cluster.nodes",
      2,
      /unknown key "nodes"; expected one of: enabled, node_id/,
    ],
    ["cluster: 3\n", "cluster", 1, /boolean/],
  ];
  for (const [yaml, path, line, message] of cases) {
    assertConfigError(() => parseBrokerConfigYaml(yaml), { path, line, message });
  }
});

Deno.test("cluster: a client certificate needs its key", async () => {
  await withTemp(async (temp) => {
    const cert = await temp.file("x", ".pem");
    assertConfigError(
      () => resolveBrokerConfig({ cluster: { tls: { certfile: cert } } }),
      { path: "cluster.tls", message: /certfile and keyfile together/ },
    );
  });
});

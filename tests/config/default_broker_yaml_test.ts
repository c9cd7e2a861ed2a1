import assert from "node:assert/strict";
import {
  DEFAULT_BROKER_CONFIG_YAML,
  defaultBrokerConfig,
  parseBrokerConfigYaml,
  resolveBrokerConfig,
} from "../../src/config/mod.ts";
import { withTemp } from "./_helpers.ts";

/** Removes the "# " after the indentation of `count` lines starting at the line `first`. */
function uncomment(text: string, first: string, count: number): string {
  const lines = text.split("\n");
  const start = lines.indexOf(first);
  assert.ok(start >= 0, `line ${JSON.stringify(first)} not found`);
  for (let i = start; i < start + count; i++) {
    lines[i] = lines[i]!.replace(/^(\s*)# /, "$1");
  }
  return lines.join("\n");
}

Deno.test("defaultBrokerConfig listens on 0.0.0.0:1883 tcp, allows anonymous, $SYS every 20 s", () => {
  const config = defaultBrokerConfig();
  assert.deepEqual(config.listeners.map((l) => [l.name, l.type, l.hostname, l.port, l.ssl]), [
    ["default", "tcp", "0.0.0.0", 1883, false],
  ]);
  assert.deepEqual(config.plugins.map((p) => [p.name, p.options]), [
    ["event_logger", {}],
    ["packet_logger", {}],
    ["auth_anonymous", { allowAnonymous: true }],
    ["broker_sys", { sysInterval: 20 }],
  ]);
  assert.deepEqual(config.warnings, []);
});

Deno.test("the embedded default YAML resolves to the same config as no config at all", () => {
  assert.deepEqual(defaultBrokerConfig(), resolveBrokerConfig());
  assert.deepEqual(parseBrokerConfigYaml(DEFAULT_BROKER_CONFIG_YAML), resolveBrokerConfig());
});

Deno.test("the embedded default YAML is commented and its commented limits are the defaults", () => {
  assert.match(DEFAULT_BROKER_CONFIG_YAML, /^# /);
  for (const word of ["type: ws", "ssl: on", "password_file:", "subscribe_acl:"]) {
    assert.ok(DEFAULT_BROKER_CONFIG_YAML.includes(word), word);
  }
  const limits = uncomment(
    DEFAULT_BROKER_CONFIG_YAML,
    "# max_inflight: 20                 # QoS 1/2 messages in flight per client",
    6,
  );
  assert.deepEqual(parseBrokerConfigYaml(limits), resolveBrokerConfig());
});

Deno.test("the embedded default YAML's ws, TLS, password file and ACL examples work uncommented", async () => {
  await withTemp(async (temp) => {
    const cert = await temp.file("cert");
    const key = await temp.file("key");
    const ca = await temp.file("ca");
    const passwd = await temp.file("alice:$6$salt$hash\n");
    let text = DEFAULT_BROKER_CONFIG_YAML;
    text = uncomment(text, "  # ws:", 4);
    text = uncomment(text, "  # tls:", 5);
    text = uncomment(text, "  #   # cafile: /etc/amqtt/ca.crt", 3);
    text = uncomment(text, "  #   # cafile: /etc/amqtt/ca.crt".replace("#   # ", "  # "), 3);
    text = uncomment(text, "  # amqtt.plugins.authentication.FileAuthPlugin:", 2);
    text = uncomment(text, "  # amqtt.plugins.topic_checking.TopicAccessControlListPlugin:", 7);
    text = uncomment(text, "# session_expiry_interval: 3600", 1);
    text = text.replaceAll("/etc/amqtt/server.crt", cert)
      .replaceAll("/etc/amqtt/server.key", key)
      .replaceAll("/etc/amqtt/ca.crt", ca)
      .replaceAll("/etc/amqtt/passwd", passwd);
    const config = parseBrokerConfigYaml(text);
    assert.deepEqual(
      config.listeners.map((l) => [l.name, l.type, l.port, l.ssl, l.path, l.clientCertMode]),
      [
        ["default", "tcp", 1883, false, undefined, "none"],
        ["ws", "ws", 8080, false, "/mqtt", "none"],
        ["tls", "tcp", 8883, true, undefined, "required"],
      ],
    );
    assert.equal(config.listeners[2]?.useCertCnAsUsername, true);
    assert.equal(config.sessionExpiryInterval, 3600);
    assert.deepEqual(config.plugins.map((p) => p.name), [
      "event_logger",
      "packet_logger",
      "auth_anonymous",
      "broker_sys",
      "auth_file",
      "topic_acl",
    ]);
    assert.deepEqual(config.plugins[5]?.options, {
      acl: undefined,
      subscribeAcl: { alice: ["sensors/#", "$SYS/#"], anonymous: ["public/#"] },
      publishAcl: { alice: ["sensors/alice/#"], anonymous: [] },
      receiveAcl: undefined,
    });
  });
});

import assert from "node:assert/strict";
import {
  BROKER_PLUGIN_CLASSES,
  type BrokerPluginConfig,
  parseBrokerConfigYaml,
  resolveBrokerConfig,
} from "../../src/config/mod.ts";
import { assertConfigError, withTemp } from "./_helpers.ts";

const EVENT = { name: "event_logger", className: BROKER_PLUGIN_CLASSES.event_logger, options: {} };
const PACKET = {
  name: "packet_logger",
  className: BROKER_PLUGIN_CLASSES.packet_logger,
  options: {},
};
const anonymous = (allowAnonymous: boolean) => ({
  name: "auth_anonymous",
  className: BROKER_PLUGIN_CLASSES.auth_anonymous,
  options: { allowAnonymous },
});
const sys = (sysInterval: number) => ({
  name: "broker_sys",
  className: BROKER_PLUGIN_CLASSES.broker_sys,
  options: { sysInterval },
});

// The CLI default file of aMQTT 0.11 (amqtt/scripts/default_broker.yaml), unchanged.
const AMQTT_DEFAULT_BROKER_YAML = `listeners:
  default: {type: tcp, bind: 0.0.0.0:1883}
plugins:
  amqtt.plugins.logging_amqtt.EventLoggerPlugin:
  amqtt.plugins.logging_amqtt.PacketLoggerPlugin:
  amqtt.plugins.authentication.AnonymousAuthPlugin: {allow_anonymous: true}
  amqtt.plugins.sys.broker.BrokerSysPlugin: {sys_interval: 20}
`;

Deno.test("aMQTT's default_broker.yaml loads unchanged", () => {
  const config = parseBrokerConfigYaml(AMQTT_DEFAULT_BROKER_YAML, "default_broker.yaml");
  assert.deepEqual(config.listeners.map((l) => [l.name, l.type, l.hostname, l.port]), [
    ["default", "tcp", "0.0.0.0", 1883],
  ]);
  assert.deepEqual(config.plugins, [EVENT, PACKET, anonymous(true), sys(20)]);
  assert.deepEqual(config.warnings, []);
  // And it is what aMQTT's BrokerConfig() gives: our defaults.
  assert.deepEqual(config, resolveBrokerConfig());
});

Deno.test("aMQTT samples/legacy.yaml and samples/broker.yaml load", () => {
  const legacy = parseBrokerConfigYaml(
    "---\nlisteners:\n  default:\n    type: tcp\n    bind: 0.0.0.0:1883\nsys_interval: 20\n" +
      "auth:\n  plugins:\n    - auth_anonymous\n  allow-anonymous: true\n" +
      "topic-check:\n  enabled: False\n\n",
  );
  assert.deepEqual(legacy.plugins, [EVENT, PACKET, anonymous(true), sys(20)]);
  assert.deepEqual(legacy.warnings, []);
  const sample = parseBrokerConfigYaml(
    "---\nlisteners:\n  default:\n    type: tcp\n    bind: 0.0.0.0:1883\n  std-ws:\n" +
      "   type: ws\n   bind: 0.0.0.0:8000\n  # tls-mqtt:\n  #   type: tcp\nsys_interval: 2\n" +
      "auth:\n  plugins:\n    - auth_anonymous\n  allow-anonymous: true\ntopic-check:\n" +
      "  enabled: False\n",
  );
  assert.deepEqual(sample.listeners.map((l) => [l.name, l.type, l.port]), [
    ["default", "tcp", 1883],
    ["std-ws", "ws", 8000],
  ]);
  assert.deepEqual(sample.plugins, [EVENT, PACKET, anonymous(true), sys(2)]);
});

Deno.test("the legacy auth/topic-check sections and the plugins map resolve to the same list", async () => {
  await withTemp(async (temp) => {
    const passwd = await temp.file("test:$6$x$y\n");
    const legacy = parseBrokerConfigYaml(`
sys_interval: 10
auth:
  plugins: [auth_anonymous, auth_file]
  allow-anonymous: false
  password-file: ${passwd}
topic-check:
  enabled: true
  plugins: [topic_taboo, topic_acl]
  acl:
    alice: ["a/#", "b/+"]
    anonymous: []
  publish-acl:
    alice: ["a/#"]
  subscribe-acl:
    bob: ["c"]
  receive-acl:
    bob: ["c"]
`);
    const map = parseBrokerConfigYaml(`
plugins:
  amqtt.plugins.logging_amqtt.EventLoggerPlugin:
  amqtt.plugins.logging_amqtt.PacketLoggerPlugin:
  amqtt.plugins.authentication.AnonymousAuthPlugin: {allow-anonymous: false}
  amqtt.plugins.authentication.FileAuthPlugin: {password-file: ${passwd}}
  amqtt.plugins.topic_checking.TopicTabooPlugin:
  amqtt.plugins.topic_checking.TopicAccessControlListPlugin:
    acl: {alice: ["a/#", "b/+"], anonymous: []}
    publish_acl: {alice: ["a/#"]}
    subscribe_acl: {bob: ["c"]}
    receive_acl: {bob: ["c"]}
  amqtt.plugins.sys.broker.BrokerSysPlugin: {sys_interval: 10}
`);
    const list = parseBrokerConfigYaml(`
plugins:
  - amqtt.plugins.logging_amqtt.EventLoggerPlugin
  - amqtt.plugins.logging_amqtt.PacketLoggerPlugin
  - amqtt.plugins.authentication.AnonymousAuthPlugin:
      allow-anonymous: false
  - amqtt.plugins.authentication.FileAuthPlugin:
      password-file: ${passwd}
  - amqtt.plugins.topic_checking.TopicTabooPlugin
  - amqtt.plugins.topic_checking.TopicAccessControlListPlugin:
      acl:
        - alice: ["a/#", "b/+"]
        - anonymous: []
      publish_acl: {alice: ["a/#"]}
      subscribe_acl: {bob: ["c"]}
      receive_acl: {bob: ["c"]}
  - amqtt.plugins.sys.broker.BrokerSysPlugin: {sys_interval: 10}
`);
    const expected: BrokerPluginConfig[] = [
      EVENT as BrokerPluginConfig,
      PACKET as BrokerPluginConfig,
      anonymous(false) as BrokerPluginConfig,
      {
        name: "auth_file",
        className: BROKER_PLUGIN_CLASSES.auth_file,
        options: { passwordFile: passwd },
      },
      { name: "topic_taboo", className: BROKER_PLUGIN_CLASSES.topic_taboo, options: {} },
      {
        name: "topic_acl",
        className: BROKER_PLUGIN_CLASSES.topic_acl,
        options: {
          acl: { alice: ["a/#", "b/+"], anonymous: [] },
          publishAcl: { alice: ["a/#"] },
          subscribeAcl: { bob: ["c"] },
          receiveAcl: { bob: ["c"] },
        },
      },
      sys(10) as BrokerPluginConfig,
    ];
    assert.deepEqual(legacy.plugins, expected);
    assert.deepEqual(map.plugins, expected);
    assert.deepEqual(list.plugins, expected);
    assert.deepEqual([legacy.warnings, map.warnings, list.warnings], [[], [], []]);
  });
});

Deno.test("legacy auth without auth.plugins enables anonymous, and the file plugin with a password file", async () => {
  await withTemp(async (temp) => {
    const passwd = await temp.file("");
    const config = resolveBrokerConfig({ auth: { "password-file": passwd } });
    assert.deepEqual(config.plugins.map((p) => p.name), [
      "event_logger",
      "packet_logger",
      "auth_anonymous",
      "auth_file",
      "broker_sys",
    ]);
    const anonymousOnly = resolveBrokerConfig({ auth: { "allow-anonymous": false } });
    assert.deepEqual(anonymousOnly.plugins.map((p) => p.name), [
      "event_logger",
      "packet_logger",
      "auth_anonymous",
      "broker_sys",
    ]);
    assert.deepEqual(anonymousOnly.plugins[2]?.options, { allowAnonymous: false });
  });
});

Deno.test("legacy topic-check enabled without plugins turns on taboo and ACL; absent ACL maps stay undefined", () => {
  const config = resolveBrokerConfig({ "topic-check": { enabled: true } });
  assert.deepEqual(config.plugins.map((p) => p.name), [
    "event_logger",
    "packet_logger",
    "auth_anonymous",
    "topic_taboo",
    "topic_acl",
    "broker_sys",
  ]);
  assert.deepEqual(config.plugins[4]?.options, {
    acl: undefined,
    subscribeAcl: undefined,
    publishAcl: undefined,
    receiveAcl: undefined,
  });
});

Deno.test("legacy topic-check that is not enabled adds no topic plugin and warns about its ACL", () => {
  const config = parseBrokerConfigYaml(
    "topic-check:\n  enabled: false\n  acl:\n    alice: ['#']\n",
  );
  assert.deepEqual(config.plugins.map((p) => p.name), [
    "event_logger",
    "packet_logger",
    "auth_anonymous",
    "broker_sys",
  ]);
  assert.equal(config.warnings.length, 1);
  assert.match(config.warnings[0]!, /^topic-check: ignored: topic checking is off .*\(line 1\)$/);
});

Deno.test("legacy auth.plugins: [] configures no auth plugin and warns that everyone is refused", () => {
  const config = resolveBrokerConfig({ auth: { plugins: [] } });
  assert.ok(!config.plugins.some((p) => p.name.startsWith("auth_")));
  assert.equal(config.warnings.length, 1);
  assert.match(config.warnings[0]!, /every connection will be refused/);
});

Deno.test("legacy auth_file without a password file is an error", () => {
  assertConfigError(() => parseBrokerConfigYaml("auth:\n  plugins:\n    - auth_file\n"), {
    path: "auth.plugins[0]",
    line: 3,
    message: "auth.plugins[0]: auth_file needs auth.password_file (line 3)",
  });
});

Deno.test("legacy sections reject unknown plugin names and keys", () => {
  assertConfigError(() => resolveBrokerConfig({ auth: { plugins: ["auth.anonymous"] } }), {
    path: "auth.plugins[0]",
    message:
      /unknown authentication plugin "auth\.anonymous"; expected one of: auth_anonymous, auth_file/,
  });
  assertConfigError(() => resolveBrokerConfig({ auth: { plugins: ["topic_acl"] } }), {
    path: "auth.plugins[0]",
    message: /unknown authentication plugin "topic_acl"/,
  });
  assertConfigError(
    () => resolveBrokerConfig({ "topic-check": { enabled: true, plugins: ["auth_file"] } }),
    { path: "topic-check.plugins[0]", message: /unknown topic plugin "auth_file"/ },
  );
  assertConfigError(() => resolveBrokerConfig({ auth: { "allow-anonymus": true } }), {
    path: "auth.allow-anonymus",
    message:
      /unknown key "allow-anonymus"; expected one of: plugins, allow_anonymous, password_file/,
  });
  assertConfigError(() => resolveBrokerConfig({ auth: { "password-file": "/no/such/passwd" } }), {
    path: "auth.password-file",
    message: /file "\/no\/such\/passwd" does not exist/,
  });
});

Deno.test("legacy settings that their plugin list leaves out are reported as ignored", async () => {
  await withTemp(async (temp) => {
    const passwd = await temp.file("");
    const config = resolveBrokerConfig({
      auth: { plugins: ["auth_file"], "password-file": passwd, "allow-anonymous": true },
    });
    assert.deepEqual(config.plugins.map((p) => p.name), [
      "event_logger",
      "packet_logger",
      "auth_file",
      "broker_sys",
    ]);
    assert.deepEqual(config.warnings, [
      "auth.allow-anonymous: ignored: auth.plugins does not list auth_anonymous",
    ]);
  });
});

Deno.test("plugins map rejects an unknown plugin class and lists the known ones", () => {
  const error = assertConfigError(
    () =>
      parseBrokerConfigYaml(
        "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n" +
          "  amqtt.contrib.http.UserAuthHttpPlugin: {}\n",
      ),
    { path: 'plugins["amqtt.contrib.http.UserAuthHttpPlugin"]', line: 3 },
  );
  assert.match(
    error.message,
    /unknown plugin class "amqtt\.contrib\.http\.UserAuthHttpPlugin"/,
  );
  for (const className of Object.values(BROKER_PLUGIN_CLASSES)) {
    assert.ok(error.message.includes(className), className);
  }
  assertConfigError(
    () => resolveBrokerConfig({ plugins: ["amqtt.plugin.authentication.FileAuthPlugin"] }),
    {
      path: "plugins[0]",
      message: /unknown plugin class/,
    },
  );
});

Deno.test("plugins map accepts short ids and module:Class names", () => {
  const config = resolveBrokerConfig({
    plugins: {
      auth_anonymous: { allow_anonymous: false },
      "amqtt.plugins.sys.broker:BrokerSysPlugin": { sys_interval: 0 },
      event_logger_plugin: null,
    },
  });
  assert.deepEqual(config.plugins.map((p) => [p.name, p.options]), [
    ["auth_anonymous", { allowAnonymous: false }],
    ["broker_sys", { sysInterval: 0 }],
    ["event_logger", {}],
  ]);
});

Deno.test("plugins map validates each plugin's options strictly", () => {
  assertConfigError(
    () => resolveBrokerConfig({ plugins: { auth_anonymous: { allow_anonymous: "sometimes" } } }),
    { path: "plugins.auth_anonymous.allow_anonymous", message: /expected a boolean/ },
  );
  assertConfigError(
    () =>
      parseBrokerConfigYaml(
        "plugins:\n  amqtt.plugins.topic_checking.TopicTabooPlugin:\n    words: [x]\n",
      ),
    {
      path: 'plugins["amqtt.plugins.topic_checking.TopicTabooPlugin"].words',
      line: 3,
      message: /unknown key "words"; no options are accepted here \(line 3\)$/,
    },
  );
  assertConfigError(
    () => resolveBrokerConfig({ plugins: { broker_sys: { sys_interval: "20" } } }),
    { path: "plugins.broker_sys.sys_interval", message: /expected a number/ },
  );
  assertConfigError(
    () => resolveBrokerConfig({ plugins: { auth_anonymous: [true] } }),
    { path: "plugins.auth_anonymous", message: /expected a map, got a list/ },
  );
  assertConfigError(() => resolveBrokerConfig({ plugins: "auth_anonymous" }), {
    path: "plugins",
    message: /expected a map of plugin class names to options/,
  });
  assertConfigError(() => resolveBrokerConfig({ plugins: [42] }), {
    path: "plugins[0]",
    message: /expected a plugin class name/,
  });
});

Deno.test("FileAuthPlugin needs an existing password_file", () => {
  assertConfigError(
    () => resolveBrokerConfig({ plugins: { "amqtt.plugins.authentication.FileAuthPlugin": {} } }),
    {
      path: 'plugins["amqtt.plugins.authentication.FileAuthPlugin"]',
      message: /FileAuthPlugin needs password_file/,
    },
  );
  assertConfigError(
    () => resolveBrokerConfig({ plugins: { auth_file: { password_file: "/no/such/passwd" } } }),
    { path: "plugins.auth_file.password_file", message: /does not exist/ },
  );
});

Deno.test("a plugin named twice is an error", () => {
  assertConfigError(
    () =>
      resolveBrokerConfig({
        plugins: ["auth_anonymous", "amqtt.plugins.authentication.AnonymousAuthPlugin"],
      }),
    { path: "plugins[1]", message: /is listed twice \(also as "auth_anonymous"\)/ },
  );
});

Deno.test("ACL maps: list form, null entries, non-string filters and odd usernames", () => {
  const config = resolveBrokerConfig({
    plugins: {
      auth_anonymous: null,
      topic_acl: {
        "publish-acl": [{ alice: ["x"] }, { anonymous: null }],
        acl: JSON.parse('{"__proto__": ["p/#"]}'),
      },
    },
  });
  const acl = config.plugins[1];
  assert.equal(acl?.name, "topic_acl");
  if (acl?.name !== "topic_acl") throw new Error("unreachable");
  assert.deepEqual(acl.options.publishAcl, { alice: ["x"], anonymous: [] });
  assert.ok(Object.hasOwn(acl.options.acl!, "__proto__"));
  assert.deepEqual(Object.getOwnPropertyDescriptor(acl.options.acl, "__proto__")?.value, ["p/#"]);
  assert.equal(Object.getPrototypeOf(acl.options.acl), Object.prototype);

  assertConfigError(
    () =>
      parseBrokerConfigYaml(
        "plugins:\n  auth_anonymous:\n  topic_acl:\n    acl:\n      bob: [123]\n",
      ),
    { path: "plugins.topic_acl.acl.bob[0]", line: 5, message: /quote it in YAML/ },
  );
  assertConfigError(
    () => resolveBrokerConfig({ plugins: { topic_acl: { acl: { bob: "a/#" } } } }),
    { path: "plugins.topic_acl.acl.bob", message: /expected a list of topic filters/ },
  );
  assertConfigError(
    () => resolveBrokerConfig({ plugins: { topic_acl: { acl: [{ bob: [] }, { bob: [] }] } } }),
    { path: "plugins.topic_acl.acl[1].bob", message: /user "bob" is listed twice/ },
  );
  assertConfigError(
    () => resolveBrokerConfig({ plugins: { topic_acl: { acl: { bob: [""] } } } }),
    { path: "plugins.topic_acl.acl.bob[0]", message: /cannot be empty/ },
  );
});

Deno.test("plugins without an auth plugin are kept, with a warning that every client is refused", () => {
  const config = resolveBrokerConfig({ plugins: { broker_sys: {} } });
  assert.deepEqual(config.plugins, [sys(20)]);
  assert.equal(config.warnings.length, 1);
  assert.match(config.warnings[0]!, /^plugins: no authentication plugin is configured/);
  assert.match(config.warnings[0]!, /AnonymousAuthPlugin/);
});

Deno.test("plugins takes precedence over the legacy sections, with a warning", () => {
  const config = resolveBrokerConfig({
    plugins: { auth_anonymous: {} },
    auth: { "allow-anonymous": false },
    "topic-check": { enabled: true },
  });
  assert.deepEqual(config.plugins, [anonymous(true)]);
  assert.deepEqual(config.warnings, [
    "auth: ignored: the plugins section takes precedence (as in aMQTT)",
    "topic-check: ignored: the plugins section takes precedence (as in aMQTT)",
  ]);
});

Deno.test("top-level sys_interval feeds BrokerSysPlugin unless it sets its own", () => {
  const inherits = resolveBrokerConfig({
    sys_interval: 5,
    plugins: { auth_anonymous: {}, broker_sys: {} },
  });
  assert.deepEqual(inherits.plugins[1], sys(5));
  assert.deepEqual(inherits.warnings, []);
  const own = resolveBrokerConfig({
    sys_interval: 5,
    plugins: { auth_anonymous: {}, broker_sys: { sys_interval: 30 } },
  });
  assert.deepEqual(own.plugins[1], sys(30));
  assert.match(own.warnings[0]!, /^sys_interval: ignored: BrokerSysPlugin sets its own/);
  const absent = resolveBrokerConfig({ sys_interval: 5, plugins: { auth_anonymous: {} } });
  assert.deepEqual(absent.plugins, [anonymous(true)]);
  assert.match(
    absent.warnings[0]!,
    /^sys_interval: ignored: plugins does not list .*BrokerSysPlugin/,
  );
  const legacyDefault = resolveBrokerConfig({ sys_interval: 0 });
  assert.deepEqual(legacyDefault.plugins.at(-1), sys(0));
});

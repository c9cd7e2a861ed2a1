// Every error the broker configuration can report, written in YAML: each must name the key path
// and the line, read as one line of text, and never be a stack trace.
import assert from "node:assert/strict";
import { ConfigError, parseBrokerConfigYaml } from "../../src/config/mod.ts";
import { withTemp } from "./_helpers.ts";

/** One bad configuration: its YAML, where the error must point, and the reason it must give. */
interface Case {
  yaml: string;
  path: string;
  line: number | undefined;
  reason: RegExp;
}

/** `{CERT}`, `{KEY}`, `{CA}` and `{DIR}` in a case's YAML stand for files that exist. */
function cases(): Case[] {
  const listener = (body: string) => `listeners:\n  default:\n${body}`;
  const tls = "    ssl: on\n    certfile: {CERT}\n    keyfile: {KEY}\n";
  return [
    // ------------------------------------------------------------------ top level
    { yaml: "- a\n- b\n", path: "", line: 1, reason: /^Expected a map of broker settings/ },
    {
      yaml: "max_inflight: 3\nmax_inflights: 3\n",
      path: "max_inflights",
      line: 2,
      reason: /^unknown key "max_inflights"; expected one of: listeners, /,
    },
    {
      yaml: "max-inflight: 3\nmax_inflight: 4\n",
      path: "max_inflight",
      line: 2,
      reason: /^duplicate key: "max-inflight" and "max_inflight" are the same key$/,
    },
    {
      yaml: "max_inflight: many\n",
      path: "max_inflight",
      line: 1,
      reason: /^expected an integer, got the string "many"$/,
    },
    {
      yaml: "max_inflight: 2.5\n",
      path: "max_inflight",
      line: 1,
      reason: /^expected an integer, got 2\.5$/,
    },
    {
      yaml: "\n\nmax_inflight: 70000\n",
      path: "max_inflight",
      line: 3,
      reason: /^70000 is out of range: expected in the range 1-65535$/,
    },
    {
      yaml: "max_queued_messages: -1\n",
      path: "max_queued_messages",
      line: 1,
      reason: /^-1 is out of range: expected at least 0$/,
    },
    {
      yaml: "max_packet_size: 10\n",
      path: "max_packet_size",
      line: 1,
      reason: /^10 is out of range: expected in the range 64-268435460 bytes$/,
    },
    {
      yaml: "connect_timeout: 0\n",
      path: "connect_timeout",
      line: 1,
      reason: /^0 is out of range: expected a positive number of seconds$/,
    },
    {
      yaml: "drain_timeout: off\n",
      path: "drain_timeout",
      line: 1,
      reason: /^expected a number, got boolean false$/,
    },
    {
      yaml: "max_outbound_bytes: 1000\n",
      path: "max_outbound_bytes",
      line: 1,
      reason: /^1000 is out of range: expected at least 1024 bytes$/,
    },
    {
      yaml: "timeout-disconnect-delay: -2\n",
      path: "timeout-disconnect-delay",
      line: 1,
      reason: /^-2 is out of range: expected at least 0 seconds$/,
    },
    {
      yaml: "session_expiry_interval: [1]\n",
      path: "session_expiry_interval",
      line: 1,
      reason: /^expected a number, got a list$/,
    },
    {
      yaml: "sys_interval: -1\n",
      path: "sys_interval",
      line: 1,
      reason: /^-1 is out of range: expected at least 0 seconds$/,
    },
    {
      yaml: "qos1_puback_timeout: 0\n",
      path: "qos1_puback_timeout",
      line: 1,
      reason: /^0 is out of range: expected a positive number of seconds$/,
    },
    // ------------------------------------------------------------------ listeners
    {
      yaml: "listeners: [a]\n",
      path: "listeners",
      line: 1,
      reason: /^expected a map, got a list$/,
    },
    {
      yaml: "listeners:\n  tcp-1:\n    bind: :1883\n",
      path: "listeners",
      line: 1,
      reason: /^a "default" listener is required$/,
    },
    {
      yaml: "listeners:\n  default: tcp\n",
      path: "listeners.default",
      line: 2,
      reason: /^expected a map, got the string "tcp"$/,
    },
    {
      yaml: listener("    type: tcp\n    bnd: :1883\n"),
      path: "listeners.default.bnd",
      line: 4,
      reason: /^unknown key "bnd"; expected one of: type, bind, max_connections, ssl, /,
    },
    {
      yaml: listener("    type: udp\n"),
      path: "listeners.default.type",
      line: 3,
      reason: /^expected one of "tcp", "ws", "external", "http", got the string "udp"$/,
    },
    {
      yaml: listener("    bind: yes\n"),
      path: "listeners.default.bind",
      line: 3,
      reason: /^expected a bind address such as "0\.0\.0\.0:1883", got boolean true$/,
    },
    {
      yaml: listener("    bind: 0.0.0.0:70000\n"),
      path: "listeners.default.bind",
      line: 3,
      reason: /^port 70000 is out of range 0-65535$/,
    },
    {
      yaml: listener("    bind: 'host:mqtt'\n"),
      path: "listeners.default.bind",
      line: 3,
      reason: /^port "mqtt" in "host:mqtt" is not a number$/,
    },
    {
      yaml: listener("    bind: '::1:1883'\n"),
      path: "listeners.default.bind",
      line: 3,
      reason: /^"::1:1883" looks like an IPv6 address: write it in brackets, e\.g\. "\[::\]:1883"$/,
    },
    {
      yaml: listener("    bind: '[::1:1883'\n"),
      path: "listeners.default.bind",
      line: 3,
      reason: /^"\[::1:1883" has "\[" without a closing "\]"$/,
    },
    {
      yaml: listener("    bind: '[::1]1883'\n"),
      path: "listeners.default.bind",
      line: 3,
      reason: /^"\[::1\]1883" must be "\[address\]:port"$/,
    },
    {
      yaml: listener("    bind: '[10.0.0.1]:1883'\n"),
      path: "listeners.default.bind",
      line: 3,
      reason: /^"10\.0\.0\.1" in "\[10\.0\.0\.1\]:1883" is not an IPv6 address$/,
    },
    {
      yaml: listener("    bind: 'bad host:1883'\n"),
      path: "listeners.default.bind",
      line: 3,
      reason: /^"bad host" in "bad host:1883" is not a valid host$/,
    },
    {
      yaml: listener("    max-connections: lots\n"),
      path: "listeners.default.max-connections",
      line: 3,
      reason: /^expected an integer, got the string "lots"$/,
    },
    {
      yaml: listener("    ssl: maybe\n"),
      path: "listeners.default.ssl",
      line: 3,
      reason: /^expected a boolean \(true\/false, on\/off, yes\/no\), got the string "maybe"$/,
    },
    {
      yaml: listener("    ssl: on\n    certfile: ''\n    keyfile: {KEY}\n"),
      path: "listeners.default.certfile",
      line: 4,
      reason: /^expected a file path, got an empty string$/,
    },
    {
      yaml: listener("    ssl: on\n    certfile: {CERT}\n    keyfile: {DIR}/absent.key\n"),
      path: "listeners.default.keyfile",
      line: 5,
      reason: /^file "[^"]+\/absent\.key" does not exist$/,
    },
    {
      yaml: listener(tls + "    cafile: {DIR}\n"),
      path: "listeners.default.cafile",
      line: 6,
      reason: /^"[^"]+" is not a file$/,
    },
    {
      yaml: listener(tls + "    capath: {CA}\n"),
      path: "listeners.default.capath",
      line: 6,
      reason: /^"[^"]+" is not a directory$/,
    },
    {
      yaml: listener(tls + "    cadata: 5\n"),
      path: "listeners.default.cadata",
      line: 6,
      reason: /^expected PEM certificate text, got number 5$/,
    },
    {
      yaml: listener("    certfile: {CERT}\n"),
      path: "listeners.default.certfile",
      line: 3,
      reason: /^keyfile is required with certfile \(listener "default"\)$/,
    },
    {
      yaml: listener("    keyfile: {KEY}\n"),
      path: "listeners.default.keyfile",
      line: 3,
      reason: /^certfile is required with keyfile \(listener "default"\)$/,
    },
    {
      yaml: "listeners:\n  default:\n    bind: :1883\n  secure:\n    bind: :8883\n    ssl: on\n",
      path: "listeners.secure",
      line: 4,
      reason: /^ssl is on but certfile and keyfile are not set$/,
    },
    {
      yaml: listener(tls + "    client_cert_mode: always\n"),
      path: "listeners.default.client_cert_mode",
      line: 6,
      reason: /^expected one of "none", "optional", "required", got the string "always"$/,
    },
    {
      yaml: listener(tls + "    client_cert_mode: required\n"),
      path: "listeners.default.client_cert_mode",
      line: 6,
      reason: /^client_cert_mode "required" needs cafile, capath or cadata to verify client /,
    },
    {
      yaml: listener("    client_cert_mode: optional\n"),
      path: "listeners.default.client_cert_mode",
      line: 3,
      reason: /^client_cert_mode "optional" needs ssl: on$/,
    },
    {
      yaml: listener(tls + "    use_cert_cn_as_username: true\n"),
      path: "listeners.default.use_cert_cn_as_username",
      line: 6,
      reason: /^use_cert_cn_as_username needs ssl: on, cafile, capath or cadata, and /,
    },
    {
      yaml: listener(tls + "    use_cert_cn_as_username: on\n    use_cert_cn_as_username: off\n"),
      path: "",
      line: 7,
      reason: /^Cannot parse YAML: Map keys must be unique$/,
    },
    {
      yaml: listener(
        tls +
          "    cafile: {CA}\n    client_cert_mode: optional\n    use_cert_cn_as_username: yes\n",
      ),
      path: "listeners.default.client_cert_mode",
      line: 7,
      reason: /^use_cert_cn_as_username needs client_cert_mode "required", not "optional": a /,
    },
    {
      // Inherited: the template asks for the CN, the child's own mode is the culprit.
      yaml: "listeners:\n  default:\n" + tls +
        "    cafile: {CA}\n    use_cert_cn_as_username: yes\n" +
        "  lax:\n    bind: :8884\n    client_cert_mode: optional\n",
      path: "listeners.lax.client_cert_mode",
      line: 10,
      reason: /^use_cert_cn_as_username needs client_cert_mode "required".*\(listener "lax"\)$/,
    },
    {
      yaml: listener("    type: ws\n    path: mqtt\n"),
      path: "listeners.default.path",
      line: 4,
      reason: /^URL path "mqtt" must start with "\/"$/,
    },
    {
      yaml: "listeners:\n  default:\n    bind: 0.0.0.0:1883\n  local:\n    bind: 127.0.0.1:1883\n",
      path: "listeners.local",
      line: 4,
      reason:
        /^listeners "default" \(0\.0\.0\.0:1883\) and "local" \(127\.0\.0\.1:1883\) use the same port$/,
    },
    // ------------------------------------------------------------------ plugins map
    {
      yaml: "plugins: 5\n",
      path: "plugins",
      line: 1,
      reason: /^expected a map of plugin class names to options \(or a list\), got number 5$/,
    },
    {
      yaml: "plugins:\n  - [a]\n",
      path: "plugins[0]",
      line: 2,
      reason: /^expected a plugin class name or a map of class name to options, got a list$/,
    },
    {
      yaml: "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n  my.Plugin:\n",
      path: 'plugins["my.Plugin"]',
      line: 3,
      reason: /^unknown plugin class "my\.Plugin"; known plugins: amqtt\.plugins\./,
    },
    {
      yaml: "plugins:\n  auth_anonymous:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n",
      path: 'plugins["amqtt.plugins.authentication.AnonymousAuthPlugin"]',
      line: 3,
      reason: /^plugin "amqtt\.plugins\.authentication\.AnonymousAuthPlugin" is listed twice /,
    },
    {
      yaml: "plugins:\n  auth_anonymous:\n    allow_anonymous: sometimes\n",
      path: "plugins.auth_anonymous.allow_anonymous",
      line: 3,
      reason: /^expected a boolean/,
    },
    {
      yaml: "plugins:\n  auth_anonymous:\n    allow_anonymus: true\n",
      path: "plugins.auth_anonymous.allow_anonymus",
      line: 3,
      reason: /^unknown key "allow_anonymus"; expected one of: allow_anonymous$/,
    },
    {
      yaml: "plugins:\n  amqtt.plugins.topic_checking.TopicTabooPlugin:\n    strict: true\n",
      path: 'plugins["amqtt.plugins.topic_checking.TopicTabooPlugin"].strict',
      line: 3,
      reason: /^unknown key "strict"; no options are accepted here$/,
    },
    {
      yaml: "plugins:\n  auth_file: {}\n",
      path: "plugins.auth_file",
      line: 2,
      reason: /^amqtt\.plugins\.authentication\.FileAuthPlugin needs password_file$/,
    },
    {
      yaml: "plugins:\n  auth_file:\n    password_file: {DIR}/passwd\n",
      path: "plugins.auth_file.password_file",
      line: 3,
      reason: /^file "[^"]+\/passwd" does not exist$/,
    },
    {
      yaml: "plugins:\n  broker_sys:\n    sys_interval: soon\n",
      path: "plugins.broker_sys.sys_interval",
      line: 3,
      reason: /^expected a number, got the string "soon"$/,
    },
    {
      yaml: "plugins:\n  topic_acl:\n    publish_acl: [alice]\n",
      path: "plugins.topic_acl.publish_acl[0]",
      line: 3,
      reason: /^expected a map of username to topic list, got the string "alice"$/,
    },
    {
      yaml: "plugins:\n  topic_acl:\n    acl:\n      - alice: [a]\n      - alice: [b]\n",
      path: "plugins.topic_acl.acl[1].alice",
      line: 5,
      reason: /^user "alice" is listed twice$/,
    },
    {
      yaml: "plugins:\n  topic_acl:\n    subscribe_acl:\n      alice: a/#\n",
      path: "plugins.topic_acl.subscribe_acl.alice",
      line: 4,
      reason: /^expected a list of topic filters, got the string "a\/#"$/,
    },
    {
      yaml: "plugins:\n  topic_acl:\n    receive_acl:\n      alice:\n        - a/#\n        - 42\n",
      path: "plugins.topic_acl.receive_acl.alice[1]",
      line: 6,
      reason: /^expected a topic filter string, got number 42 \(quote it in YAML\)$/,
    },
    {
      yaml: "plugins:\n  topic_acl:\n    publish_acl:\n      alice: ['']\n",
      path: "plugins.topic_acl.publish_acl.alice[0]",
      line: 4,
      reason: /^a topic filter cannot be empty$/,
    },
    // ------------------------------------------------------------------ legacy sections
    {
      yaml: "auth:\n  plugins: auth_file\n",
      path: "auth.plugins",
      line: 2,
      reason: /^expected a list of plugin names, got the string "auth_file"$/,
    },
    {
      yaml: "auth:\n  plugins: [auth_anonymous, auth_ldap]\n",
      path: "auth.plugins[1]",
      line: 2,
      reason: /^unknown authentication plugin "auth_ldap"; expected one of: auth_anonymous, /,
    },
    {
      yaml: "auth:\n  plugins:\n    - auth_anonymous\n    - auth_anonymous\n",
      path: "auth.plugins[1]",
      line: 4,
      reason: /^plugin "auth_anonymous" is listed twice$/,
    },
    {
      yaml: "auth:\n  plugins:\n    - ''\n",
      path: "auth.plugins[0]",
      line: 3,
      reason: /^expected a plugin name, got an empty string$/,
    },
    {
      yaml: "auth:\n  plugins:\n    - auth_file\n",
      path: "auth.plugins[0]",
      line: 3,
      reason: /^auth_file needs auth\.password_file$/,
    },
    {
      yaml: "auth:\n  allow-anonymous: perhaps\n",
      path: "auth.allow-anonymous",
      line: 2,
      reason: /^expected a boolean/,
    },
    {
      yaml: "auth:\n  password-file: {DIR}/none\n",
      path: "auth.password-file",
      line: 2,
      reason: /^file "[^"]+\/none" does not exist$/,
    },
    {
      yaml: "auth:\n  pasword-file: x\n",
      path: "auth.pasword-file",
      line: 2,
      reason: /^unknown key "pasword-file"; expected one of: plugins, allow_anonymous, /,
    },
    {
      yaml: "topic-check:\n  enabled: true\n  plugins: [topic_taboo, topic_regex]\n",
      path: "topic-check.plugins[1]",
      line: 3,
      reason: /^unknown topic plugin "topic_regex"; expected one of: topic_taboo, topic_acl$/,
    },
    {
      yaml: "topic-check:\n  enabled: 1\n",
      path: "topic-check.enabled",
      line: 2,
      reason: /^expected a boolean/,
    },
    {
      yaml: "topic-check:\n  enabled: true\n  acl:\n    anonymous: '#'\n",
      path: "topic-check.acl.anonymous",
      line: 4,
      reason: /^expected a list of topic filters/,
    },
    // ------------------------------------------------------------------ YAML itself
    {
      yaml: "listeners:\n  default: {type: tcp\nplugins: {}\n",
      path: "",
      line: 3,
      reason: /^Cannot parse YAML: /,
    },
    {
      yaml: "listeners:\n\tdefault: {}\n",
      path: "",
      line: 2,
      reason: /^Cannot parse YAML: /,
    },
  ];
}

Deno.test("parseBrokerConfigYaml: every error names its key path and YAML line, in one line of text", async () => {
  await withTemp(async (temp) => {
    const files: Record<string, string> = {
      CERT: await temp.file("cert"),
      KEY: await temp.file("key"),
      CA: await temp.file("ca"),
      DIR: await temp.dir(),
    };
    for (const c of cases()) {
      const yaml = c.yaml.replace(/\{(CERT|KEY|CA|DIR)\}/g, (_, name: string) => files[name]!);
      let caught: unknown;
      try {
        parseBrokerConfigYaml(yaml, "b.yaml");
      } catch (error) {
        caught = error;
      }
      const label = JSON.stringify(c.yaml);
      assert.ok(caught instanceof ConfigError, `${label}: expected a ConfigError, got ${caught}`);
      assert.equal(caught.path, c.path, `${label}: ${caught.message}`);
      assert.equal(caught.line, c.line, `${label}: ${caught.message}`);
      assert.match(caught.reason, c.reason, label);
      const where = c.path === "" ? "" : `${c.path}: `;
      assert.equal(caught.message, `${where}${caught.reason} (b.yaml line ${c.line})`, label);
      assert.doesNotMatch(caught.message, /\n/, `${label}: one line, no stack trace`);
      // Sentence-style messages: no trailing period [STYLE].
      assert.doesNotMatch(caught.reason, /\.$/, label);
    }
  });
});

Deno.test("parseBrokerConfigYaml: an alias bomb is a ConfigError, not a hang or a crash", () => {
  const levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
  for (let i = 1; i < 12; i++) {
    const prev = String.fromCharCode(96 + i);
    const name = String.fromCharCode(97 + i);
    levels.push(`${name}: &${name} [${Array(10).fill(`*${prev}`).join(", ")}]`);
  }
  // 10^12 nodes if expanded: a parser that expanded them would not come back to throw.
  assert.throws(
    () => parseBrokerConfigYaml(levels.join("\n") + "\n"),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.match(error.message, /^Cannot parse YAML: /);
      return true;
    },
  );
});

Deno.test("parseBrokerConfigYaml: errors inside an aliased block point at the alias's line", () => {
  // `other` reuses default's block through an alias; its bad bind is reported where it is used.
  const yaml = "listeners:\n  default: &base\n    bind: 127.0.0.1:1883\n" +
    "  other: *base\n";
  let caught: unknown;
  try {
    parseBrokerConfigYaml(yaml);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ConfigError);
  assert.equal(caught.path, "listeners.other");
  assert.equal(caught.line, 4);
  assert.match(caught.reason, /use the same port/);
});

import assert from "node:assert/strict";
import { builtinPluginId, createBuiltinPlugin } from "../../src/plugins/builtin.ts";
import { AnonymousAuthPlugin } from "../../src/plugins/anonymous_auth.ts";
import { FileAuthPlugin } from "../../src/plugins/file_auth.ts";
import { TopicTabooPlugin } from "../../src/plugins/topic_taboo.ts";
import { TopicAccessControlListPlugin } from "../../src/plugins/topic_acl.ts";
import { EventLoggerPlugin } from "../../src/plugins/event_logger.ts";
import { PacketLoggerPlugin } from "../../src/plugins/packet_logger.ts";
import type { ClientInfo } from "../../src/plugins/types.ts";

const anon: ClientInfo = {
  clientId: "c1",
  remoteAddress: "127.0.0.1:5555",
  transport: "tcp",
  protocolVersion: 4,
  anonymous: true,
};

Deno.test("createBuiltinPlugin creates each built-in by short id", () => {
  assert.ok(createBuiltinPlugin("auth_anonymous", {}) instanceof AnonymousAuthPlugin);
  assert.ok(createBuiltinPlugin("auth_file", {}) instanceof FileAuthPlugin);
  assert.ok(createBuiltinPlugin("topic_taboo", {}) instanceof TopicTabooPlugin);
  assert.ok(createBuiltinPlugin("topic_acl", {}) instanceof TopicAccessControlListPlugin);
  assert.ok(createBuiltinPlugin("event_logger", {}) instanceof EventLoggerPlugin);
  assert.ok(createBuiltinPlugin("packet_logger", {}) instanceof PacketLoggerPlugin);
});

Deno.test("createBuiltinPlugin accepts aMQTT class paths and old entry-point names", () => {
  const cases: [string, string][] = [
    ["amqtt.plugins.authentication.AnonymousAuthPlugin", "auth_anonymous"],
    ["amqtt.plugins.authentication.FileAuthPlugin", "auth_file"],
    ["amqtt.plugins.topic_checking.TopicTabooPlugin", "topic_taboo"],
    ["amqtt.plugins.topic_checking.TopicAccessControlListPlugin", "topic_acl"],
    ["amqtt.plugins.logging_amqtt.EventLoggerPlugin", "event_logger"],
    ["amqtt.plugins.logging_amqtt.PacketLoggerPlugin", "packet_logger"],
    ["event_logger_plugin", "event_logger"],
    ["packet_logger_plugin", "packet_logger"],
  ];
  for (const [name, id] of cases) {
    assert.equal(builtinPluginId(name), id);
    assert.equal(createBuiltinPlugin(name, null).name, id);
  }
  assert.equal(builtinPluginId("amqtt.plugins.sys.broker.BrokerSysPlugin"), "broker_sys");
  assert.equal(builtinPluginId("toString"), undefined);
});

Deno.test("createBuiltinPlugin accepts camelCase, snake_case and kebab-case option keys", () => {
  for (const key of ["allowAnonymous", "allow_anonymous", "allow-anonymous"]) {
    const plugin = createBuiltinPlugin("auth_anonymous", { [key]: false });
    assert.equal(plugin.authenticate!(anon), false, key);
  }
  for (const key of ["passwordFile", "password_file", "password-file"]) {
    const plugin = createBuiltinPlugin("auth_file", { [key]: "/etc/amqtt/passwd" });
    assert.equal((plugin as FileAuthPlugin).passwordFile, "/etc/amqtt/passwd", key);
  }
  const acl = createBuiltinPlugin("topic_acl", {
    "publish-acl": { anonymous: ["a/#"] },
    subscribe_acl: { "some-user_name": ["b"] },
    receiveAcl: { anonymous: ["#"] },
    acl: { anonymous: ["ignored"] },
  });
  assert.equal(acl.authorizePublish!(anon, "a/x", 0, false), true);
  assert.equal(acl.authorizePublish!(anon, "b", 0, false), false);
  // Usernames inside the maps are not rewritten.
  assert.equal(
    acl.authorizeSubscribe!({ ...anon, username: "some-user_name", anonymous: false }, "b", 0),
    true,
  );
  assert.equal(acl.authorizeReceive!(anon, "x"), true);
});

Deno.test("createBuiltinPlugin rejects unknown names and options, and wrong option types", () => {
  assert.throws(
    () => createBuiltinPlugin("nope", {}),
    /Cannot create plugin "nope": not a built-in/,
  );
  assert.throws(
    () => createBuiltinPlugin("auth_file", { password_fil: "x" }),
    /unknown option "password_fil" \(known: passwordFile\)/,
  );
  assert.throws(
    () => createBuiltinPlugin("topic_taboo", { extra: 1 }),
    /unknown option "extra" \(it takes none\)/,
  );
  assert.throws(
    () => createBuiltinPlugin("auth_anonymous", { allow_anonymous: "yes" }),
    /option "allowAnonymous" must be a boolean/,
  );
  assert.throws(
    () => createBuiltinPlugin("auth_anonymous", { allow_anonymous: true, allowAnonymous: true }),
    /given twice/,
  );
  assert.throws(
    () => createBuiltinPlugin("auth_file", ["x"] as unknown as Record<string, unknown>),
    /options must be a mapping/,
  );
});

Deno.test("createBuiltinPlugin leaves broker_sys to the broker with a clear error", () => {
  assert.throws(
    () => createBuiltinPlugin("broker_sys", { sys_interval: 20 }),
    /Cannot create plugin "broker_sys" here: the \$SYS plugin is created by the broker/,
  );
});

Deno.test("EventLoggerPlugin builds no line for a level its logger does not write", () => {
  const lines: string[] = [];
  let built = 0;
  const logger = {
    debug: (m: string) => lines.push(m),
    info: (m: string) => lines.push(m),
    warning() {},
    error() {},
    enabled: (level: string) => level !== "info",
  };
  const plugin = new EventLoggerPlugin();
  plugin.init({ logger, publish: () => Promise.resolve() });
  const client = {
    clientId: "c1",
    get remoteAddress() {
      built++; // read only while the line is built
      return "127.0.0.1:1";
    },
    transport: "tcp",
    protocolVersion: 4,
  } as unknown as Parameters<
    NonNullable<EventLoggerPlugin["onBrokerClientConnected"]>
  >[0]["client"];
  plugin.onBrokerClientConnected!({ clientId: "c1", client });
  plugin.onBrokerClientDisconnected!({ clientId: "c1", client });
  assert.equal(built, 0);
  plugin.onBrokerClientSubscribed({ clientId: "c1", topic: "a", qos: 0 });
  assert.deepEqual(lines, ["Event brokerClientSubscribed: client c1 subscribed to a (QoS 0)"]);
});

// Configuration of http listeners: their keys, defaults and errors.
import assert from "node:assert/strict";
import { ConfigError, parseBrokerConfigYaml, resolveBrokerConfig } from "../../src/config/mod.ts";

Deno.test("resolveBrokerConfig: an http listener takes admins and password_file; port 8080 or 8443", async () => {
  const file = await Deno.makeTempFile();
  try {
    const config = resolveBrokerConfig({
      listeners: {
        default: { bind: "127.0.0.1:1883" },
        admin: { type: "http", bind: "127.0.0.1", admins: ["alice", "bob"], password_file: file },
        plain: { type: "http", bind: "127.0.0.2" },
      },
    });
    const admin = config.listeners.find((l) => l.name === "admin")!;
    assert.equal(admin.type, "http");
    assert.equal(admin.port, 8080);
    assert.deepEqual(admin.admins, ["alice", "bob"]);
    assert.equal(admin.passwordFile, file);
    const plain = config.listeners.find((l) => l.name === "plain")!;
    assert.deepEqual(plain.admins, [], "no admins: nothing but /healthz is served");
    const tcp = config.listeners.find((l) => l.name === "default")!;
    assert.equal("admins" in tcp, false);
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("parseBrokerConfigYaml: admins errors name the key and line", () => {
  const cases: [string, RegExp][] = [
    [
      "listeners:\n  default:\n    type: http\n    admins: alice\n",
      /^listeners\.default\.admins: expected a list of user names, got the string "alice"/,
    ],
    [
      "listeners:\n  default:\n    type: http\n    admins: [alice, 3]\n",
      /^listeners\.default\.admins\[1\]: expected a user name, got number 3/,
    ],
    [
      "listeners:\n  default:\n    bind: :1883\n  mqtt:\n    admins: [alice]\n",
      /^listeners\.mqtt\.admins: admins applies to http listeners only/,
    ],
    [
      "listeners:\n  default:\n    type: http\n    password_file: /no/such/file\n",
      /^listeners\.default\.password_file: file "\/no\/such\/file" does not exist/,
    ],
  ];
  for (const [yaml, message] of cases) {
    assert.throws(() => parseBrokerConfigYaml(yaml, "b.yaml"), (e) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, message, yaml);
      assert.match(e.message, /\(b\.yaml line \d+\)$/);
      return true;
    });
  }
});

Deno.test("resolveBrokerConfig: https listener defaults to port 8443 and needs a certificate", () => {
  assert.throws(
    () => resolveBrokerConfig({ listeners: { default: { type: "http", ssl: true } } }),
    /ssl is on but certfile and keyfile are not set/,
  );
});

// The persistence settings: the plain `persistence` section and aMQTT's SessionDBPlugin keys,
// resolved into one PersistenceConfig with defaults, and their errors with key path and line.
import assert from "node:assert/strict";
import { parseBrokerConfigYaml, resolveBrokerConfig } from "../../src/config/mod.ts";
import { assertConfigError, withTemp } from "./_helpers.ts";

const PLUGIN = "amqtt.contrib.persistence.SessionDBPlugin";
const PLUGIN_PATH = `plugins["${PLUGIN}"]`;

Deno.test("persistence is off by default, with documented defaults", () => {
  const config = resolveBrokerConfig(undefined);
  assert.deepEqual(config.persistence, {
    enabled: false,
    path: "amqtt.db",
    sync: "full",
    clearOnShutdown: false,
  });
  assert.deepEqual(config.warnings, []);
});

Deno.test("persistence section: path, sync and clear_on_shutdown; on when given", async () => {
  await withTemp(async (temp) => {
    const dir = await temp.dir();
    const config = parseBrokerConfigYaml(
      `persistence:\n  path: ${dir}/state.db\n  sync: normal\n  clear-on-shutdown: yes\n`,
      "broker.yaml",
    );
    assert.deepEqual(config.persistence, {
      enabled: true,
      path: `${dir}/state.db`,
      sync: "normal",
      clearOnShutdown: true,
    });
    // In effect: no warning.
    assert.deepEqual(config.warnings, []);
  });
});

Deno.test("persistence: on/off as a value, enabled: off, and hbmqtt's file key", async () => {
  await withTemp(async (temp) => {
    const dir = await temp.dir();
    assert.deepEqual(parseBrokerConfigYaml("persistence: on\n").persistence, {
      enabled: true,
      path: "amqtt.db",
      sync: "full",
      clearOnShutdown: false,
    });
    assert.equal(parseBrokerConfigYaml("persistence: off\n").persistence.enabled, false);
    // Off: the path is not checked, and nothing is warned about.
    const off = parseBrokerConfigYaml("persistence:\n  enabled: off\n  path: /no/such/dir/x.db\n");
    assert.deepEqual([off.persistence.enabled, off.warnings], [false, []]);
    const file = parseBrokerConfigYaml(`persistence:\n  file: ${dir}/old.db\n`);
    assert.equal(file.persistence.path, `${dir}/old.db`);
  });
});

Deno.test("persistence from code takes camelCase keys", async () => {
  await withTemp(async (temp) => {
    const dir = await temp.dir();
    const config = resolveBrokerConfig({
      persistence: { path: `${dir}/s.db`, sync: "normal", clearOnShutdown: true },
    });
    assert.deepEqual(config.persistence, {
      enabled: true,
      path: `${dir}/s.db`,
      sync: "normal",
      clearOnShutdown: true,
    });
  });
});

Deno.test("persistence section errors name the key and line", async () => {
  await withTemp(async (temp) => {
    const dir = await temp.dir();
    assertConfigError(() => parseBrokerConfigYaml("persistence:\n  sync: fast\n"), {
      path: "persistence.sync",
      line: 2,
      message: /expected one of "full", "normal", got the string "fast"/,
    });
    assertConfigError(() => parseBrokerConfigYaml("persistence:\n  paht: x.db\n"), {
      path: "persistence.paht",
      line: 2,
      message: /unknown key "paht"; expected one of: enabled, path, file, sync, clear_on_shutdown/,
    });
    assertConfigError(() => parseBrokerConfigYaml("persistence:\n  path: /no/such/dir/x.db\n"), {
      path: "persistence.path",
      line: 2,
      message: /the directory "\/no\/such\/dir" of the store file does not exist/,
    });
    assertConfigError(() => parseBrokerConfigYaml(`persistence:\n  path: ${dir}\n`), {
      path: "persistence.path",
      line: 2,
      message: /is a directory/,
    });
    assertConfigError(
      () => parseBrokerConfigYaml(`persistence:\n  path: ${dir}/a.db\n  file: ${dir}/b.db\n`),
      { path: "persistence.file", line: 3, message: /not both/ },
    );
    assertConfigError(() => parseBrokerConfigYaml("persistence: sometimes\n"), {
      path: "persistence",
      line: 1,
      message: /expected a boolean/,
    });
    assertConfigError(() => parseBrokerConfigYaml("persistence:\n  enabled: 2\n"), {
      path: "persistence.enabled",
      line: 2,
      message: /expected a boolean/,
    });
  });
});

Deno.test("SessionDBPlugin: connection URL mapped to a path, clear_on_shutdown true by default", async () => {
  await withTemp(async (temp) => {
    const dir = await temp.dir();
    const config = parseBrokerConfigYaml(
      `plugins:
  amqtt.plugins.authentication.AnonymousAuthPlugin: {allow_anonymous: true}
  ${PLUGIN}:
    connection: sqlite+aiosqlite:///${dir}/amqtt.db
`,
    );
    // Four slashes make an absolute path (SQLAlchemy's rule): the temp dir starts with "/".
    assert.deepEqual(config.persistence, {
      enabled: true,
      path: `${dir}/amqtt.db`,
      sync: "full",
      clearOnShutdown: true,
    });
    assert.deepEqual(config.plugins.map((p) => p.name), ["auth_anonymous"]);
    assert.deepEqual(config.warnings, []);

    const relative = parseBrokerConfigYaml(
      `plugins:\n  ${PLUGIN}:\n    connection: sqlite:///amqtt.db\n    clear_on_shutdown: false\n`,
    );
    assert.deepEqual(
      [relative.persistence.path, relative.persistence.clearOnShutdown],
      ["amqtt.db", false],
    );
  });
});

Deno.test("SessionDBPlugin without options, in the list form, and under its 0.11 name with file", async () => {
  await withTemp(async (temp) => {
    const dir = await temp.dir();
    const bare = parseBrokerConfigYaml(`plugins:\n  ${PLUGIN}:\n`);
    assert.deepEqual(bare.persistence, {
      enabled: true,
      path: "amqtt.db",
      sync: "full",
      clearOnShutdown: true,
    });
    // No auth plugin listed: refused connections are warned about, as for any plugins section.
    assert.ok(bare.warnings.some((w) => /no authentication plugin/.test(w)));
    const list = parseBrokerConfigYaml(`plugins:\n  - ${PLUGIN}\n  - auth_anonymous\n`);
    assert.deepEqual(
      [list.persistence.enabled, list.plugins.map((p) => p.name)],
      [true, ["auth_anonymous"]],
    );
    const old = parseBrokerConfigYaml(
      `plugins:\n  amqtt.plugins.persistence.SessionDBPlugin:\n    file: ${dir}/old.db\n`,
    );
    assert.equal(old.persistence.path, `${dir}/old.db`);
  });
});

Deno.test("SessionDBPlugin with an in-memory database keeps state in memory, and says so", () => {
  for (const url of ["sqlite+aiosqlite://", "sqlite:///:memory:"]) {
    const config = parseBrokerConfigYaml(`plugins:\n  ${PLUGIN}:\n    connection: "${url}"\n`);
    assert.equal(config.persistence.enabled, false, url);
    assert.ok(
      config.warnings.some((w) =>
        /connection: the connection names an in-memory database.*\(line 3\)/.test(w)
      ),
      String(config.warnings),
    );
  }
});

Deno.test("SessionDBPlugin errors name the key and line", async () => {
  await withTemp(async (temp) => {
    const dir = await temp.dir();
    const plugin = (body: string) => `plugins:\n  ${PLUGIN}:\n${body}`;
    assertConfigError(
      () => parseBrokerConfigYaml(plugin("    connection: postgresql+asyncpg://u@h/db\n")),
      {
        path: `${PLUGIN_PATH}.connection`,
        line: 3,
        message:
          /only SQLite connection URLs are supported \(sqlite:\/\/\/path\), got a postgresql URL/,
      },
    );
    assertConfigError(
      () => parseBrokerConfigYaml(plugin("    connection: sqlite:///x.db?mode=ro\n")),
      { path: `${PLUGIN_PATH}.connection`, line: 3, message: /parameters .* not supported/ },
    );
    assertConfigError(() => parseBrokerConfigYaml(plugin("    connection: amqtt.db\n")), {
      path: `${PLUGIN_PATH}.connection`,
      line: 3,
      message: /expected a connection URL such as sqlite\+aiosqlite:\/\/\/amqtt\.db/,
    });
    assertConfigError(
      () => parseBrokerConfigYaml(plugin("    connection: sqlite:///no/such/dir/x.db\n")),
      { path: `${PLUGIN_PATH}.connection`, line: 3, message: /"no\/such\/dir" .* does not exist/ },
    );
    assertConfigError(() => parseBrokerConfigYaml(plugin("    clear_on_shutdown: maybe\n")), {
      path: `${PLUGIN_PATH}.clear_on_shutdown`,
      line: 3,
      message: /expected a boolean/,
    });
    assertConfigError(() => parseBrokerConfigYaml(plugin("    url: sqlite:///x.db\n")), {
      path: `${PLUGIN_PATH}.url`,
      line: 3,
      message: /unknown key "url"; expected one of: connection, file, clear_on_shutdown/,
    });
    assertConfigError(
      () =>
        parseBrokerConfigYaml(
          `persistence:\n  path: ${dir}/a.db\n` + plugin("    connection: sqlite:///b.db\n"),
        ),
      { path: PLUGIN_PATH, line: 4, message: /persistence is configured twice/ },
    );
    assertConfigError(
      () =>
        parseBrokerConfigYaml(
          plugin("") + "  amqtt.plugins.persistence.SessionDBPlugin:\n",
        ),
      {
        path: `plugins["amqtt.plugins.persistence.SessionDBPlugin"]`,
        line: 3,
        message: /listed twice/,
      },
    );
  });
});

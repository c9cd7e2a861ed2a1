/**
 * The `amqtt` command for operators: `--check`, `--log-format json` with refused logins logged at
 * WARNING, and the http listener behind the CLI.
 */

import assert from "node:assert/strict";
import { MQTTClient } from "../../client.ts";
import { hashPassword } from "../../src/plugins/password_hash.ts";
import { certFiles } from "../_helpers/certs.ts";
import { runCli, spawnCli, tempDir } from "./_helpers.ts";

Deno.test("amqtt --check: exit 0 and one line for a good file", async () => {
  await using dir = await tempDir();
  await using certs = await certFiles();
  const passwd = `${dir.path}/passwd`;
  await Deno.writeTextFile(passwd, `alice:${await hashPassword("pw", { rounds: 1000 })}\n`);
  const good = `${dir.path}/good.yaml`;
  await Deno.writeTextFile(
    good,
    `listeners:\n  default:\n    bind: 127.0.0.1:0\n  admin:\n    type: http\n` +
      `    bind: 127.0.0.1:0\n    admins: [alice]\n    ssl: on\n` +
      `    certfile: ${certs.serverCertFile}\n    keyfile: ${certs.serverKeyFile}\n` +
      `auth:\n  plugins: [auth_file]\n  password-file: ${passwd}\n`,
  );
  const result = await runCli("amqtt.ts", ["--check", "-c", good]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.text, `Configuration ${good} is valid\n`);
  assert.equal(result.stderr, "");
});

Deno.test("amqtt --check: the same one-line errors as start-up, exit 1", async () => {
  await using dir = await tempDir();
  const bad = `${dir.path}/bad.yaml`;
  await Deno.writeTextFile(bad, "listeners:\n  default:\n    bind: 127.0.0.1:70000\n");
  const notHttp = `${dir.path}/admins.yaml`;
  await Deno.writeTextFile(notHttp, "listeners:\n  default:\n    admins: [alice]\n");
  const cert = `${dir.path}/cert.pem`;
  await Deno.writeTextFile(cert, "not a certificate\n");
  const tls = `${dir.path}/tls.yaml`;
  await Deno.writeTextFile(
    tls,
    `listeners:\n  default:\n    bind: 127.0.0.1:0\n    ssl: on\n    certfile: ${cert}\n` +
      `    keyfile: ${cert}\n`,
  );
  const [range, admins, badTls, started] = await Promise.all([
    runCli("amqtt.ts", ["--check", "-c", bad]),
    runCli("amqtt.ts", ["--check", "-c", notHttp]),
    runCli("amqtt.ts", ["--check", "-c", tls]),
    runCli("amqtt.ts", ["-c", bad]),
  ]);
  assert.equal(range.code, 1);
  assert.equal(
    range.stderr,
    `amqtt: listeners.default.bind: port 70000 is out of range 0-65535 (${bad} line 3)\n`,
  );
  assert.equal(range.stderr, started.stderr, "as start-up says it");
  assert.equal(admins.code, 1);
  assert.equal(
    admins.stderr,
    `amqtt: listeners.default.admins: admins applies to http listeners only (${notHttp} line 3)\n`,
  );
  assert.equal(badTls.code, 1);
  assert.match(
    badTls.stderr,
    /^amqtt: Cannot start the broker: listener "default": certfile ".*" holds no PEM certificate\n$/,
  );
  assert.equal(badTls.stderr.split("\n").length, 2, "one line");

  await using certs = await certFiles();
  const mismatched = `${dir.path}/mismatched.yaml`;
  await Deno.writeTextFile(
    mismatched,
    `listeners:\n  default:\n    bind: 127.0.0.1:0\n    ssl: on\n` +
      `    certfile: ${certs.serverCertFile}\n    keyfile: ${certs.clientKeyFile}\n`,
  );
  const wrongKey = await runCli("amqtt.ts", ["--check", "-c", mismatched]);
  assert.equal(wrongKey.code, 1);
  assert.equal(
    wrongKey.stderr,
    `amqtt: Cannot start the broker: listener "default": keyfile "${certs.clientKeyFile}" is ` +
      `not the key of certfile "${certs.serverCertFile}"\n`,
  );
});

Deno.test("amqtt --log-format json: JSON lines; a refused login at WARNING without the password", async () => {
  await using dir = await tempDir();
  const passwd = `${dir.path}/passwd`;
  await Deno.writeTextFile(passwd, `alice:${await hashPassword("pw", { rounds: 1000 })}\n`);
  const config = `${dir.path}/broker.yaml`;
  await Deno.writeTextFile(
    config,
    `listeners:\n  default:\n    bind: 127.0.0.1:0\n` +
      `auth:\n  plugins: [auth_file]\n  password-file: ${passwd}\n`,
  );
  await using broker = spawnCli("amqtt.ts", ["-c", config, "--log-format", "json"]);
  const [, port] = await broker.waitForStderr(/127\.0\.0\.1:(\d+)/);
  await broker.waitForStderr(/started/);
  await using client = new MQTTClient({ clientId: "intruder", config: { auto_reconnect: false } });
  await assert.rejects(client.connect(`mqtt://alice:Secret-Xyzzy@127.0.0.1:${port}`));
  await broker.waitForStderr(/connection_refused/);
  broker.kill("SIGTERM");
  const result = await broker.done;
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stderr.trimEnd().split("\n").map((l) => JSON.parse(l));
  for (const line of lines) {
    assert.match(line.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$/);
    assert.ok(["DEBUG", "INFO", "WARNING", "ERROR"].includes(line.level));
    assert.equal(typeof line.event, "string");
    assert.equal(typeof line.message, "string");
  }
  const refused = lines.find((l) => l.event === "connection_refused");
  assert.equal(refused.level, "WARNING");
  assert.equal(refused.client_id, "intruder");
  assert.equal(refused.listener, "default");
  assert.match(refused.remote_address, /^127\.0\.0\.1:\d+$/);
  assert.equal(refused.reason, "authentication refused");
  assert.doesNotMatch(result.stderr, /Secret-Xyzzy/);
});

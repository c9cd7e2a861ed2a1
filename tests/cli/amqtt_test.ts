/**
 * The `amqtt` broker command as a subprocess: configuration file, default configuration, signals,
 * and its one-line failures.
 */

import assert from "node:assert/strict";
import { MQTTClient } from "../../client.ts";
import { runCli, spawnCli, tempDir } from "./_helpers.ts";

const LOG_LINE = /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] :: (DEBUG|INFO|WARNING|ERROR) - /;

Deno.test("amqtt -c FILE serves clients, logs aMQTT-style lines, reloads on SIGHUP and exits 0 on SIGTERM", async () => {
  await using dir = await tempDir();
  const config = `${dir.path}/broker.yaml`;
  await Deno.writeTextFile(config, "listeners:\n  default:\n    bind: 127.0.0.1:0\n");
  await using broker = spawnCli("amqtt.ts", ["-c", config, "-d"]);
  const [, port] = await broker.waitForStderr(/127\.0\.0\.1:(\d+)/);
  await broker.waitForStderr(/started/);

  await using client = new MQTTClient();
  await client.connect(`mqtt://127.0.0.1:${port}`);
  await client.subscribe([{ topic: "t", qos: 1 }]);
  await client.publish("t", "through the CLI broker", { qos: 1 });
  const m = await client.deliverMessage({ timeout: 5000 });
  assert.equal(new TextDecoder().decode(m.payload), "through the CLI broker");
  await client.disconnect();

  broker.kill("SIGHUP");
  await broker.waitForStderr(/SIGHUP received/);
  broker.kill("SIGTERM");
  const result = await broker.done;
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stderr.trimEnd().split("\n");
  for (const line of lines) assert.match(line, LOG_LINE);
  assert.ok(lines.some((l) => l.includes(":: DEBUG - ")), "-d logs DEBUG lines");
  // -d turns on the packet logger plugin of the default plugin list, as in aMQTT.
  assert.match(result.stderr, /:: DEBUG - [^\n]* <-in-- CONNECT \{/);
  assert.match(result.stderr, /:: DEBUG - [^\n]* -out-> CONNACK \{/);
  assert.match(result.stderr, /SIGTERM received: shutting down/);
  assert.match(lines[lines.length - 1], /Broker stopped$/);
});

Deno.test("amqtt without -c starts the embedded default on 0.0.0.0:1883, or fails with one line when 1883 is taken", async () => {
  await using broker = spawnCli("amqtt.ts", []);
  const outcome = await Promise.race([
    // waitForStderr rejects when the process ends without the line: that is the "taken" case.
    broker.waitForStderr(/bound to 0\.0\.0\.0:1883/).then(() => "started", () => "ended"),
    broker.done.then(() => "ended"),
  ]);
  if (outcome === "started") {
    await broker.waitForStderr(/started/);
    // The listener is ours (it bound 0.0.0.0:1883): a client on loopback must get through it.
    await using client = new MQTTClient({ config: { auto_reconnect: false } });
    await client.connect("mqtt://127.0.0.1:1883");
    await client.subscribe([{ topic: "default/config", qos: 1 }]);
    await client.publish("default/config", "served on 1883", { qos: 1 });
    const m = await client.deliverMessage({ timeout: 5000 });
    assert.equal(new TextDecoder().decode(m.payload), "served on 1883");
    await client.disconnect();
    assert.doesNotMatch(broker.stderr(), /DEBUG/, "INFO is the default level");
    broker.kill("SIGINT");
    const result = await broker.done;
    assert.equal(result.code, 0, result.stderr);
    for (const line of result.stderr.trimEnd().split("\n")) assert.match(line, LOG_LINE);
    assert.match(result.stderr, /SIGINT received: shutting down\n[\s\S]*Broker stopped\n$/);
  } else {
    const result = await broker.done;
    assert.equal(result.code, 1);
    const errors = result.stderr.split("\n").filter((l) => l.startsWith("amqtt:"));
    assert.deepEqual(errors, [
      "amqtt: Cannot start the broker: address already in use (default 0.0.0.0:1883)",
    ]);
  }
});

Deno.test("amqtt --version, --help and a wrong flag", async () => {
  const [version, help, wrong] = await Promise.all([
    runCli("amqtt.ts", ["--version"]),
    runCli("amqtt.ts", ["--help"]),
    runCli("amqtt.ts", ["--port", "1"]),
  ]);
  assert.equal(version.code, 0);
  assert.match(version.text, /^\d+\.\d+\.\d+\n$/);
  assert.equal(help.code, 0);
  assert.match(help.text, /-c, --config <file>/);
  assert.match(help.text, /-d, --debug/);
  assert.match(help.text, /passwd/);
  assert.equal(wrong.code, 2);
  assert.equal(wrong.stderr, "amqtt: Unknown option '--port' (see --help)\n");
});

Deno.test("amqtt -c with a bad file prints the error with key path and line, exit code 1, no stack trace", async () => {
  await using dir = await tempDir();
  const bad = `${dir.path}/bad.yaml`;
  await Deno.writeTextFile(bad, "listeners:\n  default:\n    bind: 127.0.0.1:70000\n");
  const broken = `${dir.path}/broken.yaml`;
  await Deno.writeTextFile(broken, "listeners: [\n");
  const [range, syntax, missing] = await Promise.all([
    runCli("amqtt.ts", ["-c", bad]),
    runCli("amqtt.ts", ["-c", broken]),
    runCli("amqtt.ts", ["-c", `${dir.path}/none.yaml`]),
  ]);
  assert.equal(range.code, 1);
  assert.equal(
    range.stderr,
    `amqtt: listeners.default.bind: port 70000 is out of range 0-65535 (${bad} line 3)\n`,
  );
  assert.equal(syntax.code, 1);
  assert.match(syntax.stderr, /^amqtt: Cannot parse YAML: .*line \d+\)\n$/);
  assert.equal(missing.code, 1);
  assert.match(
    missing.stderr,
    /^amqtt: Cannot read config file ".*none\.yaml": file does not exist\n$/,
  );
});

Deno.test("amqtt: a port in use is one line and exit code 1", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  await using dir = await tempDir();
  const config = `${dir.path}/broker.yaml`;
  await Deno.writeTextFile(config, `listeners:\n  default:\n    bind: 127.0.0.1:${port}\n`);
  const result = await runCli("amqtt.ts", ["-c", config]);
  assert.equal(result.code, 1);
  const errors = result.stderr.split("\n").filter((l) => !LOG_LINE.test(l) && l !== "");
  assert.deepEqual(errors, [
    `amqtt: Cannot start the broker: address already in use (default 127.0.0.1:${port})`,
  ]);
});

Deno.test("amqtt -c FILE shuts down cleanly on SIGINT (Ctrl-C): exit code 0, clients disconnected", async () => {
  await using dir = await tempDir();
  const config = `${dir.path}/broker.yaml`;
  await Deno.writeTextFile(config, "listeners:\n  default:\n    bind: 127.0.0.1:0\n");
  await using broker = spawnCli("amqtt.ts", ["-c", config]);
  const [, port] = await broker.waitForStderr(/127\.0\.0\.1:(\d+)/);
  await broker.waitForStderr(/started/);
  await using client = new MQTTClient({ config: { auto_reconnect: false } });
  await client.connect(`mqtt://127.0.0.1:${port}`);
  broker.kill("SIGINT");
  const result = await broker.done;
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /:: INFO - SIGINT received: shutting down\n/);
  assert.match(result.stderr, /Broker stopped\n$/);
  for (const line of result.stderr.trimEnd().split("\n")) assert.match(line, LOG_LINE);
  // The broker closed the client's connection: waiting for a message ends with the loss, not a
  // timeout.
  await assert.rejects(client.deliverMessage({ timeout: 5000 }), (error: Error) => {
    assert.notEqual(error.name, "TimeoutError", error.message);
    return true;
  });
  assert.equal(client.connected, false);
});

/**
 * Broker, area 38: MQTT 5.0 enhanced authentication as an operator sets it up: the `auth_scram`
 * and `auth_challenge` plugins from a YAML file, a password file written by `amqtt passwd -H
 * scram-sha-256`, and our client's `scramSha256Auth` over TCP.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Broker } from "../../broker.ts";
import { ConnectError, MQTTClient, scramSha256Auth, ServerDisconnectError } from "../../client.ts";
import { ConfigError, loadBrokerConfigFile } from "../../src/config/mod.ts";
import { challengeResponse } from "../../src/plugins/challenge_auth.ts";
import { runPasswd } from "../../cli/passwd.ts";
import { MemoryLogger } from "../_helpers/broker.ts";
import { tempDir } from "../_helpers/temp_dir.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const NO_RECONNECT = { config: { auto_reconnect: false } };

interface Setup extends AsyncDisposable {
  url: string;
  log: MemoryLogger;
  dir: string;
  broker: Broker;
}

/** A broker from a YAML file naming a password file with bob (SCRAM) and carol (sha512-crypt). */
async function yamlBroker(extraPlugins = (_dir: string) => ""): Promise<Setup> {
  const dir = await Deno.makeTempDir();
  const passwd = `${dir}/passwd`;
  assert.equal(await runPasswd(["-c", "-H", "scram-sha-256", "-b", passwd, "bob", "hunter2"]), 0);
  assert.equal(await runPasswd(["-b", passwd, "carol", "s3cret"]), 0);
  await Deno.writeTextFile(`${dir}/secrets`, "# shared secrets\ndave:d-secret\n");
  const yaml = `
listeners:
  default:
    type: tcp
    bind: 127.0.0.1:0
plugins:
  amqtt.plugins.authentication.ScramAuthPlugin:
    password_file: ${passwd}
  auth_file:
    password_file: ${passwd}
${extraPlugins(dir)}`;
  await Deno.writeTextFile(`${dir}/broker.yaml`, yaml);
  const config = await loadBrokerConfigFile(`${dir}/broker.yaml`);
  const log = new MemoryLogger();
  const broker = new Broker(config, { logger: log });
  await broker.start();
  return {
    url: `mqtt://127.0.0.1:${broker.listeners[0]!.port}`,
    log,
    dir,
    broker,
    async [Symbol.asyncDispose]() {
      await broker.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function refusal(promise: Promise<unknown>): Promise<ConnectError> {
  const error = await promise.then(() => undefined, (e) => e);
  assert.ok(error instanceof ConnectError, `expected ConnectError, got ${error}`);
  return error;
}

test("38 auth config: a broker from YAML with auth_scram logs in our 5.0 client by SCRAM-SHA-256, re-authenticates it, and refuses a wrong password with 0x86 [MQTT-4.12.0-4]", async () => {
  await using s = await yamlBroker();
  assert.ok(s.log.has("1 SCRAM-SHA-256 user(s) loaded from"), "bob only: carol has a crypt hash");
  assert.ok(s.log.has("SCRAM-SHA-256 cannot use the hashes of carol (sha512-crypt)"));
  await using client = new MQTTClient({ clientId: "bob-1", ...NO_RECONNECT });
  const connack = await client.connect(s.url, {
    protocolVersion: 5,
    username: "bob",
    auth: scramSha256Auth("bob", "hunter2"),
  });
  assert.equal(connack.returnCode, 0);
  assert.equal(connack.properties?.authenticationMethod, "SCRAM-SHA-256");
  // Re-authentication runs the exchange again on the open connection [MQTT-4.12.1-1].
  await client.reauthenticate();
  await client.reauthenticate();
  await client.subscribe([["t/38", 1]]);
  await client.publish("t/38", "after re-auth", { qos: 1 });
  const message = await client.deliverMessage();
  assert.equal(new TextDecoder().decode(message.payload), "after re-auth");
  await client.disconnect();

  await using wrong = new MQTTClient({ clientId: "bob-2", ...NO_RECONNECT });
  const refused = await refusal(
    wrong.connect(s.url, { protocolVersion: 5, auth: scramSha256Auth("bob", "hunter3") }),
  );
  assert.equal(refused.returnCode, 0x86);
  await using stranger = new MQTTClient({ clientId: "eve", ...NO_RECONNECT });
  const unknown = await refusal(
    stranger.connect(s.url, { protocolVersion: 5, auth: scramSha256Auth("eve", "hunter2") }),
  );
  assert.equal(unknown.returnCode, 0x86, "an unknown user is refused like a wrong password");
});

test("38 auth config: a method no configured plugin runs gets CONNACK 0x8C; a CONNECT User Name other than the SCRAM user gets 0x86", async () => {
  await using s = await yamlBroker();
  await using other = new MQTTClient({ clientId: "m-1", ...NO_RECONNECT });
  const bad = await refusal(other.connect(s.url, {
    protocolVersion: 5,
    auth: { ...scramSha256Auth("bob", "hunter2"), method: "SCRAM-SHA-1" },
  }));
  assert.equal(bad.returnCode, 0x8c);
  await using mixed = new MQTTClient({ clientId: "m-2", ...NO_RECONNECT });
  const named = await refusal(mixed.connect(s.url, {
    protocolVersion: 5,
    username: "carol",
    auth: scramSha256Auth("bob", "hunter2"),
  }));
  assert.equal(named.returnCode, 0x86);
});

test("38 auth config: the same password file lets 3.1.1 and plain 5.0 clients log in by password, SCRAM secrets included", async () => {
  await using s = await yamlBroker();
  for (
    const [user, password, version] of [["bob", "hunter2", 4], ["carol", "s3cret", 5]] as const
  ) {
    await using client = new MQTTClient({ clientId: `${user}-pw`, ...NO_RECONNECT });
    const connack = await client.connect(s.url, {
      protocolVersion: version,
      username: user,
      password,
    });
    assert.equal(connack.returnCode, 0, `${user} with a password in CONNECT`);
    await client.disconnect();
  }
  await using wrong = new MQTTClient({ clientId: "bob-pw2", ...NO_RECONNECT });
  const refused = await refusal(
    wrong.connect(s.url, { protocolVersion: 4, username: "bob", password: "nope" }),
  );
  assert.equal(refused.returnCode, 4, "3.1.1 bad user name or password");
});

test("38 auth config: auth_challenge from YAML reads its secrets file and runs its method", async () => {
  // Next to auth_scram and auth_file: each client picks its way in.
  await using s = await yamlBroker((dir) =>
    `  auth_challenge:\n    secrets_file: ${dir}/secrets\n    method: x-team\n`
  );
  const auth = (secret: string) => ({
    method: "x-team",
    initial: () => new TextEncoder().encode("dave"),
    challenge: (nonce: Uint8Array | undefined) => challengeResponse(secret, nonce!),
  });
  await using ok = new MQTTClient({ clientId: "dave-1", ...NO_RECONNECT });
  const connack = await ok.connect(s.url, { protocolVersion: 5, auth: auth("d-secret") });
  assert.equal(connack.returnCode, 0);
  await ok.reauthenticate();
  await ok.disconnect();
  await using bad = new MQTTClient({ clientId: "dave-2", ...NO_RECONNECT });
  const refused = await refusal(bad.connect(s.url, { protocolVersion: 5, auth: auth("guess") }));
  assert.equal(refused.returnCode, 0x86);
  assert.ok(s.log.has("1 user(s) loaded from"), "the secrets file was read");
});

test("38 auth config: bad configurations and files are one clear line each", async () => {
  await using dir = await tempDir();
  const load = async (plugins: string) => {
    await Deno.writeTextFile(`${dir.path}/b.yaml`, `plugins:\n${plugins}`);
    return await loadBrokerConfigFile(`${dir.path}/b.yaml`).then(() => undefined, (e) => e);
  };
  const missing = await load(`  auth_scram:\n    password_file: ${dir.path}/none\n`);
  assert.ok(missing instanceof ConfigError);
  assert.match(missing.message, /password_file/);
  assert.doesNotMatch(missing.message, /\n/);
  const noFile = await load("  auth_scram: {}\n");
  assert.ok(noFile instanceof ConfigError);
  assert.match(noFile.message, /ScramAuthPlugin needs password_file/);
  const unknown = await load(`  auth_scram:\n    password_file: /dev/null\n    iterations: 4\n`);
  assert.ok(unknown instanceof ConfigError);
  assert.match(unknown.message, /iterations/);
  const noSecrets = await load("  auth_challenge:\n    method: x\n");
  assert.ok(noSecrets instanceof ConfigError);
  assert.match(noSecrets.message, /ChallengeAuthPlugin needs secrets_file/);

  // A malformed secret is skipped with one warning naming the line; the others load.
  await Deno.writeTextFile(
    `${dir.path}/passwd`,
    "bob:SCRAM-SHA-256$4096:c2FsdA==$AAAA:BBBB\n" +
      "amy:SCRAM-SHA-256$0:c2FsdA==$AAAA:BBBB\n",
  );
  await Deno.writeTextFile(
    `${dir.path}/ok.yaml`,
    `listeners:\n  default:\n    bind: 127.0.0.1:0\nplugins:\n  auth_scram:\n    password_file: ${dir.path}/passwd\n`,
  );
  const log = new MemoryLogger();
  const broker = new Broker(await loadBrokerConfigFile(`${dir.path}/ok.yaml`), { logger: log });
  await broker.start();
  await broker.shutdown();
  const warnings = log.lines.filter((l) => l.message.includes(`${dir.path}/passwd" line`));
  assert.deepEqual(warnings.map((l) => l.message.replace(`${dir.path}/`, "")), [
    '[auth_scram] Password file "passwd" line 1: StoredKey and ServerKey of a SCRAM-SHA-256 secret are 32 bytes each for user "bob"',
    '[auth_scram] Password file "passwd" line 2: iteration count 0 is outside 1 to 10000000 for user "amy"',
  ]);
  // A password file gone at start-up stops the broker with one line.
  await Deno.remove(`${dir.path}/passwd`);
  await Deno.writeTextFile(`${dir.path}/passwd`, "");
  const config = await loadBrokerConfigFile(`${dir.path}/ok.yaml`);
  await Deno.remove(`${dir.path}/passwd`);
  const gone = new Broker(config, { logger: new MemoryLogger() });
  const error = await gone.start().then(() => undefined, (e) => e);
  await gone.shutdown();
  assert.ok(error instanceof Error);
  assert.match(error.message, /Cannot read password file ".*passwd"/);
});

test("38 auth config: after SIGHUP's reload drops a user, that user's re-authentication ends the connection with DISCONNECT 0x87 [MQTT-4.12.1-2]", async () => {
  await using s = await yamlBroker();
  const told: ServerDisconnectError[] = [];
  await using client = new MQTTClient({
    clientId: "bob-r",
    ...NO_RECONNECT,
    onServerDisconnect: (e) => told.push(e),
  });
  await client.connect(s.url, { protocolVersion: 5, auth: scramSha256Auth("bob", "hunter2") });
  await client.reauthenticate();
  // The operator removes bob and reloads (what SIGHUP does).
  assert.equal(await runPasswd(["-D", `${s.dir}/passwd`, "bob"]), 0);
  await s.broker.reload();
  assert.ok(s.log.has("0 SCRAM-SHA-256 user(s) loaded from"));
  const error = await client.reauthenticate().then(() => undefined, (e) => e);
  assert.ok(error instanceof Error, `expected a failed re-authentication, got ${error}`);
  // The rejection names the server's DISCONNECT as its cause.
  assert.ok(error.cause instanceof ServerDisconnectError, String(error.cause));
  assert.equal(error.cause.reasonCode, 0x87);
  // 0x86 is a CONNACK code only: the DISCONNECT says 0x87 not authorized.
  assert.deepEqual(told.map((e) => e.reasonCode), [0x87]);
  assert.equal(told[0]!.reasonString, "SCRAM authentication failed");
  assert.equal(client.connected, false);
});

/**
 * MQTT 5.0 enhanced authentication from the command line: `amqtt passwd -H scram-sha-256`,
 * `amqtt -c` with the `auth_scram` plugin (and `--check`), and `amqtt_pub`/`amqtt_sub` logging in
 * with `-D connect authentication-method SCRAM-SHA-256 -u USER -P PASSWORD`, each a subprocess.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Broker } from "../../broker.ts";
import { runCli, spawnCli, tempDir } from "./_helpers.ts";

const SCRAM = ["-V", "mqttv5", "-D", "connect", "authentication-method", "SCRAM-SHA-256"];

Deno.test("amqtt -c with auth_scram: amqtt_pub and amqtt_sub log in by SCRAM-SHA-256; a wrong password is one line with 0x86; --check reads the file", async () => {
  await using dir = await tempDir();
  const passwd = `${dir.path}/passwd`;
  const made = await runCli("main.ts", [
    "passwd",
    "-c",
    "-H",
    "scram-sha-256",
    "-b",
    passwd,
    "bob",
    "hunter2",
  ]);
  assert.equal(made.code, 0, made.stderr);
  assert.match(
    await Deno.readTextFile(passwd),
    /^bob:SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+\n$/,
  );
  const config = `${dir.path}/broker.yaml`;
  await Deno.writeTextFile(
    config,
    `listeners:\n  default:\n    bind: 127.0.0.1:0\nplugins:\n  auth_scram:\n    password_file: ${passwd}\n`,
  );
  const check = await runCli("amqtt.ts", ["--check", "-c", config]);
  assert.equal(check.code, 0, check.stderr);
  assert.match(check.text, /is valid/);

  await using broker = spawnCli("amqtt.ts", ["-c", config]);
  const [, port] = await broker.waitForStderr(/127\.0\.0\.1:(\d+)/);
  await broker.waitForStderr(/started/);
  const at = ["-h", "127.0.0.1", "-p", port!];
  const pub = await runCli("amqtt_pub.ts", [
    ...at,
    ...SCRAM,
    "-u",
    "bob",
    "-P",
    "hunter2",
    "-t",
    "s/t",
    "-m",
    "by scram",
    "-r",
    "-q",
    "1",
  ]);
  assert.equal(pub.code, 0, pub.stderr);
  const sub = await runCli("amqtt_sub.ts", [
    ...at,
    ...SCRAM,
    "-u",
    "bob",
    "-P",
    "hunter2",
    "-t",
    "s/#",
    "-C",
    "1",
    "-v",
  ]);
  assert.equal(sub.code, 0, sub.stderr);
  assert.equal(sub.text, "s/t by scram\n");

  const wrong = await runCli("amqtt_pub.ts", [
    ...at,
    ...SCRAM,
    "-u",
    "bob",
    "-P",
    "nope",
    "-t",
    "s/t",
    "-m",
    "x",
  ]);
  assert.notEqual(wrong.code, 0);
  // Besides aMQTT's "Connecting to broker" log line, one error line.
  const errors = wrong.stderr.trim().split("\n").filter((l) => !l.includes(":: INFO - "));
  assert.equal(errors.length, 1, wrong.stderr);
  assert.match(
    errors[0]!,
    /^amqtt_pub: .*0x86 Bad User Name or Password \(SCRAM authentication failed\)$/,
  );
  // Without SCRAM the broker has no way in for this client: auth_scram only.
  const plain = await runCli("amqtt_pub.ts", [
    ...at,
    "-u",
    "bob",
    "-P",
    "hunter2",
    "-t",
    "s/t",
    "-m",
    "x",
  ]);
  assert.notEqual(plain.code, 0);
  broker.kill("SIGTERM");
  const done = await broker.done;
  assert.equal(done.code, 0, done.stderr);
  assert.match(done.stderr, /1 SCRAM-SHA-256 user\(s\) loaded from/);
});

Deno.test("amqtt_pub/amqtt_sub SCRAM-SHA-256 and -D auth: wrong use is exit 2 with one line, before connecting", async () => {
  const cases: [string, string[], RegExp][] = [
    ["amqtt_pub.ts", [...SCRAM, "-t", "a", "-m", "x"], /SCRAM-SHA-256 .*needs -u and a password/],
    ["amqtt_sub.ts", [...SCRAM, "-u", "bob", "-t", "a"], /needs -u and a password/],
    [
      "amqtt_pub.ts",
      [...SCRAM, "-L", "mqtt://bob:pw@127.0.0.1:1/a", "-m", "x"],
      /not from the URL/,
    ],
    ["main.ts", ["passwd", "-H", "md5", "-b", "f", "u", "p"], /argument 'md5' is invalid/],
    [
      "amqtt_pub.ts",
      ["-V", "5", "-D", "auth", "authentication-method", "x", "-t", "a", "-m", "x"],
      /Property authentication-method is not supported for auth/,
    ],
    [
      "amqtt_sub.ts",
      ["-V", "5", "-D", "subscribe", "authentication-data", "x", "-t", "a"],
      /Property authentication-data is not allowed for subscribe/,
    ],
  ];
  for (const [tool, args, message] of cases) {
    const r = await runCli(tool as "amqtt_pub.ts", args);
    assert.equal(r.code, 2, `${tool} ${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  }
});

Deno.test("-D connect authentication-method/-data: a one-step method logs in with amqtt_pub as with mosquitto_pub; a broker challenge ends amqtt_pub with one line", async () => {
  const decoder = new TextDecoder();
  await using broker = new Broker({ listeners: { default: { bind: "127.0.0.1:0" } } }, {
    logger: { debug() {}, info() {}, warning() {}, error() {} },
    plugins: [{
      name: "token",
      authenticationMethods: ["x-token"],
      // One step: the token in the CONNECT is enough; anything else gets a challenge.
      authenticateEnhanced: ({ data }) =>
        decoder.decode(data) === "letmein"
          ? { success: true }
          : { continue: new TextEncoder().encode("more?") },
    }],
  });
  await broker.start();
  const at = ["-h", "127.0.0.1", "-p", String(broker.listeners[0]!.port)];
  const token = (data: string) => [
    "-V",
    "mqttv5",
    "-D",
    "connect",
    "authentication-method",
    "x-token",
    "-D",
    "connect",
    "authentication-data",
    data,
  ];
  const theirs = await new Deno.Command("mosquitto_pub", {
    args: [...at, ...token("letmein"), "-t", "tok", "-m", "m", "-q", "1"],
    stdin: "null",
  }).output();
  assert.equal(theirs.code, 0, decoder.decode(theirs.stderr));
  const ours = await runCli("amqtt_pub.ts", [
    ...at,
    ...token("letmein"),
    "-t",
    "tok",
    "-m",
    "a",
    "-q",
    "1",
  ]);
  assert.equal(ours.code, 0, ours.stderr);
  const challenged = await runCli("amqtt_pub.ts", [
    ...at,
    ...token("guess"),
    "-t",
    "tok",
    "-m",
    "a",
  ]);
  assert.notEqual(challenged.code, 0);
  const errors = challenged.stderr.trim().split("\n").filter((l) => !l.includes(":: INFO - "));
  assert.equal(errors.length, 1, challenged.stderr);
  assert.match(errors[0]!, /the broker asked more of authentication method x-token/);
});

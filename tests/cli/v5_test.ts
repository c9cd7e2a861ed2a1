/**
 * `amqtt_pub`/`amqtt_sub` in MQTT 5.0, as subprocesses against a Mosquitto 2.0.11 started by the
 * test (and a scripted server for a server DISCONNECT): `-V 5`, mosquitto's `-D` property flag,
 * `-x/--session-expiry`, mosquitto_sub's 5.0 format sequences printed byte for byte as
 * mosquitto_sub prints them, and 5.0 refusals in one line with the reason code's name.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/constants.ts";
import { Mosquitto, runTool } from "../_helpers/peers.ts";
import { ScriptedServer } from "../client/_helpers.ts";
import { acceptV5 } from "../client/_v5.ts";
import { runCli, spawnCli } from "./_helpers.ts";

/** Every 5.0 sequence (but %E, which counts down on a retained message), with widths and %j. */
const FORMAT = "[%P][%C][%D][%F][%R][%A][%S][%q][%r][%l][%t][%x][%12C][%-6S|][%05F][%.4R]\t%j";

/** %j without its time stamp, which differs between two runs. */
const withoutTime = (text: string) => text.replace(/"tst":\s*"[^"]*",\s*/g, "");

Deno.test("amqtt_pub -V 5 -D publish …: mosquitto_sub -V mqttv5 prints the properties (%P %C %D %E %F %R)", async () => {
  await using mosquitto = await Mosquitto.start();
  const port = String(mosquitto.port);
  const pub = await runCli("amqtt_pub.ts", [
    "-p",
    port,
    "-V",
    "5",
    "-t",
    "v5/a",
    "-m",
    "hello",
    "-q",
    "1",
    "-r",
    "-D",
    "publish",
    "user-property",
    "a",
    "b",
    "-D",
    "publish",
    "user-property",
    "a",
    "c",
    "-D",
    "publish",
    "content-type",
    "text/plain",
    "-D",
    "publish",
    "correlation-data",
    "req-7",
    "-D",
    "publish",
    "message-expiry-interval",
    "300",
    "-D",
    "publish",
    "payload-format-indicator",
    "1",
    "-D",
    "publish",
    "response-topic",
    "v5/reply",
  ]); // deno-fmt-ignore
  assert.equal(pub.code, 0, pub.stderr);
  const sub = await runTool("mosquitto_sub", [
    "-p",
    port,
    "-V",
    "mqttv5",
    "-t",
    "v5/a",
    "-C",
    "1",
    "-W",
    "5",
    "-F",
    "%P|%C|%D|%E|%F|%R|%p",
  ]); // deno-fmt-ignore
  assert.equal(sub.code, 0, sub.stderr);
  const [user, type, correlation, expiry, format, response, payload] = sub.stdout.trimEnd()
    .split("|");
  assert.deepEqual([user, type, correlation, format, response, payload], [
    "a:b a:c",
    "text/plain",
    "req-7",
    "1",
    "v5/reply",
    "hello",
  ]); // deno-fmt-ignore
  // A retained message's expiry counts down from 300.
  assert.ok(Number(expiry) > 250 && Number(expiry) <= 300, expiry);
});

Deno.test("amqtt_sub -V 5 -F prints a 5.0 message byte for byte as mosquitto_sub -F does", async () => {
  await using mosquitto = await Mosquitto.start();
  const port = String(mosquitto.port);
  const pub = await runTool("mosquitto_pub", [
    "-p",
    port,
    "-V",
    "mqttv5",
    "-t",
    "v5/b",
    "-m",
    '{"t":21.5}',
    "-q",
    "1",
    "-r",
    "-D",
    "publish",
    "user-property",
    "k",
    "v",
    "-D",
    "publish",
    "user-property",
    "k",
    "w",
    "-D",
    "publish",
    "content-type",
    "application/json",
    "-D",
    "publish",
    "correlation-data",
    "c0rr",
    "-D",
    "publish",
    "payload-format-indicator",
    "1",
    "-D",
    "publish",
    "response-topic",
    "v5/answer",
  ]); // deno-fmt-ignore
  assert.equal(pub.code, 0, pub.stderr);
  const plain = await runTool("mosquitto_pub", [
    "-p",
    port,
    "-V",
    "mqttv5",
    "-t",
    "v5/c",
    "-m",
    "no properties",
    "-r",
  ]); // deno-fmt-ignore
  assert.equal(plain.code, 0, plain.stderr);
  for (const topic of ["v5/b", "v5/c"]) {
    const args = ["-p", port, "-t", topic, "-C", "1", "-W", "10", "-q", "1", "-F", FORMAT];
    const subscription = ["-D", "subscribe", "subscription-identifier", "42"];
    const theirs = await runTool("mosquitto_sub", ["-V", "mqttv5", ...args, ...subscription]);
    assert.equal(theirs.code, 0, theirs.stderr);
    const ours = await runCli("amqtt_sub.ts", ["-V", "5", "--quiet", ...args, ...subscription]);
    assert.equal(ours.code, 0, ours.stderr);
    assert.match(theirs.stdout, topic === "v5/b" ? /\[k:v k:w\]/ : /\[\]\[\]/);
    assert.equal(withoutTime(ours.text), withoutTime(theirs.stdout));
  }
  // --pretty: cJSON's indented layout.
  const args = ["-p", port, "-t", "v5/b", "-C", "1", "-W", "10", "-F", "%J", "--pretty"];
  const theirs = await runTool("mosquitto_sub", ["-V", "mqttv5", ...args]);
  const ours = await runCli("amqtt_sub.ts", ["-V", "mqttv5", "--quiet", ...args]);
  assert.equal(ours.code, 0, ours.stderr);
  assert.match(theirs.stdout, /\n\t"payload":\t\{\n\t\t"t":\t21.5\n\t\}\n\}\n$/);
  assert.equal(withoutTime(ours.text), withoutTime(theirs.stdout));
});

Deno.test("amqtt_sub -c -x 300 keeps the session across runs; -c -x 0 ends it with the connection", async () => {
  await using mosquitto = await Mosquitto.start();
  const port = String(mosquitto.port);
  const sub = (id: string, expiry: string, extra: string[] = []) =>
    runCli("amqtt_sub.ts", [
      "-p",
      port,
      "-V",
      "5",
      "--quiet",
      "-c",
      "-i",
      id,
      "-x",
      expiry,
      "-q",
      "1",
      "-t",
      "se/a",
      ...extra,
    ]); // deno-fmt-ignore
  const publish = (message: string) =>
    runTool("mosquitto_pub", ["-p", port, "-V", "mqttv5", "-t", "se/a", "-q", "1", "-m", message]);
  // Make both sessions (the -W run ends with 27 after subscribing).
  for (const [id, expiry] of [["kept", "300"], ["gone", "0"]]) {
    const first = await sub(id, expiry, ["-W", "1"]);
    assert.equal(first.code, 27, first.stderr);
  }
  assert.equal((await publish("while away")).code, 0);
  const kept = await sub("kept", "300", ["-C", "1", "-W", "10"]);
  assert.equal(kept.code, 0, kept.stderr);
  assert.equal(kept.text, "while away\n");
  const gone = await sub("gone", "0", ["-C", "1", "-W", "2"]);
  assert.equal(gone.code, 27, "nothing was kept for the session that expired on disconnect");
  assert.equal(gone.text, "");
});

Deno.test("amqtt_pub/amqtt_sub -D with a property not allowed on that command: exit 2, one error line", async () => {
  const cases: [string, string[], RegExp][] = [
    [
      "amqtt_pub.ts",
      ["-D", "publish", "session-expiry-interval", "5"],
      /session-expiry-interval is not allowed for publish/,
    ],
    [
      "amqtt_sub.ts",
      ["-D", "connect", "topic-alias", "1"],
      /topic-alias is not allowed for connect/,
    ],
    [
      "amqtt_sub.ts",
      ["-D", "subscribe", "content-type", "x"],
      /content-type is not allowed for subscribe/,
    ],
    [
      "amqtt_pub.ts",
      ["-D", "subscribe", "user-property", "a", "b"],
      /amqtt_pub sends connect, publish, disconnect, will/,
    ],
    [
      "amqtt_pub.ts",
      ["-D", "publish", "no-such-thing", "1"],
      /Invalid -D\/--property name "no-such-thing"/,
    ],
    [
      "amqtt_pub.ts",
      ["-D", "publish", "user-property", "a"],
      /needs a command, a property name and a value/,
    ],
    [
      "amqtt_pub.ts",
      ["-D", "connect", "receive-maximum", "0"],
      /receive-maximum .*from 1 to 65535/,
    ],
    ["amqtt_pub.ts", ["-V", "311", "-D", "publish", "content-type", "x"], /need MQTT 5\.0/],
    ["amqtt_sub.ts", ["-F", "%Z"], /Invalid -F format: Invalid format specifier 'Z'/],
  ]; // deno-fmt-ignore
  for (const [tool, flags, message] of cases) {
    const args = tool === "amqtt_pub.ts" ? ["-t", "a", "-m", "x"] : ["-t", "a"];
    // Port 9 (discard): nothing listens, and nothing must be tried before the flags are checked.
    const r = await runCli(tool as "amqtt_pub.ts", ["-p", "9", ...args, ...flags]);
    assert.equal(r.code, 2, `${flags.join(" ")}: ${r.stderr}`);
    const lines = r.stderr.trimEnd().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], message);
  }
});

Deno.test("amqtt_pub/amqtt_sub -V 5: CONNACK and PUBACK refusals in one line with the reason code's name", async () => {
  // mosquitto reads its password file at start: make it first.
  const passwd = await Deno.makeTempFile({ prefix: "amqtt_v5_passwd_" });
  const made = await runTool("mosquitto_passwd", ["-b", passwd, "alice", "s3cret"]);
  const passwdText = await Deno.readTextFile(passwd);
  await Deno.remove(passwd);
  assert.equal(made.code, 0, made.stderr);
  await using mosquitto = await Mosquitto.start({
    allowAnonymous: false,
    extra: ["password_file {dir}/passwd", "acl_file {dir}/acl"],
    files: { passwd: passwdText, acl: "user alice\ntopic readwrite open/#\n" },
  });
  const port = String(mosquitto.port);

  const anonymous = await runCli("amqtt_pub.ts", [
    "-p",
    port,
    "-V",
    "5",
    "-t",
    "open/a",
    "-m",
    "x",
  ]);
  assert.equal(anonymous.code, 1);
  assert.match(anonymous.stderr, /^amqtt_pub: Cannot connect to .*: 0x87 Not authorized\n$/m);

  const denied = await runCli("amqtt_pub.ts", [
    "-p",
    port,
    "-V",
    "5",
    "-u",
    "alice",
    "-P",
    "s3cret",
    "--quiet",
    "-q",
    "1",
    "-t",
    "closed/a",
    "-m",
    "x",
  ]); // deno-fmt-ignore
  assert.equal(denied.code, 1);
  assert.equal(
    denied.stderr,
    'amqtt_pub: Cannot publish to "closed/a": Server refused the message: 0x87 Not authorized\n',
  );
});

Deno.test("amqtt_sub -V 5: a server DISCONNECT 0x8E ends the tool with its reason code and reason string, without reconnecting", async () => {
  await using server = new ScriptedServer();
  await using sub = spawnCli("amqtt_sub.ts", [
    "-p",
    String(server.port),
    "-V",
    "5",
    "-t",
    "a",
    "-q",
    "1",
  ]); // deno-fmt-ignore
  const [c] = await acceptV5(server);
  const subscribe = await c.next();
  if (subscribe?.type !== PacketType.SUBSCRIBE) throw new Error("Expected SUBSCRIBE");
  await c.send({ type: PacketType.SUBACK, packetId: subscribe.packetId, reasonCodes: [1] });
  await c.send({
    type: PacketType.DISCONNECT,
    reasonCode: 0x8e,
    properties: { reasonString: "another client took client id" },
  });
  const r = await sub.done;
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /amqtt_sub: The broker ended the connection with DISCONNECT 0x8E Session taken over \(another client took client id\)\n$/,
  );
  assert.doesNotMatch(r.stderr, /Reconnecting/);
});

Deno.test("amqtt_pub -D connect/will/publish/disconnect and -x put each property in its packet", async () => {
  await using server = new ScriptedServer();
  await using pub = spawnCli("amqtt_pub.ts", [
    "-p",
    String(server.port),
    "-i",
    "props-1",
    "-x",
    "600",
    "-t",
    "p/a",
    "-m",
    "x",
    "--will-topic",
    "w/a",
    "--will-message",
    "bye",
    "-D",
    "connect",
    "user-property",
    "site",
    "plant-3",
    "-D",
    "connect",
    "receive-maximum",
    "5",
    "-D",
    "connect",
    "request-problem-information",
    "0",
    "-D",
    "will",
    "will-delay-interval",
    "30",
    "-D",
    "will",
    "content-type",
    "text/plain",
    "-D",
    "publish",
    "correlation-data",
    "-starts-with-a-dash",
    "-D",
    "disconnect",
    "session-expiry-interval",
    "60",
    "-D",
    "disconnect",
    "user-property",
    "why",
    "done",
  ]); // deno-fmt-ignore
  const [c, connect] = await acceptV5(server);
  assert.equal(connect.protocolVersion, 5, "-D and -x select MQTT 5.0");
  assert.equal(connect.clientId, "props-1");
  assert.deepEqual(connect.properties, {
    sessionExpiryInterval: 600,
    receiveMaximum: 5,
    requestProblemInformation: 0,
    userProperties: [["site", "plant-3"]],
  });
  assert.deepEqual(connect.will?.properties, { willDelayInterval: 30, contentType: "text/plain" });
  const publish = await c.next();
  if (publish?.type !== PacketType.PUBLISH) throw new Error("Expected PUBLISH");
  assert.deepEqual(publish.properties, {
    correlationData: new TextEncoder().encode("-starts-with-a-dash"),
  });
  const disconnect = await c.next();
  if (disconnect?.type !== PacketType.DISCONNECT) throw new Error("Expected DISCONNECT");
  assert.deepEqual(disconnect.properties, {
    sessionExpiryInterval: 60,
    userProperties: [["why", "done"]],
  });
  const r = await pub.done;
  assert.equal(r.code, 0, r.stderr);
});

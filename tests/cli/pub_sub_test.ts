/**
 * amqtt_pub and amqtt_sub end to end: each tool a subprocess, the broker in the test.
 */

import assert from "node:assert/strict";
import { Broker } from "../../broker.ts";
import { MQTTClient } from "../../client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import type { ConnectPacket } from "../../src/packet/types.ts";
import { certFiles } from "../_helpers/certs.ts";
import { freePort } from "../_helpers/peers.ts";
import {
  type CliResult,
  nextEvent,
  recordMessages,
  runCli,
  spawnCli,
  startBroker,
  tempDir,
} from "./_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A broker on 127.0.0.1:0 that records every CONNECT it decodes (through a plugin). */
async function startRecordingBroker(): Promise<
  { broker: Broker; url: string; connects: ConnectPacket[] }
> {
  const connects: ConnectPacket[] = [];
  const broker = new Broker({ listeners: { default: { bind: "127.0.0.1:0" } } }, {
    packetEvents: true,
    plugins: [{
      name: "connect_recorder",
      onMqttPacketReceived({ packet }) {
        if (packet.type === PacketType.CONNECT) connects.push(packet);
      },
    }],
  });
  await broker.start();
  return { broker, url: `mqtt://127.0.0.1:${broker.listeners[0].port}`, connects };
}

/**
 * Asserts that a tool failed as a user should see it: exit code 1, exactly one `<name>:` line,
 * matching `pattern`, and no stack trace.
 */
function assertOneErrorLine(r: CliResult, name: string, pattern: RegExp): void {
  assert.equal(r.code, 1, r.stderr);
  const errors = r.stderr.split("\n").filter((l) => l.startsWith(`${name}:`));
  assert.equal(errors.length, 1, r.stderr);
  assert.match(errors[0], pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
}

/** Writes a client config that turns reconnection off; returns its path. */
async function noRetry(dir: string): Promise<string> {
  const path = `${dir}/no_retry.yaml`;
  await Deno.writeTextFile(path, "auto_reconnect: false\n");
  return path;
}

Deno.test("amqtt_pub publishes from -m, -n, -f, -s and -l; amqtt_sub -n COUNT prints and counts each payload, an empty one as an empty line", async () => {
  const { broker, url } = await startBroker();
  await using _broker = broker;
  await using dir = await tempDir();
  const seen = recordMessages(broker);
  const subscribed = nextEvent(broker, "subscribed", (e) => e.topic === "src/#");
  await using sub = spawnCli("amqtt_sub.ts", ["--url", url, "-t", "src/#", "-q", "1", "-n", "7"]);
  await subscribed;

  const file = `${dir.path}/lines.txt`;
  await Deno.writeTextFile(file, "line1\nline2\n");
  const whole = new Uint8Array([...encoder.encode("all\nof it"), 0, 255]);
  const pubs: [string[], string | Uint8Array | undefined][] = [
    [["-t", "src/m", "-m", "hello"], undefined],
    [["-t", "src/null", "-n"], undefined],
    [["-t", "src/f", "-f", file], undefined],
    [["-t", "src/s", "-s"], whole],
    [["-t", "src/l", "-l"], "A\r\n\nB"],
  ];
  for (const [args, stdin] of pubs) {
    const r = await runCli("amqtt_pub.ts", ["--url", url, "-q", "1", ...args], { stdin });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /:: INFO - amqtt_pub\/\d+-.+ Connecting to broker/);
  }

  const result = await sub.done;
  assert.equal(result.code, 0, result.stderr);
  const expected = new Uint8Array([
    ...encoder.encode("hello\n\nline1\nline2\n"),
    ...whole,
    ...encoder.encode("\nA\nB\n"),
  ]);
  assert.deepEqual(result.stdout, expected);
  const empty = seen.find((m) => m.topic === "src/null");
  assert.ok(empty, "the -n message reached the broker");
  assert.equal(empty.payload.length, 0);
  assert.deepEqual(seen.filter((m) => m.topic === "src/l").map((m) => m.payload.length), [1, 1]);
});

Deno.test("amqtt_pub -l publishes lines as they arrive and exits 0 on SIGTERM while stdin stays open", async () => {
  const { broker, url } = await startBroker();
  await using _broker = broker;
  await using pub = spawnCli("amqtt_pub.ts", ["--url", url, "-t", "stream", "-l"], {
    stdin: "piped",
  });
  const writer = pub.child.stdin.getWriter();
  try {
    const first = nextEvent(broker, "message");
    await writer.write(encoder.encode("first\n"));
    assert.equal(new TextDecoder().decode((await first).payload), "first");
    const second = nextEvent(broker, "message");
    await writer.write(encoder.encode("second\n"));
    assert.equal(new TextDecoder().decode((await second).payload), "second");
    pub.kill("SIGTERM");
    const result = await pub.done;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /Disconnected from broker\n$/);
  } finally {
    await writer.close().catch(() => {});
  }
});

Deno.test("amqtt_pub -q 0/1/2 and -r; amqtt_sub receives the retained message first and each QoS", async () => {
  const { broker, url } = await startBroker();
  await using _broker = broker;
  const seen = recordMessages(broker);
  const retained = await runCli("amqtt_pub.ts", [
    "--url",
    url,
    "-t",
    "q/r",
    "-m",
    "R",
    "-q",
    "1",
    "-r",
  ]);
  assert.equal(retained.code, 0, retained.stderr);
  const stored = broker.retainedMessages().filter((m) => !m.topic.startsWith("$SYS/"));
  assert.deepEqual(stored.map((m) => [m.topic, m.qos]), [["q/r", 1]]);

  const subscribed = nextEvent(broker, "subscribed", (e) => e.topic === "q/#");
  await using sub = spawnCli("amqtt_sub.ts", [
    "--url",
    url,
    "-t",
    "q/#",
    "-q",
    "2",
    "-n",
    "4",
    "-d",
  ]);
  assert.equal((await subscribed).qos, 2);
  const [client] = broker.clients().filter((c) => c.clientId.startsWith("amqtt_sub/"));
  assert.match(client.clientId, /^amqtt_sub\/\d+-.+$/);
  assert.equal(client.cleanSession, true, "a clean session by default, as mosquitto_sub");

  for (const qos of ["0", "1", "2"]) {
    const r = await runCli("amqtt_pub.ts", ["--url", url, "-t", `q/${qos}`, "-q", qos, "-m", qos]);
    assert.equal(r.code, 0, r.stderr);
  }
  const result = await sub.done;
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.text, "R\n0\n1\n2\n");
  assert.deepEqual(seen.map((m) => [m.topic, m.qos, m.retain]), [
    ["q/r", 1, true],
    ["q/0", 0, false],
    ["q/1", 1, false],
    ["q/2", 2, false],
  ]);
  for (const qos of [0, 1, 2]) {
    assert.match(result.stderr, new RegExp(`on 'q/${qos}' \\(QoS ${qos}\\)`));
  }
});

Deno.test("amqtt_sub: the broker publishes its will when it is killed; SIGTERM unsubscribes and exits 0", async () => {
  const { broker, url } = await startBroker();
  await using _broker = broker;
  await using observer = new MQTTClient();
  await observer.connect(url);
  await observer.subscribe([{ topic: "wills/#", qos: 1 }]);

  const willSubscribed = nextEvent(broker, "subscribed", (e) => e.topic === "doomed");
  await using doomed = spawnCli("amqtt_sub.ts", [
    "--url",
    url,
    "-t",
    "doomed",
    "--will-topic",
    "wills/sub",
    "--will-message",
    "sub died",
    "--will-qos",
    "1",
  ]);
  await willSubscribed;
  const calmSubscribed = nextEvent(broker, "subscribed", (e) => e.topic === "calm");
  await using calm = spawnCli("amqtt_sub.ts", [
    "--url",
    url,
    "-t",
    "calm",
    "--will-topic",
    "wills/calm",
    "--will-message",
    "calm died",
  ]);
  const { clientId } = await calmSubscribed;

  doomed.kill("SIGKILL");
  const will = await observer.deliverMessage({ timeout: 10_000 });
  assert.equal(will.topic, "wills/sub");
  assert.equal(new TextDecoder().decode(will.payload), "sub died");
  assert.equal(will.qos, 1);
  assert.equal((await doomed.done).signal, "SIGKILL");

  const unsubscribed = nextEvent(broker, "unsubscribed", (e) => e.clientId === clientId);
  calm.kill("SIGTERM");
  assert.equal((await unsubscribed).topic, "calm");
  const result = await calm.done;
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /Disconnected from broker/);
  // A clean end sends DISCONNECT: no will.
  await assert.rejects(observer.deliverMessage({ timeout: 300 }), { name: "TimeoutError" });
});

Deno.test("amqtt_pub and amqtt_sub over a ws:// URL, with --extra-headers", async () => {
  const { broker } = await startBroker({
    listeners: {
      default: { bind: "127.0.0.1:0" },
      web: { type: "ws", bind: "127.0.0.1:0", path: "/mqtt" },
    },
  });
  await using _broker = broker;
  const web = broker.listeners.find((l) => l.name === "web");
  assert.ok(web);
  const ws = `ws://127.0.0.1:${web.port}/mqtt`;
  const subscribed = nextEvent(broker, "subscribed");
  const connected = nextEvent(broker, "clientConnected");
  await using sub = spawnCli("amqtt_sub.ts", [
    "--url",
    ws,
    "-t",
    "web/#",
    "-n",
    "1",
    "-i",
    "web-sub",
    "--clean-session",
  ]);
  assert.equal((await connected).client.transport, "ws");
  await subscribed;
  const [summary] = broker.clients();
  assert.equal(summary.clientId, "web-sub");
  assert.equal(summary.cleanSession, true);
  const pub = await runCli("amqtt_pub.ts", [
    "--url",
    ws,
    "-t",
    "web/x",
    "-m",
    "over websocket",
    "--extra-headers",
    '{"X-Test": "1"}',
  ]);
  assert.equal(pub.code, 0, pub.stderr);
  const result = await sub.done;
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.text, "over websocket\n");
});

Deno.test("amqtt_pub and amqtt_sub: an unreachable broker is one line and exit code 1 (--config-file client config)", async () => {
  await using dir = await tempDir();
  const config = `${dir.path}/client.yaml`;
  await Deno.writeTextFile(config, "auto_reconnect: false\nkeep_alive: 30\n");
  const url = `mqtt://127.0.0.1:${freePort()}`;
  const [pub, sub] = await Promise.all([
    runCli("amqtt_pub.ts", ["--url", url, "--config-file", config, "-t", "a", "-m", "x"]),
    runCli("amqtt_sub.ts", ["--url", url, "--config-file", config, "-t", "a"]),
  ]);
  for (const [r, name] of [[pub, "amqtt_pub"], [sub, "amqtt_sub"]] as const) {
    assertOneErrorLine(r, name, /^amqtt_(pub|sub): Cannot connect to 127\.0\.0\.1:\d+: .*refused/i);
  }
});

Deno.test("amqtt_sub: losing the broker for good is one line and exit code 1", async () => {
  await using dir = await tempDir();
  const { broker, url } = await startBroker();
  const subscribed = nextEvent(broker, "subscribed");
  await using sub = spawnCli("amqtt_sub.ts", [
    "--url",
    url,
    "--config-file",
    await noRetry(dir.path),
    "-t",
    "a",
  ]);
  await subscribed;
  await broker.shutdown();
  const result = await sub.done;
  assert.equal(result.code, 1);
  assert.match(result.stderr, /\namqtt_sub: Lost the connection to the broker \([^\n]+\)\n$/);
});

Deno.test("amqtt_pub --config-file: a bad client configuration file is one line with its line number, exit code 1", async () => {
  await using dir = await tempDir();
  const config = `${dir.path}/client.yaml`;
  await Deno.writeTextFile(config, "keep_alive: 10\ndefault_qos: 7\n");
  const r = await runCli("amqtt_pub.ts", ["--config-file", config, "-t", "a", "-m", "x"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr.trim(), /^amqtt_pub: default_qos: .*line 2\)$/);
});

Deno.test("amqtt_pub and amqtt_sub over mqtts:// trust the broker with --ca-file, --ca-path or --ca-data, and fail without", async () => {
  await using certs = await certFiles();
  await using dir = await tempDir();
  const { caFile: ca, serverCertFile: certfile, serverKeyFile: keyfile } = certs;
  const { broker, port } = await startBroker({
    listeners: { default: { bind: "127.0.0.1:0", ssl: true, certfile, keyfile } },
  });
  await using _broker = broker;
  const url = `mqtts://127.0.0.1:${port}`;
  const subscribed = nextEvent(broker, "subscribed");
  await using sub = spawnCli("amqtt_sub.ts", [
    "--url",
    url,
    "--ca-data",
    certs.ca,
    "-t",
    "s",
    "-n",
    "2",
  ]);
  await subscribed;
  const caDir = `${dir.path}/cas`;
  await Deno.mkdir(caDir);
  await Deno.writeTextFile(`${caDir}/ca.pem`, certs.ca);
  const [pub, viaPath, untrusted] = await Promise.all([
    runCli("amqtt_pub.ts", ["--url", url, "--ca-file", ca, "-t", "s", "-m", "secure"]),
    runCli("amqtt_pub.ts", ["--url", url, "--ca-path", caDir, "-t", "s", "-m", "secure"]),
    runCli("amqtt_pub.ts", [
      "--url",
      url,
      "--config-file",
      await noRetry(dir.path),
      "-t",
      "s",
      "-m",
      "x",
    ]),
  ]);
  assert.equal(pub.code, 0, pub.stderr);
  assert.equal(viaPath.code, 0, viaPath.stderr);
  const result = await sub.done;
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.text, "secure\nsecure\n");
  assert.equal(untrusted.code, 1);
  assert.match(untrusted.stderr, /\namqtt_pub: Cannot connect to 127\.0\.0\.1:\d+: [^\n]+\n$/);
  // The reason, not "Connection closed before CONNACK".
  assert.match(untrusted.stderr, /invalid peer certificate: UnknownIssuer/);
});

Deno.test("amqtt_pub sends -i, -k, --clean-session and the --will-* options in CONNECT; the broker publishes and retains the will when amqtt_pub dies", async () => {
  const { broker, url, connects } = await startRecordingBroker();
  await using _broker = broker;
  await using observer = new MQTTClient({ clientId: "will-observer" });
  await observer.connect(url);
  await observer.subscribe([{ topic: "wills/#", qos: 2 }]);

  const connected = nextEvent(broker, "clientConnected", (e) => e.clientId === "pub-will");
  await using pub = spawnCli("amqtt_pub.ts", [
    "--url",
    url,
    "-t",
    "alive",
    "-l",
    "-i",
    "pub-will",
    "-k",
    "7",
    "--clean-session",
    "--will-topic",
    "wills/pub",
    "--will-message",
    "pub died",
    "--will-qos",
    "2",
    "--will-retain",
    "-d",
  ], { stdin: "piped" });
  const writer = pub.child.stdin.getWriter();
  try {
    await connected;
    const connect = connects.find((c) => c.clientId === "pub-will");
    assert.ok(connect, "the broker decoded amqtt_pub's CONNECT");
    // aMQTT sends keep_alive - ping_delay (default 1) so that its PINGREQ lands in time.
    assert.equal(connect.keepAlive, 6);
    assert.equal(connect.clean, true);
    assert.ok(connect.will, "CONNECT carries the will [MQTT-3.1.2-8]");
    assert.equal(connect.will.topic, "wills/pub");
    assert.equal(decoder.decode(connect.will.payload), "pub died");
    assert.equal(connect.will.qos, 2);
    assert.equal(connect.will.retain, true);

    const published = nextEvent(broker, "message", (m) => m.topic === "alive");
    await writer.write(encoder.encode("still here\n"));
    assert.equal(decoder.decode((await published).payload), "still here");
    assert.match(pub.stderr(), /:: DEBUG - pub-will Broker URL mqtt:\/\/127\.0\.0\.1:\d+/);

    // No DISCONNECT: the broker must publish the will [MQTT-3.1.2-8].
    pub.kill("SIGKILL");
    assert.equal((await pub.done).signal, "SIGKILL");
    const will = await observer.deliverMessage({ timeout: 10_000 });
    assert.equal(will.topic, "wills/pub");
    assert.equal(decoder.decode(will.payload), "pub died");
    assert.equal(will.qos, 2);
    const retained = broker.retainedMessages().find((m) => m.topic === "wills/pub");
    assert.ok(retained, "--will-retain: the broker retained the will");
    assert.equal(decoder.decode(retained.payload), "pub died");
    assert.equal(retained.qos, 2);
  } finally {
    await writer.close().catch(() => {});
  }
});

Deno.test("amqtt_pub CONNECT defaults: client id amqtt_pub/<pid>-<host>, a clean session, no will, keep-alive 10, the --config-file file's keep_alive, and -k over it (each less ping_delay, as aMQTT)", async () => {
  const { broker, url, connects } = await startRecordingBroker();
  await using _broker = broker;
  await using dir = await tempDir();
  const config = `${dir.path}/client.yaml`;
  await Deno.writeTextFile(config, "keep_alive: 30\n");
  const runs: [string, string[], number][] = [
    ["default", [], 9],
    ["config", ["--config-file", config], 29],
    ["flag", ["--config-file", config, "-k", "0"], 0],
  ];
  for (const [name, args, keepAlive] of runs) {
    const r = await runCli("amqtt_pub.ts", ["--url", url, "-t", "t", "-m", name, ...args]);
    assert.equal(r.code, 0, r.stderr);
    const connect = connects.at(-1);
    assert.ok(connect);
    assert.equal(connect.keepAlive, keepAlive, `${name}: keep-alive`);
    assert.match(connect.clientId, /^amqtt_pub\/\d+-.+$/);
    assert.equal(connect.clean, true, "a clean session by default, as mosquitto_pub");
    assert.equal(connect.will, undefined);
  }
  assert.equal(connects.length, runs.length);
});

Deno.test("amqtt_pub and amqtt_sub send --extra-headers in the WebSocket handshake; a refused handshake is one line and exit code 1", async () => {
  const seen: Headers[] = [];
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) => {
      seen.push(new Headers(req.headers));
      return new Response("no", { status: 403 });
    },
  );
  await using dir = await tempDir();
  const config = await noRetry(dir.path);
  const url = `ws://127.0.0.1:${server.addr.port}/mqtt`;
  const headers = '{"Authorization": "Bearer t0ken", "X-Count": 3}';
  const [pub, sub] = await Promise.all([
    runCli("amqtt_pub.ts", [
      "--url",
      url,
      "--config-file",
      config,
      "-t",
      "a",
      "-m",
      "x",
      "--extra-headers",
      headers,
    ]),
    runCli("amqtt_sub.ts", [
      "--url",
      url,
      "--config-file",
      config,
      "-t",
      "a",
      "--extra-headers",
      headers,
    ]),
  ]);
  assert.equal(seen.length, 2, "one handshake each, no retry");
  for (const h of seen) {
    assert.equal(h.get("authorization"), "Bearer t0ken");
    assert.equal(h.get("x-count"), "3");
    assert.equal(h.get("upgrade")?.toLowerCase(), "websocket");
  }
  for (const [r, name] of [[pub, "amqtt_pub"], [sub, "amqtt_sub"]] as const) {
    assertOneErrorLine(r, name, new RegExp(`^${name}: Cannot connect to 127\\.0\\.0\\.1:\\d+: `));
  }
});

Deno.test("amqtt_sub: Ctrl-C (SIGINT) unsubscribes every filter, disconnects and exits 0", async () => {
  const { broker, url } = await startBroker();
  await using _broker = broker;
  const subscribed = nextEvent(broker, "subscribed", (e) => e.topic === "b");
  await using sub = spawnCli("amqtt_sub.ts", ["--url", url, "-t", "a", "-t", "b", "-i", "ctrl-c"]);
  await subscribed;
  const unsubscribed: string[] = [];
  broker.on("unsubscribed", (e) => {
    if (e.clientId === "ctrl-c") unsubscribed.push(e.topic);
  });
  const gone = nextEvent(broker, "clientDisconnected", (e) => e.clientId === "ctrl-c");
  sub.kill("SIGINT");
  await gone;
  const result = await sub.done;
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(unsubscribed.sort(), ["a", "b"]);
  assert.deepEqual(broker.subscriptions().filter((x) => x.clientId === "ctrl-c"), []);
  assert.match(result.stderr, /ctrl-c Disconnected from broker\n$/);
});

Deno.test("amqtt_sub: a filter the broker refuses is a warning; every filter refused is one line and exit code 1 (SUBACK codes in filter order [MQTT-3.9.3-1])", async () => {
  const { broker, url } = await startBroker({
    auth: { "allow-anonymous": true, plugins: ["auth_anonymous"] },
    "topic-check": { enabled: true, plugins: ["topic_acl"], acl: { anonymous: ["public/#"] } },
  });
  await using _broker = broker;
  const refused = await runCli("amqtt_sub.ts", [
    "--url",
    url,
    "-t",
    "private/a",
    "-t",
    "private/b",
  ]);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /:: WARNING - [^\n]* The broker refused the filter 'private\/a'\n/);
  const errors = refused.stderr.split("\n").filter((l) => l.startsWith("amqtt_sub:"));
  assert.deepEqual(errors, ["amqtt_sub: The broker refused every topic filter"]);

  const subscribed = nextEvent(broker, "subscribed", (e) => e.topic === "public/#");
  await using partly = spawnCli("amqtt_sub.ts", [
    "--url",
    url,
    "-t",
    "private/a",
    "-t",
    "public/#",
    "-n",
    "1",
  ]);
  await subscribed;
  await partly.waitForStderr(/The broker refused the filter 'private\/a'/);
  const pub = await runCli("amqtt_pub.ts", ["--url", url, "-t", "public/x", "-m", "allowed"]);
  assert.equal(pub.code, 0, pub.stderr);
  const result = await partly.done;
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.text, "allowed\n");
});

Deno.test("amqtt_pub (exit code 130) and amqtt_sub (exit code 0) give up at Ctrl-C while the broker has not answered CONNECT", async () => {
  // A broker that accepts the connection and never answers.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  try {
    const url = `mqtt://127.0.0.1:${listener.addr.port}`;
    const runs = [
      ["amqtt_pub", ["-m", "x"], 130, /\namqtt_pub: Interrupted while connecting\n$/],
      // Nothing after the stop: no error line.
      ["amqtt_sub", [], 0, / SIGINT received: stopping\n$/],
    ] as const;
    for (const [name, extra, code, ending] of runs) {
      await using tool = spawnCli(`${name}.ts`, ["--url", url, "-t", "a", "-d", ...extra]);
      await tool.waitForStderr(/Connecting to broker/);
      tool.kill("SIGINT");
      const result = await tool.done;
      assert.equal(result.code, code, `${name}: ${result.stderr}`);
      assert.match(result.stderr, new RegExp(`${name}/\\d+-\\S+ SIGINT received: stopping`));
      assert.match(result.stderr, ending);
    }
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const conn of held) conn.close();
  }
});

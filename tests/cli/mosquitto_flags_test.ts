/**
 * mosquitto_pub/mosquitto_sub command lines run unchanged as `amqtt_pub`/`amqtt_sub` against a
 * broker started by the test: one representative line per flag, each tool a subprocess.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Broker } from "../../broker.ts";
import { PacketType } from "../../src/packet/constants.ts";
import type { ConnectPacket } from "../../src/packet/types.ts";
import { hashPassword } from "../../src/plugins/mod.ts";
import { certFiles } from "../_helpers/certs.ts";
import { freePort, Mosquitto } from "../_helpers/peers.ts";
import { nextEvent, recordMessages, runCli, spawnCli, startBroker, tempDir } from "./_helpers.ts";

/** A broker on 127.0.0.1:0 recording every CONNECT; `config` adds to its configuration. */
async function recordingBroker(config: Record<string, unknown> = {}) {
  const connects: ConnectPacket[] = [];
  const broker = new Broker({ listeners: { default: { bind: "127.0.0.1:0" } }, ...config }, {
    packetEvents: true,
    plugins: [{
      name: "connect_recorder",
      onMqttPacketReceived({ packet }) {
        if (packet.type === PacketType.CONNECT) connects.push(packet);
      },
    }],
  });
  await broker.start();
  return { broker, port: String(broker.listeners[0].port), connects };
}

Deno.test("mosquitto_pub line: -h HOST -p PORT publishes to that host (-h is never help); -q -r -i -k -d go into CONNECT and PUBLISH", async () => {
  const { broker, port, connects } = await recordingBroker();
  await using _broker = broker;
  const seen = recordMessages(broker);
  const r = await runCli("amqtt_pub.ts", [
    "-h",
    "127.0.0.1",
    "-p",
    port,
    "-t",
    "a/b",
    "-m",
    "hello",
    "-q",
    "1",
    "-r",
    "-i",
    "mosq-style",
    "-k",
    "31",
    "-d",
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.text, "", "nothing on stdout: no help was printed");
  assert.match(r.stderr, /DEBUG - mosq-style Broker URL mqtt:\/\/127\.0\.0\.1:\d+/);
  assert.deepEqual(seen.map((m) => [m.topic, new TextDecoder().decode(m.payload), m.qos]), [
    ["a/b", "hello", 1],
  ]);
  assert.equal(broker.retainedMessages().filter((m) => m.topic === "a/b").length, 1);
  assert.equal(connects[0].clientId, "mosq-style");
  assert.equal(connects[0].keepAlive, 30, "-k 31 less aMQTT's ping_delay");
});

Deno.test("mosquitto_pub lines: -f FILE, -s, -l and -n with -h/-p; -L mqtt://host:port/topic gives the topic", async () => {
  const { broker, port } = await startBroker();
  await using _broker = broker;
  await using dir = await tempDir();
  const seen = recordMessages(broker);
  const file = `${dir.path}/lines`;
  await Deno.writeTextFile(file, "one\ntwo\n");
  const at = ["-h", "127.0.0.1", "-p", String(port)];
  const runs: [string[], string | undefined][] = [
    [[...at, "-t", "f", "-f", file], undefined],
    [[...at, "-t", "s", "-s"], "whole\nthing"],
    [[...at, "-t", "l", "-l"], "x\ny\n"],
    [[...at, "-t", "n", "-n"], undefined],
    [["-L", `mqtt://127.0.0.1:${port}/from/url`, "-m", "u"], undefined],
  ];
  for (const [args, stdin] of runs) {
    const r = await runCli("amqtt_pub.ts", args, { stdin });
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  }
  const text = (p: Uint8Array) => new TextDecoder().decode(p);
  assert.deepEqual(seen.map((m) => [m.topic, text(m.payload)]), [
    ["f", "one"],
    ["f", "two"],
    ["s", "whole\nthing"],
    ["l", "x"],
    ["l", "y"],
    ["n", ""],
    ["from/url", "u"],
  ]);
});

Deno.test("mosquitto_sub lines: -v prints 'topic payload' and '(null)' for an empty one; -C counts empty messages; -N, -F and -R", async () => {
  const { broker, port } = await startBroker();
  await using _broker = broker;
  const at = ["-h", "127.0.0.1", "-p", String(port)];
  const retained = await runCli("amqtt_pub.ts", [...at, "-t", "f/old", "-m", "stale", "-r"]);
  assert.equal(retained.code, 0, retained.stderr);

  const lines = [
    ["-v", "-C", "3"],
    ["-C", "3"],
    ["-N", "-C", "3"],
    ["-F", "%t|%p|%q|%r|%l|%x|%%\\t", "-C", "3", "-q", "1"],
    ["-R", "-v", "-C", "2"],
  ];
  const subs = lines.map((extra) => spawnCli("amqtt_sub.ts", [...at, "-t", "f/#", ...extra]));
  try {
    await waitForSubscribers(broker, "f/#", lines.length);
    for (const args of [["-t", "f/e", "-n"], ["-t", "f/m", "-m", "hi", "-q", "1"]]) {
      const r = await runCli("amqtt_pub.ts", [...at, ...args]);
      assert.equal(r.code, 0, r.stderr);
    }
    const [verbose, plain, noEol, format, noRetained] = await Promise.all(subs.map((s) => s.done));
    for (const r of [verbose, plain, noEol, format, noRetained]) assert.equal(r.code, 0, r.stderr);
    assert.equal(verbose.text, "f/old stale\nf/e (null)\nf/m hi\n");
    assert.equal(plain.text, "stale\n\nhi\n", "the empty message is an empty line");
    assert.equal(noEol.text, "stalehi");
    assert.equal(
      format.text,
      "f/old|stale|0|1|5|7374616c65|%\t\nf/e||0|0|0||%\t\nf/m|hi|1|0|2|6869|%\t\n",
    );
    assert.equal(noRetained.text, "f/e (null)\nf/m hi\n", "-R skips the retained message");
  } finally {
    for (const s of subs) await s[Symbol.asyncDispose]();
  }
});

/** Waits until `count` sessions subscribe to `filter`. */
async function waitForSubscribers(broker: Broker, filter: string, count: number): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (broker.subscriptions().filter((s) => s.topic === filter).length >= count) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`Fewer than ${count} subscribers to ${filter}`);
}

Deno.test("mosquitto_sub -W SECONDS: exits with code 27 and 'Timed out' once the time has passed, leaving nothing behind", async () => {
  const { broker, port } = await startBroker();
  await using _broker = broker;
  const r = await runCli("amqtt_sub.ts", [
    "-h",
    "127.0.0.1",
    "-p",
    String(port),
    "-t",
    "w",
    "-W",
    "1",
  ]);
  assert.equal(r.code, 27, r.stderr);
  assert.match(r.stderr, /\namqtt_sub: Timed out\n$/);
  assert.deepEqual(broker.clients(), []);
});

Deno.test("mosquitto lines: -u/-P, --pw-file and $AMQTT_PASSWORD log in; a wrong password is exit code 1 with the CONNACK reason", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/passwd`;
  await Deno.writeTextFile(file, `alice:${await hashPassword("s3cret")}\n`);
  const pwFile = `${dir.path}/pw`;
  await Deno.writeTextFile(pwFile, "s3cret\n");
  const { broker, port } = await startBroker({
    auth: { "allow-anonymous": false, "password-file": file },
  });
  await using _broker = broker;
  const seen = recordMessages(broker);
  const at = ["-h", "127.0.0.1", "-p", String(port), "-u", "alice"];
  const [flag, fromFile, fromEnv, wrong, none] = await Promise.all([
    runCli("amqtt_pub.ts", [...at, "-P", "s3cret", "-t", "t", "-m", "flag"]),
    runCli("amqtt_pub.ts", [...at, "--pw-file", pwFile, "-t", "t", "-m", "file"]),
    runCli("amqtt_pub.ts", [...at, "-t", "t", "-m", "env"], { env: { AMQTT_PASSWORD: "s3cret" } }),
    runCli("amqtt_pub.ts", [...at, "-P", "wrong", "-t", "t", "-m", "x"]),
    runCli("amqtt_sub.ts", [...at, "-t", "t"]),
  ]);
  for (const r of [flag, fromFile, fromEnv]) assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(seen.map((m) => new TextDecoder().decode(m.payload)).sort(), [
    "env",
    "file",
    "flag",
  ]);
  for (const r of [wrong, none]) {
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /(not authorized|bad username or password)\n$/);
  }
});

Deno.test("mosquitto -V mqttv31 and mqttv311 set the protocol level of CONNECT", async () => {
  const { broker, port, connects } = await recordingBroker();
  await using _broker = broker;
  for (const version of ["mqttv31", "mqttv311", "31"]) {
    const r = await runCli("amqtt_pub.ts", [
      ...["-h", "127.0.0.1", "-p", port, "-V", version, "-t", "v", "-m", version],
    ]);
    assert.equal(r.code, 0, r.stderr);
  }
  assert.deepEqual(connects.map((c) => c.protocolVersion), [3, 4, 3]);
});

Deno.test("mosquitto TLS lines: --cafile and --capath with -h/-p turn TLS on; --cert/--key present a client certificate; --insecure skips the host name check", async () => {
  await using certs = await certFiles();
  await using other = await certFiles({ serverNames: "DNS:elsewhere.example" });
  await using dir = await tempDir();
  const { broker } = await startBroker({
    listeners: {
      default: { bind: "127.0.0.1:0" },
      mutual: {
        bind: "127.0.0.1:0",
        ssl: true,
        cafile: certs.caFile,
        certfile: certs.serverCertFile,
        keyfile: certs.serverKeyFile,
        client_cert_mode: "required",
        use_cert_cn_as_username: true,
      },
      misnamed: {
        bind: "127.0.0.1:0",
        ssl: true,
        certfile: other.serverCertFile,
        keyfile: other.serverKeyFile,
      },
    },
  });
  await using _broker = broker;
  const seen = recordMessages(broker);
  const [, mutual, misnamed] = broker.listeners.map((l) => String(l.port));
  const caDir = `${dir.path}/cas`;
  await Deno.mkdir(caDir);
  await Deno.writeTextFile(`${caDir}/ca.crt`, certs.ca);
  const client = ["--cert", certs.clientCertFile, "--key", certs.clientKeyFile];
  const [viaFile, viaPath, noCert, checked, insecure] = await Promise.all([
    runCli("amqtt_pub.ts", [
      "-h",
      "localhost",
      "-p",
      mutual,
      "--cafile",
      certs.caFile,
      ...client,
      "-t",
      "m",
      "-m",
      "cafile",
    ]),
    runCli("amqtt_pub.ts", [
      "-h",
      "127.0.0.1",
      "-p",
      mutual,
      "--capath",
      caDir,
      ...client,
      "-t",
      "m",
      "-m",
      "capath",
    ]),
    runCli("amqtt_pub.ts", [
      "-h",
      "127.0.0.1",
      "-p",
      mutual,
      "--cafile",
      certs.caFile,
      "-t",
      "m",
      "-m",
      "x",
      "--config-file",
      await noRetry(dir.path),
    ]),
    runCli("amqtt_pub.ts", [
      "-h",
      "127.0.0.1",
      "-p",
      misnamed,
      "--cafile",
      other.caFile,
      "-t",
      "m",
      "-m",
      "x",
      "--config-file",
      await noRetry(dir.path),
    ]),
    runCli("amqtt_pub.ts", [
      "-h",
      "127.0.0.1",
      "-p",
      misnamed,
      "--cafile",
      other.caFile,
      "--insecure",
      "-t",
      "m",
      "-m",
      "insecure",
    ]),
  ]);
  for (const r of [viaFile, viaPath, insecure]) assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(seen.map((m) => new TextDecoder().decode(m.payload)).sort(), [
    "cafile",
    "capath",
    "insecure",
  ]);
  assert.equal(noCert.code, 1, "the listener requires a client certificate");
  assert.equal(checked.code, 1, "the certificate does not name 127.0.0.1");
  assert.match(checked.stderr, /\namqtt_pub: Cannot connect to 127\.0\.0\.1:\d+: [^\n]*\n$/);
});

/** A client config without reconnects, so that a failing connection fails at once. */
async function noRetry(dir: string): Promise<string> {
  const path = `${dir}/no_retry.yaml`;
  await Deno.writeTextFile(path, "auto_reconnect: false\n");
  return path;
}

Deno.test("amqtt_pub and amqtt_sub leave no session behind by default; -c -i ID keeps one that queues QoS 1 messages, as mosquitto", async () => {
  const { broker, port } = await startBroker();
  await using _broker = broker;
  const at = ["-h", "127.0.0.1", "-p", String(port)];
  for (let i = 0; i < 3; i++) {
    const r = await runCli("amqtt_pub.ts", [...at, "-t", "t", "-m", String(i), "-q", "1"]);
    assert.equal(r.code, 0, r.stderr);
  }
  const once = await runCli("amqtt_sub.ts", [...at, "-t", "t", "-W", "1"]);
  assert.equal(once.code, 27, once.stderr);
  assert.deepEqual(broker.clients(), [], "four runs leave no session");

  // mosquitto_sub -c -i keep: the session stays and collects QoS 1 messages while away.
  const first = await runCli("amqtt_sub.ts", [
    ...at,
    "-c",
    "-i",
    "keep",
    "-t",
    "k",
    "-q",
    "1",
    "-W",
    "1",
  ]);
  assert.equal(first.code, 27, first.stderr);
  assert.deepEqual(broker.clients().map((c) => [c.clientId, c.connected, c.cleanSession]), [
    ["keep", false, false],
  ]);
  const pub = await runCli("amqtt_pub.ts", [...at, "-t", "k", "-m", "queued", "-q", "1"]);
  assert.equal(pub.code, 0, pub.stderr);
  const second = await runCli("amqtt_sub.ts", [
    ...at,
    "-c",
    "-i",
    "keep",
    "-t",
    "k",
    "-q",
    "1",
    "-C",
    "1",
  ]);
  assert.equal(second.code, 0, second.stderr);
  assert.equal(second.text, "queued\n");
});

Deno.test("amqtt_sub reconnects and resubscribes after the broker restarts; --reconnect-retries N gives up after N attempts", async () => {
  const port = freePort();
  const config = { listeners: { default: { bind: `127.0.0.1:${port}` } } };
  let broker = new Broker(config);
  await broker.start();
  const subscribed = nextEvent(broker, "subscribed");
  await using sub = spawnCli("amqtt_sub.ts", [
    "-h",
    "127.0.0.1",
    "-p",
    String(port),
    "-t",
    "r",
    "-C",
    "1",
  ]);
  await using capped = spawnCli("amqtt_sub.ts", [
    ...["-h", "127.0.0.1", "-p", String(port), "-t", "x", "--reconnect-retries", "1"],
  ]);
  await subscribed;
  await waitForSubscribers(broker, "r", 1);
  await waitForSubscribers(broker, "x", 1);
  await broker.shutdown();
  // The capped one tries once (after 1 s), finds no broker, and exits.
  const gaveUp = await capped.done;
  assert.equal(gaveUp.code, 1);
  assert.match(
    gaveUp.stderr,
    /\namqtt_sub: Lost the connection to the broker and 1 reconnect attempts failed \(Cannot connect to 127\.0\.0\.1:\d+: [^\n]+\)\n$/,
  );
  await sub.waitForStderr(/Lost the connection to the broker/);

  broker = new Broker(config);
  await using _again = broker;
  await broker.start();
  await waitForSubscribers(broker, "r", 1);
  const r = await runCli("amqtt_pub.ts", [
    "-h",
    "127.0.0.1",
    "-p",
    String(port),
    "-t",
    "r",
    "-m",
    "back",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const result = await sub.done;
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.text, "back\n");
  assert.match(result.stderr, /Reconnected/);
});

/** A subscriber process whose stdout can be awaited as it arrives. */
function spawnSubscriber(command: string[]) {
  const child = new Deno.Command(command[0], {
    args: command.slice(1),
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  const wakers = new Set<() => void>();
  const reading = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) {
      out += decoder.decode(chunk, { stream: true });
      for (const wake of wakers) wake();
    }
  })();
  const stderr = new Response(child.stderr).text();
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  return {
    started: (text: string) =>
      new Promise<void>((resolve) => {
        const check = () => {
          if (out.includes(text)) {
            wakers.delete(check);
            resolve();
          }
        };
        wakers.add(check);
        check();
      }),
    async done() {
      const status = await child.status;
      clearTimeout(timer);
      await reading;
      return { code: status.code, out, err: await stderr };
    },
  };
}

Deno.test("the same script prints the same with mosquitto_pub/mosquitto_sub and amqtt pub/sub against mosquitto (-v, -F, -N, -C)", async () => {
  await using mosquitto = await Mosquitto.start();
  const at = ["-h", "127.0.0.1", "-p", String(mosquitto.port)];
  const cli = fileURLToPath(new URL("../../cli/main.ts", import.meta.url));
  const config = fileURLToPath(new URL("../../deno.json", import.meta.url));
  const amqtt = (tool: string) => [Deno.execPath(), "run", "-A", "--config", config, cli, tool];
  const tools = {
    mosquitto: { pub: ["mosquitto_pub"], sub: ["mosquitto_sub"] },
    amqtt: { pub: amqtt("pub"), sub: amqtt("sub") },
  };
  const modes = [["-v"], ["-F", "%t|%p|%q|%r|%l|%x|%X|%%|\\t."], ["-N"]];
  const outputs: Record<string, string[]> = { mosquitto: [], amqtt: [] };
  for (const [name, tool] of Object.entries(tools)) {
    const pub = async (args: string[]) => {
      const r = await new Deno.Command(tool.pub[0], {
        args: [...tool.pub.slice(1), ...at, ...args],
        stdin: "null",
      }).output();
      assert.equal(
        r.code,
        0,
        `${name} pub ${args.join(" ")}: ${new TextDecoder().decode(r.stderr)}`,
      );
    };
    await pub(["-t", "cmp/old", "-m", "stale", "-r", "-q", "1"]);
    const subs = modes.map((mode) =>
      spawnSubscriber([...tool.sub, ...at, "-t", "cmp/#", "-q", "1", "-C", "3", ...mode])
    );
    // Each prints the retained message once it has subscribed.
    for (const s of subs) await s.started("stale");
    await pub(["-t", "cmp/empty", "-n"]);
    await pub(["-t", "cmp/m", "-m", "hi there", "-q", "1"]);
    for (const s of subs) {
      const r = await s.done();
      assert.equal(r.code, 0, `${name} sub: ${r.err}`);
      outputs[name].push(r.out);
    }
    await pub(["-t", "cmp/old", "-r", "-n"]); // clears the retained message
  }
  assert.deepEqual(outputs.amqtt, outputs.mosquitto);
  assert.equal(outputs.amqtt[0], "cmp/old stale\ncmp/empty (null)\ncmp/m hi there\n");
});

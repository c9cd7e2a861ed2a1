/**
 * amqtt_pub, amqtt_sub and the `amqtt` entry of main.ts: every wrong or conflicting use is one
 * line on stderr with exit code 2; a failure at run time exits 1; `--help` and `--version` work.
 */

import assert from "node:assert/strict";
import { type Entry, runCli } from "./_helpers.ts";

const PUB: [string[], RegExp][] = [
  [["-t", "a"], /Give exactly one message source: -m, -f, -s, -l or -n/],
  [
    ["-t", "a", "-m", "x", "-f", "f"],
    /Option '-m, --message <message>' cannot be used with option '-f/,
  ],
  [["-t", "a", "-s", "-l"], /cannot be used with option/],
  [["-t", "a", "-n", "-m", "x"], /cannot be used with option/],
  [["-m", "x"], /Give the topic with -t \(or as the path of an -L mqtt:\/\/host\/topic URL\)/],
  [["-L", "mqtt://127.0.0.1:1883", "-m", "x"], /Give the topic with -t/],
  [["-t", "a", "-m", "x", "-q", "3"], /argument '3' is invalid\. QoS must be 0, 1 or 2/],
  [
    ["-t", "a", "-m", "x", "-k", "-1"],
    /Option '-k, --keep-alive <seconds>' argument '-1' is invalid/,
  ],
  [["-t", "a/+", "-m", "x"], /Invalid topic "a\/\+"/],
  [
    ["-t", "a", "-m", "x", "--will-topic", "w"],
    /--will-topic and --will-message must be given together/,
  ],
  [["-t", "a", "-m", "x", "--will-message", "w"], /must be given together/],
  [["-t", "a", "-m", "x", "--will-retain"], /need --will-topic and --will-message/],
  [["-t", "a", "-m", "x", "--will-topic", "w/#", "--will-message", "m"], /Invalid --will-topic/],
  [["-t", "a", "-m", "x", "--extra-headers", "{}"], /applies to ws:\/\/ and wss:\/\/ URLs only/],
  [
    ["--url", "ws://h", "-t", "a", "-m", "x", "--extra-headers", "{nope"],
    /Invalid --extra-headers/,
  ],
  [["--url", "http://h", "-t", "a", "-m", "x"], /the scheme must be mqtt, mqtts, ws or wss/],
  [["--url", "nonsense", "-t", "a", "-m", "x"], /Invalid --url "nonsense": not a URL/],
  [["-t", "a", "-m", "x", "--bogus"], /Unknown option '--bogus'/],
  // mosquitto_pub's flags: a flag that takes a value never turns into help.
  [["-t", "a", "-m", "x", "-h"], /Option '-h, --host <host>' argument missing/],
  [["-t", "a", "-m", "x", "-h", "bad host"], /Invalid -h\/--host "bad host": not a host name/],
  [["-t", "a", "-m", "x", "-p", "0"], /Option '-p, --port <port>' argument '0' is invalid/],
  [["-t", "a", "-m", "x", "-p", "x"], /Option '-p, --port <port>' argument 'x' is invalid/],
  [["-t", "a", "-m", "x", "-V", "4"], /Expected mqttv5, mqttv311 or mqttv31/],
  [["-t", "a", "-m", "x", "-P", "secret"], /A password needs a user name \(-u\) before MQTT 5/],
  [["-t", "a", "-m", "x", "-c"], /-c\/--disable-clean-session needs a client id \(-i\)/],
  [
    ["-t", "a", "-m", "x", "-c", "client.yaml"],
    /Too many arguments: "client\.yaml" \(-c is --disable-clean-session and takes no value; a configuration file is --config-file FILE\)/,
  ],
  [["-t", "a", "-m", "x", "-c", "-i", "x", "--clean-session"], /contradict/],
  [["-t", "a", "-m", "x", "-i", "x", "-I", "p"], /cannot be used together/],
  [["-t", "a", "-m", "x", "--cert", "c.pem"], /--cert and --key must be given together/],
  [["-t", "a", "-m", "x", "-u", "u", "-P", "p", "--pw-file", "f"], /cannot be used together/],
  [
    ["-L", "mqtt://127.0.0.1", "-h", "127.0.0.1", "-t", "a", "-m", "x"],
    /Give the broker either as -L\/--url or as -h\/--host and -p\/--port/,
  ],
];

const SUB: [string[], RegExp][] = [
  [[], /Give a topic filter with -t/],
  [["-t", "a/#/b"], /Invalid topic filter "a\/#\/b"/],
  [["-t", "a", "-n", "0"], /Option '-n, --count <count>' argument '0' is invalid/],
  [["-t", "a", "-q", "x"], /QoS must be 0, 1 or 2/],
  [["-t", "a", "--will-qos", "1"], /need --will-topic and --will-message/],
  [["-t", "a", "extra"], /Too many arguments/],
  [["-t", "a", "-n", "1", "-C", "1"], /-n\/--count and -C\/--msg-count are the same/],
  [["-t", "a", "-W", "0"], /Option '-W, --timeout <seconds>' argument '0' is invalid/],
  [["-t", "a", "--reconnect-retries", "-2"], /argument '-2' is invalid/],
  [["-t", "a", "-h"], /Option '-h, --host <host>' argument missing/],
  // mosquitto_sub flags without an equivalent are refused, never ignored.
  [["-t", "a", "-T", "a/b"], /Unknown option '-T'/],
  [["-t", "a", "-E"], /Unknown option '-E'/],
];

function check(name: string, args: string[], r: { code: number; stderr: string }, re: RegExp) {
  assert.equal(r.code, 2, `${name} ${args.join(" ")}: ${r.stderr}`);
  assert.match(r.stderr, re, `${name} ${args.join(" ")}`);
  assert.match(r.stderr, new RegExp(`^${name}: [^\\n]+\\n$`), "exactly one line");
}

/** Runs every case, four processes at a time (the machine may be busy). */
async function runAll(entry: Entry, cases: [string[], RegExp][]) {
  const results: Awaited<ReturnType<typeof runCli>>[] = [];
  for (let i = 0; i < cases.length; i += 4) {
    const batch = cases.slice(i, i + 4).map(([args]) => runCli(entry, args, { timeoutMs: 60_000 }));
    results.push(...await Promise.all(batch));
  }
  return results;
}

Deno.test("amqtt_pub: wrong, missing and conflicting flags are one line and exit code 2", async () => {
  const results = await runAll("amqtt_pub.ts", PUB);
  PUB.forEach(([args, re], i) => check("amqtt_pub", args, results[i], re));
});

Deno.test("amqtt_sub: wrong and missing flags are one line and exit code 2", async () => {
  const results = await runAll("amqtt_sub.ts", SUB);
  SUB.forEach(([args, re], i) => check("amqtt_sub", args, results[i], re));
});

Deno.test("amqtt_pub: an unreadable -f (missing, a directory) and --ca-file fail before connecting with exit code 1", async () => {
  const directory = await Deno.makeTempDir();
  // Port 1 refuses: had the tool connected first, the error would be about the connection.
  const [file, ca, dir] = await Promise.all([
    runCli("amqtt_pub.ts", ["-t", "a", "-f", "/no/such/file"]),
    runCli("amqtt_pub.ts", ["-t", "a", "-m", "x", "--ca-file", "/no/such/ca.pem"]),
    runCli("amqtt_pub.ts", ["--url", "mqtt://127.0.0.1:1", "-t", "a", "-f", directory]),
  ]).finally(() => Deno.remove(directory));
  assert.equal(dir.code, 1);
  assert.equal(dir.stderr, `amqtt_pub: Cannot read -f file "${directory}": it is a directory\n`);
  assert.equal(file.code, 1);
  assert.equal(file.stderr, 'amqtt_pub: Cannot read -f file "/no/such/file": it does not exist\n');
  assert.equal(ca.code, 1);
  assert.equal(
    ca.stderr,
    'amqtt_pub: Cannot read --ca-file "/no/such/ca.pem": it does not exist\n',
  );
});

Deno.test("amqtt_pub and amqtt_sub --help and --version", async () => {
  const [pubHelp, subHelp, pubVersion, subVersion] = await Promise.all([
    runCli("amqtt_pub.ts", ["--help"]),
    runCli("amqtt_sub.ts", ["--help"]),
    runCli("amqtt_pub.ts", ["--version"]),
    runCli("amqtt_sub.ts", ["--version"]),
  ]);
  for (const help of [pubHelp, subHelp]) {
    assert.equal(help.code, 0);
    for (
      const flag of [
        "-L, --url",
        "--config-file",
        "-c, --disable-clean-session",
        "-h, --host",
        "-p, --port",
        "-u, --username",
        "-P, --password",
        "--pw-file",
        "-V, --protocol-version",
        "-I, --id-prefix",
        "--cert",
        "--key",
        "--insecure",
        "--quiet",
        "-i, --client-id",
        "-k, --keep-alive",
        "--clean-session",
        "--ca-file",
        "--ca-path",
        "--ca-data",
        "--will-topic",
        "--will-message",
        "--will-qos",
        "--will-retain",
        "--extra-headers",
        "-d, --debug",
        "--version",
        "-t, --topic",
        "-q, --qos",
      ]
    ) assert.ok(help.text.includes(flag), `help lists ${flag}`);
  }
  for (const flag of ["-m, --message", "-f, --file", "-s, --stdin-file", "-l, --stdin-line"]) {
    assert.ok(pubHelp.text.includes(flag), `amqtt_pub help lists ${flag}`);
  }
  assert.ok(pubHelp.text.includes("-n, --null-message"));
  assert.ok(subHelp.text.includes("-n, --count <count>"));
  for (const flag of ["-C, --msg-count", "-v, --verbose", "-F, --format", "-N, --no-eol"]) {
    assert.ok(subHelp.text.includes(flag), `amqtt_sub help lists ${flag}`);
  }
  for (const flag of ["-R, --no-retained", "-W, --timeout", "--reconnect-retries"]) {
    assert.ok(subHelp.text.includes(flag), `amqtt_sub help lists ${flag}`);
  }
  // -h is the host (mosquitto's); only --help is help.
  for (const help of [pubHelp, subHelp]) assert.doesNotMatch(help.text, /-h, --help/);
  for (const v of [pubVersion, subVersion]) {
    assert.equal(v.code, 0);
    assert.match(v.text, /^\d+\.\d+\.\d+\n$/);
  }
});

Deno.test("main.ts: subcommands, --help, --version, an unknown command and bench", async () => {
  const [help, version, none, unknown, bench, pubHelp, brokerVersion] = await Promise.all([
    runCli("main.ts", ["--help"]),
    runCli("main.ts", ["--version"]),
    runCli("main.ts", []),
    runCli("main.ts", ["publish"]),
    runCli("main.ts", ["bench", "--help"]),
    runCli("main.ts", ["pub", "--help"]),
    runCli("main.ts", ["broker", "--version"]),
  ]);
  assert.equal(help.code, 0);
  for (const command of ["broker", "pub", "sub", "passwd", "bench"]) {
    assert.match(help.text, new RegExp(`\\n  ${command} `));
  }
  assert.equal(version.code, 0);
  assert.match(version.text, /^\d+\.\d+\.\d+\n$/);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /Usage: amqtt <command>/);
  assert.equal(unknown.code, 2);
  assert.equal(
    unknown.stderr,
    'amqtt: Unknown command "publish" (expected broker, pub, sub, passwd or bench; see --help)\n',
  );
  assert.equal(bench.code, 0);
  assert.match(bench.text, /pub/);
  assert.match(bench.text, /conn/);
  assert.equal(pubHelp.code, 0);
  assert.match(pubHelp.text, /^Usage: amqtt pub \[options\]/);
  assert.equal(brokerVersion.code, 0);
  assert.equal(brokerVersion.text, version.text);
});

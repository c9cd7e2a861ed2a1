/**
 * `amqtt passwd`: password files the broker reads, edited in place.
 */

import assert from "node:assert/strict";
import { verifyPassword } from "../../src/plugins/password_hash.ts";
import { recordMessages, runCli, startBroker, tempDir } from "./_helpers.ts";

function hashOf(text: string, user: string): string {
  const line = text.split(/\r?\n/).find((l) => l.startsWith(`${user}:`));
  assert.ok(line, `a line for ${user}`);
  return line.slice(user.length + 1);
}

Deno.test("amqtt passwd -c -b writes a sha512-crypt entry the broker accepts; a wrong password is refused (amqtt_pub and amqtt_sub exit 1)", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/passwd`;
  const made = await runCli("main.ts", ["passwd", "-c", "-b", file, "alice", "s3cret"]);
  assert.equal(made.code, 0, made.stderr);
  const text = await Deno.readTextFile(file);
  assert.match(text, /^alice:\$6\$rounds=5000\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}\n$/);
  if (Deno.build.os !== "windows") assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);

  const { broker, port } = await startBroker({
    auth: { "password-file": file, "allow-anonymous": false },
  });
  await using _broker = broker;
  const seen = recordMessages(broker);
  const [good, bad, anonymous, subBad] = await Promise.all([
    runCli("amqtt_pub.ts", [
      "--url",
      `mqtt://alice:s3cret@127.0.0.1:${port}`,
      "-t",
      "t",
      "-m",
      "in",
    ]),
    runCli("amqtt_pub.ts", ["--url", `mqtt://alice:wrong@127.0.0.1:${port}`, "-t", "t", "-m", "x"]),
    runCli("amqtt_pub.ts", ["--url", `mqtt://127.0.0.1:${port}`, "-t", "t", "-m", "x"]),
    runCli("amqtt_sub.ts", ["--url", `mqtt://alice:wrong@127.0.0.1:${port}`, "-t", "t"]),
  ]);
  assert.equal(good.code, 0, good.stderr);
  assert.deepEqual(seen.map((m) => new TextDecoder().decode(m.payload)), ["in"]);
  for (const refused of [bad, anonymous, subBad]) {
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /\namqtt_(pub|sub): Cannot connect to 127\.0\.0\.1:\d+: Server refused the connection \(return code 0x0[45]\): (bad username or password|not authorized)\n$/,
    );
    assert.doesNotMatch(refused.stderr, /wrong/, "the password is not echoed");
  }
});

Deno.test("amqtt passwd adds, changes (stdin line) and deletes users, keeping comments, other lines, CRLF and mode", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/passwd`;
  const original = "# broker users\r\nbob:$6$old$hash\r\n\r\nnot a user line\r\n";
  await Deno.writeTextFile(file, original);
  if (Deno.build.os !== "windows") await Deno.chmod(file, 0o640);

  const added = await runCli("amqtt.ts", ["passwd", file, "carol"], {
    stdin: "pw carol\nignored\n",
  });
  assert.equal(added.code, 0, added.stderr);
  const changed = await runCli("main.ts", ["passwd", "-b", file, "bob", "new bob"]);
  assert.equal(changed.code, 0, changed.stderr);

  let text = await Deno.readTextFile(file);
  const lines = text.split("\r\n");
  assert.equal(lines[0], "# broker users");
  assert.match(lines[1], /^bob:\$6\$rounds=5000\$/);
  assert.deepEqual(lines.slice(2), ["", "not a user line", lines[4], ""]);
  assert.match(lines[4], /^carol:\$6\$/);
  assert.equal(await verifyPassword("pw carol", hashOf(text, "carol")), true);
  assert.equal(await verifyPassword("new bob", hashOf(text, "bob")), true);
  if (Deno.build.os !== "windows") assert.equal((await Deno.stat(file)).mode! & 0o777, 0o640);

  const deleted = await runCli("main.ts", ["passwd", "-D", file, "bob"]);
  assert.equal(deleted.code, 0, deleted.stderr);
  text = await Deno.readTextFile(file);
  assert.doesNotMatch(text, /^bob:/m);
  assert.match(text, /^# broker users\r\n\r\nnot a user line\r\ncarol:\$6\$/);
  assert.deepEqual(
    [...Deno.readDirSync(dir.path)].map((e) => e.name),
    ["passwd"],
    "no temporary file left behind",
  );

  const again = await runCli("main.ts", ["passwd", "-D", file, "bob"]);
  assert.equal(again.code, 1);
  assert.equal(again.stderr, `amqtt passwd: User "bob" is not in ${file}\n`);
});

Deno.test("amqtt passwd: each wrong use is one line with exit code 2, each failure exit code 1", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/passwd`;
  await Deno.writeTextFile(file, "");
  const cases: [string[], number, RegExp, string?][] = [
    [["passwd"], 2, /Missing required argument 'file'/],
    [["passwd", file, "x", "pw"], 2, /A password on the command line needs -b/],
    [["passwd", "-b", file, "x"], 2, /Option -b needs the password/],
    [["passwd", "-b", file, "a:b", "pw"], 2, /The user name "a:b" contains ":"/],
    [["passwd", "-D", "-c", file, "x"], 2, /cannot be used with option/],
    [["passwd", "-b", `${dir.path}/none`, "x", "pw"], 1, /does not exist \(use -c to create it\)/],
    [["passwd", file, "x"], 1, /No password on stdin/],
    [["passwd", file, "x"], 1, /Cannot set an empty password/, "\n"],
  ];
  const results = await Promise.all(
    cases.map(([args, , , stdin]) => runCli("main.ts", args, { stdin })),
  );
  for (const [i, [args, code, pattern]] of cases.entries()) {
    const r = results[i];
    assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
    assert.match(r.stderr, /^amqtt passwd: [^\n]+\n$/, "one line");
  }
  assert.equal(await Deno.readTextFile(file), "", "failed runs leave the file alone");
});

Deno.test("amqtt passwd --help and --version, from main.ts and amqtt.ts", async () => {
  const [help, brokerHelp, version] = await Promise.all([
    runCli("main.ts", ["passwd", "--help"]),
    runCli("amqtt.ts", ["passwd", "--help"]),
    runCli("main.ts", ["passwd", "--version"]),
  ]);
  for (const [r, name] of [[help, "amqtt passwd"], [brokerHelp, "amqtt passwd"]] as const) {
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.text.startsWith(`Usage: ${name} [options] <file> <user> [password]\n`), r.text);
    for (const flag of ["-b, --batch", "-D, --delete", "-c, --create", "-h, --help"]) {
      assert.ok(r.text.includes(flag), `help lists ${flag}`);
    }
  }
  assert.equal(version.code, 0);
  assert.match(version.text, /^\d+\.\d+\.\d+\n$/);
});

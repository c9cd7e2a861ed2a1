// Authentication and topic authorization end to end: a real password file (hashes made by the
// real tools), aMQTT's legacy `auth`/`topic-check` sections and the `plugins` map, over TCP.
import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/constants.ts";
import type { BrokerPlugin } from "../../src/plugins/types.ts";
import { startBroker } from "../_helpers/broker.ts";
import { publishPacket, TestClient, text } from "../_helpers/test_client.ts";

const enc = new TextEncoder();

async function tool(cmd: string, args: string[], stdin?: string): Promise<string> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(enc.encode(stdin));
    await w.close();
  }
  const out = await child.output();
  assert.equal(out.code, 0, `${cmd} failed: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout).trim();
}

async function passwordFile(lines: string[]): Promise<string> {
  const path = await Deno.makeTempFile({ suffix: ".passwd" });
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  return path;
}

async function login(port: number, username?: string, password?: string) {
  const c = await TestClient.open(port);
  const connack = await c.handshake({
    clientId: `c-${username ?? "anon"}-${Math.random()}`,
    username,
    password: password === undefined ? undefined : enc.encode(password),
  });
  return { c, code: connack.reasonCode };
}

Deno.test("13 auth: password file with openssl -6, mkpasswd and mosquitto_passwd hashes; wrong password refused [MQTT-3.2.2-5]", async () => {
  const sha512 = await tool("openssl", ["passwd", "-6", "-salt", "saltsalt", "s3cret"]);
  const mk = await tool("mkpasswd", ["-m", "sha-512", "-R", "5000", "pw-mk"]);
  const mosqFile = await Deno.makeTempFile();
  await tool("mosquitto_passwd", ["-b", mosqFile, "mo", "pw-mo"]);
  const mosqLine = (await Deno.readTextFile(mosqFile)).trim();
  await Deno.remove(mosqFile);
  const file = await passwordFile(["# users", `alice:${sha512}`, `bob:${mk}`, mosqLine]);
  try {
    await using b = await startBroker({
      auth: { "allow-anonymous": false, "password-file": file, plugins: ["auth_file"] },
    });
    for (const [user, pw] of [["alice", "s3cret"], ["bob", "pw-mk"], ["mo", "pw-mo"]]) {
      const { c, code } = await login(b.port, user, pw);
      assert.equal(code, 0, `${user} accepted`);
      await c.disconnect();
    }
    const wrong = await login(b.port, "alice", "nope");
    assert.equal(wrong.code, 4, "bad user name or password");
    await wrong.c.expectClosed();
    await wrong.c.close();
    const unknown = await login(b.port, "mallory", "x");
    assert.equal(unknown.code, 4);
    await unknown.c.close();
    const anon = await login(b.port);
    assert.equal(anon.code, 5, "anonymous refused when allow-anonymous is false");
    await anon.c.close();
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("13 auth: allow-anonymous true accepts clients without a user name", async () => {
  await using b = await startBroker({
    auth: { "allow-anonymous": true, plugins: ["auth_anonymous"] },
  });
  const { c, code } = await login(b.port);
  assert.equal(code, 0);
  await c.disconnect();
});

Deno.test("13 auth: the password file is re-read on reload (SIGHUP)", async () => {
  const file = await passwordFile([`carol:${await tool("openssl", ["passwd", "-6", "old"])}`]);
  try {
    await using b = await startBroker({
      plugins: { "amqtt.plugins.authentication.FileAuthPlugin": { password_file: file } },
    });
    assert.equal((await login(b.port, "carol", "old")).code, 0);
    await Deno.writeTextFile(file, `carol:${await tool("openssl", ["passwd", "-6", "new"])}\n`);
    await b.broker.reload();
    const old = await login(b.port, "carol", "old");
    assert.equal(old.code, 4);
    await old.c.close();
    const fresh = await login(b.port, "carol", "new");
    assert.equal(fresh.code, 0);
    await fresh.c.disconnect();
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("13 acl: topic-check acl and publish-acl with wildcards and the anonymous entry", async () => {
  await using b = await startBroker({
    auth: { "allow-anonymous": true, plugins: ["auth_anonymous"] },
    "topic-check": {
      enabled: true,
      plugins: ["topic_acl"],
      acl: { anonymous: ["public/#"] },
      "publish-acl": { anonymous: ["public/+/in"] },
    },
  });
  const sub = await TestClient.connect(b.port, { clientId: "sub" });
  const suback = await sub.subscribe({ "public/#": 1, "private/#": 1 });
  assert.deepEqual(
    suback.reasonCodes,
    [1, 0x80],
    "subscribe outside the ACL refused [MQTT-3.9.3-2]",
  );
  const pub = await TestClient.connect(b.port, { clientId: "pub" });
  await pub.send(publishPacket("public/x/in", "allowed", { qos: 1, packetId: 1 }));
  await pub.expect(PacketType.PUBACK);
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "allowed");
  // Refused publishes still complete their QoS flow (3.1.1 has no way to refuse) but are dropped.
  await pub.send(publishPacket("public/x/out", "refused", { qos: 1, packetId: 2 }));
  await pub.expect(PacketType.PUBACK);
  await sub.expectNothing(200);
  await pub.disconnect();
  await sub.disconnect();
});

Deno.test("13 plugins: a hook that throws denies, never allows", async () => {
  const throwing: BrokerPlugin = {
    name: "broken",
    authenticate: () => {
      throw new Error("backend down");
    },
  };
  // The default configuration's anonymous plugin accepts everyone; the throwing hook must still win.
  await using b = await startBroker({}, { plugins: [throwing] });
  const { c, code } = await login(b.port, "u", "p");
  assert.notEqual(code, 0, "a throwing authenticate hook refuses the client");
  await c.close();
  assert.ok(b.log.has("backend down"), "the failure is logged");
});

Deno.test("13 plugins: an embedded plugin's publish decision and events", async () => {
  const seen: string[] = [];
  const plugin: BrokerPlugin = {
    name: "guard",
    authorizePublish: (_client, topic) => !topic.startsWith("forbidden/"),
    onBrokerClientSubscribed: (e) => {
      seen.push(`sub ${e.clientId} ${e.topic}`);
    },
  };
  await using b = await startBroker({}, { plugins: [plugin] });
  const sub = await TestClient.connect(b.port, { clientId: "s" });
  await sub.subscribe({ "#": 0 });
  const pub = await TestClient.connect(b.port, { clientId: "p" });
  await pub.send(publishPacket("forbidden/a", "no"), publishPacket("ok/a", "yes"));
  assert.equal(text(await sub.expect(PacketType.PUBLISH)), "yes");
  await sub.expectNothing(100);
  assert.deepEqual(seen, ["sub s #"]);
  await pub.disconnect();
  await sub.disconnect();
});

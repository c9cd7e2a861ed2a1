// Refused logins and authorization denials are WARNINGs with the client id, address and
// structured fields (for JSON logs), never the password; a flood of refusals is capped.
import assert from "node:assert/strict";
import { Broker } from "../../broker.ts";
import type { LogFields, Logger } from "../../src/plugins/types.ts";
import { connectPacket, publishPacket, TestClient } from "../_helpers/test_client.ts";

interface Line {
  level: string;
  message: string;
  fields: LogFields | undefined;
}

function recorder(): Logger & { lines: Line[] } {
  const lines: Line[] = [];
  const at = (level: string) => (message: string, fields?: LogFields) =>
    lines.push({ level, message, fields });
  return {
    lines,
    debug: at("debug"),
    info: at("info"),
    warning: at("warning"),
    error: at("error"),
  };
}

/** CONNECT with a password, waiting long for the answer: the first check starts a worker. */
async function refusedConnack(port: number, clientId: string, user: string, password: string) {
  await using c = await TestClient.open(port);
  await c.send(
    connectPacket({ clientId, username: user, password: new TextEncoder().encode(password) }),
  );
  return (await c.expect(2, 20_000)).reasonCode;
}

async function start(
  log: Logger,
  extra: Record<string, unknown> = {},
): Promise<Broker & { port: number }> {
  const file = await Deno.makeTempFile();
  const { hashPassword } = await import("../../src/plugins/password_hash.ts");
  await Deno.writeTextFile(file, `alice:${await hashPassword("right", { rounds: 1000 })}\n`);
  const broker = new Broker({
    listeners: { default: { bind: "127.0.0.1:0" } },
    auth: {
      allow_anonymous: true,
      password_file: file,
      plugins: ["auth_anonymous", "auth_file"],
    },
    topic_check: {
      enabled: true,
      plugins: ["topic_acl"],
      acl: { anonymous: ["open/#"] },
      publish_acl: { anonymous: ["open/#"] },
    },
    ...extra,
  }, { logger: log });
  await broker.start();
  await Deno.remove(file);
  return Object.assign(broker, { port: broker.listeners[0].port });
}

Deno.test("a refused login is a WARNING with client id, address and reason, without the password", async () => {
  const log = recorder();
  await using b = await start(log);
  assert.equal(await refusedConnack(b.port, "intruder", "alice", "Guess-9731"), 4);
  const line = log.lines.find((l) => l.fields?.event === "connection_refused")!;
  assert.equal(line.level, "warning");
  assert.match(
    line.message,
    /^Refused client "intruder" from 127\.0\.0\.1:\d+: authentication refused/,
  );
  assert.equal(line.fields!.clientId, "intruder");
  assert.equal(line.fields!.listener, "default");
  assert.match(line.fields!.remoteAddress!, /^127\.0\.0\.1:\d+$/);
  assert.ok(!JSON.stringify(log.lines).includes("Guess-9731"), "never the password");
});

Deno.test("denied SUBSCRIBE and PUBLISH are WARNINGs with client id, address and topic", async () => {
  const log = recorder();
  await using b = await start(log);
  await using c = await TestClient.connect(b.port, { clientId: "curious" });
  assert.deepEqual((await c.subscribe({ "secret/#": 0 })).reasonCodes, [0x80]);
  await c.send(publishPacket("secret/x", new TextEncoder().encode("x"), { qos: 0 }));
  await c.send({ type: 12 }); // PINGREQ: its answer means the PUBLISH was handled
  await c.expect(13);
  const sub = log.lines.find((l) => l.fields?.event === "subscribe_denied")!;
  assert.equal(sub.level, "warning");
  assert.match(
    sub.message,
    /^curious \(127\.0\.0\.1:\d+\) is not allowed to subscribe to secret\/#$/,
  );
  assert.equal(sub.fields!.topic, "secret/#");
  assert.equal(sub.fields!.clientId, "curious");
  const pub = log.lines.find((l) => l.fields?.event === "publish_denied")!;
  assert.equal(pub.level, "warning");
  assert.equal(pub.fields!.topic, "secret/x");
  assert.match(pub.fields!.remoteAddress!, /^127\.0\.0\.1:\d+$/);
});

Deno.test("a flood of refused logins logs at most 20 lines an interval", async () => {
  const log = recorder();
  // The per-source throttle off: every login is checked and refused with code 4.
  await using b = await start(log, { max_login_failures: 0 });
  for (let i = 0; i < 30; i++) {
    assert.equal(await refusedConnack(b.port, `flood-${i}`, "nobody", "x"), 4);
  }
  // The default summary interval is a minute: 20 lines in full, the other 10 summarised later.
  const refused = log.lines.filter((l) => l.fields?.event === "connection_refused");
  assert.equal(refused.length, 20);
  assert.equal(b.stats.clientsTotal, 0);
});

Deno.test("a delivery the receive ACL refuses is a WARNING with the receiver and the topic", async () => {
  const log = recorder();
  await using b = await start(log, {
    topic_check: {
      enabled: true,
      plugins: ["topic_acl"],
      acl: { anonymous: ["#"] },
      receive_acl: { anonymous: ["open/#"] },
    },
  });
  await using reader = await TestClient.connect(b.port, { clientId: "reader" });
  assert.deepEqual((await reader.subscribe({ "news/#": 0 })).reasonCodes, [0]);
  await using writer = await TestClient.connect(b.port, { clientId: "writer" });
  await writer.send(
    publishPacket("news/x", new TextEncoder().encode("x"), { qos: 1, packetId: 1 }),
  );
  await writer.expect(4); // PUBACK: the PUBLISH was routed
  const line = log.lines.find((l) => l.fields?.event === "receive_denied");
  assert.ok(line, "the refused delivery is logged");
  assert.equal(line.level, "warning");
  assert.match(line.message, /^reader \(127\.0\.0\.1:\d+\) is not allowed to receive news\/x$/);
  assert.equal(line.fields!.clientId, "reader");
  assert.equal(line.fields!.topic, "news/x");
  assert.equal(b.stats.droppedBy.notAuthorized, 1);
  // Nothing reached the reader, whose connection is still open.
  assert.equal(await reader.poll(100), undefined);
  assert.equal(reader.socketEnded, false);
});

/**
 * Broker, area 21: a wrong-password flood against the real password-file plugin. Failed logins
 * are rate-limited per source address; logins that were never checked (the source is over its
 * budget, or the password checker's queue is full) are answered "server unavailable" (return
 * code 3), not "bad user name or password" (4); a correct login from another source still
 * succeeds; refusals are logged as one summary line per interval. A connected QoS 1 pair keeps
 * working throughout.
 *
 * @module
 */

import assert from "node:assert/strict";
import net from "node:net";
import { encodePacket, PacketType } from "../../src/packet/mod.ts";
import { hashPassword } from "../../src/plugins/password_hash.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import type { TestBroker } from "../_helpers/broker.ts";
import { connectPacket, publishPacket, TestClient, text } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const enc = new TextEncoder();
const RIGHT = "correct horse";

async function authBroker(config: Record<string, unknown>): Promise<TestBroker & { file: string }> {
  const file = await Deno.makeTempFile();
  // sha512-crypt at its fewest rounds: a real check, cheap enough to run hundreds of.
  await Deno.writeTextFile(file, `alice:${await hashPassword(RIGHT, { rounds: 1000 })}\n`);
  const b = await startBroker({
    plugins: { auth_file: { password_file: file } },
    log_summary_interval: 1,
    // A flood opens all its connections before it writes any CONNECT: on a busy machine that
    // takes longer than the default 10 s, and the connect timeout is not what is tested here.
    connect_timeout: 3600,
    ...config,
  });
  return {
    ...b,
    file,
    [Symbol.asyncDispose]: async () => {
      await b[Symbol.asyncDispose]();
      await Deno.remove(file);
    },
  };
}

function connectBytes(clientId: string, password: string): Uint8Array {
  return encodePacket(
    connectPacket({ clientId, username: "alice", password: enc.encode(password) }),
    4,
  );
}

/** Reads until the broker closes; returns the CONNACK return code (byte 4), or -1 for none. */
async function connackCode(conn: Deno.TcpConn): Promise<number> {
  const got: number[] = [];
  const buf = new Uint8Array(64);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      got.push(...buf.subarray(0, n));
      if (got.length >= 4 && got[3] === 0) break; // accepted: the broker keeps it open
    }
  } catch {
    // reset by the broker after its CONNACK
  } finally {
    conn.close();
  }
  if (got.length < 4 || got[0] !== 0x20 || got[1] !== 2) return -1;
  return got[3]!;
}

/** Opens `n` connections from 127.0.0.1, then writes all their CONNECTs at once. */
async function flood(
  b: TestBroker,
  n: number,
  password: (i: number) => string,
): Promise<Promise<number>[]> {
  const conns: Deno.TcpConn[] = [];
  for (let i = 0; i < n; i++) {
    conns.push(await Deno.connect({ hostname: "127.0.0.1", port: b.port }));
  }
  const bytes = conns.map((_, i) => connectBytes(`flood-${i}`, password(i)));
  for (let i = 0; i < n; i++) await conns[i]!.write(bytes[i]!);
  return conns.map((c) => connackCode(c));
}

/** A correct login from 127.0.0.2: another source than the flood's. */
function loginFromOtherSource(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port, localAddress: "127.0.0.2" });
    const got: number[] = [];
    socket.on("connect", () => socket.write(connectBytes("elsewhere", RIGHT)));
    socket.on("data", (chunk: Uint8Array) => {
      got.push(...chunk);
      if (got.length >= 4) socket.end();
    });
    socket.on("error", reject);
    socket.on("close", () => resolve(got.length >= 4 && got[0] === 0x20 ? got[3]! : -1));
  });
}

async function canaryPair(b: TestBroker): Promise<[TestClient, TestClient]> {
  const creds = { username: "alice", password: enc.encode(RIGHT) };
  const sub = await TestClient.connect(b.port, { clientId: "canary-sub", ...creds });
  await sub.subscribe({ canary: 1 });
  const pub = await TestClient.connect(b.port, { clientId: "canary-pub", ...creds });
  return [sub, pub];
}

async function canaryRound(sub: TestClient, pub: TestClient, n: number): Promise<void> {
  await pub.send(publishPacket("canary", `ping ${n}`, { qos: 1, packetId: n }));
  assert.equal((await pub.expect(PacketType.PUBACK)).packetId, n);
  const got = await sub.expect(PacketType.PUBLISH);
  assert.equal(text(got), `ping ${n}`);
  await sub.send({ type: PacketType.PUBACK, packetId: got.packetId! });
}

test("21 hostile auth: a wrong-password flood from one source is throttled; a correct login from another still succeeds [MQTT-3.2.2-5]", async () => {
  // A budget of 10 that refills over an hour: none comes back while the test runs.
  await using b = await authBroker({ max_login_failures: 10, login_failure_window: 3600 });
  const [sub, pub] = await canaryPair(b);
  await using _sub = sub;
  await using _pub = pub;
  await canaryRound(sub, pub, 1);

  // The flood's refusals span this many summary intervals (1 s each) at most: see below.
  const floodStarted = performance.now();
  const codes = await flood(b, 300, () => "wrong");
  // While the flood is being answered, a correct login from elsewhere gets through.
  assert.equal(await loginFromOtherSource(b.port), 0, "the correct login is accepted");
  await canaryRound(sub, pub, 2);

  const results = await Promise.all(codes);
  const bad = results.filter((c) => c === 4).length;
  const unavailable = results.filter((c) => c === 3).length;
  assert.equal(bad + unavailable, 300, `codes: ${[...new Set(results)]}`);
  // Only the source's budget of 10 was checked; the rest were answered without a check.
  assert.ok(bad <= 10, `${bad} checked`);
  assert.ok(unavailable >= 290, `${unavailable} answered "server unavailable"`);

  // Over its budget, even the right password from the flooding source is not checked.
  const late = await Deno.connect({ hostname: "127.0.0.1", port: b.port });
  await late.write(connectBytes("late", RIGHT));
  assert.equal(await connackCode(late), 3);

  // At most 20 refusals a summary interval (1 s here) are logged in full; the rest of the flood
  // is told in summary lines, not one line per refusal, and every refusal is accounted for.
  const refusedLines = () => b.log.lines.filter((l) => l.fields?.event === "connection_refused");
  const summaries = () => b.log.lines.filter((l) => l.message.includes("logins refused"));
  const told = () =>
    refusedLines().length +
    summaries().reduce((n, l) => n + Number(/^(\d+) logins refused/.exec(l.message)![1]), 0);
  await waitFor(() => told() === 301, 30_000, "every refusal logged or summarised");
  const intervals = Math.ceil((performance.now() - floodStarted) / 1000) + 1;
  const summary = summaries();
  assert.ok(summary.length >= 1);
  assert.equal(summary[0]!.level, "warning");
  assert.match(summary[0]!.message, /too many failed logins/);
  assert.match(summary[0]!.message, /127\.0\.0\.1 \(\d+\)/);
  // At most 20 full lines in each interval the refusals spanned. An interval with 20 or fewer
  // ends without a summary line, so the summaries alone do not count the intervals: on a busy
  // machine the flood's answers spread over several (the elapsed time can only loosen the bound).
  assert.ok(
    refusedLines().length <= 20 * intervals,
    `${refusedLines().length} lines in ${intervals} intervals`,
  );
  assert.ok(refusedLines().length < 301, "not one line per refusal");

  await canaryRound(sub, pub, 3);
  assert.equal(sub.ended, false);
  assert.equal(pub.ended, false);
});

test("21 hostile auth: logins the password checker had no room for get code 3, never 4, even with the right password [MQTT-3.2.2-5]", async () => {
  // The per-source throttle off: the checker's own queue bound is what refuses.
  await using b = await authBroker({ max_login_failures: 0 });
  const [sub, pub] = await canaryPair(b);
  await using _sub = sub;
  await using _pub = pub;

  // Every tenth login has the right password.
  const right = (i: number) => i % 10 === 0;
  const codes = await Promise.all(await flood(b, 400, (i) => right(i) ? RIGHT : "wrong"));
  const unavailable = codes.filter((c) => c === 3).length;
  assert.ok(unavailable > 0, "the checker's queue (256) overflowed");
  for (let i = 0; i < codes.length; i++) {
    if (right(i)) assert.ok(codes[i] === 0 || codes[i] === 3, `right password ${i}: ${codes[i]}`);
    else assert.ok(codes[i] === 4 || codes[i] === 3, `wrong password ${i}: ${codes[i]}`);
  }
  await waitFor(() => b.log.has("authentication unavailable"), 30_000, "the summary");
  assert.ok(!b.log.has("failed, denying"), "a full queue is not logged as a plugin failure");
  await canaryRound(sub, pub, 1);
  assert.equal(sub.ended, false);
  assert.equal(pub.ended, false);
});

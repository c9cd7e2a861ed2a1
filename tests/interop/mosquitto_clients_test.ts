/**
 * Interop: Debian's `mosquitto_pub` and `mosquitto_sub` against our broker, MQTT 3.1 and 3.1.1.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startBroker, userRetained, waitFor } from "../_helpers/broker.ts";
import type { TestBroker } from "../_helpers/broker.ts";
import { runTool, Tool } from "../_helpers/peers.ts";
import { interopTest, subscriberLines, whenSubscribed } from "./_peers.ts";

const test = interopTest;

type Version = "mqttv31" | "mqttv311";

/** Common arguments: our broker, a client id, a protocol version. */
function base(b: TestBroker, id: string, version: Version = "mqttv311"): string[] {
  return ["-h", "127.0.0.1", "-p", String(b.port), "-i", id, "-V", version];
}

/**
 * Starts mosquitto_sub printing "qos retain topic payload" and waits until it has subscribed (or
 * already exited: with a retained message and `-C 1` it may be done before we look).
 */
async function subscriber(
  b: TestBroker,
  id: string,
  topic: string,
  options: { qos?: number; count?: number; version?: Version; extra?: string[] } = {},
): Promise<Tool> {
  const sub = new Tool("mosquitto_sub", [
    ...base(b, id, options.version),
    "-t",
    topic,
    "-q",
    String(options.qos ?? 0),
    "-C",
    String(options.count ?? 1),
    "-W",
    "6",
    "-F",
    "%q %r %t %p",
    ...(options.extra ?? []),
  ]);
  return await whenSubscribed(sub, b.broker, { clientId: id, topic, ms: 4000 });
}

async function publish(
  b: TestBroker,
  id: string,
  topic: string,
  message: string,
  options: { qos?: number; retain?: boolean; version?: Version } = {},
): Promise<void> {
  const args = [...base(b, id, options.version), "-t", topic, "-q", String(options.qos ?? 0)];
  if (message === "") args.push("-n");
  else args.push("-m", message);
  if (options.retain) args.push("-r");
  const result = await runTool("mosquitto_pub", args);
  assert.equal(result.code, 0, `mosquitto_pub failed: ${result.stderr}`);
}

for (const version of ["mqttv311", "mqttv31"] as const) {
  for (const qos of [0, 1, 2]) {
    test(`interop mosquitto: ${version} QoS ${qos} from mosquitto_pub to mosquitto_sub`, async () => {
      await using b = await startBroker();
      await using sub = await subscriber(b, "sub", "interop/q", { qos, version });
      await publish(b, "pub", "interop/q", `hello ${qos}`, { qos, version });
      assert.deepEqual(await subscriberLines(sub), [`${qos} 0 interop/q hello ${qos}`]);
    });
  }
}

test("interop mosquitto: delivered QoS is min(published, granted)", async () => {
  await using b = await startBroker();
  await using sub = await subscriber(b, "sub", "interop/min", { qos: 1, count: 2 });
  await publish(b, "pub2", "interop/min", "two", { qos: 2 });
  await publish(b, "pub0", "interop/min", "zero", { qos: 0 });
  assert.deepEqual(await subscriberLines(sub), ["1 0 interop/min two", "0 0 interop/min zero"]);
});

test("interop mosquitto: retained message sent to a later subscriber, cleared by -n -r", async () => {
  await using b = await startBroker();
  await publish(b, "pub", "interop/ret", "kept", { qos: 1, retain: true });
  {
    await using sub = await subscriber(b, "late", "interop/ret", { qos: 1 });
    assert.deepEqual(await subscriberLines(sub), ["1 1 interop/ret kept"]);
  }
  await publish(b, "pub", "interop/ret", "", { retain: true });
  assert.deepEqual(userRetained(b.broker), []);
  // Nothing retained now: the next message a new subscriber gets is a live one, RETAIN 0.
  await using sub = await subscriber(b, "later", "interop/ret", { qos: 1 });
  await publish(b, "pub", "interop/ret", "live", { qos: 1 });
  assert.deepEqual(await subscriberLines(sub), ["1 0 interop/ret live"]);
});

test("interop mosquitto: retained with MQTT 3.1 clients", async () => {
  await using b = await startBroker();
  await publish(b, "pub", "interop/ret31", "old", { qos: 2, retain: true, version: "mqttv31" });
  await using sub = await subscriber(b, "sub", "interop/#", { qos: 2, version: "mqttv31" });
  assert.deepEqual(await subscriberLines(sub), ["2 1 interop/ret31 old"]);
});

test("interop mosquitto: the will of a killed client is published", async () => {
  await using b = await startBroker();
  await using watcher = await subscriber(b, "watcher", "interop/will", { qos: 1 });
  const victim = await subscriber(b, "victim", "interop/unused", {
    extra: [
      "--will-topic",
      "interop/will",
      "--will-payload",
      "victim died",
      "--will-qos",
      "1",
      "--will-retain",
    ],
  });
  await using _victim = victim;
  victim.kill("SIGKILL");
  const result = await victim.result();
  assert.equal(result.signal, "SIGKILL");
  assert.deepEqual(await subscriberLines(watcher), ["1 0 interop/will victim died"]);
  // Stored as retained too, since --will-retain was given.
  await using late = await subscriber(b, "late", "interop/will", { qos: 1 });
  assert.deepEqual(await subscriberLines(late), ["1 1 interop/will victim died"]);
});

test("interop mosquitto: the will of a MQTT 3.1 client killed with SIGKILL is published", async () => {
  await using b = await startBroker();
  await using watcher = await subscriber(b, "watcher", "interop/will31", { version: "mqttv31" });
  const victim = await subscriber(b, "victim", "interop/unused", {
    version: "mqttv31",
    extra: ["--will-topic", "interop/will31", "--will-payload", "gone"],
  });
  await using _victim = victim;
  victim.kill("SIGKILL");
  await victim.result();
  assert.deepEqual(await subscriberLines(watcher), ["0 0 interop/will31 gone"]);
});

test("interop mosquitto: no will after a clean exit (SIGTERM sends DISCONNECT)", async () => {
  await using b = await startBroker();
  await using watcher = await subscriber(b, "watcher", "interop/nowill", { count: 1 });
  const victim = await subscriber(b, "victim", "interop/unused", {
    extra: ["--will-topic", "interop/nowill", "--will-payload", "should not appear"],
  });
  await using _victim = victim;
  victim.kill("SIGTERM");
  await victim.result();
  await waitFor(() => !b.broker.clients().some((c) => c.clientId === "victim"));
  // A marker proves the watcher was listening and got nothing before it.
  await publish(b, "marker", "interop/nowill", "marker");
  assert.deepEqual(await subscriberLines(watcher), ["0 0 interop/nowill marker"]);
});

for (const version of ["mqttv311", "mqttv31"] as const) {
  test(`interop mosquitto: ${version} persistent session (-c) gets what was published while offline`, async () => {
    await using b = await startBroker();
    // Subscribe, then exit at once (-E): the session stays.
    const first = await runTool("mosquitto_sub", [
      ...base(b, "durable", version),
      "-c",
      "-q",
      "1",
      "-t",
      "interop/p/#",
      "-E",
    ]);
    assert.equal(first.code, 0, first.stderr);
    await waitFor(() => b.broker.clients().some((c) => c.clientId === "durable" && !c.connected));
    await publish(b, "pub", "interop/p/1", "while offline 1", { qos: 1, version });
    await publish(b, "pub", "interop/p/2", "while offline 2", { qos: 2, version });
    const again = await runTool("mosquitto_sub", [
      ...base(b, "durable", version),
      "-c",
      "-q",
      "1",
      "-t",
      "interop/p/#",
      "-C",
      "2",
      "-W",
      "5",
      "-F",
      "%q %t %p",
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(again.stdout.trim().split("\n"), [
      "1 interop/p/1 while offline 1",
      "1 interop/p/2 while offline 2",
    ]);
  });
}

test("interop mosquitto: a clean session (no -c) keeps nothing after exit", async () => {
  await using b = await startBroker();
  const first = await runTool("mosquitto_sub", [
    ...base(b, "fleeting"),
    "-q",
    "1",
    "-t",
    "interop/c",
    "-E",
  ]);
  assert.equal(first.code, 0, first.stderr);
  await waitFor(() => b.broker.clients().length === 0, 2000, "the clean session to go");
  assert.deepEqual(b.broker.subscriptions(), []);
  await publish(b, "pub", "interop/c", "nobody", { qos: 1 });
  // Reconnecting with -c finds no session: nothing arrives before the marker.
  await using sub = await subscriber(b, "fleeting", "interop/c", { qos: 1, extra: ["-c"] });
  await publish(b, "pub", "interop/c", "marker", { qos: 1 });
  assert.deepEqual(await subscriberLines(sub), ["1 0 interop/c marker"]);
});

test("interop mosquitto: a 200 KB payload from a file arrives intact", async () => {
  await using b = await startBroker();
  const file = await Deno.makeTempFile();
  try {
    const payload = "x".repeat(200 * 1024);
    await Deno.writeTextFile(file, payload);
    await using sub = await subscriber(b, "sub", "interop/big", { qos: 1 });
    const result = await runTool("mosquitto_pub", [
      ...base(b, "pub"),
      "-t",
      "interop/big",
      "-q",
      "1",
      "-f",
      file,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await subscriberLines(sub), [`1 0 interop/big ${payload}`]);
  } finally {
    await Deno.remove(file);
  }
});

test("interop mosquitto: wildcards and several messages in order", async () => {
  await using b = await startBroker();
  await using sub = await subscriber(b, "sub", "interop/+/x/#", { qos: 2, count: 3 });
  await publish(b, "p1", "interop/a/x", "1", { qos: 2 });
  await publish(b, "p2", "interop/b/y", "skipped", { qos: 2 });
  await publish(b, "p3", "interop/b/x/deep/er", "2", { qos: 1 });
  await publish(b, "p4", "interop/c/x/", "3", { qos: 0 });
  assert.deepEqual(await subscriberLines(sub), [
    "2 0 interop/a/x 1",
    "1 0 interop/b/x/deep/er 2",
    "0 0 interop/c/x/ 3",
  ]);
});

test("interop mosquitto: 200 QoS 1 messages over one connection (--repeat) all arrive", async () => {
  await using b = await startBroker();
  await using sub = await subscriber(b, "sub", "interop/many", { qos: 1, count: 200 });
  const result = await runTool("mosquitto_pub", [
    ...base(b, "pub"),
    "-t",
    "interop/many",
    "-q",
    "1",
    "-m",
    "m",
    "--repeat",
    "200",
  ]);
  assert.equal(result.code, 0, result.stderr);
  const got = await subscriberLines(sub);
  assert.equal(got.length, 200);
  assert.ok(got.every((l) => l === "1 0 interop/many m"));
});

test("interop mosquitto: two mosquitto_sub in one $share group split the messages, a plain one gets all", async () => {
  await using b = await startBroker();
  const filter = "$share/workers/interop/share";
  await using first = await subscriber(b, "w1", filter, { qos: 1, count: 3 });
  await using second = await subscriber(b, "w2", filter, { qos: 1, count: 3 });
  await using plain = await subscriber(b, "all", "interop/share", { qos: 1, count: 6 });
  for (let i = 1; i <= 6; i++) await publish(b, `p${i}`, "interop/share", `job ${i}`, { qos: 1 });
  const a = await subscriberLines(first);
  const c = await subscriberLines(second);
  // Round robin: three each, no message twice in the group.
  assert.equal(a.length, 3);
  assert.equal(c.length, 3);
  assert.deepEqual(
    [...a, ...c].sort(),
    [1, 2, 3, 4, 5, 6].map((i) => `1 0 interop/share job ${i}`),
  );
  assert.equal((await subscriberLines(plain)).length, 6);
});

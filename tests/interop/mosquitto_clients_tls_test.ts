/**
 * Interop: Debian's `mosquitto_pub` and `mosquitto_sub` against our broker over TLS (`--cafile`),
 * the matrix cells beside the plain-TCP ones of `mosquitto_clients_test.ts` — QoS 0/1/2, retained
 * messages, wills, persistent sessions, MQTT 3.1 and 3.1.1. (The Debian clients have no
 * WebSocket support.)
 *
 * @module
 */

import assert from "node:assert/strict";
import { waitFor } from "../_helpers/broker.ts";
import { SharedCerts } from "../_helpers/certs.ts";
import { runTool, Tool } from "../_helpers/peers.ts";
import {
  interopTest,
  type OurBroker,
  startOurBroker,
  subscriberLines,
  whenSubscribed,
} from "./_peers.ts";

const certs = new SharedCerts();

const test = interopTest;

type Version = "mqttv31" | "mqttv311";

const LEVEL: Record<Version, number> = { mqttv31: 3, mqttv311: 4 };

/** Our broker; `done()` asserts every client came over TLS at the protocol level of `version`. */
async function start(version: Version): Promise<OurBroker & { done(): void }> {
  const b = await startOurBroker(await certs.get());
  const seen: string[] = [];
  b.broker.on("clientConnected", (e) => {
    seen.push(`${e.client.transport} ${e.client.protocolVersion}`);
  });
  return Object.assign(b, {
    done() {
      assert.ok(seen.length > 0, "clients connected");
      assert.deepEqual(new Set(seen), new Set([`tls ${LEVEL[version]}`]));
    },
  });
}

/** Our broker's TLS listener, a client id, a protocol version; the test CA as the only trust. */
async function base(b: OurBroker, id: string, version: Version): Promise<string[]> {
  return [
    "-h",
    "127.0.0.1",
    "-p",
    String(b.port("tls")),
    "--cafile",
    (await certs.get()).caFile,
    "-i",
    id,
    "-V",
    version,
  ];
}

/** Starts mosquitto_sub printing "qos retain topic payload" and waits for its subscription. */
async function subscriber(
  b: OurBroker,
  id: string,
  topic: string,
  options: { count?: number; version?: Version; extra?: string[] } = {},
): Promise<Tool> {
  const sub = new Tool("mosquitto_sub", [
    ...(await base(b, id, options.version ?? "mqttv311")),
    "-t",
    topic,
    "-q",
    "2",
    "-C",
    String(options.count ?? 1),
    "-W",
    "8",
    "-F",
    "%q %r %t %p",
    ...(options.extra ?? []),
  ], 10_000);
  return await whenSubscribed(sub, b.broker, { clientId: id, topic, ms: 5000 });
}

async function publish(
  b: OurBroker,
  id: string,
  topic: string,
  message: string,
  options: { qos?: number; retain?: boolean; version?: Version } = {},
): Promise<void> {
  const args = [
    ...(await base(b, id, options.version ?? "mqttv311")),
    "-t",
    topic,
    "-q",
    String(options.qos ?? 0),
    "-m",
    message,
  ];
  if (options.retain) args.push("-r");
  const r = await runTool("mosquitto_pub", args);
  assert.equal(r.code, 0, `mosquitto_pub failed: ${r.stderr}`);
}

for (const version of ["mqttv311", "mqttv31"] as const) {
  test(`mosquitto_pub/sub over tls -> amqtt: ${version} QoS 0, 1 and 2`, async () => {
    await using b = await start(version);
    await using sub = await subscriber(b, `tls-sub-${version}`, "tls/+", { count: 3, version });
    for (const qos of [0, 1, 2]) {
      await publish(b, `tls-pub-${version}-${qos}`, `tls/q${qos}`, `payload ${qos}`, {
        qos,
        version,
      });
    }
    // Delivered at the publish QoS, the subscription granting 2 [MQTT-3.8.4-6].
    assert.deepEqual(await subscriberLines(sub), [
      "0 0 tls/q0 payload 0",
      "1 0 tls/q1 payload 1",
      "2 0 tls/q2 payload 2",
    ]);
    b.done();
  });

  test(`mosquitto_pub/sub over tls -> amqtt: ${version} retained message reaches a later subscriber with RETAIN set [MQTT-3.3.1-6]`, async () => {
    await using b = await start(version);
    await publish(b, `tls-rpub-${version}`, "tls/retained", "kept", {
      qos: 1,
      retain: true,
      version,
    });
    await using sub = await subscriber(b, `tls-rsub-${version}`, "tls/#", { version });
    assert.deepEqual(await subscriberLines(sub), ["1 1 tls/retained kept"]);
    b.done();
  });

  test(`mosquitto_pub/sub over tls -> amqtt: ${version} will of a killed client is published [MQTT-3.1.2-8]`, async () => {
    await using b = await start(version);
    await using watcher = await subscriber(b, `tls-watch-${version}`, "tls/will", { version });
    await using dying = await subscriber(b, `tls-dying-${version}`, "tls/other", {
      version,
      extra: ["--will-topic", "tls/will", "--will-payload", "gone", "--will-qos", "1"],
    });
    dying.kill("SIGKILL"); // no DISCONNECT
    await dying.result();
    assert.deepEqual(await subscriberLines(watcher), ["1 0 tls/will gone"]);
    b.done();
  });

  test(`mosquitto_pub/sub over tls -> amqtt: ${version} persistent session (-c) gets what was published while offline [MQTT-3.1.2-4]`, async () => {
    await using b = await start(version);
    const id = `tls-persist-${version}`;
    // First visit: subscribe with a persistent session, then leave (-E exits once subscribed).
    const first = await runTool("mosquitto_sub", [
      ...(await base(b, id, version)),
      "-c",
      "-t",
      "tls/persist",
      "-q",
      "1",
      "-E",
    ]);
    assert.equal(first.code, 0, first.stderr);
    await waitFor(
      () => b.broker.clients().some((c) => c.clientId === id && !c.connected),
      3000,
      "the session to be offline",
    );
    await publish(b, `tls-ppub-${version}`, "tls/persist", "while away", { qos: 1, version });
    await waitFor(
      () => b.broker.clients().some((c) => c.clientId === id && c.queued + c.inflight > 0),
      3000,
      "the message to be queued for the offline session",
    );
    // Second visit: the message exists only in the stored session (nobody was subscribed when it
    // was published), so receiving it proves the session was kept.
    await using again = new Tool("mosquitto_sub", [
      ...(await base(b, id, version)),
      "-c",
      "-t",
      "tls/persist",
      "-q",
      "1",
      "-C",
      "1",
      "-W",
      "8",
      "-F",
      "%q %r %t %p",
    ], 10_000);
    assert.deepEqual(await subscriberLines(again), ["1 0 tls/persist while away"]);
    b.done();
  });
}

test("mosquitto_pub over tls: a CA that did not sign the broker's certificate is refused", async () => {
  await using b = await startOurBroker(await certs.get());
  const r = await runTool("mosquitto_pub", [
    "-h",
    "127.0.0.1",
    "-p",
    String(b.port("tls")),
    "--cafile",
    (await certs.get()).clientCertFile,
    "-t",
    "x",
    "-m",
    "no",
  ]);
  assert.notEqual(r.code, 0);
  assert.equal(b.broker.clients().length, 0, "no MQTT session was made");
});

test("mosquitto clients over tls: interop certificates are removed", async () => {
  const dir = (await certs.get()).dir;
  await certs.remove();
  await assert.rejects(Deno.stat(dir), Deno.errors.NotFound);
});

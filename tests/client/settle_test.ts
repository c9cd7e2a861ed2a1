/**
 * Every pending promise of the client settles on disconnect, on dispose and when reconnecting
 * gives up; the sanitizers check that no timer or socket outlives the client.
 */

import assert from "node:assert/strict";
import { ClientError, MQTTClient } from "../../client.ts";
import type { ApplicationMessage } from "../../client.ts";
import { Broker } from "../../broker.ts";
import { waitFor } from "../_helpers/broker.ts";
import { freePort } from "../_helpers/peers.ts";
import { ScriptedServer } from "./_helpers.ts";

async function startBroker(port = 0): Promise<Broker> {
  const broker = new Broker({ listeners: { default: { type: "tcp", bind: `127.0.0.1:${port}` } } });
  await broker.start();
  return broker;
}

/** Starts every kind of operation on a client that is not connected right now. */
function everyOperation(client: MQTTClient) {
  const iterating = (async () => {
    const got: ApplicationMessage[] = [];
    for await (const m of client.messages()) got.push(m);
    return got;
  })();
  const operations = Promise.allSettled([
    client.publish("p/0", "zero", { qos: 0 }),
    client.publish("p/1", "one", { qos: 1 }),
    client.publish("p/2", "two", { qos: 2 }),
    client.subscribe([{ topic: "s/#", qos: 1 }]),
    client.unsubscribe(["u"]),
    client.ping(),
    client.deliverMessage(),
  ]);
  let settled = false;
  void operations.then(() => settled = true);
  return { iterating, operations, settled: () => settled };
}

/** Resolves after `ms`. */
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function assertAllRejected(results: PromiseSettledResult<unknown>[], pattern?: RegExp): void {
  results.forEach((r, i) => {
    assert.equal(r.status, "rejected", `operation ${i} settled as ${r.status}`);
    if (r.status !== "rejected") return;
    assert.ok(r.reason instanceof ClientError, `operation ${i}: ${r.reason}`);
    // ping() fails at once while offline, before any give-up.
    if (pattern !== undefined && i !== 5) assert.match(r.reason.message, pattern);
  });
}

Deno.test("MQTTClient dispose while reconnecting settles every pending operation", async () => {
  const broker = await startBroker();
  const client = new MQTTClient({
    config: { reconnect_retries: -1, reconnect_max_interval: 0.2 },
  });
  await client.connect(`mqtt://127.0.0.1:${broker.listeners[0]!.port}`);
  await broker.shutdown();
  await waitFor(() => !client.connected, 3000, "the client to notice");
  const { iterating, operations, settled } = everyOperation(client);
  await delay(50);
  assert.equal(settled(), false, "the operations wait for the reconnect");
  await client[Symbol.asyncDispose]();
  assertAllRejected(await operations);
  assert.deepEqual(await iterating, [], "messages() ends");
  assert.equal(client.connected, false);
  await assert.rejects(client.publish("x", "y"), ClientError);
});

Deno.test("MQTTClient giving up rejects every pending operation and fails messages()", async () => {
  const broker = await startBroker();
  await using client = new MQTTClient({
    // One attempt, 150 to 300 ms after the loss: the operations start before it.
    config: { reconnect_retries: 1, reconnect_max_interval: 0.3 },
  });
  await client.connect(`mqtt://127.0.0.1:${broker.listeners[0]!.port}`);
  await broker.shutdown();
  await waitFor(() => !client.connected, 3000, "the client to notice");
  const { iterating, operations, settled } = everyOperation(client);
  await delay(50);
  assert.equal(settled(), false, "the operations wait for the reconnect");
  assertAllRejected(await operations, /Will not reconnect/);
  await assert.rejects(iterating, /Will not reconnect/);
});

Deno.test("MQTTClient disconnect during connect retries stops them and rejects connect", async () => {
  await using client = new MQTTClient({
    config: { reconnect_retries: -1, reconnect_max_interval: 60 },
  });
  let settled = false;
  const connecting = client.connect(`mqtt://127.0.0.1:${freePort()}`).catch((e) => e)
    .finally(() => settled = true);
  // The first attempt is refused at once; the client then waits 0.5 to 1 s before the next.
  await delay(150);
  await client.disconnect();
  // The wait is cut short: connect settles within a few turns of the event loop (counted, not
  // timed), not when the wait would have ended. A slow machine can only make this pass.
  for (let turn = 0; turn < 10 && !settled; turn++) await delay(0);
  assert.equal(settled, true, "connect still waiting after disconnect");
  const error = await connecting;
  assert.ok(error instanceof ClientError, String(error));
  assert.match(error.message, /interrupted/);
  assert.equal(client.connected, false);
});

Deno.test("MQTTClient disconnect while waiting for CONNACK rejects connect and closes the socket", async () => {
  await using server = new ScriptedServer();
  await using client = new MQTTClient();
  const accepting = server.accept();
  const connecting = client.connect(`mqtt://127.0.0.1:${server.port}`).catch((e) => e);
  const conn = await accepting;
  assert.equal((await conn.next())?.type, 1, "CONNECT arrived");
  await client.disconnect();
  assert.ok(await connecting instanceof ClientError);
  assert.equal(await conn.next(), undefined, "the client closed the connection");
});

Deno.test("MQTTClient messages() and deliverMessage() waiting on a live connection end on disconnect", async () => {
  const broker = await startBroker();
  try {
    const client = new MQTTClient();
    await client.connect(`mqtt://127.0.0.1:${broker.listeners[0]!.port}`);
    const iterating = (async () => {
      for await (const _ of client.messages()) return "message";
      return "ended";
    })();
    const delivering = client.deliverMessage().catch((e) => e);
    await client.disconnect();
    assert.equal(await iterating, "ended");
    assert.ok(await delivering instanceof ClientError);
  } finally {
    await broker.shutdown();
  }
});

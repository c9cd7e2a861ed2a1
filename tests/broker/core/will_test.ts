/**
 * Will timing per session in the broker core, driven by an injected clock: a will is published
 * when its connection is lost, at once by default, or after the session's will delay unless the
 * client is back by then, and at the latest when the session ends.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../../src/packet/mod.ts";
import type { QoS } from "../../../src/packet/mod.ts";
import type { BrokerMessage } from "../../../src/broker/message.ts";
import { connect, T0, testCore } from "../../_helpers/core.ts";
import { connectPacket } from "../../_helpers/test_client.ts";

const will = { topic: "will/c", payload: new Uint8Array([1]), qos: 0 as QoS, retain: false };

/** A core with a watcher subscribed to wills and a persistent client "c" with a will. */
function setup(options: { willDelay: number; sessionExpiryInterval?: number }) {
  const core = testCore({ sessionExpiryInterval: options.sessionExpiryInterval });
  const watcher = connect(core, connectPacket({ clientId: "w" }));
  core.handle(watcher, {
    type: PacketType.SUBSCRIBE,
    packetId: 1,
    subscriptions: [{ topic: "will/#", qos: 0 }],
  }, T0);
  const client = connect(core, connectPacket({ clientId: "c", clean: false, will }));
  // What an MQTT 5.0 will's Will Delay Interval sets.
  core.sessions.get("c")!.willDelay = options.willDelay;
  return { core, watcher, client };
}

Deno.test("core will: without a delay the will is published when the connection is lost [MQTT-3.1.2-8]", () => {
  const { core, watcher, client } = setup({ willDelay: 0 });
  core.detach(client, T0 + 1);
  assert.deepEqual(watcher.published.map((p) => p.topic), ["will/c"]);
});

Deno.test("core will: a delayed will is published once its delay has passed", () => {
  const { core, watcher, client } = setup({ willDelay: 30 });
  core.detach(client, T0);
  core.tick(T0 + 29_999);
  assert.equal(watcher.published.length, 0, "published before its delay");
  core.tick(T0 + 30_000);
  assert.deepEqual(watcher.published.map((p) => p.topic), ["will/c"]);
  core.tick(T0 + 60_000);
  assert.equal(watcher.published.length, 1, "published twice");
});

Deno.test("core will: a client back before the delay has passed cancels its delayed will", () => {
  const { core, watcher, client } = setup({ willDelay: 30 });
  core.detach(client, T0);
  connect(core, connectPacket({ clientId: "c", clean: false }), T0 + 10_000);
  core.tick(T0 + 100_000);
  assert.equal(watcher.published.length, 0);
});

Deno.test("core will: a session that ends before the delay publishes its will then", () => {
  const { core, watcher, client } = setup({ willDelay: 300, sessionExpiryInterval: 60 });
  core.detach(client, T0);
  core.tick(T0 + 59_999);
  assert.equal(watcher.published.length, 0);
  core.tick(T0 + 60_000);
  assert.equal(core.sessions.has("c"), false);
  assert.deepEqual(watcher.published.map((p) => p.topic), ["will/c"]);
  core.tick(T0 + 400_000);
  assert.equal(watcher.published.length, 1, "published again at the delay");
});

Deno.test("core will: a clean CONNECT ends the old session and publishes its delayed will", () => {
  const { core, watcher, client } = setup({ willDelay: 300 });
  core.detach(client, T0);
  connect(core, connectPacket({ clientId: "c", clean: true }), T0 + 1_000);
  assert.deepEqual(watcher.published.map((p) => p.topic), ["will/c"]);
  core.tick(T0 + 400_000);
  assert.equal(watcher.published.length, 1);
});

Deno.test("core will: a 5.0 will keeps a Correlation Data of its own, intact when the CONNECT's read buffer is read into again [MQTT-3.1.2-8]", () => {
  const published: BrokerMessage[] = [];
  const core = testCore({}, { events: { published: (m) => void published.push(m) } });
  // The CONNECT as decoded from a read: its will's payload and Correlation Data are views into
  // the read buffer (a slot of a slab the broker's connections share).
  const read = new Uint8Array(256).fill(7);
  const connect5 = connectPacket({
    clientId: "c",
    protocolVersion: 5,
    will: {
      topic: "will/c",
      payload: read.subarray(10, 14),
      qos: 0,
      retain: false,
      properties: { correlationData: read.subarray(20, 28), userProperties: [["k", "v"]] },
    },
  });
  const client = connect(core, connect5);
  // The shell reads the connection's (or another's) next bytes into the same memory.
  read.fill(0xee);
  const kept = core.sessions.get("c")!.will!.properties!.correlationData!;
  assert.equal(kept.buffer.byteLength, kept.length, "a buffer of its own, not the read slot");
  core.detach(client, T0 + 1);
  assert.equal(published.length, 1);
  const m = published[0]!;
  assert.deepEqual([...m.payload], [7, 7, 7, 7]);
  assert.deepEqual([...m.properties!.correlationData!], [7, 7, 7, 7, 7, 7, 7, 7]);
  assert.deepEqual(m.properties!.userProperties, [["k", "v"]]);
});

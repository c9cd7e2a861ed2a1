/**
 * Broker, area 28: an acknowledgement that follows a plugin's asynchronous decision waits for the
 * store's commit like any other: a PUBACK means the message is stored, whatever the plugin took.
 * The store here is a MemoryStore whose commits the test holds and releases.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { MemoryStore } from "../../src/store/memory_store.ts";
import type { BrokerPlugin } from "../../broker.ts";
import { startBroker, waitFor } from "../_helpers/broker.ts";
import { publishPacket, TestClient } from "../_helpers/test_client.ts";

/** A MemoryStore whose commits wait until the test opens them. */
class HeldStore extends MemoryStore {
  held = false;
  #waiting: (() => void)[] = [];
  override async commit(): Promise<void> {
    if (this.held) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    await super.commit();
  }
  release(): void {
    this.held = false;
    for (const go of this.#waiting.splice(0)) go();
  }
}

Deno.test("28 persistence: a PUBACK after an asynchronous authorization waits for the commit [MQTT-4.3.2-2]", async () => {
  const store = new HeldStore();
  let answered = 0;
  const slow: BrokerPlugin = {
    name: "slow_acl",
    authorizePublish: async () => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      answered++;
      return true;
    },
  };
  await using b = await startBroker({}, { store, plugins: [slow] });
  await using sub = await TestClient.connect(b.port, { clientId: "sub", clean: false });
  await sub.subscribe({ "t/#": 1 });
  await using pub = await TestClient.connect(b.port, { clientId: "pub" });
  store.held = true;
  await pub.send(publishPacket("t/a", "kept", { qos: 1, packetId: 1 }));
  await waitFor(() => answered === 1, undefined, "the plugin's answer");
  // Answered and routed, but not yet stored: no PUBACK, and the publisher is still connected.
  assert.equal(await pub.poll(300), undefined, "no PUBACK before the commit");
  assert.equal(pub.socketEnded, false);
  store.release();
  const ack = await pub.expect(PacketType.PUBACK);
  assert.equal(ack.packetId, 1);
});

// QoS 2 stays exactly-once while a persistent session moves between nodes (a live takeover):
// a subscriber that moves while a PUBREL waits for its PUBCOMP, with a publisher on a third node
// publishing without pause, gets every message once, in order; a publisher that moves between
// its PUBREC and its PUBREL completes the message on the new node without a second delivery.
// Real processes, redis-server, a byte-level client and ours.
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";
import { publishPacket, TestClient, text } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import type { Packet, PublishPacket } from "../../src/packet/types.ts";
import { Inbox, Node, routeReady, UNBOUNDED_QUEUE, until } from "./_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/**
 * A QoS 2 receiver keeping its side of the session across connections, as a client must: the
 * packet ids it received and answered with PUBREC and has not seen PUBREL for. A PUBLISH with
 * such an id is the same message again (not delivered twice) [MQTT-4.3.3-2].
 */
class Receiver {
  /** Payloads delivered to the application, in order. */
  readonly delivered: string[] = [];
  readonly #pending = new Set<number>();
  /** PUBRELs received, by packet id. */
  readonly pubrels = new Map<number, number>();
  /** PUBLISHes received again with the DUP flag, by packet id. */
  readonly resent = new Map<number, number>();

  /**
   * Reads and answers packets until `enough()` holds and a PUBREL arrives: that PUBREL is left
   * unanswered (no PUBCOMP); then the next PUBLISH is delivered but left unanswered too (no
   * PUBREC). Returns both packet ids; nothing more is read from `client`.
   */
  async serveUntilPubrel(
    client: TestClient,
    enough: () => boolean,
  ): Promise<{ pubrel: number; publish: number }> {
    let pubrel: number | undefined;
    for (;;) {
      const packet = await client.receive();
      if (pubrel === undefined && packet.type === PacketType.PUBREL && enough()) {
        this.#pubrel(packet.packetId);
        pubrel = packet.packetId;
      } else if (pubrel !== undefined && packet.type === PacketType.PUBLISH) {
        this.#deliver(packet);
        return { pubrel, publish: packet.packetId! };
      } else {
        await this.#answer(client, packet);
      }
    }
  }

  /** Reads and answers packets until `done()` holds. */
  async serveUntil(client: TestClient, done: () => boolean): Promise<void> {
    while (!done()) {
      const packet = await client.poll(100);
      if (packet !== undefined) await this.#answer(client, packet);
    }
  }

  /** Answers what comes until nothing has come for 300 ms. */
  async drain(client: TestClient): Promise<void> {
    for (;;) {
      const packet = await client.poll(300);
      if (packet === undefined) return;
      await this.#answer(client, packet);
    }
  }

  #pubrel(packetId: number): void {
    this.pubrels.set(packetId, (this.pubrels.get(packetId) ?? 0) + 1);
    this.#pending.delete(packetId);
  }

  #deliver(packet: PublishPacket): void {
    assert.equal(packet.qos, 2);
    const id = packet.packetId!;
    if (packet.dup) this.resent.set(id, (this.resent.get(id) ?? 0) + 1);
    if (!this.#pending.has(id)) {
      this.#pending.add(id);
      this.delivered.push(text(packet));
    }
  }

  async #answer(client: TestClient, packet: Packet): Promise<void> {
    if (packet.type === PacketType.PUBLISH) {
      this.#deliver(packet);
      await client.send({ type: PacketType.PUBREC, packetId: packet.packetId! });
    } else if (packet.type === PacketType.PUBREL) {
      this.#pubrel(packet.packetId);
      await client.send({ type: PacketType.PUBCOMP, packetId: packet.packetId });
    }
  }
}

/**
 * The publishers do not wait for the moving subscriber: on a loaded machine a slow move can queue
 * more than `max_queued_messages` (default 1000) for it, and the oldest are then dropped as
 * configured (counted as "queue full"; see `move_window_test.ts`, where this was traced). A bound no
 * run reaches leaves only what the cluster does.
 */
const UNBOUNDED = { yaml: [UNBOUNDED_QUEUE] };

Deno.test(
  "cluster: a QoS 2 subscriber moving between nodes with a PUBREL awaiting its PUBCOMP, while a third node publishes QoS 2 without pause, gets PUBREL again on the new node and every message exactly once, in order [MQTT-4.3.3-2] [MQTT-4.4.0-1] [MQTT-4.6.0-6]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "q2m1:", ...UNBOUNDED });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "q2m1:", ...UNBOUNDED });
    await using c = await Node.start(redis, { nodeId: "c", prefix: "q2m1:", ...UNBOUNDED });
    const receiver = new Receiver();
    let client = await TestClient.connect(a.port, { clientId: "q2", clean: false });
    try {
      // The SUBACK waits until the other nodes know of the subscription.
      await client.subscribe({ "q2/#": 2 });
      await using pub = await Inbox.connect(c, "pub-c");
      let acked = 0;
      let stop = false;
      const publishing = (async () => {
        while (!stop) await pub.client.publish("q2/x", String(acked++), { qos: 2 });
      })();
      for (const node of [b, a, b]) {
        const before = receiver.delivered.length;
        const held = await receiver.serveUntilPubrel(
          client,
          () => receiver.delivered.length >= before + 20,
        );
        const pubrelsBefore = receiver.pubrels.get(held.pubrel)!;
        const resentBefore = receiver.resent.get(held.publish) ?? 0;
        // The client moves with a PUBREL unanswered (between PUBREC and PUBCOMP) and a PUBLISH
        // delivered but not acknowledged; the old node closes the old connection.
        const next = await TestClient.connect(node.port, { clientId: "q2", clean: false });
        await client.close();
        client = next;
        // The new node sends the PUBREL again, and the PUBLISH again with its packet id and DUP:
        // the client knows that one (no second delivery).
        await receiver.serveUntil(
          client,
          () =>
            receiver.pubrels.get(held.pubrel)! > pubrelsBefore &&
            (receiver.resent.get(held.publish) ?? 0) > resentBefore,
        );
      }
      const last = acked + 20;
      await until(() => acked >= last, "messages published after the moves");
      stop = true;
      await publishing;
      await receiver.serveUntil(client, () => receiver.delivered.includes(String(acked - 1)));
      // Whatever else the new node still sends is answered, and delivers nothing new.
      await receiver.drain(client);
      assert.equal(client.ended, false, "the connection is still open");
      const numbers = receiver.delivered.map(Number);
      assert.equal(new Set(numbers).size, numbers.length, "no message delivered twice");
      assert.deepEqual(numbers, Array.from({ length: acked }, (_, i) => i), "all, in order");
    } finally {
      await client.close();
    }
  },
);

Deno.test(
  "cluster: a QoS 2 publisher moving between nodes after PUBREC completes the message with PUBREL on the new node: PUBCOMP there, a PUBLISH again with the same id is answered PUBREC, and the subscriber gets it once [MQTT-4.3.3-2] [MQTT-4.3.3-3]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "q2m2:", ...UNBOUNDED });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "q2m2:", ...UNBOUNDED });
    await using c = await Node.start(redis, { nodeId: "c", prefix: "q2m2:", ...UNBOUNDED });
    await using sub = await Inbox.connect(c, "sub");
    await sub.client.subscribe([{ topic: "p2/#", qos: 2 }]);
    {
      await using probe = await Inbox.connect(a, "probe");
      await routeReady(probe.client, sub, "p2/probe");
    }
    {
      await using probe = await Inbox.connect(b, "probe");
      await routeReady(probe.client, sub, "p2/probe");
    }
    const first = await TestClient.connect(a.port, { clientId: "p2", clean: false });
    let second: TestClient | undefined;
    try {
      await first.send(publishPacket("p2/x", "one", { qos: 2, packetId: 7 }));
      assert.equal((await first.expect(PacketType.PUBREC)).packetId, 7);
      await until(() => sub.on("p2/x").length >= 1, "the message on the subscriber");
      // Moves to B before its PUBREL (a live takeover).
      second = await TestClient.connect(b.port, { clientId: "p2", clean: false });
      await first.close();
      // The same message again, as a sender that missed the PUBREC would send it.
      await second.send(publishPacket("p2/x", "one", { qos: 2, packetId: 7, dup: true }));
      assert.equal((await second.expect(PacketType.PUBREC)).packetId, 7);
      await second.send({ type: PacketType.PUBREL, packetId: 7 });
      assert.equal((await second.expect(PacketType.PUBCOMP)).packetId, 7);
      // Packet id 7 is free again: a new message with it is a new message.
      await second.send(publishPacket("p2/x", "two", { qos: 2, packetId: 7 }));
      assert.equal((await second.expect(PacketType.PUBREC)).packetId, 7);
      await second.send({ type: PacketType.PUBREL, packetId: 7 });
      assert.equal((await second.expect(PacketType.PUBCOMP)).packetId, 7);
      await until(() => sub.on("p2/x").length >= 2, "the second message");
      // Anything delivered twice would come before a later message from the same publisher.
      await second.send(publishPacket("p2/x", "end", { qos: 1, packetId: 8 }));
      await second.expect(PacketType.PUBACK);
      await until(() => sub.on("p2/x").some((m) => m.payload === "end"), "the last message");
      assert.deepEqual(sub.on("p2/x").map((m) => m.payload), ["one", "two", "end"]);
    } finally {
      await first.close();
      await second?.close();
    }
  },
);

/**
 * Scenarios several cluster tests play with one difference each. The adoption of a dead node's
 * persistent session while Redis refuses part of what the adoption needs: three nodes, the
 * session's client on A, a publisher on C; Redis refuses something, A dies, B or C fails to
 * adopt, Redis lets it through again, and every message acknowledged to the publisher reaches
 * the client when it comes back. Real processes and redis-server.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { RedisServer } from "../_helpers/redis.ts";
import { adopted, Inbox, Node, routeReady, UNBOUNDED_QUEUE, until } from "./_nodes.ts";
import { assertDelivered } from "./_arrivals.ts";
import { Publisher } from "./_publisher.ts";

/** What Redis refuses around A's death, and how the adopter's failure shows. */
export interface AdoptionOutage {
  /** The cluster's key prefix, one per test. */
  prefix: string;
  /** The root of the topics: the client subscribes to `ROOT/#`, the publisher sends on `ROOT/x`. */
  root: string;
  /** Makes Redis refuse what the adoption needs (just before A dies). */
  deny(redis: RedisServer): Promise<void>;
  /** Lets it through again. */
  allow(redis: RedisServer): Promise<void>;
  /** The line B's or C's log holds once an adoption failed. */
  failure: RegExp;
  /** The failure, as the wait for it names it. */
  failureName: string;
  /** How long to wait after the failure before Redis lets it through: the others' tries. */
  settleMs?: number;
  /** Where the client comes back: the node that adopted its session (default) or B. */
  returnTo?: "adopter" | "b";
  /** The publisher's pause after each acknowledged message, in ms (default none). */
  pauseMs?: number;
}

/**
 * Plays the adoption of A's persistent session while Redis refuses part of it (see the module).
 * Asserts that every QoS 1 message acknowledged to the publisher reaches the client
 * [MQTT-4.3.2-1], the first arrivals in order [MQTT-4.6.0-6].
 *
 * @param redis the test's Redis
 * @param outage what Redis refuses, and how the failure shows
 */
export async function adoptionAfterOutage(
  redis: RedisServer,
  outage: AdoptionOutage,
): Promise<void> {
  const { root } = outage;
  // A is found dead 3 s after its death; B and C, busy on a loaded machine, only after 30 s.
  const options = { prefix: outage.prefix, yaml: [UNBOUNDED_QUEUE] };
  await using a = await Node.start(redis, { nodeId: "a", nodeTimeout: 3, ...options });
  await using b = await Node.start(redis, { nodeId: "b", ...options });
  await using c = await Node.start(redis, { nodeId: "c", ...options });
  const seen: string[] = [];
  let inbox: Inbox | undefined = await Inbox.connect(a, "orphan", { cleanSession: false });
  let denied = false;
  try {
    assert.deepEqual(await inbox.client.subscribe([{ topic: `${root}/#`, qos: 1 }]), [1]);
    await using pub = await Inbox.connect(c, "pub-c");
    await routeReady(pub.client, inbox, `${root}/probe`);
    // Disposed before `pub`: no publish left pending when its connection closes.
    await using publisher = new Publisher(pub.client, `${root}/x`, 1, outage.pauseMs);
    await until(publisher.reached(20), "messages published before the death");
    await outage.deny(redis);
    denied = true;
    await a.crash();
    await inbox[Symbol.asyncDispose]();
    seen.push(...inbox.on(`${root}/x`).map((m) => m.payload));
    inbox = undefined;
    await until(() => outage.failure.test(b.log() + c.log()), outage.failureName);
    if (outage.settleMs !== undefined) {
      await new Promise((resolve) => setTimeout(resolve, outage.settleMs));
    }
    await outage.allow(redis);
    denied = false;
    await until(
      () => adopted(b.log() + c.log(), "orphan"),
      "the adoption of the session",
    );
    await until(publisher.reached(publisher.sent + 20), "messages published after the adoption");
    // To the adopter: the session, with all that was queued meanwhile, is there.
    const adopter = outage.returnTo === "b" || adopted(b.log(), "orphan") ? b : c;
    const back = inbox = await Inbox.connect(adopter, "orphan", { cleanSession: false });
    await until(publisher.reached(publisher.sent + 20), "messages published after the return");
    await publisher.stop();
    const acked = publisher.sent;
    await until(
      () => back.on(`${root}/x`).some((m) => m.payload === String(acked - 1)),
      "the last message",
    );
    seen.push(...back.on(`${root}/x`).map((m) => m.payload));
    assertDelivered(seen, acked, { ordered: true });
  } finally {
    if (denied) await outage.allow(redis);
    await inbox?.[Symbol.asyncDispose]();
  }
}

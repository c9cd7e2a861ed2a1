// Session: delivery of queued messages with a clock, for MQTT 5.0 message expiry.

import assert from "node:assert/strict";
import type { QoS } from "../../src/packet/constants.ts";
import { BrokerMessage } from "../../src/broker/message.ts";
import { Session } from "../../src/broker/session.ts";
import { emptyDropCounts } from "../../src/broker/drop_counters.ts";
import { ActionQueue } from "../../src/broker/actions.ts";
import { LinkState } from "../../src/broker/link.ts";
import type { ConnectionInfo } from "../../src/transport/types.ts";

const INFO: ConnectionInfo = { transport: "tcp", remoteAddress: "127.0.0.1:1" };

/** A connection as the session sees it, and the PUBLISH actions the session queued for it. */
class Link extends LinkState {
  readonly out: ActionQueue;
  constructor(out: ActionQueue, id = 1) {
    super(id, undefined, INFO, false);
    this.out = out;
  }
  get sent(): { topic: string; qos: QoS; packetId: number; dup: boolean }[] {
    const sent = [];
    for (let i = 0; i < this.out.length; i++) {
      const a = this.out.at(i);
      if (a.kind === "publish" && a.link === this) {
        sent.push({ topic: a.message.topic, qos: a.qos, packetId: a.packetId, dup: a.dup });
      }
    }
    return sent;
  }
}

function counters() {
  return { publishSent: 0, dropped: 0, droppedBy: emptyDropCounts() };
}

function message(topic: string, expiresAt?: number): BrokerMessage {
  return new BrokerMessage(topic, new Uint8Array(), { qos: 1, retain: false, expiresAt });
}

Deno.test("Session (MQTT 5) does not send queued copies whose expiry passed before they went out [MQTT-3.3.2-5]", () => {
  const out = new ActionQueue();
  const session = new Session("s", { maxInflight: 1, maxQueued: 10, out });
  const link = new Link(out);
  session.link = link;
  const stats = counters();
  session.deliver(message("first"), 1, stats);
  session.deliver(message("expires", 5_000), 1, stats);
  session.deliver(message("lasts", 60_000), 1, stats);
  assert.deepEqual(link.sent.map((p) => p.topic), ["first"]);
  session.outbound.acknowledge(link.sent[0].packetId, "puback");
  session.pump(stats, 5_000);
  assert.deepEqual(link.sent.map((p) => p.topic), ["first", "lasts"]);
  assert.equal(stats.droppedBy.expired, 1);
  assert.equal(stats.dropped, 1);
});

Deno.test("Session (MQTT 5) resume drops what expired offline before it was sent, resends what was sent [MQTT-3.3.2-5]", () => {
  const out = new ActionQueue();
  const session = new Session("s", { maxInflight: 5, maxQueued: 10, out });
  const link = new Link(out);
  session.link = link;
  const stats = counters();
  session.deliver(message("sent-then-lost", 5_000), 1, stats);
  session.link = undefined;
  session.deliver(message("expired-offline", 5_000), 1, stats);
  session.deliver(message("still-good", 90_000), 1, stats);
  const back = new Link(out, 2);
  session.link = back;
  session.resume(stats, 10_000);
  assert.deepEqual(back.sent.map((p) => [p.topic, p.dup]), [
    ["sent-then-lost", true],
    ["still-good", false],
  ]);
  assert.equal(stats.droppedBy.expired, 1);
});

Deno.test("Session without a clock sends queued messages whatever their expiry (3.1.1 path unchanged)", () => {
  const out = new ActionQueue();
  const session = new Session("s", { maxInflight: 1, maxQueued: 10, out });
  const link = new Link(out);
  session.link = link;
  const stats = counters();
  session.deliver(message("a"), 1, stats);
  session.deliver(message("b", 1), 1, stats);
  session.outbound.acknowledge(link.sent[0].packetId, "puback");
  session.pump(stats);
  assert.deepEqual(link.sent.map((p) => p.topic), ["a", "b"]);
  assert.equal(stats.dropped, 0);
});

Deno.test("Session.takeSharedOrphans gives the shared-group messages not yet delivered, QoS 2 only if never sent", () => {
  const out = new ActionQueue();
  const session = new Session("s", { maxInflight: 2, maxQueued: 10, out });
  session.clean = true;
  const link = new Link(out);
  session.link = link;
  const stats = counters();
  const q1Sent = message("q1-sent");
  const q2Sent = new BrokerMessage("q2-sent", new Uint8Array(), { qos: 2, retain: false });
  const q2Queued = new BrokerMessage("q2-queued", new Uint8Array(), { qos: 2, retain: false });
  const plain = message("plain");
  session.deliver(q1Sent, 1, stats, "$share/g/#");
  session.deliver(q2Sent, 2, stats, "$share/g/#");
  session.deliver(q2Queued, 2, stats, "$share/h/#");
  session.deliver(plain, 1, stats);
  assert.deepEqual(
    session.takeSharedOrphans().map((o) => [o.message.topic, o.share]),
    [["q1-sent", "$share/g/#"], ["q2-queued", "$share/h/#"]],
  );
  assert.deepEqual(session.takeSharedOrphans(), [], "taken once");
});

Deno.test("Session.takeSharedOrphans forgets messages acknowledged meanwhile", () => {
  const out = new ActionQueue();
  const session = new Session("s", { maxInflight: 1, maxQueued: 10, out });
  session.clean = true;
  const link = new Link(out);
  session.link = link;
  const stats = counters();
  for (let i = 0; i < 200; i++) {
    session.deliver(message(`m${i}`), 1, stats, "$share/g/t");
    session.outbound.acknowledge(link.sent.at(-1)!.packetId, "puback");
  }
  session.deliver(message("last"), 1, stats, "$share/g/t");
  assert.deepEqual(session.takeSharedOrphans().map((o) => o.message.topic), ["last"]);
});

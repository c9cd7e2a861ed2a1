/**
 * The broker core's hot path with no socket: one PUBLISH handled and its actions run on
 * connections that only count what they are given. Fan-out 1->32 and fan-in (one subscriber) at
 * QoS 0, and 1->1 QoS 1 with its PUBACK; at MQTT 3.1.1 and at 5.0 (every
 * connection at level 5, no properties: what the 5.0 path costs beyond 3.1.1's).
 *
 * Run: deno bench -A bench/core_bench.ts
 *
 * @module
 */

import { BrokerCore } from "../src/broker/core.ts";
import { ActionRunner, type ActionTarget } from "../src/broker/action_runner.ts";
import type { Link } from "../src/broker/link.ts";
import { PacketType } from "../src/packet/constants.ts";
import type { QoS } from "../src/packet/constants.ts";
import type { Packet, PublishPacket } from "../src/packet/types.ts";

class CountingLink implements ActionTarget {
  readonly info = { transport: "tcp" as const, remoteAddress: "127.0.0.1:1", listener: "b" };
  link!: Link;
  count = 0;
  answer: (id: number) => void = () => {};
  sendPacket(_packet: Packet): void {
    this.count++;
  }
  sendPublish(): boolean {
    this.count++;
    return true;
  }
  close(): void {}
  abort(): void {}
  takeOver(): void {}
  ask(id: number): void {
    this.answer(id);
  }
  setDeadline(): void {}
  setReading(): void {}
}

function setup(subscribers: number, qos: QoS, level: 4 | 5 = 4) {
  const core = new BrokerCore({
    maxInflight: 65535,
    maxQueuedMessages: 1000,
    connectTimeout: 10,
    sessionExpiryInterval: undefined,
    timeoutDisconnectDelay: 0,
  }, {
    policy: {
      hasPublishHooks: false,
      hasSubscribeHooks: false,
      hasReceiveHooks: false,
      authenticate: () => true,
      authorizePublish: () => true,
      authorizeSubscribe: () => true,
      authorizeReceive: () => true,
    },
    events: {},
    logger: { debug() {}, info() {}, warning() {}, error() {} },
  });
  const runner = new ActionRunner(core, { decide: () => {} });
  const connect = (clientId: string): CountingLink => {
    const c = new CountingLink();
    c.link = core.attach({ handle: c, info: c.info }, 0);
    c.answer = (id) => core.decided(id, true, 0);
    core.handle(c.link, {
      type: PacketType.CONNECT,
      protocolName: "MQTT",
      protocolVersion: level,
      clean: true,
      keepAlive: 60,
      clientId,
    }, 0);
    runner.run();
    return c;
  };
  const subs: CountingLink[] = [];
  for (let i = 0; i < subscribers; i++) {
    const s = connect(`s${i}`);
    core.handle(s.link, {
      type: PacketType.SUBSCRIBE,
      packetId: 1,
      subscriptions: [{ topic: "bench/#", qos }],
    }, 0);
    runner.run();
    subs.push(s);
  }
  const pub = connect("p");
  const packet: PublishPacket = {
    type: PacketType.PUBLISH,
    topic: "bench/t",
    payload: new Uint8Array(64),
    qos,
    packetId: qos > 0 ? 1 : undefined,
    retain: false,
    dup: false,
  };
  return { core, runner, pub, subs, packet };
}

const fanOut = setup(32, 0);
Deno.bench("core: fan-out 1->32 QoS 0, one PUBLISH", () => {
  fanOut.core.handle(fanOut.pub.link, fanOut.packet, 1);
  fanOut.runner.run();
});

const fanIn = setup(1, 0);
Deno.bench("core: fan-in to 1 QoS 0, one PUBLISH", () => {
  fanIn.core.handle(fanIn.pub.link, fanIn.packet, 1);
  fanIn.runner.run();
});

const fanIn5 = setup(1, 0, 5);
Deno.bench("core: 5.0 fan-in to 1 QoS 0, one PUBLISH", () => {
  fanIn5.core.handle(fanIn5.pub.link, fanIn5.packet, 1);
  fanIn5.runner.run();
});

const qos1 = setup(1, 1);
let acked = 0;
Deno.bench("core: 1->1 QoS 1, PUBLISH and the subscriber's PUBACK", () => {
  qos1.core.handle(qos1.pub.link, qos1.packet, 1);
  qos1.runner.run();
  const sub = qos1.subs[0]!;
  acked = acked === 65535 ? 1 : acked + 1;
  qos1.core.handle(sub.link, { type: PacketType.PUBACK, packetId: acked }, 1);
  qos1.runner.run();
});

const fanOut5 = setup(32, 0, 5);
Deno.bench("core: 5.0 fan-out 1->32 QoS 0, one PUBLISH", () => {
  fanOut5.core.handle(fanOut5.pub.link, fanOut5.packet, 1);
  fanOut5.runner.run();
});

const qos1v5 = setup(1, 1, 5);
let acked5 = 0;
Deno.bench("core: 5.0 1->1 QoS 1, PUBLISH and the subscriber's PUBACK", () => {
  qos1v5.core.handle(qos1v5.pub.link, qos1v5.packet, 1);
  qos1v5.runner.run();
  const sub = qos1v5.subs[0]!;
  acked5 = acked5 === 65535 ? 1 : acked5 + 1;
  qos1v5.core.handle(sub.link, { type: PacketType.PUBACK, packetId: acked5 }, 1);
  qos1v5.runner.run();
});

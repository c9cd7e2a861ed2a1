/**
 * The broker core's sweep over connected sessions that keep deliveries waiting
 * (`Session.sweepKept`): SESSIONS sessions, each with its own topic, a window of 20 in flight and
 * 20 queued behind it (the subscribers never acknowledge), every payload a 16-byte view into a
 * read buffer read into again after each PUBLISH (so each delivery is a slab copy to age). Times
 * each of the sweeps that follow (`core.tick` every 500 ms of the injected clock): the first ones
 * give the waiting payloads buffers of their own. Prints how many sweeps that took, their median,
 * 90th percentile and worst time (a worst one may be a scavenge: run with --v8-flags=--trace-gc),
 * and the median sweep after.
 *
 * Run: deno run -A bench/sweep_kept.ts [--sessions 10000] [--sweeps 400]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { PacketType, type PublishPacket } from "../src/packet/mod.ts";
import type { BrokerMessage } from "../src/broker/message.ts";
import { connect, subscribe, T0, testCore } from "../tests/_helpers/core.ts";
import { connectPacket } from "../tests/_helpers/test_client.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { sessions: { type: "string", default: "10000" }, sweeps: { type: "string" } },
});
const SESSIONS = Number(values.sessions);
const PER_SESSION = 40;
const SWEEPS = Number(values.sweeps ?? "400");

const routed: BrokerMessage[] = [];
const core = testCore({ maxInflight: 20, maxQueuedMessages: 20 }, {
  events: { messageReceived: (_id, m) => void routed.push(m) },
});
const pub = connect(core, connectPacket({ clientId: "pub" }));
for (let i = 0; i < SESSIONS; i++) {
  subscribe(core, connect(core, connectPacket({ clientId: `s${i}` })), `t/${i}`, 1);
}
const buffer = new Uint8Array(1024);
let id = 0;
for (let n = 0; n < PER_SESSION; n++) {
  for (let i = 0; i < SESSIONS; i++) {
    buffer.fill(n);
    id = id === 65535 ? 1 : id + 1;
    const packet: PublishPacket = {
      type: PacketType.PUBLISH,
      topic: `t/${i}`,
      payload: buffer.subarray(100, 116),
      qos: 1,
      packetId: id,
      retain: false,
      dup: false,
    };
    core.handle(pub, packet, T0);
    core.handle(pub, { type: PacketType.PUBACK, packetId: id }, T0); // nothing: a stray ack
    core.core.releaseReceived();
  }
}
const shared = () =>
  routed.filter((m) => !(m.payload.byteOffset === 0 && m.payload.buffer.byteLength === 16)).length;
console.log(`sessions ${SESSIONS}, deliveries ${routed.length}, sharing before: ${shared()}`);
const times: number[] = [];
let agingSweeps = 0;
for (let s = 1; s <= SWEEPS; s++) {
  const t = performance.now();
  core.tick(T0 + 500 * s);
  times.push(performance.now() - t);
  if (agingSweeps === 0 && shared() === 0) agingSweeps = s;
}
const ms = (t: number) => t.toFixed(1);
const sorted = (a: number[]) => a.slice().sort((x, y) => x - y);
const aging = sorted(times.slice(0, agingSweeps || SWEEPS));
const after = sorted(times.slice(agingSweeps || SWEEPS));
console.log(
  `sweeps until no payload shares memory: ${agingSweeps || `> ${SWEEPS}`}; those sweeps ms: ` +
    `median ${ms(aging[aging.length >> 1]!)}, p90 ${ms(aging[Math.floor(aging.length * 0.9)]!)}, ` +
    `worst ${ms(aging.at(-1)!)}; first 6: ${times.slice(0, 6).map(ms).join(" ")}` +
    (after.length > 0 ? `; sweeps after: median ${after[after.length >> 1]!.toFixed(2)} ms` : ""),
);

/**
 * Broker, area 16: stateful fuzzing over real sockets. fast-check generates interleaved command
 * sequences for several raw clients (takeovers, wills, odd and illegal packets, garbage, abrupt
 * closes) against one broker, and checks invariants after each sequence; a model check covers the
 * QoS core for one well-behaved publisher and subscriber.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { PacketType } from "../../src/packet/mod.ts";
import type { Packet, ProtocolVersion, PublishPacket, QoS } from "../../src/packet/mod.ts";
import { delay, startBroker, waitFor } from "../_helpers/broker.ts";
import type { TestBroker } from "../_helpers/broker.ts";
import type { BrokerPlugin } from "../../src/plugins/types.ts";
import { connectPacket, publishPacket, TestClient, text } from "../_helpers/test_client.ts";
import { checkStats, unexpectedErrors } from "../_helpers/fuzz.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

/** A fixed seed keeps failures reproducible; `AMQTT_FUZZ_SEED` explores other sequences. */
const SEED = Number(Deno.env.get("AMQTT_FUZZ_SEED") ?? 20261122);
/** Runs per property; `AMQTT_FUZZ_RUNS` raises it for a longer hunt. */
const RUNS = Number(Deno.env.get("AMQTT_FUZZ_RUNS") ?? 80);

// ---------------------------------------------------------------------------------------------
// Command model

const IDS = ["a", "b", "c", ""] as const;
const LEVELS = ["x", "y", "+", "#"] as const;

type Command =
  | {
    op: "connect";
    c: number;
    id: string;
    clean: boolean;
    version: 3 | 4;
    /** On a live connection: send it as a second CONNECT rather than on a new connection. */
    second: boolean;
    will: { topic: string; qos: QoS; retain: boolean; empty: boolean } | undefined;
  }
  | { op: "subscribe"; c: number; packetId: number; filters: { topic: string; qos: QoS }[] }
  | { op: "unsubscribe"; c: number; packetId: number; topics: string[] }
  | {
    op: "publish";
    c: number;
    topic: string;
    qos: QoS;
    retain: boolean;
    dup: boolean;
    payload: string;
    packetId: number;
  }
  | { op: "ack"; c: number; kind: "puback" | "pubrec" | "pubrel" | "pubcomp"; packetId: number }
  | { op: "pubrelTwice"; c: number; packetId: number }
  | { op: "ackReceived"; c: number }
  | { op: "pingreq"; c: number }
  | { op: "disconnect"; c: number }
  | { op: "close"; c: number }
  | { op: "garbage"; c: number; bytes: number[] }
  | { op: "halfThenClose"; c: number; cut: number }
  | { op: "pause"; ms: number };

const packetIdArb = fc.integer({ min: 1, max: 4 });
const qosArb = fc.constantFrom<QoS>(0, 1, 2);
/** Filters from a small alphabet: `a/+`, `#`, and invalid ones such as `x/#/y` or `x+`. */
const filterArb = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.array(fc.constantFrom(...LEVELS), { minLength: 1, maxLength: 3 }).map((l) =>
      l.join("/")
    ),
  },
  { weight: 1, arbitrary: fc.constantFrom("x+", "x/#/y", "+x", "$SYS/#", "x//y", "/x") },
);
/** Topic names: mostly valid, sometimes with a wildcard (a protocol violation). */
const topicArb = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.array(fc.constantFrom("x", "y"), { minLength: 1, maxLength: 3 }).map((l) =>
      l.join("/")
    ),
  },
  { weight: 1, arbitrary: fc.constantFrom("x/+", "#", "$SYS/x", "/x", "x//y") },
);

function commandArb(clients: number): fc.Arbitrary<Command> {
  const c = fc.integer({ min: 0, max: clients - 1 });
  return fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({
        op: fc.constant("connect" as const),
        c,
        id: fc.constantFrom(...IDS),
        clean: fc.boolean(),
        version: fc.constantFrom<3 | 4>(3, 4),
        second: fc.integer({ min: 0, max: 3 }).map((n) => n === 0),
        will: fc.option(
          fc.record({ topic: topicArb, qos: qosArb, retain: fc.boolean(), empty: fc.boolean() }),
          { nil: undefined },
        ),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        op: fc.constant("subscribe" as const),
        c,
        packetId: packetIdArb,
        filters: fc.array(fc.record({ topic: filterArb, qos: qosArb }), {
          minLength: 1,
          maxLength: 3,
        }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant("unsubscribe" as const),
        c,
        packetId: packetIdArb,
        topics: fc.array(filterArb, { minLength: 1, maxLength: 2 }),
      }),
    },
    {
      weight: 5,
      arbitrary: fc.record({
        op: fc.constant("publish" as const),
        c,
        topic: topicArb,
        qos: qosArb,
        retain: fc.boolean(),
        dup: fc.boolean(),
        payload: fc.constantFrom("", "m", "payload"),
        packetId: packetIdArb,
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        op: fc.constant("ack" as const),
        c,
        kind: fc.constantFrom(
          "puback" as const,
          "pubrec" as const,
          "pubrel" as const,
          "pubcomp" as const,
        ),
        packetId: packetIdArb,
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({ op: fc.constant("pubrelTwice" as const), c, packetId: packetIdArb }),
    },
    { weight: 4, arbitrary: fc.record({ op: fc.constant("ackReceived" as const), c }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("pingreq" as const), c }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("disconnect" as const), c }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("close" as const), c }) },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant("garbage" as const),
        c,
        bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 12 }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant("halfThenClose" as const),
        c,
        cut: fc.integer({ min: 1, max: 8 }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant("pause" as const),
        ms: fc.integer({ min: 0, max: 15 }),
      }),
    },
  );
}

const scenarioArb = fc.integer({ min: 3, max: 6 }).chain((clients) =>
  fc.record({
    clients: fc.constant(clients),
    commands: fc.array(commandArb(clients), { minLength: 1, maxLength: 30, size: "max" }),
  })
);

// ---------------------------------------------------------------------------------------------
// Running a sequence

interface Slot {
  client: TestClient;
  version: ProtocolVersion;
  /** Packets taken from the client so far, checked by {@linkcode retire}. */
  received: Packet[];
}

/** Moves what the client has received into `slot.received`; returns the new packets. */
async function drain(slot: Slot): Promise<Packet[]> {
  const fresh: Packet[] = [];
  for (let p = await slot.client.poll(0); p !== undefined; p = await slot.client.poll(0)) {
    fresh.push(p);
  }
  slot.received.push(...fresh);
  return fresh;
}

/** What the fuzz sequences exercised, so that a generator gone blind fails the test. */
const seen = { accepted: 0, refused: 0, sessionPresent: 0, publishes: 0, subacks: 0 };

/**
 * Closes a client and checks every packet the broker sent it: CONNACK first and only once, nothing
 * after a refusal [MQTT-3.2.2-5], no session-present flag in MQTT 3.1, valid SUBACK codes
 * [MQTT-3.9.3-2], PUBLISH with a topic name and a packet id when QoS > 0 [MQTT-2.3.1-1].
 */
async function retire(slot: Slot): Promise<void> {
  await slot.client.close();
  await drain(slot);
  const packets = slot.received;
  if (packets.length === 0) return;
  const what = () => JSON.stringify(packets.map((p) => p.type));
  const first = packets[0]!;
  assert.equal(first.type, PacketType.CONNACK, `first packet of a connection: ${what()}`);
  if (first.type !== PacketType.CONNACK) return;
  if (first.reasonCode !== 0) {
    seen.refused++;
    assert.equal(packets.length, 1, `packets after a refusing CONNACK: ${what()}`);
    return;
  }
  seen.accepted++;
  if (first.sessionPresent) seen.sessionPresent++;
  if (slot.version === 3) assert.equal(first.sessionPresent, false, "MQTT 3.1 session present");
  for (const p of packets.slice(1)) {
    switch (p.type) {
      case PacketType.PUBLISH:
        seen.publishes++;
        assert.ok(!/[+#]/.test(p.topic), `PUBLISH to a wildcard topic ${p.topic}`);
        if (p.qos > 0) assert.ok(p.packetId! >= 1 && p.packetId! <= 0xffff, "PUBLISH packet id");
        else assert.equal(p.dup, false, "DUP on a QoS 0 PUBLISH [MQTT-3.3.1-2]");
        break;
      case PacketType.SUBACK:
        seen.subacks++;
        for (const code of p.reasonCodes) {
          assert.ok([0, 1, 2, 0x80].includes(code), `SUBACK ${code}`);
        }
        break;
      case PacketType.PUBREL:
      case PacketType.PUBACK:
      case PacketType.PUBREC:
      case PacketType.PUBCOMP:
      case PacketType.UNSUBACK:
      case PacketType.PINGRESP:
        break;
      default:
        assert.fail(`the broker sent packet type ${p.type} after CONNACK: ${what()}`);
    }
  }
}

/** Sends, swallowing what a hostile sequence makes fail: an encoder refusal, a closed socket. */
async function trySend(slot: Slot, ...packets: Packet[]): Promise<void> {
  try {
    await slot.client.send(...packets);
  } catch { /* the broker may have closed the socket; the encoder may refuse the packet */ }
}

async function trySendBytes(slot: Slot, bytes: Uint8Array | number[]): Promise<void> {
  try {
    await slot.client.sendBytes(bytes);
  } catch { /* the broker may have closed the socket */ }
}

async function slotFor(b: TestBroker, slots: (Slot | undefined)[], i: number): Promise<Slot> {
  let slot = slots[i];
  if (slot === undefined || slot.client.socketEnded) {
    if (slot !== undefined) await retire(slot);
    // A command for a client with no connection connects it first (id and clean flag by slot, so
    // that slots share ids and sessions persist); a raw non-CONNECT first packet is the garbage op.
    slot = { client: await TestClient.open(b.port), version: 4, received: [] };
    slots[i] = slot;
    await trySend(slot, connectPacket({ clientId: IDS[i % 3], clean: i % 2 === 1 }));
  }
  return slot;
}

async function execute(
  b: TestBroker,
  slots: (Slot | undefined)[],
  cmd: Command,
): Promise<void> {
  if (cmd.op === "pause") {
    await delay(cmd.ms);
    return;
  }
  if (cmd.op === "close") {
    if (slots[cmd.c] !== undefined) await retire(slots[cmd.c]!);
    slots[cmd.c] = undefined;
    return;
  }
  if (
    cmd.op === "connect" && cmd.second && slots[cmd.c] !== undefined &&
    !slots[cmd.c]!.client.socketEnded
  ) {
    // A second CONNECT on a live connection, encoded at that connection's level.
    const slot = slots[cmd.c]!;
    await trySend(
      slot,
      connectPacket({ clientId: cmd.id, clean: cmd.clean, protocolVersion: slot.version }),
    );
    return;
  }
  if (cmd.op === "connect") {
    if (slots[cmd.c] !== undefined) await retire(slots[cmd.c]!);
    const client = await TestClient.open(b.port, { protocolVersion: cmd.version });
    const slot: Slot = { client, version: cmd.version, received: [] };
    slots[cmd.c] = slot;
    const will = cmd.will === undefined ? undefined : {
      topic: cmd.will.topic,
      payload: new TextEncoder().encode(cmd.will.empty ? "" : "will"),
      qos: cmd.will.qos,
      retain: cmd.will.retain,
    };
    await trySend(
      slot,
      connectPacket({ clientId: cmd.id, clean: cmd.clean, protocolVersion: cmd.version, will }),
    );
    return;
  }
  const slot = await slotFor(b, slots, cmd.c);
  switch (cmd.op) {
    case "subscribe":
      await trySend(slot, {
        type: PacketType.SUBSCRIBE,
        packetId: cmd.packetId,
        subscriptions: cmd.filters,
      });
      return;
    case "unsubscribe":
      await trySend(slot, {
        type: PacketType.UNSUBSCRIBE,
        packetId: cmd.packetId,
        topics: cmd.topics,
      });
      return;
    case "publish":
      await trySend(
        slot,
        publishPacket(cmd.topic, cmd.payload, {
          qos: cmd.qos,
          retain: cmd.retain,
          dup: cmd.dup,
          packetId: cmd.packetId,
        }),
      );
      return;
    case "ack": {
      const type = {
        puback: PacketType.PUBACK,
        pubrec: PacketType.PUBREC,
        pubrel: PacketType.PUBREL,
        pubcomp: PacketType.PUBCOMP,
      }[cmd.kind];
      await trySend(slot, { type, packetId: cmd.packetId } as Packet);
      return;
    }
    case "pubrelTwice":
      await trySend(
        slot,
        { type: PacketType.PUBREL, packetId: cmd.packetId },
        { type: PacketType.PUBREL, packetId: cmd.packetId },
      );
      return;
    case "ackReceived": {
      // A well-behaved client: acknowledge what arrived, with the right ids.
      const acks: Packet[] = [];
      for (const p of await drain(slot)) {
        if (p.type === PacketType.PUBLISH && p.qos === 1) {
          acks.push({ type: PacketType.PUBACK, packetId: p.packetId! });
        } else if (p.type === PacketType.PUBLISH && p.qos === 2) {
          acks.push({ type: PacketType.PUBREC, packetId: p.packetId! });
        } else if (p.type === PacketType.PUBREL) {
          acks.push({ type: PacketType.PUBCOMP, packetId: p.packetId });
        }
      }
      if (acks.length > 0) await trySend(slot, ...acks);
      return;
    }
    case "pingreq":
      await trySend(slot, { type: PacketType.PINGREQ });
      return;
    case "disconnect":
      await trySend(slot, { type: PacketType.DISCONNECT });
      return;
    case "garbage":
      await trySendBytes(slot, cmd.bytes);
      return;
    case "halfThenClose": {
      // Half of a PUBLISH: the broker sees a truncated packet, then the end of the stream.
      const whole = [0x32, 0x0a, 0x00, 0x03, 0x78, 0x2f, 0x79, 0x00, 0x01, 0x68, 0x69, 0x21];
      await trySendBytes(slot, whole.slice(0, cmd.cut));
      await retire(slot);
      slots[cmd.c] = undefined;
      return;
    }
  }
}

/**
 * Reconnects to every offline persistent session as a well-behaved client and acknowledges all it
 * gets: the window and queue must drain to empty (no flow stuck, no packet id in use twice
 * [MQTT-2.3.1-2]).
 */
async function drainSessions(b: TestBroker): Promise<void> {
  for (const s of b.broker.clients()) {
    if (s.connected || s.cleanSession || s.clientId.startsWith("probe-")) continue;
    await using c = await TestClient.open(b.port);
    const connack = await c.handshake({ clientId: s.clientId, clean: false });
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.sessionPresent, true, `session present for ${s.clientId}`);
    const outstanding = new Set<number>();
    // Quiet for 30 ms is not proof of drained on a loaded machine: keep answering until the
    // broker's own counts say so (a failure guard of 10 s, not a timing assertion).
    const settled = () => {
      const now = b.broker.clients().find((x) => x.clientId === s.clientId);
      return now?.inflight === 0 && now?.queued === 0;
    };
    const deadline = Date.now() + 10_000;
    for (
      let p = await c.poll(30);
      p !== undefined || (!settled() && Date.now() < deadline);
      p = await c.poll(30)
    ) {
      if (p === undefined) continue;
      if (p.type === PacketType.PUBLISH && p.qos > 0) {
        assert.ok(!outstanding.has(p.packetId!), `packet id ${p.packetId} in use twice`);
        if (p.qos === 1) await c.send({ type: PacketType.PUBACK, packetId: p.packetId! });
        else {
          outstanding.add(p.packetId!);
          await c.send({ type: PacketType.PUBREC, packetId: p.packetId! });
        }
      } else if (p.type === PacketType.PUBREL) {
        outstanding.delete(p.packetId);
        await c.send({ type: PacketType.PUBCOMP, packetId: p.packetId });
      }
    }
    const after = b.broker.clients().find((x) => x.clientId === s.clientId);
    assert.equal(after?.inflight, 0, `${s.clientId}: in flight after draining`);
    assert.equal(after?.queued, 0, `${s.clientId}: queued after draining`);
    await c.disconnect();
  }
}

/** A fresh client can connect, subscribe, and receive a QoS 1 message. */
async function checkServing(b: TestBroker, run: number): Promise<void> {
  await using sub = await TestClient.connect(b.port, { clientId: `probe-sub-${run}` });
  const suback = await sub.subscribe({ "probe/t": 1 });
  assert.deepEqual(suback.reasonCodes, [1]);
  await using pub = await TestClient.connect(b.port, { clientId: `probe-pub-${run}` });
  await pub.send(publishPacket("probe/t", "alive", { qos: 1, packetId: 9 }));
  assert.equal((await pub.expect(PacketType.PUBACK)).packetId, 9);
  const got = await sub.expect(PacketType.PUBLISH);
  assert.equal(text(got), "alive");
  assert.equal(got.qos, 1);
  await sub.send({ type: PacketType.PUBACK, packetId: got.packetId! });
  await pub.disconnect();
  await sub.disconnect();
}

async function runScenario(
  scenario: { clients: number; commands: Command[] },
  run: number,
  plugins: BrokerPlugin[] = [],
): Promise<void> {
  const b = await startBroker({}, { plugins });
  const slots: (Slot | undefined)[] = new Array(scenario.clients).fill(undefined);
  try {
    for (const cmd of scenario.commands) {
      await execute(b, slots, cmd);
      checkStats(b, `after ${cmd.op}`);
    }
    // Let the broker take in what was sent before looking.
    await delay(20);
    checkStats(b, "after the sequence");
    await checkServing(b, run);
    for (const slot of slots) if (slot !== undefined) await retire(slot);
    slots.fill(undefined);
    await waitFor(() => b.broker.stats.clientsConnected === 0, 10_000, "every client to be gone");
    checkStats(b, "after every client closed");
    await drainSessions(b);
    await waitFor(() => b.broker.stats.clientsConnected === 0, 10_000, "the drainers to be gone");
    checkStats(b, "after draining");
    assert.deepEqual(unexpectedErrors(b), []);
  } finally {
    for (const slot of slots) await slot?.client.close();
    await b.broker.shutdown();
  }
  assert.deepEqual(unexpectedErrors(b), [], "errors logged during shutdown");
}

test("16 fuzz: interleaved legal, odd and illegal commands from 3-6 clients keep the broker serving", async () => {
  let run = 0;
  await fc.assert(
    fc.asyncProperty(scenarioArb, async (scenario) => {
      await runScenario(scenario, run++);
    }),
    { seed: SEED, numRuns: RUNS },
  );
  // The sequences reached the interesting states, not just refusals and closes.
  for (const [key, count] of Object.entries(seen)) {
    assert.ok(count > 0, `no ${key} in ${RUNS} runs`);
  }
});

/**
 * A plugin whose decisions come later, after 0-3 ms by a fixed cycle (so runs repeat): the core's
 * asynchronous paths, with reads going on meanwhile. It refuses client id "c", publishing under
 * `y/`, subscribing to `y/#`, and delivering `x/y`.
 */
function slowPlugin(): BrokerPlugin {
  let tick = 0;
  const later = <T>(value: T): Promise<T> =>
    new Promise((resolve) => setTimeout(() => resolve(value), tick++ % 4));
  return {
    name: "slow",
    authenticate: (client) => later(client.clientId === "c" ? false : undefined),
    authorizePublish: (_client, topic) => later(topic.startsWith("y/") ? false : undefined),
    authorizeSubscribe: (_client, topic) => later(topic === "y/#" ? false : undefined),
    authorizeReceive: (_client, topic) =>
      tick++ % 2 === 0 ? topic !== "x/y" : later(topic !== "x/y"),
  };
}

test("16 fuzz: the same sequences with asynchronous plugin decisions keep the broker serving", async () => {
  let run = 0;
  await fc.assert(
    fc.asyncProperty(scenarioArb, async (scenario) => {
      await runScenario(scenario, run++, [slowPlugin()]);
    }),
    { seed: SEED + 1, numRuns: Math.ceil(RUNS / 3) },
  );
});

// ---------------------------------------------------------------------------------------------
// Model check: one publisher, one subscriber

interface ModelMessage {
  qos: QoS;
  retain: boolean;
}

const modelArb = fc.record({
  granted: qosArb,
  /** The QoS of a subscriber that comes after the last message, for the retained one. */
  lateGranted: qosArb,
  /** Whether a plugin answers publish and receive checks later, in varying time. */
  slowAcl: fc.boolean(),
  messages: fc.array(fc.record({ qos: qosArb, retain: fc.boolean() }), {
    minLength: 1,
    maxLength: 25,
  }),
});

/** Allows everything, but answers publish and receive checks later, in varying time. */
function slowAcl(): BrokerPlugin {
  let tick = 0;
  const later = (): Promise<boolean> =>
    new Promise((resolve) => setTimeout(() => resolve(true), [6, 0, 3][tick++ % 3]));
  return {
    name: "slow-acl",
    authorizePublish: later,
    authorizeReceive: () => tick++ % 4 === 0 ? true : later(),
  };
}

async function runModel(
  model: { granted: QoS; lateGranted: QoS; slowAcl: boolean; messages: ModelMessage[] },
): Promise<void> {
  await using b = await startBroker({}, { plugins: model.slowAcl ? [slowAcl()] : [] });
  await using sub = await TestClient.connect(b.port, { clientId: "model-sub" });
  const suback = await sub.subscribe({ "model/t": model.granted });
  assert.deepEqual(suback.reasonCodes, [model.granted]);
  await using pub = await TestClient.connect(b.port, { clientId: "model-pub" });

  // The publisher pipelines every PUBLISH in one write, then completes each flow.
  const n = model.messages.length;
  await pub.send(
    ...model.messages.map((m, i) =>
      publishPacket("model/t", `m${i}`, { qos: m.qos, retain: m.retain, packetId: i + 1 })
    ),
  );
  const receiving = (async () => {
    const got: PublishPacket[] = [];
    const completed = new Set<number>();
    const pendingQos2 = new Set<number>();
    while (got.length < n || pendingQos2.size > 0) {
      const p = await sub.receive();
      if (p.type === PacketType.PUBLISH) {
        got.push(p);
        if (p.qos === 1) await sub.send({ type: PacketType.PUBACK, packetId: p.packetId! });
        if (p.qos === 2) {
          pendingQos2.add(p.packetId!);
          await sub.send({ type: PacketType.PUBREC, packetId: p.packetId! });
        }
      } else if (p.type === PacketType.PUBREL) {
        assert.ok(pendingQos2.delete(p.packetId), `PUBREL for unknown id ${p.packetId}`);
        completed.add(p.packetId);
        await sub.send({ type: PacketType.PUBCOMP, packetId: p.packetId });
      } else {
        assert.fail(`subscriber got packet type ${p.type}`);
      }
    }
    return got;
  })();
  let acked = 0;
  const expectedAcks = model.messages.filter((m) => m.qos > 0).length;
  while (acked < expectedAcks) {
    const p = await pub.receive();
    if (p.type === PacketType.PUBACK || p.type === PacketType.PUBCOMP) acked++;
    else if (p.type === PacketType.PUBREC) {
      await pub.send({ type: PacketType.PUBREL, packetId: p.packetId });
    } else assert.fail(`publisher got packet type ${p.type}`);
  }
  const got = await receiving;
  // In order, each exactly once (nothing is lost or resent on a live connection), at
  // min(published, granted) [MQTT-3.8.4-6], retain 0 for a live subscription [MQTT-3.3.1-9].
  assert.deepEqual(got.map(text), model.messages.map((_, i) => `m${i}`));
  assert.deepEqual(
    got.map((p) => p.qos),
    model.messages.map((m) => Math.min(m.qos, model.granted)),
  );
  assert.ok(got.every((p) => !p.retain), "live deliveries carry retain 0 [MQTT-3.3.1-9]");
  await sub.expectNothing(30);
  // The retained message is the last one published with retain [MQTT-3.3.1-5].
  let last = -1;
  model.messages.forEach((m, i) => {
    if (m.retain) last = i;
  });
  const retained = b.broker.retainedMessages().filter((m) => m.topic === "model/t");
  assert.deepEqual(
    retained.map((m) => [new TextDecoder().decode(m.payload), m.qos]),
    last < 0 ? [] : [[`m${last}`, model.messages[last]!.qos]],
  );
  // A new subscription gets it with RETAIN 1 [MQTT-3.3.1-8] at min(stored, granted).
  await using late = await TestClient.connect(b.port, { clientId: "model-late" });
  await late.subscribe({ "model/t": model.lateGranted });
  if (last >= 0) {
    const r = await late.expect(PacketType.PUBLISH);
    assert.equal(text(r), `m${last}`);
    assert.equal(r.retain, true);
    assert.equal(r.qos, Math.min(model.messages[last]!.qos, model.lateGranted));
    if (r.qos === 1) await late.send({ type: PacketType.PUBACK, packetId: r.packetId! });
  }
  await late.expectNothing(20);
  await late.disconnect();
  await pub.disconnect();
  await sub.disconnect();
}

test("16 fuzz: one publisher, one subscriber: every message once, in order, at min(pub, granted) [MQTT-3.8.4-6] [MQTT-4.6.0-2]", async () => {
  await fc.assert(
    fc.asyncProperty(modelArb, runModel),
    { seed: SEED, numRuns: Math.ceil(RUNS / 3) },
  );
});

// ---------------------------------------------------------------------------------------------
// Model check: a persistent subscriber that goes away with messages unacknowledged

const offlineArb = fc.record({
  granted: fc.constantFrom<QoS>(1, 2),
  maxInflight: fc.constantFrom(1, 2, 3, 20),
  slowAcl: fc.boolean(),
  online: fc.array(qosArb, { minLength: 0, maxLength: 8 }),
  acked: fc.integer({ min: 0, max: 8 }),
  offline: fc.array(qosArb, { minLength: 0, maxLength: 8 }),
});

/** Publishes `qos[i]` as `${prefix}${i}` and completes every publisher flow. */
async function publishAll(pub: TestClient, prefix: string, qos: QoS[]): Promise<void> {
  if (qos.length === 0) return;
  await pub.send(
    ...qos.map((q, i) => publishPacket("model/p", `${prefix}${i}`, { qos: q, packetId: i + 1 })),
  );
  let done = 0;
  const expected = qos.filter((q) => q > 0).length;
  while (done < expected) {
    const p = await pub.receive();
    if (p.type === PacketType.PUBREC) {
      await pub.send({ type: PacketType.PUBREL, packetId: p.packetId });
    } else if (p.type === PacketType.PUBACK || p.type === PacketType.PUBCOMP) done++;
    else assert.fail(`publisher got packet type ${p.type}`);
  }
}

async function runOffline(
  model: {
    granted: QoS;
    maxInflight: number;
    slowAcl: boolean;
    online: QoS[];
    acked: number;
    offline: QoS[];
  },
): Promise<void> {
  await using b = await startBroker({ max_inflight: model.maxInflight }, {
    plugins: model.slowAcl ? [slowAcl()] : [],
  });
  await using pub = await TestClient.connect(b.port, { clientId: "model-pub" });
  const first = await TestClient.connect(b.port, { clientId: "model-sub", clean: false });
  const deliveredQos = (q: QoS) => Math.min(q, model.granted) as QoS;
  // Phase 1: online; the subscriber completes the flows of the first `acked` QoS>0 deliveries
  // only (every other QoS 2 one is left at PUBREL), so the window fills and the rest queue.
  const state = new Map<string, "complete" | "pubrel" | "sent">();
  try {
    await first.subscribe({ "model/p": model.granted });
    await publishAll(pub, "on", model.online);
    const qos0: string[] = [];
    const positive: string[] = [];
    const byId = new Map<number, string>();
    let acking = 0, released = 0, completed = 0;
    // Everything the broker will send in this phase has come: every QoS 0 message, a PUBREL for
    // each PUBREC, and QoS 1/2 deliveries until the window is full of flows left open (or none
    // is left). Waited for as a condition: a quiet moment on a busy machine proves nothing.
    const total = model.online.filter((q) => q > 0).length;
    const all = () =>
      qos0.length === model.online.length - total && byId.size === 0 &&
      positive.length === Math.min(total, model.maxInflight + completed);
    while (!all()) {
      const p = await first.receive();
      if (p.type === PacketType.PUBLISH) {
        assert.equal(p.dup, false, "first delivery");
        if (p.qos === 0) {
          qos0.push(text(p));
          continue;
        }
        positive.push(text(p));
        // The broker sends the next one only after a completion it has read.
        assert.ok(positive.length <= model.maxInflight + completed, "deliveries beyond the window");
        state.set(text(p), "sent");
        if (acking++ >= model.acked) continue;
        if (p.qos === 1) {
          completed++;
          await first.send({ type: PacketType.PUBACK, packetId: p.packetId! });
          state.set(text(p), "complete");
        } else {
          byId.set(p.packetId!, text(p));
          await first.send({ type: PacketType.PUBREC, packetId: p.packetId! });
        }
      } else if (p.type === PacketType.PUBREL) {
        const payload = byId.get(p.packetId);
        assert.ok(payload !== undefined, `PUBREL for unknown id ${p.packetId}`);
        byId.delete(p.packetId);
        if (released++ % 2 === 0) {
          completed++;
          await first.send({ type: PacketType.PUBCOMP, packetId: p.packetId });
          state.set(payload, "complete");
        } else state.set(payload, "pubrel");
      } else assert.fail(`subscriber got packet type ${p.type}`);
    }
    // Per QoS, in publication order [MQTT-4.6.0-2]; never more than the window in flight.
    const names = (q: (x: QoS) => boolean) =>
      model.online.flatMap((x, i) => q(x) ? [`on${i}`] : []);
    assert.deepEqual(qos0, names((x) => x === 0));
    assert.deepEqual(positive, names((x) => x > 0).slice(0, positive.length));
  } finally {
    await first.close();
  }
  await waitFor(
    () => b.broker.stats.clientsConnected === 1,
    30_000,
    "the subscriber to be offline",
  );
  // Phase 2: offline; QoS 0 is not kept for an offline session, QoS 1/2 are queued.
  await publishAll(pub, "off", model.offline);
  // QoS 0 has no acknowledgement to wait for. A QoS 1 message after them is routed after them,
  // and a session's deliveries wait for their receive decisions in routing order: once the
  // session holds it, every decision before it was made while the subscriber was offline.
  await publishAll(pub, "fence", [1]);
  const completedOnline = [...state.values()].filter((x) => x === "complete").length;
  const held = model.online.filter((q) => q > 0).length - completedOnline +
    model.offline.filter((q) => q > 0).length + 1;
  await waitFor(
    () => {
      const s = b.broker.clients().find((x) => x.clientId === "model-sub");
      return s !== undefined && s.inflight + s.queued === held;
    },
    30_000,
    "the offline session to hold its messages",
  );
  // Phase 3: back with clean session 0: the session is there [MQTT-3.2.2-2], the unacknowledged
  // flows resume first, in their order [MQTT-4.4.0-1], then the queued messages.
  await using second = await TestClient.open(b.port);
  const connack = await second.handshake({ clientId: "model-sub", clean: false });
  assert.equal(connack.reasonCode, 0);
  assert.equal(connack.sessionPresent, true);
  const expected = [
    ...model.online.flatMap((q, i) => {
      const st = state.get(`on${i}`);
      if (q === 0 || st === "complete") return [];
      if (st === "pubrel") return ["PUBREL"];
      return [`on${i} q${deliveredQos(q)}${st === "sent" ? " dup" : ""}`];
    }),
    ...model.offline.flatMap((q, i) => q === 0 ? [] : [`off${i} q${deliveredQos(q)}`]),
    "fence0 q1",
  ];
  const got: string[] = [];
  const awaitingRelease = new Set<number>();
  while (got.length < expected.length || awaitingRelease.size > 0) {
    const p = await second.receive();
    if (p.type === PacketType.PUBREL) {
      // A PUBREL for a flow of this connection completes it; any other is a resumed flow.
      if (!awaitingRelease.delete(p.packetId)) got.push("PUBREL");
      await second.send({ type: PacketType.PUBCOMP, packetId: p.packetId });
    } else if (p.type === PacketType.PUBLISH) {
      got.push(`${text(p)} q${p.qos}${p.dup ? " dup" : ""}`);
      if (p.qos === 1) await second.send({ type: PacketType.PUBACK, packetId: p.packetId! });
      else if (p.qos === 2) {
        awaitingRelease.add(p.packetId!);
        await second.send({ type: PacketType.PUBREC, packetId: p.packetId! });
      }
    } else assert.fail(`subscriber got packet type ${p.type}`);
  }
  assert.deepEqual(got, expected);
  await second.expectNothing(30);
  // The last acknowledgements may still be on their way to the broker.
  await waitFor(
    () => {
      const s = b.broker.clients().find((x) => x.clientId === "model-sub");
      return s?.inflight === 0 && s?.queued === 0;
    },
    30_000,
    "the window and queue to empty",
  ).catch(() => {});
  const session = b.broker.clients().find((s) => s.clientId === "model-sub");
  assert.equal(session?.inflight, 0, "nothing left in flight");
  assert.equal(session?.queued, 0, "nothing left queued");
  await second.disconnect();
  await pub.disconnect();
}

test("16 fuzz: a persistent subscriber gets its unacknowledged and offline messages once, in order, after reconnecting [MQTT-4.4.0-1]", async () => {
  await fc.assert(
    fc.asyncProperty(offlineArb, runOffline),
    { seed: SEED, numRuns: Math.ceil(RUNS / 3) },
  );
});

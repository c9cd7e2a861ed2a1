/**
 * Broker, area 26: crashes. The `amqtt` command runs as a child process on a SQLite store file
 * and is killed with SIGKILL several times, each time at a random point of QoS 1 and QoS 2
 * streams to persistent subscribers, then restarted on the same file. Three subscribers (our
 * MQTTClient, mosquitto_sub and MQTT.js) reconnect by themselves. At the end every message whose
 * PUBACK or PUBREC the publisher received has reached every subscriber: QoS 1 at least once,
 * QoS 2 exactly once, in order per topic. A QoS 1 message may come twice; its second copy carries
 * DUP [MQTT-3.3.1-1] (checked with MQTT.js, which reports DUP), unless its publisher sent it again
 * (then the broker took it as a new message). Area 29 makes the case of a "sent" mark lost in the
 * crash deterministic.
 *
 * mosquitto_sub (libmosquitto 2.0.11) passes a QoS 2 message on when its PUBREL comes, after it
 * writes the PUBCOMP; when that write fails (the broker reset the connection right after sending
 * the PUBREL: killed, or stopping with its client's packets unread) it drops the message without
 * printing it, and the PUBREL the broker sends again on the reconnect [MQTT-4.4.0-1] finds
 * nothing. The broker had done its part: the subscriber took the message over with its PUBREC
 * [MQTT-4.3.3-2] (5.0: [MQTT-4.3.3-8]), and once it sent the PUBREL it may not send the PUBLISH
 * again [MQTT-4.3.3-1]. Such a drop shows in mosquitto_sub's debug output (a PUBREL for a message
 * it holds, its PUBCOMP, no message line, then a new CONNECT); each one excuses one missing
 * message, the next one on that topic after the last it printed, and nothing else.
 *
 * @module
 */

import assert from "node:assert/strict";
import mqtt from "mqtt";
import { MQTTClient } from "../../client.ts";
import { PacketType } from "../../src/packet/mod.ts";
import { publishPacket, TestClient } from "../_helpers/test_client.ts";
import { delay, waitFor } from "../_helpers/broker.ts";
import { freePort } from "../_helpers/peers.ts";
import { type CliProcess, spawnCli, tempDir } from "../cli/_helpers.ts";

const ROUNDS = 3;
const TOPICS = { "c/1": 1, "c/2": 2 } as const;
type Topic = keyof typeof TOPICS;

/** One message as a subscriber saw it. */
interface Seen {
  topic: string;
  seq: number;
  /** The PUBLISH's DUP flag, where the subscriber reports it. */
  dup?: boolean;
}

/** A subscriber that reconnects by itself and records what it receives. */
interface Subscriber extends AsyncDisposable {
  name: string;
  seen: Seen[];
  /**
   * QoS 2 messages the subscriber took over and then lost itself (see the module doc), each as
   * the last sequence number it had printed on the topic before.
   */
  dropped?: { topic: string; after: number }[];
}

function startAmqtt(config: string): CliProcess {
  return spawnCli("amqtt.ts", ["-c", config], { timeoutMs: 300_000 });
}

async function started(proc: CliProcess): Promise<void> {
  await proc.waitForStderr(/amqtt \S+ started/, 60_000);
}

async function ourSubscriber(port: number): Promise<Subscriber> {
  const client = new MQTTClient({
    clientId: "sub-ours",
    config: {
      keep_alive: 60,
      auto_reconnect: true,
      reconnect_retries: -1,
      reconnect_max_interval: 1,
    },
  });
  await client.connect(`mqtt://127.0.0.1:${port}`, { cleanSession: false });
  await client.subscribe([["c/1", 1], ["c/2", 2]]);
  const seen: Seen[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const m = await client.deliverMessage({ timeout: 200 });
        seen.push({ topic: m.topic, seq: Number(new TextDecoder().decode(m.payload)) });
      } catch {
        // A timeout, or the link is down: the client reconnects by itself.
      }
    }
  })();
  return {
    name: "MQTTClient",
    seen,
    async [Symbol.asyncDispose]() {
      running = false;
      await loop;
      await client.disconnect().catch(() => {});
      await client[Symbol.asyncDispose]();
    },
  };
}

async function jsSubscriber(port: number): Promise<Subscriber> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
    clientId: "sub-js",
    clean: false,
    reconnectPeriod: 300,
    connectTimeout: 5000,
  });
  const seen: Seen[] = [];
  client.on("message", (topic, payload, packet) => {
    seen.push({ topic, seq: Number(payload.toString()), dup: packet.dup });
  });
  await client.subscribeAsync({ "c/1": { qos: 1 }, "c/2": { qos: 2 } });
  return {
    name: "MQTT.js",
    seen,
    async [Symbol.asyncDispose]() {
      await client.endAsync(true);
      await delay(20);
    },
  };
}

async function mosquittoSubscriber(port: number): Promise<Subscriber> {
  // Line-buffered: a pipe would hold its output back until the buffer fills.
  const child = new Deno.Command("stdbuf", {
    args: [
      ...["-oL", "mosquitto_sub"],
      ...["-h", "127.0.0.1", "-p", String(port), "-i", "sub-mosq", "-c", "-q", "2", "-d"],
      ...["-t", "c/1", "-t", "c/2", "-F", "%t %p"],
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const seen: Seen[] = [];
  const dropped: { topic: string; after: number }[] = [];
  // QoS 2 messages held until their PUBREL, by packet id: their topic, and how many (a PUBLISH
  // sent again for an id it holds adds an entry; a PUBREL takes one).
  const held = new Map<number, string[]>();
  // A PUBREL for a held message and its PUBCOMP; the line after says whether it was printed.
  let released: { topic: string; pubcomp: boolean } | undefined;
  const lastSeq = (topic: string) => seen.findLast((s) => s.topic === topic)?.seq ?? 0;
  const follow = (line: string) => {
    if (released?.pubcomp === true) {
      // No message line after the PUBCOMP but a new CONNECT: its write failed, the message is gone.
      if (line.endsWith(" sending CONNECT")) {
        dropped.push({ topic: released.topic, after: lastSeq(released.topic) });
      }
      released = undefined;
    }
    const publish = line.match(/ received PUBLISH \(d\d, q2, r\d, m(\d+), '([^']+)'/);
    if (publish !== null) {
      const id = Number(publish[1]);
      held.set(id, [...held.get(id) ?? [], publish[2]!]);
    }
    const pubrel = line.match(/ received PUBREL \(Mid: (\d+)\)$/);
    if (pubrel !== null) {
      const topics = held.get(Number(pubrel[1]));
      const topic = topics?.shift();
      if (topics?.length === 0) held.delete(Number(pubrel[1]));
      if (topic !== undefined) released = { topic, pubcomp: false };
    }
    if (released !== undefined && / sending PUBCOMP /.test(line)) released.pubcomp = true;
  };
  let subscribed = false;
  const reading = (async () => {
    let rest = "";
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) {
      rest += decoder.decode(chunk, { stream: true });
      const lines = rest.split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        if (line.includes("received SUBACK")) subscribed = true;
        follow(line);
        const match = line.match(/^(c\/[12]) (\d+)$/);
        if (match !== null) seen.push({ topic: match[1]!, seq: Number(match[2]) });
      }
    }
  })();
  await waitFor(() => subscribed, 20_000, "mosquitto_sub to subscribe");
  return {
    name: "mosquitto_sub",
    seen,
    dropped,
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch { /* it exited */ }
      await child.status;
      await reading;
    },
  };
}

/** A publisher's progress across broker restarts. */
interface PublisherState {
  /** The sequence number of the next new message. */
  next: number;
  /** The message in flight when the broker went away, and how far it got. */
  pending: { seq: number; stage: "publish" | "pubrel" } | undefined;
  /** Messages whose PUBLISH was sent again after a restart. */
  resent: Set<number>;
}

/**
 * Publishes `topic` at its QoS, one message at a time, from a persistent session, until the
 * broker goes away. After a restart it first completes the message it had in flight, as a client
 * must [MQTT-4.4.0-1]: the PUBLISH again with DUP, or for QoS 2 after PUBREC the PUBREL. A message
 * counts as acknowledged at its PUBACK (QoS 1) or PUBREC (QoS 2).
 */
async function publishUntilGone(
  port: number,
  topic: Topic,
  state: PublisherState,
  acked: number[],
  onAck: () => void,
): Promise<void> {
  const qos = TOPICS[topic];
  let client: TestClient;
  try {
    client = await TestClient.connect(port, { clientId: `pub-${qos}`, clean: false });
  } catch {
    return;
  }
  try {
    for (;;) {
      const resend = state.pending !== undefined;
      const m = state.pending ?? { seq: state.next++, stage: "publish" as const };
      state.pending = m;
      const packetId = (m.seq % 65000) + 1;
      if (m.stage === "publish" && resend) state.resent.add(m.seq);
      if (m.stage === "publish") {
        await client.send(publishPacket(topic, String(m.seq), { qos, packetId, dup: resend }));
        const ack = await client.receive();
        assert.equal(ack.type, qos === 1 ? PacketType.PUBACK : PacketType.PUBREC);
        acked.push(m.seq);
        onAck();
        if (qos === 1) {
          state.pending = undefined;
          continue;
        }
        m.stage = "pubrel";
      }
      await client.send({ type: PacketType.PUBREL, packetId });
      await client.expect(PacketType.PUBCOMP);
      state.pending = undefined;
    }
  } catch {
    // The broker was killed (or stopped) with `state.pending` in flight.
  } finally {
    await client.close();
  }
}

/**
 * The acknowledged messages on `topic` that `sub` has not printed, and of them those it dropped
 * itself (see the module doc): for each drop, the message after the last it had printed.
 */
function missingOf(
  sub: Subscriber,
  topic: Topic,
  acked: Record<Topic, number[]>,
): { missing: number[]; excused: Set<number> } {
  const seqSet = new Set(sub.seen.filter((s) => s.topic === topic).map((s) => s.seq));
  const excused = new Set<number>();
  for (const drop of sub.dropped?.filter((d) => d.topic === topic) ?? []) {
    const next = acked[topic].find((n) => n > drop.after);
    if (next !== undefined && !seqSet.has(next)) excused.add(next);
  }
  return { missing: acked[topic].filter((n) => !seqSet.has(n) && !excused.has(n)), excused };
}

function check(
  sub: Subscriber,
  acked: Record<Topic, number[]>,
  publishers: Record<Topic, PublisherState>,
): void {
  for (const topic of Object.keys(TOPICS) as Topic[]) {
    const got = sub.seen.filter((s) => s.topic === topic);
    const seqs = got.map((s) => s.seq);
    const seqSet = new Set(seqs);
    const { missing, excused } = missingOf(sub, topic, acked);
    assert.deepEqual(
      missing,
      [],
      `${sub.name} misses acknowledged messages on ${topic}` +
        (excused.size > 0 ? ` (besides ${[...excused]}, which it dropped itself)` : ""),
    );
    // In order per topic: the first copies of the messages come in publish order.
    const firsts = [...seqSet];
    assert.deepEqual(firsts, [...firsts].sort((a, b) => a - b), `${sub.name}: order on ${topic}`);
    if (TOPICS[topic] === 2) {
      assert.equal(seqs.length, seqSet.size, `${sub.name}: a QoS 2 message came twice`);
    }
    // A copy after the first is a re-delivery: DUP 1 [MQTT-3.3.1-1].
    const before = new Set<number>();
    for (const s of got) {
      if (before.has(s.seq) && s.dup === false && !publishers[topic].resent.has(s.seq)) {
        assert.fail(`${sub.name}: message ${s.seq} on ${topic} came again without DUP`);
      }
      before.add(s.seq);
    }
  }
}

Deno.test({
  name: "26 crash: amqtt killed with SIGKILL mid-stream loses no acknowledged QoS 1/2 message",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    await using dir = await tempDir();
    const port = freePort();
    const config = `${dir.path}/broker.yaml`;
    await Deno.writeTextFile(
      config,
      `listeners:\n  default:\n    bind: 127.0.0.1:${port}\n` +
        `persistence:\n  path: ${dir.path}/state.db\n  sync: full\n`,
    );
    let proc = startAmqtt(config);
    try {
      await started(proc);
      assert.match(proc.stderr(), /Broker state is kept in .*state\.db \(sync full\)/);
      await using ours = await ourSubscriber(port);
      await using js = await jsSubscriber(port);
      await using mosq = await mosquittoSubscriber(port);
      const subscribers = [ours, js, mosq];
      const acked: Record<Topic, number[]> = { "c/1": [], "c/2": [] };
      const publishers: Record<Topic, PublisherState> = {
        "c/1": { next: 1, pending: undefined, resent: new Set() },
        "c/2": { next: 1, pending: undefined, resent: new Set() },
      };
      for (let round = 0; round <= ROUNDS; round++) {
        // Killed at a random point after some acknowledgements; the last round ends normally.
        const killAfter = 20 + Math.floor(Math.random() * 60);
        let acks = 0;
        const victim = proc;
        const onAck = () => {
          if (++acks !== killAfter) return;
          if (round === ROUNDS) victim.kill("SIGTERM");
          // A moment later, so that the kill lands anywhere in the next flows: before a commit,
          // between a commit and its PUBACK/PUBREC, between PUBREC and PUBREL…
          else setTimeout(() => victim.kill("SIGKILL"), Math.random() * 4);
        };
        await Promise.all([
          publishUntilGone(port, "c/1", publishers["c/1"], acked["c/1"], onAck),
          publishUntilGone(port, "c/2", publishers["c/2"], acked["c/2"], onAck),
        ]);
        const result = await victim.done;
        if (round < ROUNDS) assert.equal(result.signal, "SIGKILL");
        else assert.equal(result.code, 0, result.stderr);
        proc = startAmqtt(config);
        await started(proc);
        assert.match(proc.stderr(), /\d+ session\(s\) and 0 retained message\(s\) restored/);
      }
      assert.ok(acked["c/1"].length >= ROUNDS * 10 && acked["c/2"].length >= ROUNDS * 10);
      for (const sub of subscribers) {
        // A failure guard only: on time-out, check() below says what is missing.
        await waitFor(
          () =>
            (Object.keys(TOPICS) as Topic[]).every((t) =>
              missingOf(sub, t, acked).missing.length === 0
            ),
          60_000,
          `${sub.name} to receive every acknowledged message`,
        ).catch(() => {});
      }
      // Anything still in flight would come now: a moment for a late duplicate to show.
      await delay(300);
      for (const sub of subscribers) check(sub, acked, publishers);
    } finally {
      proc.kill("SIGTERM");
      await proc.done;
    }
  },
});

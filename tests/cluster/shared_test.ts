// Shared subscriptions on a cluster of two processes: a group with members on both nodes gets
// each message once cluster-wide (the publishing node picks the node that serves the group),
// while plain subscribers on every node get everything; a member leaving leaves the group to the
// others.
import assert from "node:assert/strict";
import { RedisServer } from "../_helpers/redis.ts";
import { delay } from "../_helpers/broker.ts";
import type { MQTTClient } from "../../client.ts";
import { Inbox, Node, routeReady, until } from "./_nodes.ts";
import { startBus } from "./_bus_helpers.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
const SHARE = "$share/g/s/#";

/** Payloads of the messages `inbox` got on `topic`. */
const payloads = (inbox: Inbox, topic: string) => inbox.on(topic).map((m) => m.payload);

/**
 * Publishes numbered QoS 0 probes on `topic` until `member` got `run` probes in a row: the
 * publishing node then sends every message of the group there (the other members' nodes are
 * known to have left the group, or to be in it, as the test needs).
 */
async function probesReach(
  publisher: MQTTClient,
  topic: string,
  check: (got: number[]) => boolean,
  members: Inbox[],
): Promise<void> {
  for (let i = 0; i < 600; i++) {
    await publisher.publish(topic, String(i), { qos: 0 });
    await delay(20);
    if (members.every((m) => check(payloads(m, topic).map(Number)))) return;
  }
  throw new Error(`The probes on ${topic} did not reach the group as expected`);
}

/** Waits until every message routed to `inbox` before now has arrived (a round trip to itself). */
async function flushed(inbox: Inbox, topic: string): Promise<void> {
  await inbox.client.subscribe([[topic, 1]]);
  await inbox.client.publish(topic, "flush", { qos: 1 });
  await until(() => inbox.on(topic).length > 0, `${topic} back`);
}

Deno.test(
  "cluster: a shared group with a member on each node gets every message once cluster-wide, from publishers on both nodes; plain subscribers get all (MQTT 5.0 §4.8.2)",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "sh1:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "sh1:" });
    await using memberA = await Inbox.connect(a, "member-a");
    await using memberB = await Inbox.connect(b, "member-b");
    await using plainA = await Inbox.connect(a, "plain-a");
    await using plainB = await Inbox.connect(b, "plain-b");
    assert.deepEqual(await memberA.client.subscribe([[SHARE, 1]]), [1]);
    assert.deepEqual(await memberB.client.subscribe([[SHARE, 1]]), [1]);
    await plainA.client.subscribe([["s/#", 1]]);
    await plainB.client.subscribe([["s/#", 1]]);
    await using pubA = await Inbox.connect(a, "pub-a");
    await using pubB = await Inbox.connect(b, "pub-b");
    await routeReady(pubA.client, plainB, "s/probe-a");
    await routeReady(pubB.client, plainA, "s/probe-b");
    // Each node knows the other's member: probes from each side reach both members.
    const some = (got: number[]) => got.length > 0;
    await probesReach(pubA.client, "s/probe-a", some, [memberA, memberB]);
    await probesReach(pubB.client, "s/probe-b", some, [memberA, memberB]);

    const n = 40;
    for (let i = 0; i < n; i++) {
      await Promise.all([
        pubA.client.publish("s/data", `a${i}`, { qos: 1 }),
        pubB.client.publish("s/data", `b${i}`, { qos: 1 }),
      ]);
    }
    const all = [...Array(n).keys()].flatMap((i) => [`a${i}`, `b${i}`]).sort();
    await until(() => plainA.on("s/data").length === 2 * n, "everything on plain-a");
    await until(() => plainB.on("s/data").length === 2 * n, "everything on plain-b");
    assert.deepEqual(payloads(plainA, "s/data").sort(), all);
    assert.deepEqual(payloads(plainB, "s/data").sort(), all);
    // Both nodes routed everything: what the members will get is on its way to them.
    await flushed(memberA, "flush/member-a");
    await flushed(memberB, "flush/member-b");
    const onA = payloads(memberA, "s/data");
    const onB = payloads(memberB, "s/data");
    assert.deepEqual([...onA, ...onB].sort(), all, "each message once in the group");
    assert.ok(
      onA.length > 0 && onB.length > 0,
      `both members get some: ${onA.length}/${onB.length}`,
    );
    // Each publisher's messages keep their order on each member [MQTT-4.6.0-6].
    for (const got of [onA, onB]) {
      for (const p of ["a", "b"]) {
        const seq = got.filter((m) => m.startsWith(p)).map((m) => Number(m.slice(1)));
        assert.deepEqual(seq, [...seq].sort((x, y) => x - y));
      }
    }
  },
);

Deno.test(
  "cluster: when a shared group's member on one node leaves, the member on the other node gets the group's next messages from both nodes",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "sh2:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "sh2:" });
    await using memberA = await Inbox.connect(a, "member-a");
    const memberB = await Inbox.connect(b, "member-b");
    await memberA.client.subscribe([[SHARE, 1]]);
    await memberB.client.subscribe([[SHARE, 1]]);
    await using pubA = await Inbox.connect(a, "pub-a");
    await using pubB = await Inbox.connect(b, "pub-b");
    const some = (got: number[]) => got.length > 0;
    await probesReach(pubA.client, "s/probe-a", some, [memberA, memberB]);
    await probesReach(pubB.client, "s/probe-b", some, [memberA, memberB]);

    // Member B leaves (its clean session ends, and with it node B's membership of the group).
    await memberB[Symbol.asyncDispose]();
    // Once node A knows, its probes all go to member A: five in a row.
    const inARow = (got: number[]) => {
      const last = got.slice(-5);
      return last.length === 5 && last.every((x, i) => i === 0 || x === last[i - 1]! + 1);
    };
    await probesReach(pubA.client, "s/probe-a", inARow, [memberA]);
    await probesReach(pubB.client, "s/probe-b", inARow, [memberA]);

    const n = 20;
    for (let i = 0; i < n; i++) {
      await pubA.client.publish("s/data", `a${i}`, { qos: 1 });
      await pubB.client.publish("s/data", `b${i}`, { qos: 2 });
    }
    const all = [...Array(n).keys()].flatMap((i) => [`a${i}`, `b${i}`]).sort();
    await until(() => memberA.on("s/data").length >= 2 * n, "the next messages on member-a");
    await flushed(memberA, "flush/member-a");
    assert.deepEqual(payloads(memberA, "s/data").sort(), all);
  },
);

/** `mosquitto_sub -v` as a member, its lines read as they come. Dispose it to stop it. */
class MosquittoSub implements AsyncDisposable {
  readonly lines: string[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #reading: Promise<void>;

  constructor(port: number, filters: string[]) {
    this.#child = new Deno.Command("mosquitto_sub", {
      args: [
        "-p",
        String(port),
        "-q",
        "1",
        "-v",
        "-i",
        "mosq",
        ...filters.flatMap((f) => ["-t", f]),
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const stdout = this.#child.stdout;
    this.#reading = (async () => {
      let rest = "";
      for await (const chunk of stdout.pipeThrough(new TextDecoderStream())) {
        const parts = (rest + chunk).split("\n");
        rest = parts.pop()!;
        this.lines.push(...parts);
      }
    })();
  }

  /** Payloads received on `topic`. */
  on(topic: string): string[] {
    return this.lines.filter((l) => l.startsWith(`${topic} `)).map((l) =>
      l.slice(topic.length + 1)
    );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Exited already.
    }
    await this.#reading;
    await this.#child.status;
  }
}

Deno.test(
  "cluster: mosquitto_sub (3.1.1) on B and our client on A share a group: each message once between them",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "sh3:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "sh3:" });
    await using memberA = await Inbox.connect(a, "member-a");
    await memberA.client.subscribe([[SHARE, 1]]);
    await using mosq = new MosquittoSub(b.port, [SHARE, "flush/mosq"]);
    await using plainB = await Inbox.connect(b, "plain-b");
    await plainB.client.subscribe([["s/#", 1]]);
    await using pubA = await Inbox.connect(a, "pub-a");
    await using pubB = await Inbox.connect(b, "pub-b");
    await routeReady(pubA.client, plainB, "s/probe-a");
    // Node A knows node B's member once some of its probes reach mosquitto_sub.
    for (let i = 0; mosq.on("s/probe-a").length === 0; i++) {
      if (i === 600) throw new Error("No probe reached mosquitto_sub");
      await pubA.client.publish("s/probe-a", String(i), { qos: 0 });
      await delay(20);
    }

    const n = 30;
    for (let i = 0; i < n; i++) {
      await pubA.client.publish("s/data", `a${i}`, { qos: 1 });
      await pubB.client.publish("s/data", `b${i}`, { qos: 1 });
    }
    const all = [...Array(n).keys()].flatMap((i) => [`a${i}`, `b${i}`]).sort();
    await until(() => plainB.on("s/data").length === 2 * n, "everything on plain-b");
    await flushed(memberA, "flush/member-a");
    // mosquitto_sub's own round trip: what node B routed to it before has arrived.
    await pubB.client.publish("flush/mosq", "flush", { qos: 1 });
    await until(() => mosq.on("flush/mosq").length > 0, "flush/mosq on mosquitto_sub");
    const onA = payloads(memberA, "s/data");
    const onB = mosq.on("s/data");
    assert.deepEqual([...onA, ...onB].sort(), all, "each message once in the group");
    assert.ok(
      onA.length > 0 && onB.length > 0,
      `both members get some: ${onA.length}/${onB.length}`,
    );
  },
);

Deno.test(
  "cluster: a message sent to a node for a shared group whose last member there just left goes to a member on another node, for that group only (MQTT 5.0 §4.8.2)",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using b = await Node.start(redis, { nodeId: "b", prefix: "sh4:" });
    await using c = await Node.start(redis, { nodeId: "c", prefix: "sh4:" });
    // The publishing node is a bus of the test's own, so that it can pick B for the group after
    // B's member left, as a node that has not heard of it yet would.
    await using p = await startBus(redis, "p", { prefix: "sh4:", livenessTtl: 60_000 });
    await using memberB = await Inbox.connect(b, "member-b");
    await using memberC = await Inbox.connect(c, "member-c");
    await using plainC = await Inbox.connect(c, "plain-c");
    assert.deepEqual(await memberB.client.subscribe([[SHARE, 1]]), [1]);
    assert.deepEqual(await memberC.client.subscribe([[SHARE, 1]]), [1]);
    assert.deepEqual(await plainC.client.subscribe([["s/#", 1]]), [1]);
    await until(
      () => [...(p.chooseShares("s/x")?.keys() ?? [])].length > 0 && p.wants("s/x"),
      "the publishing node to know the group",
    );
    await until(() => {
      const seen = new Set<string>();
      for (let i = 0; i < 4; i++) for (const n of p.chooseShares("s/x")?.keys() ?? []) seen.add(n);
      return seen.has("b") && seen.has("c");
    }, "both nodes in the group");
    await memberB.client.unsubscribe([SHARE]);
    const record = (text: string) => ({
      topic: "s/x",
      payload: new TextEncoder().encode(text),
      qos: 1 as const,
      retain: false,
    });
    // B is picked for the group although its member is gone.
    assert.equal(p.publish(record("late"), "pub", new Map([["b", [SHARE]]])), 2);
    await until(() => payloads(memberC, "s/x").includes("late"), "member C to get it");
    // A message after it, to C's plain subscriber: the redirected copy did not reach it again.
    p.publish(record("next"), "pub", new Map([["c", [SHARE]]]));
    await until(() => payloads(plainC, "s/x").includes("next"), "the next message");
    assert.deepEqual(payloads(plainC, "s/x"), ["late", "next"]);
    assert.deepEqual(payloads(memberC, "s/x"), ["late", "next"]);
    assert.deepEqual(payloads(memberB, "s/x"), []);
    assert.ok(memberB.client.connected);
  },
);

Deno.test(
  "cluster: a shared group is split by members, not by nodes: 3 members on A get 3/4 of the group's messages (each a third of those), the 1 member on B gets 1/4 (MQTT 5.0 §4.8.2)",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using a = await Node.start(redis, { nodeId: "a", prefix: "sh5:" });
    await using b = await Node.start(redis, { nodeId: "b", prefix: "sh5:" });
    await using a1 = await Inbox.connect(a, "a1");
    await using a2 = await Inbox.connect(a, "a2");
    await using a3 = await Inbox.connect(a, "a3");
    await using b1 = await Inbox.connect(b, "b1");
    for (const m of [a1, a2, a3, b1]) assert.deepEqual(await m.client.subscribe([[SHARE, 1]]), [1]);
    await using pub = await Inbox.connect(b, "pub");
    const onA = () => [a1, a2, a3].reduce((n, m) => n + payloads(m, "s/p").length, 0);
    // Probes in fours until one four splits 3:1: B then knows A's 3 members.
    for (let round = 0;; round++) {
      if (round === 200) throw new Error("The group never split 3:1");
      const [beforeA, beforeB] = [onA(), payloads(b1, "s/p").length];
      for (let i = 0; i < 4; i++) await pub.client.publish("s/p", "probe", { qos: 1 });
      await until(() => onA() + payloads(b1, "s/p").length === beforeA + beforeB + 4, "probes");
      if (onA() - beforeA === 3) break;
      await delay(20);
    }
    const start = [a1, a2, a3, b1].map((m) => payloads(m, "s/x").length);
    for (let i = 0; i < 40; i++) await pub.client.publish("s/x", String(i), { qos: 1 });
    const got = () => [a1, a2, a3, b1].map((m, i) => payloads(m, "s/x").length - start[i]!);
    await until(() => got().reduce((x, y) => x + y) === 40, "the 40 messages");
    assert.deepEqual(got(), [10, 10, 10, 10]);
  },
);

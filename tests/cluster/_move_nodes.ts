/**
 * The set-up of the session move tests (`chain_move_test.ts`, `single_move_dead_test.ts`): a
 * redis-server, a proxy in front of it for node A (its store writes or fence held back there), and
 * nodes A, B and C; and what those tests do with them (the session `mover` left on A with a
 * message or a subscription whose store write is held, reading a queue, looking at Redis).
 *
 * @module
 */

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisServer } from "../_helpers/redis.ts";
import { TestClient, text } from "../_helpers/test_client.ts";
import type { ConnackPacket } from "../../src/packet/mod.ts";
import { PacketType, ReasonCode } from "../../src/packet/constants.ts";
import type { ReasonCodes } from "../../client.ts";
import { Inbox, Node, type NodeOptions, ownedBy } from "./_nodes.ts";
import { resumeConnect } from "./_resume.ts";
import { StallProxy } from "./_stall_proxy.ts";

/** A store write queuing a message for a session (the apply script's `qo` operation). */
export const QUEUE_WRITE = "$2\r\nqo\r\n";

/** A store write adding a subscription to a session (the apply script's `pb` operation). */
export const SUBSCRIPTION_WRITE = "$2\r\npb\r\n";

/** What {@linkcode startMoveNodes} starts; disposing it stops all of it, the last started first. */
export interface MoveNodes extends AsyncDisposable {
  /** The cluster's key prefix. */
  prefix: string;
  redis: RedisServer;
  /** The proxy node A reaches Redis through. */
  proxy: StallProxy;
  a: Node;
  b: Node;
  c: Node;
}

/** Options of the nodes beyond their id and prefix (a short `nodeTimeout` for one killed). */
export type MoveNodeOptions = Partial<Record<"a" | "b" | "c", Omit<NodeOptions, "prefix">>>;

/**
 * Starts a redis-server, a proxy in front of it, node A on the proxy and nodes B and C on Redis,
 * under `prefix`.
 *
 * @param prefix the cluster's key prefix, one per test
 * @param options more options per node
 * @returns the nodes, Redis and the proxy
 */
export async function startMoveNodes(
  prefix: string,
  options: MoveNodeOptions = {},
): Promise<MoveNodes> {
  await using stack = new AsyncDisposableStack();
  const redis = stack.use(await RedisServer.start());
  const proxy = stack.use(new StallProxy(redis.port));
  const a = stack.use(await Node.start(proxy, { prefix, nodeId: "a", ...options.a }));
  const b = stack.use(await Node.start(redis, { prefix, nodeId: "b", ...options.b }));
  const c = stack.use(await Node.start(redis, { prefix, nodeId: "c", ...options.c }));
  const rest = stack.move();
  return { prefix, redis, proxy, a, b, c, [Symbol.asyncDispose]: () => rest.disposeAsync() };
}

/**
 * A's session `mover` subscribed to `chain/#` at QoS 1, offline, with `chain/0` queued, then
 * `chain/1` published on A with A's store write of it held back by the proxy (its PUBACK waits).
 *
 * @returns the PUBACK of `chain/1`, and the release of its write
 */
export async function leaveOnA(
  a: Node,
  proxy: StallProxy,
  publisher: Inbox,
): Promise<{ acked: Promise<unknown>; release: () => void }> {
  {
    await using mover = await Inbox.connect(a, "mover", { cleanSession: false });
    assert.deepEqual(await mover.client.subscribe([{ topic: "chain/#", qos: 1 }]), [1]);
  }
  await publisher.client.publish("chain/0", "first", { qos: 1 });
  const held = proxy.holdRequestsFrom(QUEUE_WRITE);
  const acked = publisher.client.publish("chain/1", "last", { qos: 1 });
  await held.reached;
  return { acked, release: held.release };
}

/** A login resuming `mover`'s session on a node (see {@linkcode claimOn}); disposing closes it. */
export interface Claim extends AsyncDisposable {
  /** The MQTT 5.0 client that logged in. */
  client: TestClient;
  /** Its CONNACK, once the node answers (after the previous owner's handoff, say). */
  answer: Promise<ConnackPacket>;
}

/**
 * Opens an MQTT 5.0 client on node `id` (or `options.node`, one started apart under that id) that
 * resumes `mover`'s session, and waits until the node's claim made it the session's owner in
 * Redis: the CONNACK may come much later.
 *
 * @param nodes the nodes and Redis
 * @param id the node's id
 * @param options `node`: the node when it is not one of `nodes`
 * @returns the client and its CONNACK to come
 */
export async function claimOn(
  nodes: MoveNodes,
  id: string,
  options: { node?: Node } = {},
): Promise<Claim> {
  const node = options.node ?? nodes[id as "a" | "b" | "c"];
  const client = await TestClient.open(node.port, { protocolVersion: 5 });
  const answer = client.handshake(resumeConnect("mover", 5));
  // (Awaited by the caller, if at all; a failure before must not leave it rejected unobserved.)
  answer.catch(() => {});
  await ownedBy(nodes.redis, nodes.prefix, "mover", id);
  return { client, answer, [Symbol.asyncDispose]: () => client[Symbol.asyncDispose]() };
}

/**
 * Asserts that a login resumed its session: CONNACK 0x00 with Session Present 1 [MQTT-3.1.2-4].
 *
 * @param answer the login's CONNACK to come
 * @param who the node, for the message
 */
export async function assertResumed(answer: Promise<ConnackPacket>, who: string): Promise<void> {
  const connack = await answer;
  assert.equal(connack.reasonCode, ReasonCode.SUCCESS);
  assert.equal(connack.sessionPresent, true, `${who} resumes the session`);
}

/** Reads `count` PUBLISH packets and returns them as `topic=payload`. */
export async function queue(client: TestClient, count: number): Promise<string[]> {
  const got: string[] = [];
  for (let i = 0; i < count; i++) {
    const p = await client.expect(PacketType.PUBLISH);
    got.push(`${p.topic}=${text(p)}`);
  }
  return got;
}

/** Runs `body` with a connection of the test's own to `redis`. */
export async function withAdmin<T>(redis: RedisServer, body: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
  await r.connect();
  try {
    return await body(r);
  } finally {
    await r.quit();
  }
}

/** Whether the store holds `filter` among the subscriptions of `clientId`'s session. */
export function storedFilter(
  redis: RedisServer,
  prefix: string,
  clientId: string,
  filter: string,
): Promise<boolean> {
  return withAdmin(
    redis,
    async (r) => await r.hexists(`${prefix}store:sub:${clientId}`, filter) === 1,
  );
}

/** Whether `node` is still registered in the cluster (not reaped). */
export function registered(redis: RedisServer, prefix: string, node: string): Promise<boolean> {
  return withAdmin(redis, async (r) => await r.sismember(`${prefix}nodes`, node) === 1);
}

/** The node the shared store takes `clientId`'s writes from while its session moves, if any. */
export function writerOf(
  redis: RedisServer,
  prefix: string,
  clientId: string,
): Promise<string | null> {
  return withAdmin(redis, (r) => r.hget(`${prefix}store:writer`, clientId));
}

/** What {@linkcode subscribeHeldOnA} leaves; disposing it closes its two clients. */
export interface HeldSubscription extends AsyncDisposable {
  /** The SUBACK codes of `mover`'s `extra/#` subscription (it waits for the held write). */
  suback: Promise<ReasonCodes>;
  /** A's store write of that subscription, held back by the proxy. */
  written: { reached: Promise<void>; release: () => void };
  /** A's fence before its handover (its PUBLISH on `<prefix>ctl`), armed: held once sent. */
  fence: { reached: Promise<void>; release: () => void };
}

/**
 * A's session `mover` subscribed to `chain/#` at QoS 1 and connected, then subscribing to
 * `extra/#` with A's store write of it held back (its SUBACK waits); A already has interest in
 * `extra/#` (client `local`), so the subscription announces nothing and A's next PUBLISH on its
 * control channel is the fence of its handover, which is held back too once sent.
 *
 * @returns the SUBACK to come, the held write and the armed fence
 */
export async function subscribeHeldOnA(
  a: Node,
  proxy: StallProxy,
  prefix: string,
): Promise<HeldSubscription> {
  await using stack = new AsyncDisposableStack();
  const local = stack.use(await Inbox.connect(a, "local"));
  assert.deepEqual(await local.client.subscribe([{ topic: "extra/#", qos: 0 }]), [0]);
  const mover = stack.use(await Inbox.connect(a, "mover", { cleanSession: false }));
  assert.deepEqual(await mover.client.subscribe([{ topic: "chain/#", qos: 1 }]), [1]);
  const written = proxy.holdRequestsFrom(SUBSCRIPTION_WRITE);
  const suback = mover.client.subscribe([{ topic: "extra/#", qos: 1 }]);
  suback.catch(() => {}); // awaited by the test
  await written.reached;
  // The fence held so that the SUBACK reaches mover before A lets go of the session.
  const fence = proxy.holdRequestsFrom(`publish\r\n$7\r\n${prefix}ctl\r\n`);
  const clients = stack.move();
  return { suback, written, fence, [Symbol.asyncDispose]: () => clients.disposeAsync() };
}

/**
 * What the cluster tests of a shared group `g` share: Redis, nodes B and C, the bus of the
 * publishing node P (the test, writing frames into B's stream as a node does), the group's
 * members on B and C, and what the tests read of B's stream in Redis.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { waitFor } from "../_helpers/broker.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { type ConnectOptions, TestClient } from "../_helpers/test_client.ts";
import { encodeFrame } from "../../src/cluster/bus_frame.ts";
import type { ClusterBus } from "../../src/cluster/cluster_bus.ts";
import { startBus } from "./_bus_helpers.ts";
import { Inbox, Node, until } from "./_nodes.ts";
import { StallProxy } from "./_stall_proxy.ts";

/** The group's filter. */
export const SHARE = "$share/g/s/#";

/**
 * A message on `s/x` for groups `shares`, as the publishing node `p` sends it to the node it
 * chose.
 *
 * @param body its payload
 * @param seq its sequence number (also its order) from `p`
 * @param qos its QoS
 * @param shares the groups it was chosen for; default {@linkcode SHARE}
 */
export function chosen(body: string, seq: number, qos: 1 | 2, shares = [SHARE]): Uint8Array {
  return encodeFrame({
    type: "message",
    origin: "p",
    publisher: "pub",
    seq,
    order: seq,
    shares,
    message: { topic: "s/x", payload: new TextEncoder().encode(body), qos, retain: false },
  });
}

/** The nodes with members of the group, as `p` sees them, sorted and joined by commas. */
export function groupNodes(p: ClusterBus): string {
  const seen = new Set<string>();
  for (let i = 0; i < 4; i++) for (const n of p.chooseShares("s/x")?.keys() ?? []) seen.add(n);
  return [...seen].sort().join(",");
}

/** Waits until `p` sees members of the group on both B and C. */
export function bothInGroup(p: ClusterBus): Promise<void> {
  return until(() => groupNodes(p) === "b,c", "both nodes in the group");
}

/** Options of {@linkcode startShareNodes}. */
export interface ShareNodesOptions {
  /** B's node timeout (s); default that of `Node.start` (30): give 1 when the test kills B. */
  bTimeout?: number;
  /** B's heartbeat interval (s); default that of `Node.start` (0.2). */
  bHeartbeat?: number;
  /** Whether B reaches Redis through a {@linkcode StallProxy} (`proxy`). */
  proxied?: boolean;
}

/** Redis, nodes B and C, the bus of P and a plain Redis client; disposing it stops them all. */
export interface ShareNodes extends AsyncDisposable {
  redis: RedisServer;
  /** A plain Redis client for the test's own writes and reads. */
  r: Redis;
  /** B's way to Redis, when started `proxied`. */
  proxy: StallProxy | undefined;
  b: Node;
  c: Node;
  p: ClusterBus;
  prefix: string;
  /** B's stream, `PREFIX s:b`. */
  stream: string;
}

/**
 * Starts Redis, nodes B and C and the bus of P under `prefix`, and connects a Redis client.
 *
 * @param prefix the cluster's key prefix, one per test
 * @param options B's node timeout, and whether B goes through a proxy
 */
export async function startShareNodes(
  prefix: string,
  options: ShareNodesOptions = {},
): Promise<ShareNodes> {
  await using stack = new AsyncDisposableStack();
  const redis = stack.use(await RedisServer.start());
  const proxy = options.proxied ? stack.use(new StallProxy(redis.port)) : undefined;
  const b = stack.use(
    await Node.start(proxy ?? redis, {
      nodeId: "b",
      prefix,
      nodeTimeout: options.bTimeout,
      heartbeatInterval: options.bHeartbeat,
    }),
  );
  const c = stack.use(await Node.start(redis, { nodeId: "c", prefix }));
  const p = stack.use(await startBus(redis, "p", { prefix, livenessTtl: 60_000 }));
  const r = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
  await r.connect();
  stack.defer(() => r.disconnect());
  const rest = stack.move();
  return {
    redis,
    r,
    proxy,
    b,
    c,
    p,
    prefix,
    stream: `${prefix}s:b`,
    [Symbol.asyncDispose]: () => rest.disposeAsync(),
  };
}

/**
 * A byte-level member of the group on `node`, subscribed at `qos`: it acknowledges nothing by
 * itself.
 *
 * @param node where it connects
 * @param clientId its client id
 * @param qos the subscription's QoS, granted
 * @param connect more of its CONNECT (protocol version, properties); a clean session by default
 */
export async function byteMember(
  node: Node,
  clientId: string,
  qos: 1 | 2,
  connect: Partial<ConnectOptions> = {},
): Promise<TestClient> {
  const member = await TestClient.connect(node.port, { clientId, ...connect });
  try {
    assert.deepEqual((await member.subscribe({ [SHARE]: qos })).reasonCodes, [qos]);
    return member;
  } catch (error) {
    await member[Symbol.asyncDispose]();
    throw error;
  }
}

/**
 * A clean member of the group on `node` that collects what it gets, subscribed at `qos`.
 *
 * @param node where it connects
 * @param clientId its client id
 * @param qos the subscription's QoS, granted
 */
export async function inboxMember(node: Node, clientId: string, qos: 1 | 2): Promise<Inbox> {
  const member = await Inbox.connect(node, clientId);
  try {
    assert.deepEqual(await member.client.subscribe([[SHARE, qos]]), [qos]);
    return member;
  } catch (error) {
    await member[Symbol.asyncDispose]();
    throw error;
  }
}

/** Payloads of the messages `inbox` got on `s/x`. */
export function payloads(inbox: Inbox): string[] {
  return inbox.on("s/x").map((m) => m.payload);
}

/**
 * Waits until `member` got `body` on `s/x`, then asserts it got that message alone and is still
 * connected.
 *
 * @param member the member the message is passed on to
 * @param body the message's payload
 * @param what what the test waits for, as the failure names it
 * @param ms the guard of the wait (not a bound the test asserts)
 */
export async function gotAlone(
  member: Inbox,
  body: string,
  what: string,
  ms?: number,
): Promise<void> {
  await until(() => payloads(member).includes(body), what, ms);
  assert.deepEqual(payloads(member), [body]);
  assert.ok(member.client.connected);
}

/** How many entries of `stream` Redis holds as read and not finished (pending in group `r`). */
export async function unfinished(r: Redis, stream: string): Promise<number> {
  return (await r.xpending(stream, "r") as [number])[0];
}

/**
 * Waits until Redis holds `count` entries of `stream` as read and not finished; fails after 30 s
 * (a guard, not a bound the test asserts).
 *
 * @param r a Redis client
 * @param stream the node's stream
 * @param count how many entries
 * @param what what the test waits for, as the failure names it
 */
export function untilUnfinished(
  r: Redis,
  stream: string,
  count: number,
  what: string,
): Promise<void> {
  return waitFor(async () => await unfinished(r, stream) === count, 30_000, what);
}

/** How far the node reading `stream` read it: its group's last-delivered id. */
export async function lastRead(r: Redis, stream: string): Promise<string> {
  const groups = await r.xinfo("GROUPS", stream) as unknown[][];
  const fields = groups[0]!;
  return String(fields[fields.indexOf("last-delivered-id") + 1]);
}

/**
 * Broker nodes of a cluster, each a separate `amqtt` process (`deno run cli/amqtt.ts -c FILE`)
 * with a generated configuration, on a test's redis-server; and what the tests do with clients
 * of several nodes (collect what arrives, wait until a route across nodes is in place).
 *
 * `AMQTT_NODE_LOGS=DIR deno test ...` keeps every node's whole log in DIR once it ended: what a
 * failed run leaves to read (look for "taken for dead", "left", "cannot adopt").
 *
 * @module
 */

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { MQTTClient } from "../../client.ts";
import type { ApplicationMessage } from "../../src/session/client_session.ts";
import { type CliProcess, type Entry, spawnCli } from "../cli/_helpers.ts";
import { delay, waitFor } from "../_helpers/broker.ts";
import type { RedisServer } from "../_helpers/redis.ts";
import { publishPacket, type TestClient } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/mod.ts";

/** Options of {@linkcode Node.start}. */
export interface NodeOptions {
  /** The node id (`cluster.node_id`); left out, the broker picks its default. */
  nodeId?: string;
  /** The cluster's key prefix, one per test so that tests do not meet in one Redis. */
  prefix: string;
  /** The port to listen on; default 0 (a free one, read from the log). */
  port?: number;
  /** More `amqtt` arguments. */
  args?: string[];
  /**
   * The program to run instead of `cli/amqtt.ts`, relative to `cli/` (a test's own node, such as
   * `../tests/cluster/_held_receive_node.ts`), taking the configuration file as its argument.
   */
  program?: string;
  /** More lines of YAML at the top level. */
  yaml?: string[];
  /** Further Redis servers: the `redis` list's alternate URLs. */
  alternates?: Pick<RedisServer, "url">[];
  /**
   * Seconds without heartbeat before the others count the node dead; default 30, so that a node
   * starved on a loaded machine is not taken for dead. Give a short one (1 to 3) only to a node
   * the test kills or pauses and whose death the others must find soon.
   */
  nodeTimeout?: number;
  /** Seconds between heartbeats; default 0.2. */
  heartbeatInterval?: number;
  /** More listeners: lines of YAML under `listeners:`. */
  listeners?: string[];
  /** Called with the process as soon as it is spawned: for a test watching a node that waits. */
  spawned?: (process: CliProcess) => void;
}

/**
 * A `yaml` line that puts `max_queued_messages` out of any run's reach: for tests whose publishers
 * do not wait for a subscriber that moves or is away, where the default bound (1000) would drop the
 * oldest queued messages as configured and read as a cluster loss.
 */
export const UNBOUNDED_QUEUE = "max_queued_messages: 1000000";

/** One `amqtt` process, a node of the cluster. Dispose it to stop it (SIGTERM, then wait). */
export class Node implements AsyncDisposable {
  readonly process: CliProcess;
  readonly port: number;
  readonly config: string;
  readonly #name: string;

  private constructor(process: CliProcess, port: number, config: string, name: string) {
    this.process = process;
    this.port = port;
    this.config = config;
    this.#name = name;
  }

  /**
   * Writes a configuration for `redis` and starts `amqtt` with it; resolves once it listens.
   *
   * @param redis the cluster's Redis (or a proxy in front of it: its `url`)
   * @param options node id, prefix, port
   * @returns the running node
   */
  static async start(redis: Pick<RedisServer, "url">, options: NodeOptions): Promise<Node> {
    const config = await Deno.makeTempFile({ prefix: "amqtt_node_", suffix: ".yaml" });
    const lines = [
      "listeners:",
      "  default:",
      `    bind: 127.0.0.1:${options.port ?? 0}`,
      ...(options.listeners ?? []),
      "cluster:",
      ...(options.nodeId === undefined ? [] : [`  node_id: ${options.nodeId}`]),
      `  redis: [${[redis, ...(options.alternates ?? [])].map((r) => r.url).join(", ")}]`,
      `  key_prefix: "${options.prefix}"`,
      `  heartbeat_interval: ${options.heartbeatInterval ?? 0.2}`,
      `  node_timeout: ${options.nodeTimeout ?? 30}`,
      ...(options.yaml ?? []),
      "",
    ];
    await Deno.writeTextFile(config, lines.join("\n"));
    const process = spawnCli(
      (options.program ?? "amqtt.ts") as Entry,
      options.program === undefined ? ["-c", config, ...(options.args ?? [])] : [config],
      {
        timeoutMs: 180_000,
      },
    );
    options.spawned?.(process);
    try {
      const [, port] = await process.waitForStderr(
        /Listener "default" bound to [^:]+:(\d+)/,
        60_000,
      );
      await process.waitForStderr(/amqtt \S+ started/, 60_000);
      const name = `${options.prefix.replace(/\W/g, "")}-${options.nodeId ?? "node"}-${port}`;
      return new Node(process, Number(port), config, name);
    } catch (error) {
      process.kill("SIGKILL");
      await process.done;
      await Deno.remove(config).catch(() => {});
      throw error;
    }
  }

  /** `mqtt://127.0.0.1:PORT`. */
  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /** Its log so far. */
  log(): string {
    return this.process.stderr();
  }

  /** Kills it with SIGKILL, as a crash, and waits for it to end. */
  async crash(): Promise<void> {
    this.process.kill("SIGKILL");
    await this.process.done;
    await this.#keepLog();
  }

  /** Stops it with SIGTERM and waits for it to end; returns its exit code. */
  async stop(): Promise<number> {
    this.process.kill("SIGTERM");
    const { code } = await this.process.done;
    await this.#keepLog();
    return code;
  }

  /**
   * With `AMQTT_NODE_LOGS` set to a directory, writes the node's whole log there once it ended
   * (`PREFIX-NODE-PORT.log`): what a failed run of a cluster test leaves to read.
   */
  async #keepLog(): Promise<void> {
    const dir = Deno.env.get("AMQTT_NODE_LOGS");
    if (dir === undefined || dir === "") return;
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(`${dir}/${this.#name}.log`, this.log());
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
    await Deno.remove(this.config).catch(() => {});
  }
}

/** A client of ours that collects every message it receives. */
export class Inbox implements AsyncDisposable {
  readonly client: MQTTClient;
  readonly messages: ApplicationMessage[] = [];
  readonly #reading: Promise<void>;

  private constructor(client: MQTTClient) {
    this.client = client;
    this.#reading = (async () => {
      try {
        for await (const m of client.messages()) this.messages.push(m);
      } catch {
        // Gave up reconnecting: the test's assertions tell.
      }
    })();
  }

  /**
   * Connects a client (no automatic reconnect) that collects what it receives.
   *
   * @param node where to connect
   * @param clientId its client id
   * @param options connect options (will, clean session)
   */
  static async connect(
    node: Node | string,
    clientId: string,
    options: Parameters<MQTTClient["connect"]>[1] = {},
  ): Promise<Inbox> {
    const client = new MQTTClient({ clientId, config: { auto_reconnect: false } });
    await client.connect(typeof node === "string" ? node : node.url, options);
    return new Inbox(client);
  }

  /** The messages received on `topic`, payloads as text. */
  on(topic: string): { payload: string; qos: number; retain: boolean }[] {
    return this.messages.filter((m) => m.topic === topic).map((m) => ({
      payload: new TextDecoder().decode(m.payload),
      qos: m.qos,
      retain: m.retain,
    }));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.client.connected) await this.client.disconnect().catch(() => {});
    await this.client[Symbol.asyncDispose]();
    await this.#reading;
  }
}

/**
 * Waits until messages published by `publisher` on `topic` reach `inbox`, which subscribed to a
 * filter matching it on another node: the nodes learn of each other's subscriptions through
 * Redis, a moment after the SUBACK. Publishes a QoS 0 probe every 50 ms; fails after 30 s (a
 * guard against a broken route, not a speed requirement).
 */
export function routeReady(publisher: MQTTClient, inbox: Inbox, topic: string): Promise<void> {
  return retry(async () => {
    await publisher.publish(topic, "probe", { qos: 0 });
    return inbox.on(topic).length > 0;
  }, `a probe on ${topic} through the cluster`);
}

/**
 * {@linkcode routeReady} for two byte-level test clients: publishes QoS 0 probes on `probe/N`
 * from `from` until `to` (subscribed to `probe/#`, on another node) gets one; fails after 300
 * probes 200 ms apart at least (a guard against a broken route, not a speed requirement).
 */
export async function probeRoute(from: TestClient, to: TestClient): Promise<void> {
  for (let i = 0;; i++) {
    await from.send(publishPacket(`probe/${i}`, "p"));
    const packet = await to.poll(200);
    if (packet?.type === PacketType.PUBLISH) return;
    assert.ok(i < 300, "the route between the nodes was never ready");
  }
}

/**
 * Tries `attempt` every 50 ms until it succeeds (a probe sent again until it arrives, since the
 * nodes learn of a change a moment later); fails after 600 tries, 30 s at least (a guard
 * against a broken cluster, not a speed requirement).
 *
 * @param attempt sends what it must and says whether it has what it waits for
 * @param what what the test waits for, as the failure names it
 */
export async function retry(attempt: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await attempt()) return;
    await delay(50);
  }
  throw new Error(`Gave up waiting for ${what}`);
}

/**
 * Whether `log` (one node's, or several nodes' joined) says the session of `clientId` was adopted
 * there: an adoption writes one line naming the sessions adopted (the first ten).
 *
 * @param log the node's log so far
 * @param clientId the client id
 * @returns whether an adoption line names it
 */
export function adopted(log: string, clientId: string): boolean {
  return log.split("\n").some((line) =>
    /Cluster: adopted \d+ of the \d+ sessions .*, kept here until their clients return: /.test(
      line,
    ) &&
    line.includes(JSON.stringify(clientId))
  );
}

/**
 * Waits until `condition` holds ({@linkcode waitFor} with the guard the cluster's processes
 * want); fails after `ms` (a guard, not a bound the test asserts).
 */
export function until(condition: () => boolean, what: string, ms = 30_000): Promise<void> {
  return waitFor(condition, ms, what);
}

/**
 * `promise`, failing after `ms` with a message naming `what` if it has not settled by then: a
 * guard on a wait that could otherwise hang the whole run (a proxy's `reached` for a command
 * that never comes, a collecting loop that never ends), not a bound the test asserts.
 */
export async function settles<T>(promise: Promise<T>, what: string, ms = 60_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Gave up after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Polls the asynchronous `read` (a look into Redis, say) every 20 ms until it holds; fails after
 * 30 s (a guard, not a bound the test asserts).
 */
export async function eventually(read: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 1500; i++) {
    if (await read()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`Gave up waiting for ${what}`);
}

/**
 * Runs `ACL SETUSER default <rules>` on `server`: a test makes Redis refuse some commands or keys
 * for a while (as a Redis lost at that moment would), and lets them through again.
 *
 * @param server the test's Redis
 * @param rules ACL rules, such as `-xrange`, or `resetkeys` and key patterns
 */
export async function acl(server: RedisServer, ...rules: string[]): Promise<void> {
  const redis = new Redis({ host: "127.0.0.1", port: server.port, lazyConnect: true });
  await redis.connect();
  try {
    await redis.call("ACL", "SETUSER", "default", ...rules);
  } finally {
    await redis.quit();
  }
}

/** The payloads `inbox` received on `topic`, each with its QoS (`payload@qos`), in arrival order. */
export function received(inbox: Inbox, topic: string): string[] {
  return inbox.on(topic).map((m) => `${m.payload}@${m.qos}`);
}

let retainedSubscribers = 0;

/**
 * Subscribes a new client of `node` (named `name` and a number) to `filter` and returns the
 * topics of the retained messages it got by a PINGRESP (the ping also shows the connection
 * open). They follow the SUBACK [MQTT-3.8.4-3], on a node behind a slow connection to Redis
 * sometimes after the PINGRESP: then none of them is in yet (a feed of a few messages goes out in
 * one turn), and callers try again.
 */
export async function retainedTopics(node: Node, name: string, filter: string): Promise<string[]> {
  await using client = new MQTTClient({
    clientId: `${name}-${++retainedSubscribers}`,
    config: { auto_reconnect: false },
  });
  await client.connect(node.url);
  await client.subscribe([[filter, 1]]);
  await client.ping();
  assert.ok(client.connected);
  const topics: string[] = [];
  for (let n = client.receiveQueueSize; n > 0; n--) {
    const message = await client.deliverMessage();
    assert.equal(message.retain, true);
    topics.push(message.topic);
  }
  await client.disconnect();
  return topics.sort();
}

/**
 * Waits until Redis names `node` the owner of `clientId`'s session (its claim ran there); fails
 * after {@linkcode retry}'s guard.
 *
 * @param server the cluster's Redis
 * @param prefix the cluster's key prefix
 * @param clientId the client id
 * @param node the node id
 */
export async function ownedBy(
  server: Pick<RedisServer, "port">,
  prefix: string,
  clientId: string,
  node: string,
): Promise<void> {
  const redis = new Redis({ host: "127.0.0.1", port: server.port, lazyConnect: true });
  await redis.connect();
  try {
    await retry(
      async () => await redis.hget(`${prefix}owner`, clientId) === node,
      `node ${node} owning ${clientId}`,
    );
  } finally {
    await redis.quit();
  }
}

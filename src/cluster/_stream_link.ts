/**
 * The bus's hot-path connections to Redis, on {@linkcode RespClient}: one for the XADDs that
 * forward messages (pipelined, many in flight) and one blocked in XREAD. They go to the server
 * the bus's command connection (ioredis) is connected to, with its credentials, and are opened
 * again on demand after a loss. Not used for TLS without certificate verification
 * (`rejectUnauthorized: false`), which Deno's TLS does not offer per connection: the bus keeps
 * ioredis for those commands then.
 *
 * @module
 */

import type { Redis } from "ioredis";
import type { GuardedConnector } from "./_guarded_connector.ts";
import { RespClient, type RespClientOptions } from "./resp_client.ts";

/**
 * The RESP options for the server `redis` is connected to.
 *
 * @param redis an ioredis client made by `createRedis`
 * @returns the options, or `undefined` when its TLS does not verify the server
 */
export function respOptionsOf(redis: Redis): RespClientOptions | undefined {
  const connector = (redis as unknown as { connector?: GuardedConnector }).connector;
  const target = connector?.target ?? { host: redis.options.host!, port: redis.options.port! };
  const options: RespClientOptions = { hostname: target.host, port: target.port };
  const { username, password, db } = redis.options;
  // ioredis keeps null for what is not set.
  if (typeof username === "string" && username !== "") options.username = username;
  if (typeof password === "string" && password !== "") options.password = password;
  if (typeof db === "number" && db !== 0) options.db = db;
  const tls = target.tls;
  if (tls !== undefined) {
    if (tls.rejectUnauthorized === false) return undefined;
    options.tls = {
      ...(typeof tls.ca === "string" ? { caCerts: [tls.ca] } : {}),
      ...(typeof tls.cert === "string" ? { cert: tls.cert } : {}),
      ...(typeof tls.key === "string" ? { key: tls.key } : {}),
    };
  }
  return options;
}

/** Two RESP connections (writer, reader) to the command connection's server. */
export class StreamLink {
  readonly #command: Redis;
  #writer: RespClient | undefined;
  #opening: Promise<void> | undefined;
  #reader: RespClient | undefined;
  #closed = false;
  /** Counts resets: a connection opened across one is not used. */
  #generation = 0;
  /** Closes of dropped connections, awaited by close. */
  readonly #dropping = new Set<Promise<void>>();

  /**
   * @param command the bus's command connection, whose server and credentials are used
   */
  constructor(command: Redis) {
    this.#command = command;
  }

  /**
   * The connection for XADDs, when open; otherwise one is being opened, and `opened` is called
   * when that attempt ends (with or without success).
   *
   * @param opened called once the connection opened meanwhile is ready, or failed
   * @returns the connection, or `undefined` while there is none
   */
  writer(opened: (error?: unknown) => void): RespClient | undefined {
    const writer = this.#writer;
    if (writer !== undefined && !writer.closed) return writer;
    this.#writer = undefined;
    if (this.#opening === undefined && !this.#closed) {
      this.#opening = this.#open().then((client) => {
        this.#writer = client;
        this.#opening = undefined;
        opened();
      }, (error) => {
        this.#opening = undefined;
        opened(error);
      });
    }
    return undefined;
  }

  /**
   * The connection for blocking reads, opened when there is none.
   *
   * @returns the connection
   * @throws {Error} (as a rejection) If it cannot be opened, or the link is closed.
   */
  async reader(): Promise<RespClient> {
    const reader = this.#reader;
    if (reader !== undefined && !reader.closed) return reader;
    this.#reader = await this.#open();
    return this.#reader;
  }

  async #open(): Promise<RespClient> {
    const options = respOptionsOf(this.#command);
    if (this.#closed || options === undefined) throw new Error("Stream link closed");
    const generation = this.#generation;
    const client = await RespClient.connect(options);
    if (this.#closed || generation !== this.#generation) {
      // Closed, or reset meanwhile: it may be connected to the server that was lost.
      await client.close();
      throw new Error(this.#closed ? "Stream link closed" : "Stream link reset while opening");
    }
    return client;
  }

  /** Settled when the XADD connection being opened is ready or failed; `undefined` if none is. */
  get opening(): Promise<void> | undefined {
    return this.#opening;
  }

  /**
   * Drops both connections (Redis was lost, or the command connection moved to another server):
   * the next use opens new ones. A blocked XREAD and unanswered XADDs are rejected.
   */
  reset(): void {
    this.#generation++;
    const writer = this.#writer;
    const reader = this.#reader;
    this.#writer = undefined;
    this.#reader = undefined;
    for (const client of [writer, reader]) {
      if (client === undefined) continue;
      const closing = client.close();
      this.#dropping.add(closing);
      closing.then(() => this.#dropping.delete(closing));
    }
  }

  /**
   * Closes both connections at once (a blocked XREAD is rejected); unanswered XADDs are rejected.
   *
   * @returns settled when closed
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#opening;
    await Promise.all([this.#writer?.close(), this.#reader?.close(), ...this.#dropping]);
  }
}

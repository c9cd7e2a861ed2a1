/**
 * The bus's hot-path connections to Redis, on {@linkcode RespClient}: one for the XADDs that
 * forward messages (pipelined, many in flight) and one blocked reading the node's stream
 * (XREADGROUP). They go to the server the bus's command connection (ioredis) is connected to,
 * with its credentials, and are opened
 * again by the bus after a loss (one attempt at a time, with the bus's back-off). Not used for TLS
 * without certificate verification (`rejectUnauthorized: false`), which Deno's TLS does not offer
 * per connection, nor when Deno's TLS refuses what ioredis accepts: the bus keeps ioredis for those
 * commands then.
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
  readonly #name: string;
  #writer: RespClient | undefined;
  #reader: RespClient | undefined;
  #opening: Promise<void> | undefined;
  #openingGeneration = 0;
  /** Attempts not settled yet, the current one and any started before a reset; close awaits them. */
  readonly #attempts = new Set<Promise<void>>();
  #closed = false;
  /** Counts resets: a connection opened across one is not used. */
  #generation = 0;
  /** Closes of dropped connections, awaited by close. */
  readonly #dropping = new Set<Promise<void>>();
  readonly #connectTimeout: number | undefined;

  /**
   * @param command the bus's command connection, whose server and credentials are used
   * @param name the connections' names in `CLIENT LIST` start with it (`…:xadd`, `…:xread`)
   * @param options `connectTimeout`: ms each connection may take to open (RespClient's default
   *   when unset)
   */
  constructor(command: Redis, name: string, options: { connectTimeout?: number } = {}) {
    this.#command = command;
    this.#connectTimeout = options.connectTimeout;
    // CLIENT SETNAME takes "!" to "~" only.
    this.#name = name.replace(/[^!-~]/g, "_");
  }

  /** The connection for XADDs, while open; `undefined` once lost (see {@linkcode open}). */
  get writer(): RespClient | undefined {
    return this.#writer?.closed === false ? this.#writer : undefined;
  }

  /** The connection for blocking reads, while open; `undefined` once lost. */
  get reader(): RespClient | undefined {
    return this.#reader?.closed === false ? this.#reader : undefined;
  }

  /**
   * Opens whichever of the two connections is not open: one attempt, shared by the callers
   * meanwhile (an attempt started before a {@linkcode reset} is not shared: it fails, and keeps
   * nothing it opened). One that opened is kept when the other fails.
   *
   * @returns settled when both are open
   * @throws {RespTlsError} (as a rejection) If Deno's TLS refused the connection.
   * @throws {Error} (as a rejection) If one cannot be opened otherwise, or the link is closed or
   *   reset meanwhile.
   */
  open(): Promise<void> {
    // An attempt started before a reset fails (see #openBoth): a caller after it starts anew.
    if (this.#opening !== undefined && this.#openingGeneration === this.#generation) {
      return this.#opening;
    }
    const attempt: Promise<void> = this.#openBoth().finally(() => {
      this.#attempts.delete(attempt);
      if (this.#opening === attempt) this.#opening = undefined;
    });
    this.#attempts.add(attempt);
    this.#opening = attempt;
    this.#openingGeneration = this.#generation;
    return attempt;
  }

  async #openBoth(): Promise<void> {
    const generation = this.#generation;
    const [writer, reader] = await Promise.allSettled([
      this.writer ?? this.#open("xadd"),
      this.reader ?? this.#open("xread"),
    ]);
    if (this.#closed || generation !== this.#generation) {
      // Closed, or reset (a failover) after one of them opened and while the other was opening:
      // the one that opened may be on the server that was lost, and kept it would pair with a
      // new one on the next server. Neither is kept.
      for (const result of [writer, reader]) {
        if (result.status === "fulfilled") this.#drop(result.value);
      }
      throw new Error(this.#closed ? "Stream link closed" : "Stream link reset while opening");
    }
    if (writer.status === "fulfilled") this.#writer = writer.value;
    if (reader.status === "fulfilled") this.#reader = reader.value;
    if (writer.status === "rejected") throw writer.reason;
    if (reader.status === "rejected") throw reader.reason;
  }

  async #open(role: string): Promise<RespClient> {
    const options = respOptionsOf(this.#command);
    if (this.#closed || options === undefined) throw new Error("Stream link closed");
    const generation = this.#generation;
    const client = await RespClient.connect({
      ...options,
      name: `${this.#name}:${role}`,
      ...(this.#connectTimeout === undefined ? {} : { connectTimeout: this.#connectTimeout }),
    });
    if (this.#closed || generation !== this.#generation) {
      // Closed, or reset meanwhile: it may be connected to the server that was lost.
      await client.close();
      throw new Error(this.#closed ? "Stream link closed" : "Stream link reset while opening");
    }
    return client;
  }

  /** Settled when the attempt to open being made has ended; `undefined` if none is. */
  get opening(): Promise<void> | undefined {
    return this.#opening?.catch(() => {});
  }

  /**
   * Drops both connections (Redis was lost, or the command connection moved to another server):
   * the next {@linkcode open} opens new ones. A blocked XREAD and unanswered XADDs are rejected.
   */
  reset(): void {
    this.#generation++;
    const writer = this.#writer;
    const reader = this.#reader;
    this.#writer = undefined;
    this.#reader = undefined;
    for (const client of [writer, reader]) {
      if (client !== undefined) this.#drop(client);
    }
  }

  /** Closes a connection that is not used any more; close awaits it. */
  #drop(client: RespClient): void {
    const closing = client.close();
    this.#dropping.add(closing);
    const dropped = () => this.#dropping.delete(closing);
    closing.then(dropped, dropped); // a failed close is close's to tell, awaited there
  }

  /**
   * Closes both connections at once (a blocked XREAD is rejected); unanswered XADDs are rejected.
   *
   * @returns settled when closed
   */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#attempts].map((attempt) => attempt.catch(() => {})));
    await Promise.all([this.#writer?.close(), this.#reader?.close(), ...this.#dropping]);
  }
}

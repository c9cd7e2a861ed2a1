/**
 * How the cluster reaches Redis: a URL with the options a production Redis needs (user, password,
 * TLS with a private CA or client certificate), turned into an `ioredis` client.
 *
 * @module
 */

import { Redis, type RedisOptions } from "ioredis";
import { type ConnectorTarget, GuardedConnector } from "./_guarded_connector.ts";

/** TLS settings for `rediss://` or `tls: {...}`. */
export interface RedisTlsOptions {
  /** PEM text of CA certificates to trust instead of the system's. */
  ca?: string;
  /** PEM text of a client certificate. */
  cert?: string;
  /** PEM text of the client certificate's private key. */
  key?: string;
  /**
   * Verify the server certificate.
   *
   * @default {true}
   */
  rejectUnauthorized?: boolean;
}

/** Where and how to connect to Redis. */
export interface RedisConnectOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://...` for TLS. */
  url: string;
  /** User name (Redis 6 ACL); overrides one in the URL. */
  username?: string;
  /** Password; overrides one in the URL. */
  password?: string;
  /** TLS settings; a `rediss://` URL turns TLS on with defaults. */
  tls?: RedisTlsOptions;
  /**
   * Further servers tried in turn when a reconnect fails (a failover): host, port and TLS from
   * each URL; credentials and database from `url`.
   */
  failoverUrls?: string[];
}

/**
 * Creates an `ioredis` client for `options`, not connected yet (`lazyConnect`).
 *
 * @param options URL, credentials and TLS
 * @param extra further `ioredis` options (retry strategy, offline queue, ...)
 * @returns the client; call `connect()` on it
 * @throws {TypeError} If the URL is not a `redis:` or `rediss:` URL.
 */
export function createRedis(options: RedisConnectOptions, extra: RedisOptions = {}): Redis {
  const url = parseRedisUrl(options.url);
  const db = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) {
    throw new TypeError(`Invalid Redis URL ${JSON.stringify(options.url)}: bad database number`);
  }
  const tlsWanted = url.protocol === "rediss:" || options.tls !== undefined;
  const redisOptions: RedisOptions = {
    host: url.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1",
    port: url.port === "" ? 6379 : Number(url.port),
    db,
    lazyConnect: true,
    Connector: GuardedConnector,
    ...extra,
  };
  const alternates: ConnectorTarget[] = [];
  for (const other of options.failoverUrls ?? []) {
    const u = parseRedisUrl(other);
    const target: ConnectorTarget = {
      host: u.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1",
      port: u.port === "" ? 6379 : Number(u.port),
    };
    if (u.protocol === "rediss:" || options.tls !== undefined) target.tls = tlsOptions(options.tls);
    alternates.push(target);
  }
  if (alternates.length > 0) {
    (redisOptions as { alternates?: ConnectorTarget[] }).alternates = alternates;
  }
  const username = options.username ?? (url.username ? decodeURIComponent(url.username) : "");
  const password = options.password ?? (url.password ? decodeURIComponent(url.password) : "");
  if (username !== "") redisOptions.username = username;
  if (password !== "") redisOptions.password = password;
  if (tlsWanted) redisOptions.tls = tlsOptions(options.tls);
  return new Redis(redisOptions);
}

function tlsOptions(tls: RedisTlsOptions = {}): NonNullable<RedisOptions["tls"]> {
  return {
    ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
    ...(tls.cert !== undefined ? { cert: tls.cert } : {}),
    ...(tls.key !== undefined ? { key: tls.key } : {}),
    rejectUnauthorized: tls.rejectUnauthorized ?? true,
  };
}

function parseRedisUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new TypeError(`Invalid Redis URL ${JSON.stringify(text)}`);
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    throw new TypeError(
      `Invalid Redis URL ${JSON.stringify(text)}: expected redis:// or rediss://`,
    );
  }
  return url;
}

/**
 * The URL without its password, for logs.
 *
 * @param url a Redis URL
 * @returns it with any password replaced by `***`
 */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    return u.toString();
  } catch {
    return "(invalid URL)";
  }
}

interface Closable {
  closed: boolean;
  destroyed?: boolean;
  destroy(): void;
  once(event: "close", listener: () => void): void;
}

/**
 * Closes a client and waits until its socket is gone: QUIT when connected (so replies to commands
 * sent before arrive), otherwise a disconnect.
 *
 * @param redis the client
 * @param options `quit: false` disconnects at once even when connected (a connection blocked in
 *   XREAD would answer QUIT only after it)
 * @returns a promise resolved once the client has ended
 */
export async function closeRedis(redis: Redis, options: { quit?: boolean } = {}): Promise<void> {
  if (redis.status !== "end") {
    const socket = (redis as unknown as { stream?: Closable }).stream;
    if (
      (redis.status === "reconnecting" || redis.status === "close") &&
      (socket === undefined || socket.closed || socket.destroyed === true)
    ) {
      // Waiting to reconnect, with no socket: disconnect() only cancels the retry timer, and
      // ioredis emits no "end" then (its socket closed before).
      redis.disconnect();
      return;
    }
    const ended = new Promise<void>((resolve) => redis.once("end", () => resolve()));
    if (redis.status === "ready" && options.quit !== false) {
      try {
        await redis.quit();
      } catch {
        redis.disconnect();
      }
    } else {
      redis.disconnect();
    }
    await ended;
  }
  // After a failed connection (refused, TLS handshake or ready check failed) ioredis ends the
  // client but may leave its socket to a 2 s timer that waits for "close": destroy it now.
  const stream = (redis as unknown as { stream?: Closable }).stream;
  if (stream !== undefined && !stream.closed) {
    const closed = new Promise<void>((resolve) => stream.once("close", () => resolve()));
    stream.destroy();
    await closed;
  }
}

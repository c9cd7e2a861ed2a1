/**
 * The oldest Redis the cluster and its store run on, checked when a node connects: on an older
 * Redis a node refuses to start with one line naming both versions, rather than fail later, in
 * the middle of a stream trim.
 *
 * What each Redis version adds that amqtt uses (the highest one is the minimum):
 *
 * | Redis | commands and options                                                         |
 * | ----- | ---------------------------------------------------------------------------- |
 * | 6.2   | `XADD … MINID ~` and `XTRIM … MINID` (a node's stream trimmed to what is read) |
 * | 6.0   | `AUTH user password` (ACL users, only with `username`)                        |
 * | 5.0   | streams (`XADD`, `XREADGROUP`, `XGROUP CREATE … MKSTREAM`, `XGROUP SETID`,    |
 * |       | `XACK`, `XPENDING`, `XINFO GROUPS`, `XRANGE`, `XREVRANGE`, `XLEN`, `XTRIM`);  |
 * |       | scripts replicated by their effects (writes after `TIME` or `SCAN`)            |
 * | 4.0   | `UNLINK`; `HSET` of several fields                                             |
 * | 3.2   | `HSTRLEN`                                                                      |
 *
 * @module
 */

import type { Redis } from "ioredis";

/** The oldest Redis amqtt's cluster and Redis store run on. */
export const MIN_REDIS_VERSION = "6.2.0";

/** A Redis older than {@linkcode MIN_REDIS_VERSION}, or one whose version is no number. */
export class RedisVersionError extends Error {
  /** @param message what was found and what is needed ({@linkcode redisTooOld}) */
  constructor(message: string) {
    super(message);
    this.name = "RedisVersionError";
  }
}

/** What the oldest versions lack, for the refusal's text. */
const NEEDED_FOR = "XADD MINID";

/**
 * The server's version in the text of `INFO server` (`redis_version:7.0.15`).
 *
 * @param info the reply of `INFO server` (or `INFO`)
 * @returns the version, or `undefined` when the text names none
 */
export function redisVersionFrom(info: string): string | undefined {
  const found = /^redis_version:([^\r\n]*)/m.exec(info);
  const version = found?.[1]?.trim();
  return version === undefined || version === "" ? undefined : version;
}

/**
 * Why a Redis of `version` cannot be used: compared as numbers (`10.0.0` is newer than `6.2.0`),
 * part by part.
 *
 * @param version the server's version (`6.0.16`)
 * @returns the refusal's text, or `undefined` when the version is recent enough
 */
export function redisTooOld(version: string): string | undefined {
  const parts = (text: string) => text.split(".").map((part) => parseInt(part, 10));
  const found = parts(version);
  const needed = parts(MIN_REDIS_VERSION);
  if (found.some((n, i) => i < 3 && Number.isNaN(n))) {
    return `Redis reports version ${JSON.stringify(version)}, which is no version number: ` +
      `amqtt needs Redis ${MIN_REDIS_VERSION} or later`;
  }
  for (let i = 0; i < needed.length; i++) {
    const n = found[i] ?? 0;
    if (n > needed[i]!) return undefined;
    if (n < needed[i]!) {
      return `Redis ${version} is too old: amqtt needs Redis ${MIN_REDIS_VERSION} or later (${NEEDED_FOR})`;
    }
  }
  return undefined;
}

/**
 * Asks a connected Redis its version (`INFO server`; `HELLO 2` when an ACL refuses INFO) and
 * fails when it is older than {@linkcode MIN_REDIS_VERSION}.
 *
 * @param redis a connected client
 * @throws {RedisVersionError} (as a rejection) With {@linkcode redisTooOld}'s text.
 * @throws {Error} (as a rejection) The error of the commands when neither is answered.
 */
export async function checkRedisVersion(redis: Redis): Promise<void> {
  let version: string | undefined;
  try {
    version = redisVersionFrom(await redis.info("server"));
  } catch (error) {
    // INFO is in the `@dangerous` category, which ACL users are often denied; HELLO (6.0 and
    // later) says the version too, and is unknown to older servers.
    if ((error as Error)?.name !== "ReplyError") throw error;
    let hello: unknown;
    try {
      hello = await redis.call("HELLO", "2");
    } catch (helloError) {
      if (!/unknown command/i.test(String((helloError as Error)?.message))) throw helloError;
      throw new RedisVersionError(
        `Redis is too old (no HELLO command: before 6.0): amqtt needs Redis ${MIN_REDIS_VERSION} or later (${NEEDED_FOR})`,
      );
    }
    if (Array.isArray(hello)) {
      const at = hello.findIndex((item) => String(item) === "version");
      if (at >= 0) version = String(hello[at + 1]);
    }
  }
  if (version === undefined) return; // a server that does not say (a proxy): tried as it is
  const refusal = redisTooOld(version);
  if (refusal !== undefined) throw new RedisVersionError(refusal);
}

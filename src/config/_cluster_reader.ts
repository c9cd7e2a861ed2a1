/**
 * Reads the `cluster` section into a {@linkcode ClusterConfig}.
 *
 * @module
 */

import {
  type ClusterConfig,
  type ClusterTlsConfig,
  defaultClusterConfig,
} from "./cluster_config.ts";
import {
  describe,
  type Entry,
  isPlainMap,
  readBool,
  type ReadContext,
  readExistingPath,
  readNonEmptyString,
  readNumber,
  readSchemaMap,
  readString,
} from "./_reader.ts";

const KEYS = [
  "enabled",
  "node_id",
  "redis",
  "username",
  "password",
  "tls",
  "key_prefix",
  "heartbeat_interval",
  "node_timeout",
  "login_timeout",
] as const;
const TLS_KEYS = ["cafile", "certfile", "keyfile", "verify"] as const;

function readUrl(ctx: ReadContext, entry: Entry): string {
  const text = readNonEmptyString(ctx, entry, "a Redis URL such as redis://host:6379");
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw ctx.error(
      entry.path,
      `expected a Redis URL such as redis://host:6379, got ${describe(text)}`,
    );
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    throw ctx.error(
      entry.path,
      `expected a redis:// or rediss:// URL, got a ${url.protocol.slice(0, -1)} URL`,
    );
  }
  if (url.hostname === "") throw ctx.error(entry.path, "the Redis URL has no host");
  if (url.pathname.length > 1 && !/^\/\d+$/.test(url.pathname)) {
    throw ctx.error(entry.path, `expected a database number after the host, got ${url.pathname}`);
  }
  return text;
}

function readUrls(ctx: ReadContext, entry: Entry): string[] {
  if (!Array.isArray(entry.value)) return [readUrl(ctx, entry)];
  if (entry.value.length === 0) {
    throw ctx.error(entry.path, "expected at least one Redis URL, got an empty list");
  }
  return entry.value.map((value, i) => readUrl(ctx, { value, path: [...entry.path, i] }));
}

function readTls(ctx: ReadContext, entry: Entry): ClusterTlsConfig {
  const out: ClusterTlsConfig = {
    cafile: undefined,
    certfile: undefined,
    keyfile: undefined,
    verify: true,
  };
  if (!isPlainMap(entry.value)) {
    // `tls: on` turns TLS on with the system's CAs.
    if (!readBool(ctx, entry)) throw ctx.error(entry.path, "leave tls out to connect without TLS");
    return out;
  }
  const fields = readSchemaMap(ctx, entry.value, entry.path, TLS_KEYS);
  for (const key of ["cafile", "certfile", "keyfile"] as const) {
    const field = fields.get(key);
    if (field !== undefined) out[key] = readExistingPath(ctx, field, "file");
  }
  if ((out.certfile === undefined) !== (out.keyfile === undefined)) {
    throw ctx.error(entry.path, "give certfile and keyfile together, or neither");
  }
  const verify = fields.get("verify");
  if (verify !== undefined) out.verify = readBool(ctx, verify);
  if (!out.verify) {
    ctx.warn(verify!.path, "the Redis server's certificate is not verified");
  }
  return out;
}

function readNodeId(ctx: ReadContext, entry: Entry): string {
  const id = readNonEmptyString(ctx, entry, "a node id");
  // It becomes part of Redis key and channel names and of log lines.
  if (id.length > 128 || !/^[\x21-\x7e]+$/.test(id)) {
    throw ctx.error(
      entry.path,
      `expected a node id of 1-128 printable ASCII characters without spaces, got ${describe(id)}`,
    );
  }
  return id;
}

/**
 * Resolves the `cluster` section.
 *
 * @param ctx the read context
 * @param section the `cluster` entry, if written
 * @returns the cluster settings, defaulted (off without the section)
 */
export function readCluster(ctx: ReadContext, section: Entry | undefined): ClusterConfig {
  const out = defaultClusterConfig();
  if (section === undefined) return out;
  out.enabled = true;
  if (!isPlainMap(section.value)) {
    // `cluster: on` joins a cluster on the local Redis with the defaults.
    out.enabled = readBool(ctx, section);
  } else {
    const fields = readSchemaMap(ctx, section.value, section.path, KEYS);
    const enabled = fields.get("enabled");
    if (enabled !== undefined) out.enabled = readBool(ctx, enabled);
    const nodeId = fields.get("node_id");
    if (nodeId !== undefined) out.nodeId = readNodeId(ctx, nodeId);
    const redis = fields.get("redis");
    if (redis !== undefined) out.redis = readUrls(ctx, redis);
    const username = fields.get("username");
    if (username !== undefined) out.username = readNonEmptyString(ctx, username, "a user name");
    const password = fields.get("password");
    if (password !== undefined) out.password = readString(ctx, password, "a password");
    const tls = fields.get("tls");
    if (tls !== undefined) out.tls = readTls(ctx, tls);
    const prefix = fields.get("key_prefix");
    if (prefix !== undefined) out.keyPrefix = readNonEmptyString(ctx, prefix, "a key prefix");
    const heartbeat = fields.get("heartbeat_interval");
    if (heartbeat !== undefined) {
      out.heartbeatInterval = readNumber(ctx, heartbeat, {
        min: 0,
        max: 3600,
        positive: true,
        unit: "seconds",
      });
    }
    const timeout = fields.get("node_timeout");
    if (timeout !== undefined) {
      out.nodeTimeout = readNumber(ctx, timeout, {
        min: 0,
        max: 86400,
        positive: true,
        unit: "seconds",
      });
    }
    const login = fields.get("login_timeout");
    if (login !== undefined) {
      out.loginTimeout = readNumber(ctx, login, {
        min: 0,
        max: 86400,
        positive: true,
        unit: "seconds",
      });
    }
    if (out.nodeTimeout <= out.heartbeatInterval) {
      throw ctx.error(
        (timeout ?? heartbeat ?? section).path,
        `node_timeout (${out.nodeTimeout} s) must be longer than heartbeat_interval (${out.heartbeatInterval} s)`,
      );
    }
  }
  return out;
}

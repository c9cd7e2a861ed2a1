/**
 * Parsing of aMQTT listener `bind` values.
 *
 * @module
 */

import { ConfigError } from "./config_error.ts";

/** Where a listener listens. */
export interface BindAddress {
  /** Address to listen on; `0.0.0.0` when the bind value names no host. IPv6 without brackets. */
  hostname: string;
  /** TCP port, 0..65535; 0 lets the system pick a free port. */
  port: number;
}

const HOSTNAME = /^[A-Za-z0-9._%-]+$/;
const IPV6 = /^[0-9A-Fa-f:.]+(?:%[A-Za-z0-9._-]+)?$/;

/**
 * Internal form of {@linkcode parseBind}: returns the reason instead of throwing, so the caller
 * can attach a key path and line.
 */
export function _parseBind(
  bind: string,
  defaultPort: number,
): BindAddress | { error: string } {
  const text = bind.trim();
  let host: string;
  let portText: string | undefined;
  if (text.startsWith("[")) {
    const end = text.indexOf("]");
    if (end < 0) return { error: `${JSON.stringify(bind)} has "[" without a closing "]"` };
    host = text.slice(1, end);
    const rest = text.slice(end + 1);
    if (rest !== "" && !rest.startsWith(":")) {
      return { error: `${JSON.stringify(bind)} must be "[address]:port"` };
    }
    portText = rest === "" ? undefined : rest.slice(1);
    if (!IPV6.test(host) || !host.includes(":")) {
      return { error: `${JSON.stringify(host)} in ${JSON.stringify(bind)} is not an IPv6 address` };
    }
  } else {
    const colons = text.split(":").length - 1;
    if (colons > 1) {
      return {
        error: `${JSON.stringify(bind)} looks like an IPv6 address: write it in brackets, ` +
          `e.g. "[::]:1883"`,
      };
    }
    if (colons === 1) {
      const at = text.indexOf(":");
      host = text.slice(0, at);
      portText = text.slice(at + 1);
    } else if (/^\d+$/.test(text)) {
      // A bare number is a port on all interfaces, as in aMQTT.
      host = "";
      portText = text;
    } else {
      host = text;
      portText = undefined;
    }
    if (host !== "" && !HOSTNAME.test(host)) {
      return { error: `${JSON.stringify(host)} in ${JSON.stringify(bind)} is not a valid host` };
    }
  }
  let port = defaultPort;
  if (portText !== undefined && portText !== "") {
    if (!/^\d+$/.test(portText)) {
      return {
        error: `port ${JSON.stringify(portText)} in ${JSON.stringify(bind)} is not a number`,
      };
    }
    port = Number(portText);
  }
  if (port > 65535) return { error: `port ${port} is out of range 0-65535` };
  return { hostname: host === "" ? "0.0.0.0" : host, port };
}

/**
 * Parses a listener `bind` value the way aMQTT does: `1883`, `:1883`, `host:port`, `host`,
 * `[::]:1883` or `""`. A missing host means all IPv4 interfaces (`0.0.0.0`); a missing port means
 * `defaultPort`. Port 0 asks the system for a free port.
 *
 * @param bind The bind value.
 * @param defaultPort The port to use when `bind` has none.
 * @returns The hostname (IPv6 without brackets) and port.
 * @throws {ConfigError} If the host or port is malformed or the port is above 65535
 * (`path` is `"bind"`).
 *
 * @example
 * ```ts
 * import { parseBind } from "./bind.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseBind(":1883", 1883), { hostname: "0.0.0.0", port: 1883 });
 * assert.deepEqual(parseBind("[::1]:8883", 1883), { hostname: "::1", port: 8883 });
 * assert.deepEqual(parseBind("localhost", 8883), { hostname: "localhost", port: 8883 });
 * ```
 */
export function parseBind(bind: string, defaultPort: number): BindAddress {
  if (typeof bind !== "string") throw new TypeError("Cannot parse bind: expected a string");
  if (!Number.isInteger(defaultPort) || defaultPort < 0 || defaultPort > 65535) {
    throw new RangeError(`Cannot parse bind: default port ${defaultPort} is out of range 0-65535`);
  }
  const result = _parseBind(bind, defaultPort);
  if ("error" in result) throw new ConfigError(result.error, { path: "bind" });
  return result;
}

/**
 * Fixtures the plugin tests share: the client a plugin is asked about, and a plugin context whose
 * logger keeps every line.
 *
 * @module
 */

import type { ClientInfo, Logger, PluginContext } from "../../src/plugins/types.ts";

/**
 * A TCP client "c1" at MQTT 3.1.1, anonymous when it has no user name (or an empty one).
 *
 * @param username the CONNECT user name
 * @param password the CONNECT password, as text
 * @returns what a plugin is told about the client
 */
export function client(username?: string, password?: string): ClientInfo {
  return {
    clientId: "c1",
    username,
    password: password === undefined ? undefined : new TextEncoder().encode(password),
    remoteAddress: "127.0.0.1:5555",
    transport: "tcp",
    protocolVersion: 4,
    anonymous: username === undefined || username === "",
  };
}

/**
 * A plugin context whose logger records each line as `"<level>: <message>"`.
 *
 * @returns the context and the lines logged so far
 */
export function context(): PluginContext & { lines: string[] } {
  const lines: string[] = [];
  const logger: Logger = {
    debug: (m) => lines.push(`debug: ${m}`),
    info: (m) => lines.push(`info: ${m}`),
    warning: (m) => lines.push(`warning: ${m}`),
    error: (m) => lines.push(`error: ${m}`),
  };
  return { lines, logger, publish: () => Promise.resolve() };
}

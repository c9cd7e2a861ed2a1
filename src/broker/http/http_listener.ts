/**
 * The http listener in front of an {@linkcode HttpApp}: `Deno.serve` for http, `node:https` for
 * https, whose certificate can be changed while it runs (SIGHUP).
 *
 * @module
 */

import type { ServerListener } from "../../transport/listener.ts";
import { formatAddr } from "../../transport/socket.ts";
import { checkKeyPair } from "../../transport/tls_node.ts";
import { serveNodeHttps } from "./_node_https.ts";
import type { HttpApp } from "./http_app.ts";

/** Options of {@linkcode listenHttp}. */
export interface HttpListenOptions {
  /** The listener's name. */
  name: string;
  /** Address to bind. */
  hostname: string;
  /** 0 picks a free port. */
  port: number;
  /** Serve https with this certificate chain and key (PEM). */
  tls?: { cert: string; key: string };
}

/**
 * Starts serving `app`.
 *
 * @param options where to listen, and TLS
 * @param app the handler
 * @returns the running listener; closing it stops the app too
 */
export async function listenHttp(
  options: HttpListenOptions,
  app: HttpApp,
): Promise<ServerListener> {
  await app.start();
  if (options.tls !== undefined) return await listenHttps({ ...options, tls: options.tls }, app);
  const listening = Promise.withResolvers<void>();
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: options.hostname,
      port: options.port,
      onListen: () => listening.resolve(),
      onError: () => new Response("Internal error", { status: 500 }),
    }, (request, info) => app.handle(request, formatAddr(info.remoteAddr)));
  } catch (error) {
    app.close();
    throw error;
  }
  await listening.promise;
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      await server.shutdown();
      app.close();
    })();
  return {
    name: options.name,
    transport: "http",
    hostname: server.addr.hostname,
    port: server.addr.port,
    close,
    [Symbol.asyncDispose]: close,
  };
}

async function listenHttps(
  options: HttpListenOptions & { tls: { cert: string; key: string } },
  app: HttpApp,
): Promise<ServerListener> {
  let server;
  try {
    server = await serveNodeHttps(
      { hostname: options.hostname, port: options.port, ...options.tls },
      (request, remote) => app.handle(request, remote),
    );
  } catch (error) {
    app.close();
    throw error;
  }
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      await server.close();
      app.close();
    })();
  return {
    name: options.name,
    transport: "https",
    hostname: server.hostname,
    port: server.port,
    close,
    setTls: (tls) => {
      checkKeyPair(tls.cert, tls.key);
      server.setSecureContext(tls);
    },
    [Symbol.asyncDispose]: close,
  };
}

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

/** A started server, before it becomes a listener. */
interface RunningServer {
  hostname: string;
  port: number;
  close(): Promise<void>;
  setTls?(tls: { cert: string; key: string }): void;
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
  let server: RunningServer;
  try {
    server = options.tls === undefined
      ? await serveHttp(options, app)
      : await serveHttps(options, options.tls, app);
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
    transport: options.tls === undefined ? "http" : "https",
    hostname: server.hostname,
    port: server.port,
    close,
    ...(server.setTls === undefined ? {} : { setTls: server.setTls }),
    [Symbol.asyncDispose]: close,
  };
}

async function serveHttp(options: HttpListenOptions, app: HttpApp): Promise<RunningServer> {
  const listening = Promise.withResolvers<void>();
  const server = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    onListen: () => listening.resolve(),
    onError: () => new Response("Internal error", { status: 500 }),
  }, (request, info) => app.handle(request, formatAddr(info.remoteAddr)));
  await listening.promise;
  return { hostname: server.addr.hostname, port: server.addr.port, close: () => server.shutdown() };
}

async function serveHttps(
  options: HttpListenOptions,
  tls: { cert: string; key: string },
  app: HttpApp,
): Promise<RunningServer> {
  const server = await serveNodeHttps(
    { hostname: options.hostname, port: options.port, ...tls },
    (request, remote) => app.handle(request, remote),
  );
  return {
    hostname: server.hostname,
    port: server.port,
    close: () => server.close(),
    setTls: (next) => {
      checkKeyPair(next.cert, next.key);
      server.setSecureContext(next);
    },
  };
}

/**
 * The http listener: `Deno.serve` (with TLS when configured) in front of an {@linkcode HttpApp}.
 *
 * @module
 */

import type { ServerListener } from "../../transport/listener.ts";
import { formatAddr } from "../../transport/socket.ts";
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
  const listening = Promise.withResolvers<void>();
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: options.hostname,
      port: options.port,
      ...(options.tls ? { cert: options.tls.cert, key: options.tls.key } : {}),
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
    transport: options.tls ? "https" : "http",
    hostname: server.addr.hostname,
    port: server.addr.port,
    close,
    [Symbol.asyncDispose]: close,
  };
}
